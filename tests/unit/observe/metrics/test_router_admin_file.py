"""`<data dir>/router-admin`: where the worker's router admin API is and the token it needs (split mode)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from yunzhou.domain.errors import TemporaryError
from yunzhou.observe.metrics.collect_setup import ROUTER_ADMIN_FILE, publish_router_admin, read_router_admin


def test_the_router_admin_file_keeps_the_token_private_and_reads_back(tmp_path: Path) -> None:
    assert read_router_admin(tmp_path) is None  # no local target on this data dir
    headers = {"Authorization": "Bearer s3cret-0123456789"}
    publish_router_admin(tmp_path, "127.0.0.1:4101", headers)
    publish_router_admin(tmp_path, "127.0.0.1:4102", headers)  # a restarted router replaces it
    assert stat.S_IMODE((tmp_path / ROUTER_ADMIN_FILE).stat().st_mode) == 0o600
    assert read_router_admin(tmp_path) == ("127.0.0.1:4102", headers)
    assert sorted(p.name for p in tmp_path.iterdir()) == [ROUTER_ADMIN_FILE]  # no temporary file left


def test_a_router_admin_file_of_an_older_version_is_a_temporary_error_naming_the_fix(tmp_path: Path) -> None:
    (tmp_path / ROUTER_ADMIN_FILE).write_text("127.0.0.1:4101")  # address only, as written before tokens
    with pytest.raises(TemporaryError, match="restart the worker"):
        read_router_admin(tmp_path)
