"""Benchmark of the embedded metric store and PromQL engine; prints one JSON object.

For 500 and 5,000 series (25 per app: 4 request counters by status class, a 12-bucket latency histogram
with _sum and _count, 7 memory gauges), scraped every 10 s: the CPU cost of appending a simulated day
(one append_many per scrape, flushed every scrape as the scrape loop does), bytes on disk per sample,
and instant / 24 h range (step 60 s) query latency for typical dashboard and alert queries.

    .venv/bin/python bench/metrics.py            # 500 series × 24 h and 5,000 series × 24 h
    .venv/bin/python bench/metrics.py --quick    # 500 series × 2 h, 5,000 × 1 h (a smoke check)
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from yunzhou.observe.metrics import MetricStore, QueryEngine

INTERVAL = 10.0
T0 = 1_800_000_000.0
BUCKETS = ["0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf"]
CODES = ["2xx", "3xx", "4xx", "5xx"]
SERIES_PER_APP = len(CODES) + len(BUCKETS) + 2 + 7

QUERIES = {
    "rate_sum_by_app": "sum by (app) (rate(yunzhou_router_requests_total[5m]))",
    "error_ratio": 'sum by (app) (rate(yunzhou_router_requests_total{code="5xx"}[5m]))'
    " / sum by (app) (rate(yunzhou_router_requests_total[5m]))",
    "p99_histogram": "histogram_quantile(0.99, sum by (le, app) "
    "(rate(yunzhou_router_request_duration_seconds_bucket[5m])))",
    "memory_one_app": 'yunzhou_instance_memory_bytes{app="app-3"}',
}


class SimClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Generator:
    def __init__(self, apps: int, seed: int = 1) -> None:
        self.rnd = random.Random(seed)
        self.apps = [f"app-{i}" for i in range(apps)]
        self.counters = {(a, c): 0.0 for a in self.apps for c in CODES}
        self.hist = {a: [0.0] * len(BUCKETS) for a in self.apps}
        self.hsum = dict.fromkeys(self.apps, 0.0)
        self.mem = {(a, i): 2e8 for a in self.apps for i in range(7)}

    def scrape(self, t: float) -> list[tuple[str, dict[str, str], float, float]]:
        rnd = self.rnd
        rows: list[tuple[str, dict[str, str], float, float]] = []
        for (app, code), v in self.counters.items():
            v += rnd.randint(0, 50) if code == "2xx" else rnd.randint(0, 3)
            self.counters[(app, code)] = v
            rows.append(
                (
                    "yunzhou_router_requests_total",
                    {"app": app, "code": code, "project": "p", "env": "e"},
                    v,
                    t,
                )
            )
        for app, counts in self.hist.items():
            n = rnd.randint(0, 50)
            for _ in range(n // 10):
                d = rnd.expovariate(10)
                self.hsum[app] += d * 10
                for i, le in enumerate(BUCKETS):
                    if d <= float(le):
                        counts[i] += 10
            for le, c in zip(BUCKETS, counts, strict=True):
                rows.append(("yunzhou_router_request_duration_seconds_bucket", {"app": app, "le": le}, c, t))
            rows.append(("yunzhou_router_request_duration_seconds_sum", {"app": app}, self.hsum[app], t))
            rows.append(("yunzhou_router_request_duration_seconds_count", {"app": app}, counts[-1], t))
        for (app, inst), v in self.mem.items():
            v = max(1e7, v + rnd.randint(-5, 5) * 1e6)
            self.mem[(app, inst)] = v
            rows.append(("yunzhou_instance_memory_bytes", {"app": app, "instance": f"{app}-{inst}"}, v, t))
        return rows


def _pct(xs: list[float], p: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, round(p * (len(s) - 1)))]


def run(
    series: int, hours: float, instant_repeats: int, range_repeats: int, append_hours: float
) -> dict[str, Any]:
    apps = series // SERIES_PER_APP
    gen = Generator(apps)
    scrapes = int(hours * 3600 / INTERVAL)
    with tempfile.TemporaryDirectory() as tmp:
        clock = SimClock()
        store = MetricStore.open(Path(tmp), clock=clock, flush_interval=INTERVAL)
        append_cpu = 0.0
        n_samples = 0
        measured = min(scrapes, int(append_hours * 3600 / INTERVAL))
        measured_samples = 0
        for k in range(scrapes):
            rows = gen.scrape(T0 + INTERVAL * k)  # generating the rows is not counted
            if k == measured:
                store.flush_interval = 3600.0  # the rest is only filler for the queries: bulk-load it
            clock.now = INTERVAL * k
            c0 = time.process_time()
            store.append_many(rows)
            if k < measured:
                append_cpu += time.process_time() - c0
                measured_samples += len(rows)
            n_samples += len(rows)
        c0 = time.process_time()
        store.flush()
        if measured == scrapes:
            append_cpu += time.process_time() - c0
        db_bytes = sum(p.stat().st_size for p in Path(tmp).iterdir())
        stats = store.stats()
        end = T0 + INTERVAL * (scrapes - 1)
        engine = QueryEngine(store)
        out: dict[str, Any] = {
            "series": stats["series"],
            "simulated_hours": hours,
            "samples": n_samples,
            "append_measured_hours": measured * INTERVAL / 3600,
            "append_us_per_sample": round(append_cpu / measured_samples * 1e6, 3),
            "append_cpu_s_per_series_per_day": round(
                append_cpu / stats["series"] * 86_400 / (measured * INTERVAL), 4
            ),
            "append_cpu_s_per_day": round(append_cpu * 86_400 / (measured * INTERVAL), 1),
            "share_of_one_core": round(append_cpu / (measured * INTERVAL), 5),
            "disk_bytes": db_bytes,
            "disk_bytes_per_sample": round(db_bytes / n_samples, 2),
            "chunk_bytes_per_sample": round(stats["chunk_bytes"] / max(1, stats["chunk_samples"]), 2),
            "instant_ms": {},
            "range_ms": {},
        }
        for name, q in QUERIES.items():
            times, cpu = [], []
            for i in range(instant_repeats):
                t = end - 60 * i
                c0, p0 = time.perf_counter(), time.process_time()
                engine.instant(q, t)
                times.append((time.perf_counter() - c0) * 1000)
                cpu.append((time.process_time() - p0) * 1000)
            out["instant_ms"][name] = {
                "p50": round(_pct(times, 0.5), 2),
                "p99": round(_pct(times, 0.99), 2),
                "cpu_p50": round(_pct(cpu, 0.5), 2),
            }
        range_hours = min(24.0, hours)
        for name, q in QUERIES.items():
            times, cpu = [], []
            points = 0
            for _ in range(range_repeats):
                c0, p0 = time.perf_counter(), time.process_time()
                data = engine.range(q, end - range_hours * 3600, end, 60)
                times.append((time.perf_counter() - c0) * 1000)
                cpu.append((time.process_time() - p0) * 1000)
                points = sum(len(r["values"]) for r in data["result"])
            out["range_ms"][name] = {
                "hours": range_hours,
                "step_s": 60,
                "points": points,
                "p50": round(_pct(times, 0.5), 1),
                "p99": round(_pct(times, 0.99), 1),
                "cpu_p50": round(_pct(cpu, 0.5), 1),
            }
        store.close()
        return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="500 series × 2 h and 5,000 × 1 h")
    ap.add_argument("--series", type=int, nargs="*", default=[500, 5000])
    ap.add_argument("--hours", type=float, default=24.0, help="simulated hours of scrapes")
    ap.add_argument(
        "--append-hours",
        type=float,
        default=None,
        help="measure append cost over the first hours only (flushed every scrape); the rest is bulk-loaded",
    )
    args = ap.parse_args()
    if args.quick:
        sizes = [(500, 2.0, 20, 3), (5000, 1.0, 10, 2)]
    else:
        sizes = [(n, args.hours, 30 if n <= 1000 else 10, 5 if n <= 1000 else 3) for n in args.series]
    results = {}
    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    for series, hours, ir, rr in sizes:
        results[str(series)] = run(series, hours, ir, rr, args.append_hours or hours)
    print(
        json.dumps(
            {
                "benchmark": "metrics",
                "python": sys.version.split()[0],
                "load_average_before": load_before,
                "load_average_after": os.getloadavg()[0],
                "cpus": os.cpu_count(),
                "scrape_interval_s": INTERVAL,
                "series_per_app": SERIES_PER_APP,
                "results": results,
                "wall_s": round(time.perf_counter() - t0, 1),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
