"""kill -9 in the middle of heavy appending: the store reopens intact, with every sample up to a point."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from yunzhou.observe.metrics import MetricStore, QueryEngine

WRITER = """
import sys
from yunzhou.observe.metrics import MetricStore
store = MetricStore.open(sys.argv[1], chunk_samples=20, flush_interval=0.01)
k = 0
while True:  # 50 series; sample k of every series has the value k
    store.append_many(("c_total", {"s": str(s)}, float(k), 10.0 * k) for s in range(50))
    k += 1
"""


def _chunks(db: Path) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            return int(conn.execute("SELECT count(*) FROM chunks").fetchone()[0])
    except sqlite3.OperationalError:
        return 0


def test_kill_9_while_appending_leaves_a_consistent_prefix(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path)])
    try:
        deadline = time.monotonic() + 60
        while _chunks(tmp_path / "metrics.db") < 200:  # ≥ 4 chunks per series sealed and written
            assert proc.poll() is None, "the writer died"
            assert time.monotonic() < deadline, "the writer wrote too little in 60 s"
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    with sqlite3.connect(tmp_path / "metrics.db") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    with MetricStore.open(tmp_path) as store:
        engine = QueryEngine(store)
        data = engine.instant("c_total", 10.0**9)["result"]  # far later: nothing within lookback
        assert data == []
        last = store.stats()
        assert last["series"] == 50
        # every series holds exactly the samples 0..n-1 (no hole, no torn chunk); the series differ by
        # at most the one append_many the kill interrupted
        counts = {}
        for s in range(50):
            (row,) = engine.instant(f'count_over_time(c_total{{s="{s}"}}[1y])', 10.0**7)["result"]
            (top,) = engine.instant(f'max_over_time(c_total{{s="{s}"}}[1y])', 10.0**7)["result"]
            counts[s] = int(row["value"][1])
            assert int(top["value"][1]) == counts[s] - 1
        assert max(counts.values()) - min(counts.values()) <= 1
        assert min(counts.values()) >= 80
