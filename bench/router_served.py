"""The server's side of the router as ``yunzhou server`` runs it, for ``bench/router.py``'s as-served rows.

Run as a child process (so its CPU time can be read from /proc):

    python bench/router_served.py ACCESS_LOG DATA_DIR

It starts what ``yunzhou server`` starts around the router: the log store (``yunzhou.server.open_log_store``)
with the ``AccessLogTailer`` that indexes the router's access log into it, and the metrics scrape loop
reading the router's ``/metrics`` (``RouterCollector`` into a ``MetricStore``, every
``YUNZHOU_SCRAPE_INTERVAL``). The router's admin address and headers come in ``BENCH_ROUTER_ADMIN`` and
``BENCH_ROUTER_ADMIN_HEADERS`` (JSON). It answers one line on stdin: ``sync`` reads what the router has
written so far, waits until it is committed and prints ``{"written": N, ...}``; end of input stops it.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

import httpx  # noqa: E402

from yunzhou.observe import AccessLogTailer  # noqa: E402
from yunzhou.observe.metrics import MetricStore  # noqa: E402
from yunzhou.observe.metrics.collect import ScrapeLoop, scrape_interval  # noqa: E402
from yunzhou.observe.metrics.collect_router import RouterCollector  # noqa: E402
from yunzhou.server import open_log_store  # noqa: E402


def main() -> int:
    access_log, data_dir = Path(sys.argv[1]), Path(sys.argv[2])
    admin = os.environ["BENCH_ROUTER_ADMIN"]
    headers = json.loads(os.environ["BENCH_ROUTER_ADMIN_HEADERS"])
    http = httpx.Client(base_url=f"http://{admin}", headers=headers, timeout=2.0, trust_env=False)

    def router_metrics() -> str:  # what RouterProcess.metrics_text does in the server
        return http.get("/metrics").text

    store = open_log_store(SimpleNamespace(data_dir=data_dir))  # type: ignore[arg-type]
    tailer = AccessLogTailer(access_log, store).start()
    metric_store = MetricStore.open(data_dir / "metrics")
    scrape = ScrapeLoop(metric_store, [RouterCollector(router_metrics)], interval=scrape_interval())
    scrape.start()
    try:
        for line in sys.stdin:
            if line.strip() == "sync":
                tailer.poll()
                store.flush()
                stats = store.stats()
                doc: dict[str, Any] = {"written": stats.written, "dropped": stats.dropped}
                doc["rejected"] = stats.rejected
                doc["skipped"] = tailer.lines_skipped
                print(json.dumps(doc), flush=True)
    finally:
        scrape.stop()
        tailer.stop()
        store.close()
        metric_store.close()
        http.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
