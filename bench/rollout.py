"""Rolling-update benchmark: 20 consecutive redeploys of a 3-replica app under a steady 50 requests/s.

Run: .venv/bin/python bench/rollout.py [--redeploys 20] [--rate 50] [--replicas 3]
Prints JSON: requests and non-2xx before/during, p50/p99 latency before/during, the p99 rise, and the
time each redeploy took. Targets (issue 4): 0 non-2xx, p99 rise < 100 ms. Everything runs on loopback.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from yunzhou.client import YunzhouClient
from yunzhou.testing import ControlPlaneProcess

APP = Path(__file__).resolve().parents[1] / "examples" / "inventory"


class SteadyLoad:
    """Open-loop load at a fixed rate: request i is due at start + i/rate, whatever the previous did."""

    def __init__(self, url: str, host: str, rate: float) -> None:
        self.url, self.host, self.interval = url, host, 1.0 / rate
        self.samples: list[tuple[float, float, int]] = []  # (sent at, latency s, status; 0 = transport error)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(headers={"Host": self.host}, timeout=10) as client:
            start = time.perf_counter()
            i = 0
            while not self._stop.is_set():
                due = start + i * self.interval
                delay = due - time.perf_counter()
                if delay > 0:
                    self._stop.wait(delay)
                t0 = time.perf_counter()
                try:
                    status = client.get(self.url).status_code
                except httpx.HTTPError:
                    status = 0
                self.samples.append((t0, time.perf_counter() - t0, status))
                i += 1

    def start(self) -> SteadyLoad:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


def summarize(samples: list[tuple[float, float, int]]) -> dict[str, Any]:
    latencies = sorted(s[1] for s in samples)
    if not latencies:
        return {"requests": 0}
    q = statistics.quantiles(latencies, n=100, method="inclusive") if len(latencies) > 1 else latencies * 99
    return {
        "requests": len(samples),
        "non_2xx": sum(1 for s in samples if not 200 <= s[2] < 300),
        "p50_ms": round(q[49] * 1000, 2),
        "p99_ms": round(q[98] * 1000, 2),
        "max_ms": round(latencies[-1] * 1000, 2),
    }


def redeploy_under_load(
    client: YunzhouClient, cp: ControlPlaneProcess, score: dict[str, Any], args: argparse.Namespace
) -> tuple[SteadyLoad, float, float, list[float], int]:
    client.create_project("bench")
    client.create_environment("bench", "dev")
    artifact = client.upload_artifact(APP)
    first = client.deploy("bench", "dev", score, {"replicas": args.replicas}, artifact)
    client.wait_for_rollout("bench", "dev", "inventory", first["rollout"]["id"], timeout=120, interval=0.1)
    url = f"http://127.0.0.1:{cp.router_port}/stock/apple"
    load = SteadyLoad(url, "inventory.dev.bench.localhost", args.rate).start()
    time.sleep(args.baseline_seconds)  # the baseline window: a measured interval, not a wait for state
    during_from = time.perf_counter()
    durations: list[float] = []
    failed = 0
    for i in range(1, args.redeploys + 1):
        score["containers"]["web"]["variables"]["APP_VERSION"] = f"v{i}"
        t0 = time.perf_counter()
        result = client.deploy("bench", "dev", score, None, artifact)
        rollout = client.wait_for_rollout(
            "bench", "dev", "inventory", result["rollout"]["id"], timeout=120, interval=0.05
        )
        failed += rollout["state"] != "succeeded"
        durations.append(time.perf_counter() - t0)
    during_to = time.perf_counter()
    load.stop()
    return load, during_from, during_to, durations, failed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--redeploys", type=int, default=20)
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--baseline-seconds", type=float, default=10.0)
    args = parser.parse_args()

    score: dict[str, Any] = {
        "apiVersion": "score.dev/v1b1",
        "metadata": {"name": "inventory"},
        "containers": {"web": {"image": "python:3.11-slim", "command": ["python3", "app.py"],
                               "variables": {"APP_VERSION": "v0"},
                               "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080}}}},
    }  # fmt: skip
    with (
        tempfile.TemporaryDirectory(prefix="yunzhou-bench-") as tmp,
        ControlPlaneProcess(Path(tmp) / "data") as cp,
        YunzhouClient(cp.url, cp.admin_token) as client,
    ):
        load, during_from, during_to, durations, failed = redeploy_under_load(client, cp, score, args)
    before = summarize([s for s in load.samples if s[0] < during_from])
    during = summarize([s for s in load.samples if during_from <= s[0] <= during_to])
    report = {
        "benchmark": "rollout",
        "redeploys": args.redeploys,
        "replicas": args.replicas,
        "rate_rps": args.rate,
        "failed_rollouts": failed,
        "before": before,
        "during": during,
        "p99_rise_ms": round(during.get("p99_ms", 0) - before.get("p99_ms", 0), 2),
        "redeploy_seconds": {
            "mean": round(statistics.mean(durations), 2),
            "max": round(max(durations), 2),
        },
        "targets": {"non_2xx": 0, "p99_rise_ms_below": 100},
        "meets_targets": during.get("non_2xx", 1) == 0
        and during.get("p99_ms", 0) - before.get("p99_ms", 0) < 100,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
