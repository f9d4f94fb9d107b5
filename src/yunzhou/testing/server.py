"""A real control-plane process for end-to-end tests: `python -m yunzhou server` on free loopback ports."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class ControlPlaneProcess:
    """``with ControlPlaneProcess(tmp_path) as cp:`` starts it; leaving stops it (SIGTERM, then SIGKILL)."""

    def __init__(
        self,
        data_dir: Path,
        *,
        env: dict[str, str] | None = None,
        startup_timeout: float = 30.0,
        extra_args: tuple[str, ...] = (),
        host_processes: bool = False,
    ) -> None:
        """``host_processes``: the server runs instances as host processes (YUNZHOU_INSTANCE_MODE=process,
        the development opt-in), for tests of releases without an image (a Score ``command`` run from an
        uploaded folder); else, as a server does by default, as containers of each release's image."""
        self.data_dir = data_dir
        self.api_port = free_port()
        self.router_port = free_port()
        self.extra_env = {"YUNZHOU_INSTANCE_MODE": "process"} if host_processes else {}
        self.extra_env.update(env or {})
        self.startup_timeout = startup_timeout
        self.extra_args = extra_args
        self.log_path = data_dir.parent / f"{data_dir.name}-server.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def admin_token(self) -> str:
        return (self.data_dir / "admin-token").read_text().strip()

    def router_admin(self) -> httpx.Client:
        """A client of the local router's admin API with its token, as the server publishes them."""
        from yunzhou.observe.metrics.collect_setup import read_router_admin

        published = read_router_admin(self.data_dir)
        if published is None:
            raise RuntimeError(f"no router-admin file in {self.data_dir}: is the local target running?")
        admin, headers = published
        return httpx.Client(base_url=f"http://{admin}", headers=headers, timeout=10, trust_env=False)

    def client_env(self, token: str | None = None) -> dict[str, str]:
        """Environment for CLI subprocesses that talk to this server."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("YUNZHOU_")}
        env.update({"YUNZHOU_URL": self.url, "YUNZHOU_TOKEN": token or self.admin_token, "NO_COLOR": "1"})
        return env

    def start(self) -> ControlPlaneProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("YUNZHOU_")}
        # where the server tells the CLI it runs (client/discovery.py): the test's, not the user's home
        env["XDG_CONFIG_HOME"] = str(self.data_dir.parent / f"{self.data_dir.name}-config")
        env.update(self.extra_env)
        argv = [
            sys.executable, "-m", "yunzhou", "server", "--data-dir", str(self.data_dir),
            "--api-port", str(self.api_port), "--router-port", str(self.router_port), *self.extra_args,
        ]  # fmt: skip
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"yunzhou server exited with {self.process.returncode}:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/api/v1/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.05)  # polling interval while waiting for the port, bounded by the deadline
        self.stop()
        raise RuntimeError(f"yunzhou server did not answer within {self.startup_timeout}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, timeout: float = 20.0) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else None
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()

    def __enter__(self) -> ControlPlaneProcess:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
