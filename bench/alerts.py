"""How long one alert evaluation pass takes: N apps, the five default rules each, over an hour of router,
instance and replica series at 10 s resolution in the embedded store (SQLite control-plane database).

    .venv/bin/python bench/alerts.py [--apps 100] [--passes 5]

Prints one JSON object: apps, rules, series, pass_s (each pass), pass_p50_s, per_rule_ms, and the share
of the default 15 s interval one pass uses.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from yunzhou.observe.alerts import AlertEvaluator
from yunzhou.observe.metrics import MetricStore, QueryEngine
from yunzhou.services import SYSTEM, ControlPlane
from yunzhou.store import Database, sqlite_url, upgrade

BUCKETS = ("0.05", "0.1", "0.25", "0.5", "1", "2.5", "+Inf")


def score(name: str) -> dict[str, object]:
    return {
        "apiVersion": "score.dev/v1b1",
        "metadata": {"name": name},
        "containers": {"web": {"image": "python:3.11"}},
        "service": {"ports": {"web": {"port": 8080}}},
    }


def fill(store: MetricStore, apps: int, now: float) -> int:
    series = 0
    for i in range(apps):
        base = {"project": "shop", "env": "dev", "app": f"app{i}"}
        rel = {**base, "release": "1"}
        inst = {**rel, "instance": f"app{i}-1"}
        rows = []
        for step in range(360):
            t = now - 3600 + step * 10
            n = step * 20.0
            rows += [
                ("yunzhou_router_requests_total", {**rel, "code": "2xx"}, n, t),
                ("yunzhou_router_requests_total", {**rel, "code": "5xx"}, n * 0.01, t),
                *[("yunzhou_router_request_duration_seconds_bucket", {**rel, "le": le},
                   n * (k + 1) / len(BUCKETS), t) for k, le in enumerate(BUCKETS)],
                ("yunzhou_instance_restarts_total", inst, 0.0, t),
                ("yunzhou_instance_memory_bytes", inst, 50e6, t),
                ("yunzhou_instance_memory_limit_bytes", inst, 256e6, t),
                ("yunzhou_app_replicas_desired", base, 1.0, t),
                ("yunzhou_app_replicas_ready", base, 1.0, t),
            ]  # fmt: skip
        store.append_many(rows)
        series += 7 + len(BUCKETS)
    return series


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--apps", type=int, default=100)
    parser.add_argument("--passes", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = Database(sqlite_url(Path(tmp)))
        upgrade(db.engine)
        cp = ControlPlane.create(db, Path(tmp))
        cp.projects.create(SYSTEM, "shop")
        cp.projects.create_environment(SYSTEM, "shop", "dev", "local", None)
        for i in range(args.apps):
            cp.apps.deploy(SYSTEM, "shop", "dev", score(f"app{i}"), None, None)
        store = MetricStore.open(None)
        now = time.time()
        series = fill(store, args.apps, now)
        evaluator = AlertEvaluator(cp, QueryEngine(store))
        rules = len(cp.alerts.evaluation_plan())
        passes = []
        for k in range(args.passes):
            started = time.perf_counter()
            evaluator.evaluate_once(now + k)
            passes.append(time.perf_counter() - started)
        store.close()
        db.dispose()
    p50 = statistics.median(passes)
    print(json.dumps({
        "apps": args.apps, "rules": rules, "series": series, "pass_s": [round(p, 4) for p in passes],
        "pass_p50_s": round(p50, 4), "per_rule_ms": round(p50 / rules * 1000, 3),
        "share_of_15s_interval": round(p50 / 15, 4),
    }))  # fmt: skip


if __name__ == "__main__":
    main()
