"""Scrape-loop cost per tick: the router's /metrics text for N apps parsed and relabelled, instance and host
series, all appended to the real embedded store — what one tick of the server's loop does.

    .venv/bin/python bench/metrics_scrape.py [--apps 100] [--instances 2] [--ticks 30]

The router text comes from the router's own RouterMetrics with traffic on every app (2 releases each, so
the series count is what a rolling update produces). Prints one JSON object: series per tick, CPU seconds
per tick (process CPU time, so the store's work is included), and the share of one core at a 10 s
interval.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from yunzhou.observe.metrics import MetricStore
from yunzhou.observe.metrics.collect import ScrapeLoop
from yunzhou.observe.metrics.collect_host import HostCollector
from yunzhou.observe.metrics.collect_instances import InstanceCollector, InstanceSample
from yunzhou.observe.metrics.collect_router import RouterCollector
from yunzhou.router.metrics import RouterMetrics


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--apps", type=int, default=100)
    parser.add_argument("--instances", type=int, default=2)
    parser.add_argument("--ticks", type=int, default=30)
    args = parser.parse_args()
    router = RouterMetrics()
    apps = [f"shop/dev/app{i}" for i in range(args.apps)]
    cpu = {"value": 0.0}

    def traffic() -> None:
        for app in apps:
            for release in (1, 2):
                router.request_started(app)
                router.request_finished(app, release, 200, 0.004)

    def instances() -> list[InstanceSample]:
        return [
            InstanceSample(app=app, instance=f"{app.replace('/', '-')}-{n}", release=2, ready=True,
                           cpu_seconds=cpu["value"], memory_bytes=50 << 20, restarts=0)
            for app in apps
            for n in range(args.instances)
        ]  # fmt: skip

    with MetricStore.open(None) as store:
        loop = ScrapeLoop(
            store,
            [RouterCollector(router.render), InstanceCollector(instances, lambda: [(a, 2, 2) for a in apps]),
             HostCollector((Path("/"),))],
        )  # fmt: skip
        t0 = time.time()
        samples = 0
        traffic()
        loop.run_once(t0 - 10)  # warm-up: series creation is a one-off cost
        started_cpu, started = time.process_time(), time.perf_counter()
        for tick in range(args.ticks):
            traffic()
            cpu["value"] += 0.1
            samples = loop.run_once(t0 + 10 * tick)
        cpu_per_tick = (time.process_time() - started_cpu) / args.ticks
        wall_per_tick = (time.perf_counter() - started) / args.ticks
    print(json.dumps({
        "apps": args.apps,
        "instances_per_app": args.instances,
        "samples_per_tick": samples,
        "cpu_ms_per_tick": round(cpu_per_tick * 1000, 2),
        "wall_ms_per_tick": round(wall_per_tick * 1000, 2),
        "core_share_at_10s": round(cpu_per_tick / 10, 4),
        "cpu_us_per_sample": round(cpu_per_tick / samples * 1e6, 2),
    }))  # fmt: skip


if __name__ == "__main__":
    main()
