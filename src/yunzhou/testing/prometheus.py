"""A real Prometheus (Debian's ``prometheus`` package) on a free loopback port, for tests: its own config
and data dir, ready when ``/-/ready`` answers 200, stopped with SIGTERM (SIGKILL after 20 s)."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from yunzhou.testing.server import free_port

MISSING = "Debian's prometheus package is needed (apt-get install prometheus)"


class PrometheusServer:
    """``with PrometheusServer(workdir, config_yaml) as p: p.query(...)``; ``data`` defaults to
    ``workdir/data``; ``extra_args`` are more server flags."""

    def __init__(
        self, workdir: Path, config: str, *, data: Path | None = None, extra_args: Sequence[str] = ()
    ) -> None:
        self.workdir = workdir
        self.config = config
        self.data = data or workdir / "data"
        self.extra_args = tuple(extra_args)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / "prometheus.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.http = httpx.Client(base_url=self.url, timeout=30)

    def __enter__(self) -> PrometheusServer:
        binary = shutil.which("prometheus")
        assert binary, MISSING
        config = self.workdir / "prometheus.yml"
        config.write_text(self.config)
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [
                    binary,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={self.data}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    *self.extra_args,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            self._wait_ready(60.0)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _wait_ready(self, timeout: float) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"prometheus exited: {self.log_path.read_text()[-2000:]}")
            try:
                if self.http.get("/-/ready").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"prometheus did not become ready within {timeout:g} s")
            time.sleep(0.05)  # polling interval, bounded by the deadline

    def api(self, path: str, params: dict[str, str]) -> dict[str, Any]:
        """The ``data`` of a successful ``/api/v1/<path>`` answer; AssertionError otherwise."""
        body: dict[str, Any] = self.http.get(f"/api/v1/{path}", params=params).json()
        if body.get("status") != "success":
            raise AssertionError(f"prometheus rejected {params}: {body}")
        data: dict[str, Any] = body["data"]
        return data

    def query(self, expr: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.api("query", {"query": expr})["result"]
        return result

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
