from __future__ import annotations

import pytest

from yunzhou.domain.alert_routing import parse_route
from yunzhou.domain.errors import UserError


def test_group_by_every_label_stands_alone() -> None:
    assert parse_route({"group_by": ["..."]}).group_key({"b": "2", "a": "1"}) == (("a", "1"), ("b", "2"))
    with pytest.raises(UserError) as err:
        parse_route({"group_by": ["...", "app"]})
    assert [p.path for p in err.value.problems] == ["route.group_by"]
