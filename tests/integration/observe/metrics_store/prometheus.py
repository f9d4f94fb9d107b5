"""A real Prometheus (Debian's package) over blocks built from OpenMetrics text, for differential tests."""

from __future__ import annotations

import math
import shutil
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from yunzhou.testing.prometheus import MISSING, PrometheusServer

Row = tuple[str, Mapping[str, str], float, float]  # name, labels, value, t (seconds)


def openmetrics(rows: Iterable[Row]) -> str:
    """Rows as OpenMetrics text: families contiguous, each series' samples in time order."""
    by_name: dict[str, dict[tuple[tuple[str, str], ...], list[tuple[float, float]]]] = {}
    for name, labels, value, t in rows:
        by_name.setdefault(name, {}).setdefault(tuple(sorted(labels.items())), []).append((t, value))
    lines = []
    for name, series in by_name.items():
        lines.append(f"# TYPE {name} unknown")
        for pairs, points in series.items():
            text = ",".join(f'{k}="{v}"' for k, v in pairs)
            for when, x in sorted(points):
                text_value = "NaN" if math.isnan(x) else repr(x).replace("inf", "Inf")
                lines.append(f"{name}{{{text}}} {text_value} {when:.3f}")
    lines.append("# EOF")
    return "\n".join(lines) + "\n"


class Prometheus:
    """``with Prometheus(tmp, rows) as p: p.query(...)`` — builds blocks with promtool and serves them with
    :class:`yunzhou.testing.prometheus.PrometheusServer` (free loopback port, stopped on exit)."""

    def __init__(self, workdir: Path, rows: Iterable[Row]) -> None:
        self.workdir = workdir
        self.rows = list(rows)
        data = workdir / "tsdb"
        self.server = PrometheusServer(
            workdir,
            "global: {}\nscrape_configs: []\n",
            data=data,
            extra_args=["--storage.tsdb.retention.time=100y"],
        )

    def __enter__(self) -> Prometheus:
        promtool = shutil.which("promtool")
        assert promtool, MISSING
        src = self.workdir / "input.om"
        src.write_text(openmetrics(self.rows))
        subprocess.run(
            [promtool, "tsdb", "create-blocks-from", "openmetrics", str(src), str(self.server.data)],
            check=True,
            capture_output=True,
            timeout=120,
        )
        self.server.__enter__()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.server.__exit__(exc_type, exc, tb)

    def instant(self, expr: str, t: float) -> dict[str, Any]:
        return self.server.api("query", {"query": expr, "time": f"{t:.3f}"})

    def range(self, expr: str, start: float, end: float, step: float) -> dict[str, Any]:
        return self.server.api(
            "query_range",
            {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step}"},
        )
