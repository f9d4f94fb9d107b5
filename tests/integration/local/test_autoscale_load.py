"""Autoscaling under real load, end to end: a real control plane (1 s scrapes, autoscaler every 0.5 s),
its real router and real app processes. A steady ~30 req/s through the router makes an app with an rps
target of 5 per instance scale out (within maxReplicas); a trickle of 2 req/s after that makes it scale
back in to minReplicas once the short scale-down window has passed. Every request of the run gets 200:
none is lost while instances are added or drained."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.local.test_local_runtime import client, score
from yunzhou.client import YunzhouClient
from yunzhou.testing import ControlPlaneProcess
from yunzhou.testing.polling import wait_until

__all__ = ["client"]  # the project "shop" with its environment "dev", on this module's server

APPS = Path(__file__).parent / "apps"
HOST = "web.dev.shop.localhost"
DEADLINE = 120.0  # generous: a loaded 2-core machine, and the rps is a rate over 30 s
HIGH, LOW = 30.0, 2.0  # requests per second offered: six instances' worth (capped at 4), then under one
POLICY = {
    "autoscaling": {
        "minReplicas": 1,
        "maxReplicas": 4,
        "metrics": [{"type": "rps", "target": {"type": "AverageValue", "averageValue": 5}}],
        "behavior": {"scaleDown": {"stabilizationWindowSeconds": 5}},
    }
}


class PacedLoad:
    """Requests at ``rate`` per second (changeable while running) through the router, one outcome each:
    the serving pid for a 200, else ``HTTP <code>`` or the error's name."""

    def __init__(self, router: str, host: str, rate: float) -> None:
        self.router, self.host, self.rate = router, host, rate
        self.outcomes: list[int | str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="paced-load", daemon=True)

    def _run(self) -> None:
        headers = {"Host": self.host}
        with httpx.Client(
            base_url=f"http://{self.router}", headers=headers, timeout=10, trust_env=False
        ) as c:
            due = time.monotonic()
            while not self._stop.is_set():
                try:
                    r = c.get("/")
                    self.outcomes.append(
                        int(r.json()["pid"]) if r.status_code == 200 else f"HTTP {r.status_code}"
                    )
                except (httpx.HTTPError, ValueError, KeyError) as exc:
                    self.outcomes.append(type(exc).__name__)
                due = max(due + 1 / self.rate, time.monotonic() - 1)  # catch up at most 1 s when behind
                self._stop.wait(max(0.0, due - time.monotonic()))  # pacing, not waiting for a condition

    def failures(self) -> Counter[int | str]:
        return Counter(o for o in self.outcomes if isinstance(o, str))

    def __enter__(self) -> PacedLoad:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(15)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ControlPlaneProcess]:
    env = {"YUNZHOU_AUTOSCALE_INTERVAL": "0.5", "YUNZHOU_SCRAPE_INTERVAL": "1"}
    with ControlPlaneProcess(tmp_path / "data", env=env, startup_timeout=90, host_processes=True) as cp:
        yield cp


def ready(client: YunzhouClient) -> int:
    return sum(1 for i in client.list_instances("shop", "dev", "web") if i["ready"])


def scaled(client: YunzhouClient, out: bool) -> list[dict[str, Any]]:
    """The applied decisions that scaled out (above one instance) or in."""
    return [
        d
        for d in client.autoscale_decisions("shop", "dev", "web")
        if d["applied"] and (d["desired"] > max(1, d["current"]) if out else d["desired"] < d["current"])
    ]


def test_a_load_ramp_scales_the_app_out_and_back_in_without_losing_a_request(
    server: ControlPlaneProcess, client: YunzhouClient
) -> None:
    result = client.deploy("shop", "dev", score("web", "v1"), POLICY, client.upload_artifact(APPS / "web"))
    done = client.wait_for_rollout("shop", "dev", "web", result["rollout"]["id"], timeout=60, interval=0.1)
    assert done["state"] == "succeeded", done
    assert ready(client) == 1

    with PacedLoad(f"127.0.0.1:{server.router_port}", HOST, HIGH) as load:
        started = time.monotonic()
        wait_until("more than one ready instance", lambda: ready(client) > 1, DEADLINE)
        out_seconds = time.monotonic() - started
        wait_until("an applied scale-out decision", lambda: scaled(client, out=True), DEADLINE)
        wait_until("maxReplicas ready (30 req/s asks for 6)", lambda: ready(client) == 4, DEADLINE)
        high_sent, high_seconds = len(load.outcomes), time.monotonic() - started
        wait_until("traffic on all four instances", lambda: len(set(load.outcomes[high_sent:])) == 4)

        load.rate = LOW  # the ramp down: under one instance's worth, still flowing while instances drain
        lowered = time.monotonic()
        wait_until(
            "back to one ready instance",
            lambda: client.get_app("shop", "dev", "web")["replicas"] == 1 and ready(client) == 1,
            DEADLINE,
        )
        in_seconds = time.monotonic() - lowered
        wait_until("an applied scale-in decision", lambda: scaled(client, out=False), DEADLINE)
        settled = len(load.outcomes)
        wait_until("traffic after scaling in", lambda: len(load.outcomes) > settled + 4, 30)

    decisions = client.autoscale_decisions("shop", "dev", "web", limit=1000)
    sent, failures = len(load.outcomes), load.failures()
    print(
        f"scale out: >1 ready after {out_seconds:.1f} s, 4 ready after {high_seconds:.1f} s "
        f"({high_sent / high_seconds:.1f} req/s achieved); scale in: 1 ready {in_seconds:.1f} s after the "
        f"ramp down; {sent} requests, {sum(failures.values())} failed, {len(set(load.outcomes))} pids; "
        f"decisions: {[(d['current'], d['desired'], d['applied']) for d in reversed(decisions)]}"
    )
    assert all(1 <= d["desired"] <= 4 for d in decisions), decisions  # within minReplicas..maxReplicas
    assert max(d["desired"] for d in scaled(client, out=True)) == 4
    assert min(d["desired"] for d in scaled(client, out=False)) == 1
    assert len(set(load.outcomes) - set(failures)) == 4
    assert not failures, f"{sum(failures.values())} of {sent} requests failed: {failures}"
