"""Cold start from zero on the local target: how long the first request to an app scaled to zero waits.

    .venv/bin/python bench/scale_to_zero.py [--runs 3] [--start-delay 0]

A real ``yunzhou server`` (autoscaler every 0.5 s, scrape every 1 s), its router and a small Python app
(``tests/integration/local/apps/sleepy``, readiness probe on /healthz, optional START_DELAY) with
``scaleToZero: {idleSeconds: 10}``. Each run waits until the app is at zero instances, sends one request
and measures until its answer: router hold → wake poll (≤ 200 ms) → scale decision → reconcile → process
start → readiness probe → snapshot → release. Prints one JSON object (seconds).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from yunzhou.client import YunzhouClient
from yunzhou.testing import ControlPlaneProcess

APP = Path(__file__).resolve().parent.parent / "tests" / "integration" / "local" / "apps" / "sleepy"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--start-delay", type=float, default=0.0)
    args = parser.parse_args()
    score: dict[str, Any] = {
        "apiVersion": "score.dev/v1b1",
        "metadata": {"name": "cold"},
        "containers": {
            "web": {
                "image": "python:3.11-slim",
                "command": ["python3", "app.py"],
                "variables": {"START_DELAY": str(args.start_delay)},
                "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080}},
            }
        },
    }
    settings = {
        "autoscaling": {
            "minReplicas": 0,
            "maxReplicas": 1,
            "metrics": [{"type": "rps", "target": {"type": "AverageValue", "averageValue": 100}}],
            "scaleToZero": {"enabled": True, "idleSeconds": 10, "holdTimeoutSeconds": 60},
        }
    }
    env = {"YUNZHOU_AUTOSCALE_INTERVAL": "0.5", "YUNZHOU_SCRAPE_INTERVAL": "1"}
    samples: list[float] = []
    with (
        tempfile.TemporaryDirectory() as tmp,
        ControlPlaneProcess(Path(tmp) / "data", env=env, startup_timeout=90) as server,
        YunzhouClient(server.url, server.admin_token) as client,
    ):
        client.create_project("bench")
        client.create_environment("bench", "dev")
        result = client.deploy("bench", "dev", score, settings, client.upload_artifact(APP))
        client.wait_for_rollout("bench", "dev", "cold", result["rollout"]["id"], timeout=60, interval=0.1)
        url = f"http://127.0.0.1:{server.router_port}/"
        for _ in range(args.runs):
            deadline = time.monotonic() + 120
            while True:
                app = client.get_app("bench", "dev", "cold")
                if app["replicas"] == 0 and app["ready_replicas"] == 0:
                    break
                if time.monotonic() > deadline:
                    sys.exit("the app did not scale to zero within 120 s")
                time.sleep(0.2)  # polling interval, bounded by the deadline
            started = time.perf_counter()
            response = httpx.get(
                url, headers={"Host": "cold.dev.bench.localhost"}, timeout=90, trust_env=False
            )
            elapsed = time.perf_counter() - started
            if response.status_code != 200:
                sys.exit(f"the first request got {response.status_code}: {response.text}")
            samples.append(round(elapsed, 3))
    print(
        json.dumps(
            {
                "benchmark": "scale_to_zero",
                "start_delay_seconds": args.start_delay,
                "runs": len(samples),
                "cold_start_seconds": samples,
                "p50_seconds": round(statistics.median(samples), 3),
                "max_seconds": max(samples),
            }
        )
    )


if __name__ == "__main__":
    main()
