"""``RouterProcess``: start, configure and stop a router process. Shared by the control plane and tests."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import httpx

from yunzhou.components import die_with_parent, terminate
from yunzhou.domain.errors import Conflict, FieldProblem, PermanentError, TemporaryError, UserError
from yunzhou.router.admin import ADMIN_TOKEN_VARIABLE


class RouterProcess:
    """One ``python -m yunzhou.router`` child process.

    ``start`` returns once the router listens (port 0 picks free ports; ``listen``/``admin`` then tell
    which). ``push_config`` raises the domain errors: ``UserError`` (422, malformed snapshot), ``Conflict``
    (409, stale version) or ``TemporaryError`` (router unreachable). ``stop`` sends SIGTERM and waits.

    Each start makes a new admin token and hands it to the child in its environment (never its argv);
    ``admin_headers`` carries it for anyone else who talks to the admin port.
    """

    def __init__(self, *, python: str = sys.executable, log_file: Path | None = None) -> None:
        self.python = python
        self.log_file = log_file
        self.listen = ""
        self.tls_listen = ""  # the HTTPS address when started with tls_listen
        self.admin = ""
        self._admin_token = ""
        self._proc: subprocess.Popen[bytes] | None = None
        self._http: httpx.Client | None = None
        self._workdir: tempfile.TemporaryDirectory[str] | None = None
        self._log_handle: IO[bytes] | None = None

    # lifecycle ---------------------------------------------------------------------------------
    def start(
        self,
        listen: str = "127.0.0.1:8080",
        admin: str = "127.0.0.1:8081",
        access_log: str | None = None,
        *,
        config: dict[str, Any] | None = None,
        upstream_timeout: float | None = None,
        connect_timeout: float | None = None,
        grace: float | None = None,
        header_timeout: float | None = None,
        body_timeout: float | None = None,
        max_connections_per_client: int | None = None,
        tunnel_idle_timeout: float | None = None,
        ready_timeout: float = 15.0,
        also_listen: tuple[str, ...] = (),
        tls_listen: str | None = None,
        acme_challenges: Path | None = None,
    ) -> None:
        if self._proc is not None:
            raise RuntimeError("this RouterProcess is already started")
        self._workdir = tempfile.TemporaryDirectory(prefix="yunzhou-router-")
        workdir = Path(self._workdir.name)
        ready_file = workdir / "ready.json"
        self._admin_token = secrets.token_urlsafe(32)
        args = [self.python, "-m", "yunzhou.router", "--listen", listen, "--admin", admin]
        args += ["--ready-file", str(ready_file)]
        for address in also_listen:
            args += ["--also-listen", address]
        if tls_listen is not None:
            args += ["--tls-listen", tls_listen]
        if acme_challenges is not None:  # ACME HTTP-01 answers (names/tls/http01.py)
            args += ["--acme-challenges", str(acme_challenges)]
        if access_log is not None:
            args += ["--access-log", access_log]
        if config is not None:
            config_file = workdir / "config.json"
            config_file.write_text(json.dumps(config), encoding="utf-8")
            args += ["--config", str(config_file)]
        for flag, value in (
            ("--upstream-timeout", upstream_timeout),
            ("--connect-timeout", connect_timeout),
            ("--grace", grace),
            ("--header-timeout", header_timeout),
            ("--body-timeout", body_timeout),
            ("--max-connections-per-client", max_connections_per_client),
            ("--tunnel-idle-timeout", tunnel_idle_timeout),
        ):
            if value is not None:
                args += [flag, str(value)]
        if self.log_file is not None:
            self._log_handle = open(self.log_file, "ab")  # noqa: SIM115 - lives as long as the process
        self._proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stderr=self._log_handle,
            env={**os.environ, ADMIN_TOKEN_VARIABLE: self._admin_token},
            preexec_fn=die_with_parent(os.getpid()),
        )
        deadline = time.monotonic() + ready_timeout
        while not ready_file.exists():
            code = self._proc.poll()
            if code is not None:
                self._cleanup()
                raise PermanentError(f"router exited with code {code} before listening{self._log_hint()}")
            if time.monotonic() > deadline:
                self.kill()
                raise TemporaryError(f"router did not listen within {ready_timeout:g} s{self._log_hint()}")
            time.sleep(0.01)
        ready = json.loads(ready_file.read_text(encoding="utf-8"))
        self.listen = ready["listen"]
        self.admin = ready["admin"]
        self.tls_listen = ready.get("tls_listen", "")
        self._http = httpx.Client(
            base_url=f"http://{self.admin}", headers=self.admin_headers, timeout=10.0, trust_env=False
        )

    def stop(self, timeout: float = 35.0) -> int:
        """SIGTERM, wait for the drain to finish (SIGKILL after ``timeout``); returns the exit code."""
        proc = self._proc
        if proc is None:
            return 0
        code = terminate(proc, timeout)
        self._cleanup()
        return code

    def kill(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        self._cleanup()

    def __enter__(self) -> RouterProcess:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise RuntimeError("the router is not started")
        return self._proc.pid

    @property
    def admin_headers(self) -> dict[str, str]:
        """What a request to the admin API must carry (the token of the running router)."""
        if not self._admin_token:
            raise RuntimeError("the router is not started")
        return {"Authorization": f"Bearer {self._admin_token}"}

    @property
    def proxy_url(self) -> str:
        return f"http://{self.listen}"

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def send_signal(self, signum: int) -> None:
        if self._proc is not None:
            self._proc.send_signal(signum)

    def wait(self, timeout: float) -> int:
        if self._proc is None:
            raise RuntimeError("the router is not started")
        return self._proc.wait(timeout)

    # admin API ---------------------------------------------------------------------------------
    def push_config(self, snapshot: dict[str, Any]) -> dict[str, Any]:
        """``PUT /config``. Returns ``{"version", "applied"}``; ``applied`` is False for a repeat."""
        response = self._request("PUT", "/config", json=snapshot)
        if response.status_code == 200:
            result: dict[str, Any] = response.json()
            return result
        error = _error_of(response)
        message = error.get("message", response.text)
        problems = [FieldProblem(p.get("path", ""), p.get("message", "")) for p in error.get("problems", [])]
        if response.status_code == 409:
            raise Conflict(message, problems=problems)
        if response.status_code == 422:
            raise UserError(message, problems=problems)
        raise TemporaryError(f"router answered {response.status_code} to PUT /config: {message}")

    def get_config(self) -> dict[str, Any]:
        doc: dict[str, Any] = self._request("GET", "/config").json()
        return doc

    def in_flight(self) -> dict[str, int]:
        """Requests each backend (by id) is answering now; a backend absent from the map has none.

        For draining: remove an instance from the snapshot, then wait until its id is absent here.
        """
        backends: dict[str, int] = self._request("GET", "/inflight").json()["backends"]
        return backends

    def metrics_text(self) -> str:
        return self._request("GET", "/metrics").text

    def activations(self) -> dict[str, dict[str, Any]]:
        """Held demand of apps scaled to zero, by app: ``held`` now, ``held_total`` ever (router/hold.py)."""
        apps: dict[str, dict[str, Any]] = self._request("GET", "/activations").json()["apps"]
        return apps

    def healthy(self) -> bool:
        try:
            return self._request("GET", "/healthz").status_code == 200
        except TemporaryError:
            return False

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        if self._http is None:
            raise RuntimeError("the router is not started")
        try:
            return self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise TemporaryError(f"router admin API at {self.admin} unreachable: {exc}") from exc

    # internals ---------------------------------------------------------------------------------
    def _log_hint(self) -> str:
        if self.log_file is None or not self.log_file.exists():
            return ""
        tail = self.log_file.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-5:]
        return "; router log:\n" + "\n".join(tail) if tail else ""

    def _cleanup(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None
        if self._log_handle is not None:
            self._log_handle.close()
            self._log_handle = None
        if self._workdir is not None:
            self._workdir.cleanup()
            self._workdir = None


def _error_of(response: httpx.Response) -> dict[str, Any]:
    try:
        doc = response.json()
    except ValueError:
        return {}
    error = doc.get("error") if isinstance(doc, dict) else None
    return error if isinstance(error, dict) else {}
