"""A damaged SQLite page is found at start (PRAGMA quick_check): the server refuses to start with one line
naming the file and how to recover, instead of failing later on whichever request reads the page."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from yunzhou.domain.errors import PermanentError
from yunzhou.store import Database, check_integrity, sqlite_url, upgrade
from yunzhou.testing import free_port

PAGE = 4096


def _state_db(data_dir: Path) -> Path:
    db = Database(sqlite_url(data_dir))
    upgrade(db.engine)
    assert check_integrity(db).endswith("quick_check ok")
    db.dispose()
    return data_dir / "state.db"


def _damage_a_page(path: Path, page: int = 2) -> None:
    with path.open("r+b") as f:  # page 3 of the file (0-based 2): a table's b-tree page
        f.seek(page * PAGE)
        f.write(b"\xa5" * PAGE)


def test_a_damaged_page_is_a_permanent_error_naming_the_file(tmp_path: Path) -> None:
    path = _state_db(tmp_path)
    _damage_a_page(path)
    db = Database(sqlite_url(tmp_path))
    with pytest.raises(PermanentError) as refused:
        check_integrity(db)
    db.dispose()
    assert str(path) in refused.value.message
    assert "quick_check: Page 3" in refused.value.message
    assert ".recover" in refused.value.message
    assert "\n" not in refused.value.message


def test_the_server_refuses_to_start_on_a_damaged_database(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    _damage_a_page(_state_db(data_dir))
    env = {k: v for k, v in os.environ.items() if not k.startswith("YUNZHOU_")}
    argv = [sys.executable, "-m", "yunzhou", "server", "--no-runtime", "--data-dir", str(data_dir),
            "--api-port", str(free_port())]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, env={**env, "COLUMNS": "400"}, timeout=120)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    errors = [line for line in (done.stdout + done.stderr).splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, done.stdout + done.stderr
    assert "state.db is damaged" in errors[0]
