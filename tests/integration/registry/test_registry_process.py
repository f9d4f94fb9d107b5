"""The managed registry process: restarted on the same address when it dies, address file kept current,
nothing left running after stop."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import httpx

from tests.integration.registry.managed import REALM
from yunzhou.registry.server import ADDRESS_FILE, RegistryProcess
from yunzhou.testing.polling import wait_until


def test_a_registry_that_died_is_started_again_on_the_same_address(tmp_path: Path) -> None:
    process = RegistryProcess(tmp_path, realm=REALM).start()
    try:
        url, first_pid = process.url, process.pid
        assert json.loads((tmp_path / "registry" / ADDRESS_FILE).read_text()) == {"url": url, "realm": REALM}
        assert process.ensure() is False  # running: nothing to do
        os.kill(first_pid, signal.SIGKILL)
        wait_until("the registry to exit", lambda: not process.running(), timeout=30)
        assert process.ensure() is True
        assert process.pid != first_pid
        assert process.url == url
        assert httpx.get(url + "/v2/", timeout=10).status_code == 401
    finally:
        process.stop()
    assert not (tmp_path / "registry" / ADDRESS_FILE).exists()
    assert not process.running()
