"""settings.https: what an app served over HTTPS does for plain HTTP (docs/settings.md)."""

from __future__ import annotations

import pytest

from yunzhou.domain.errors import UserError
from yunzhou.domain.settings import HttpsSettings, parse_settings


def test_settings_https_is_checked_field_by_field() -> None:
    parsed = parse_settings({"https": {"redirect": True, "hstsMaxAge": 600}})
    assert parsed.https == HttpsSettings(True, 600)
    assert parsed.to_dict()["https"] == {"redirect": True, "hstsMaxAge": 600}
    with pytest.raises(UserError) as refused:
        parse_settings({"https": {"redirect": "yes", "hstsMaxAge": -1, "preload": True}})
    paths = sorted(p.path for p in refused.value.problems)
    assert paths == ["settings.https.hstsMaxAge", "settings.https.preload", "settings.https.redirect"]
