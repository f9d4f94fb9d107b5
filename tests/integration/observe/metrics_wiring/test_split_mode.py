"""`yunzhou server --no-runtime` beside `yunzhou worker` on one data dir: the API process still collects the
router's series (it finds the router's admin API through the file the worker writes), the instances as
the reconcilers record them, and the apps' own endpoints."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from yunzhou.client import YunzhouClient
from yunzhou.testing import ControlPlaneProcess, polling

pytestmark = pytest.mark.slow
APP_DIR = Path(__file__).resolve().parents[3] / "e2e" / "metrics_app"
DEADLINE = 90.0


def wait_until(what: str, check: Callable[[], Any]) -> Any:
    return polling.wait_until(what, check, DEADLINE, interval=0.2)


def test_split_mode_collects_router_instances_and_app_endpoints(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = {"YUNZHOU_SCRAPE_INTERVAL": "0.3"}
    with ControlPlaneProcess(data, env=env, extra_args=("--no-runtime",), host_processes=True) as api:
        argv = [sys.executable, "-m", "yunzhou", "worker", "--data-dir", str(data), "--router-port",
                str(api.router_port)]  # fmt: skip
        with (tmp_path / "worker.log").open("wb") as log:
            worker = subprocess.Popen(  # host processes, as the API server was told (no image to run)
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=os.environ | {"YUNZHOU_INSTANCE_MODE": "process"},
            )
        try:
            with YunzhouClient(api.url, api.admin_token) as client:
                client.create_project("shop")
                client.create_environment("shop", "dev")
                doc = yaml.safe_load((APP_DIR / "score.yaml").read_text())
                settings = yaml.safe_load((APP_DIR / "yunzhou.yaml").read_text())
                result = client.deploy("shop", "dev", doc, settings, client.upload_artifact(APP_DIR))
                rollout = client.wait_for_rollout("shop", "dev", "orders", result["rollout"]["id"],
                                                  timeout=DEADLINE, interval=0.2)  # fmt: skip
                assert rollout["state"] == "succeeded", rollout
                router = f"http://127.0.0.1:{api.router_port}/"
                for _ in range(20):
                    assert httpx.get(router, headers={"Host": "orders.dev.shop.localhost"}).status_code == 200

                def total(expr: str) -> float:
                    return sum(float(s["value"][1]) for s in client.metrics_query(expr)["result"])

                wait_until(
                    "router requests", lambda: total('yunzhou_router_requests_total{app="orders"}') >= 20
                )
                wait_until("a ready instance", lambda: total('yunzhou_instance_ready{app="orders"}') == 1)
                wait_until("the app's own metric", lambda: total('orders_total{app="orders"}') >= 20)
        finally:
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(30) == 0
    assert not (data / "router-admin").exists()  # the worker cleans up after itself
