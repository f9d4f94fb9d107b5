"""A real Prometheus (Debian's package) over blocks built from OpenMetrics text, for differential tests."""

from __future__ import annotations

import math
import shutil
import subprocess
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from yunzhou.testing import free_port

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
    """``with Prometheus(tmp, rows) as p: p.query(...)`` — builds blocks with promtool, serves them on a
    free loopback port, and stops the server (SIGTERM, then SIGKILL) on exit."""

    def __init__(self, workdir: Path, rows: Iterable[Row]) -> None:
        self.workdir = workdir
        self.rows = list(rows)
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=30)

    def __enter__(self) -> Prometheus:
        promtool, prometheus = shutil.which("promtool"), shutil.which("prometheus")
        assert promtool, "Debian's prometheus package is needed (apt-get install prometheus)"
        assert prometheus, "Debian's prometheus package is needed (apt-get install prometheus)"
        src = self.workdir / "input.om"
        src.write_text(openmetrics(self.rows))
        data = self.workdir / "tsdb"
        subprocess.run(
            [promtool, "tsdb", "create-blocks-from", "openmetrics", str(src), str(data)],
            check=True,
            capture_output=True,
            timeout=120,
        )
        config = self.workdir / "prometheus.yml"
        config.write_text("global: {}\nscrape_configs: []\n")
        self.log = (self.workdir / "prometheus.log").open("wb")
        self.proc = subprocess.Popen(
            [
                prometheus,
                f"--config.file={config}",
                f"--storage.tsdb.path={data}",
                "--storage.tsdb.retention.time=100y",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"prometheus exited: {(self.workdir / 'prometheus.log').read_text()[-2000:]}"
                )
            try:
                if self.http.get("/-/ready").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError("prometheus did not become ready within 60 s")
            time.sleep(0.05)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.http.close()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()

    def _get(self, path: str, params: dict[str, str]) -> dict[str, Any]:
        r = self.http.get(path, params=params)
        body: dict[str, Any] = r.json()
        if body.get("status") != "success":
            raise AssertionError(f"prometheus rejected {params}: {body}")
        data: dict[str, Any] = body["data"]
        return data

    def instant(self, expr: str, t: float) -> dict[str, Any]:
        return self._get("/api/v1/query", {"query": expr, "time": f"{t:.3f}"})

    def range(self, expr: str, start: float, end: float, step: float) -> dict[str, Any]:
        return self._get(
            "/api/v1/query_range",
            {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step}"},
        )
