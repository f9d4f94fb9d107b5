"""`yunzhou up` (what `make up` runs) as a new user meets it: the demo is built into images (the builds'
steps shown), answers through the router by internal name, and Ctrl-C leaves nothing behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.test_readme_first_hour import alive, descendants
from yunzhou.testing import free_port

pytestmark = pytest.mark.e2e


def test_up_serves_the_demo_and_ctrl_c_stops_everything(tmp_path: Path) -> None:
    api_port, router_port = free_port(), free_port()
    log = (tmp_path / "up.log").open("w+")
    env = {k: v for k, v in os.environ.items() if not k.startswith("YUNZHOU_")}
    argv = [sys.executable, "-m", "yunzhou", "up", "--data-dir", str(tmp_path / "data"),
            "--api-port", str(api_port), "--router-port", str(router_port)]  # fmt: skip
    up = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 900  # a fresh machine builds the python stack first (~1-2 min)
        while "Press Ctrl-C" not in (tmp_path / "up.log").read_text():
            assert up.poll() is None, (tmp_path / "up.log").read_text()
            assert time.monotonic() < deadline, "yunzhou up did not come up"
            time.sleep(0.2)  # polling the output, bounded by the deadline
        out = (tmp_path / "up.log").read_text()
        assert f"shop/dev/orders release 1, ready: http://orders.dev.shop.localhost:{router_port}" in out
        assert "shop/dev/orders: build succeeded" in out  # the builds' steps, one line each in a log
        assert "shop/dev/inventory: build succeeded" in out
        r = httpx.get(
            f"http://127.0.0.1:{router_port}/order/apple", headers={"Host": "orders.dev.shop.localhost"}
        )
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["accepted"] is True
        assert body["inventory"]["item"] == "apple"  # orders reached inventory by its internal name
        started = descendants(up.pid)  # the router and the apps' instances
        assert started
    finally:
        up.send_signal(signal.SIGINT)
        code = up.wait(60)
        log.close()
    assert code == 0
    assert alive(started) == set()
