"""The managed registry: Debian's ``docker-registry`` (distribution 2.8) run by ``yunzhou server``.

Storage, configuration and the token certificate live under ``<data dir>/registry/``. The registry
accepts only tokens the platform issued (``registry.tokens``): its ``auth.token.rootcertbundle`` is the
issuer's certificate and its realm the platform's ``/api/v1/registry/token``. The configuration is built
as data (``registry_config``) and written as YAML, so no setting can change its structure.

Instead of the managed one, an external registry may be named by ``YUNZHOU_REGISTRY_URL`` (with
``YUNZHOU_REGISTRY_USERNAME`` / ``YUNZHOU_REGISTRY_PASSWORD``); access control is then that registry's.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from yunzhou.components import ChildProcess
from yunzhou.domain.errors import PermanentError
from yunzhou.registry.tokens import ISSUER, REGISTRY_DIR, SERVICE, TokenIssuer, write_private

REGISTRY_BINARY = "/usr/bin/docker-registry"
TOKEN_PATH = "/api/v1/registry/token"  # noqa: S105 - a URL path, not a secret
ADDRESS_FILE = "address.json"  # where the running managed registry listens: {"url", "realm"}
_ENV_KEYS = ("PATH", "LANG", "LC_ALL", "TZ")


@dataclass(frozen=True)
class RegistrySettings:
    """Which registry the server uses: the managed one (``url`` None) on ``port`` (0: a free port chosen
    at each start), or an external one at ``url`` with basic credentials."""

    url: str | None = None
    username: str | None = None
    password: str | None = None
    port: int = 0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> RegistrySettings:
        env = os.environ if environ is None else environ
        url = env.get("YUNZHOU_REGISTRY_URL", "").strip().rstrip("/") or None
        if url is not None and not url.startswith(("http://", "https://")):
            raise ValueError(f"YUNZHOU_REGISTRY_URL={url!r}: must start with http:// or https://")
        raw_port = env.get("YUNZHOU_REGISTRY_PORT", "0").strip() or "0"
        if not raw_port.isdigit() or int(raw_port) > 65535:
            raise ValueError(
                f"YUNZHOU_REGISTRY_PORT={raw_port!r}: must be a port number 1-65535 (0: any free)"
            )
        return cls(
            url=url,
            username=env.get("YUNZHOU_REGISTRY_USERNAME") or None,
            password=env.get("YUNZHOU_REGISTRY_PASSWORD") or None,
            port=int(raw_port),
        )

    @property
    def managed(self) -> bool:
        return self.url is None


def registry_config(
    root: Path, *, addr: str, realm: str, rootcertbundle: Path, secret: str, readonly: bool = False
) -> dict[str, Any]:
    """docker-registry's configuration as data."""
    return {
        "version": 0.1,
        "log": {"level": "info", "formatter": "text", "accesslog": {"disabled": True}},
        "storage": {
            "filesystem": {"rootdirectory": str(root / "data")},
            "delete": {"enabled": True},
            "maintenance": {
                "uploadpurging": {"enabled": True, "age": "168h", "interval": "24h", "dryrun": False},
                "readonly": {"enabled": readonly},
            },
            "cache": {"blobdescriptor": "inmemory"},
        },
        "http": {"addr": addr, "secret": secret, "headers": {"X-Content-Type-Options": ["nosniff"]}},
        "auth": {
            "token": {
                "realm": realm,
                "service": SERVICE,
                "issuer": ISSUER,
                "rootcertbundle": str(rootcertbundle),
            }
        },
        "health": {"storagedriver": {"enabled": False}},
    }


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RegistryProcess:
    """One managed docker-registry. ``start`` returns once ``/v2/`` answers 401 (token auth is on);
    ``url`` is then where it listens. ``running``/``ensure`` let the server watch it, like the router."""

    def __init__(
        self,
        data_dir: Path,
        *,
        realm: str,
        port: int = 0,
        binary: str = REGISTRY_BINARY,
    ) -> None:
        self.root = data_dir / REGISTRY_DIR
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.issuer = TokenIssuer(self.root)
        self.realm = realm
        self.binary = binary
        self.config_path = self.root / "config.yml"
        self._port = port
        self.addr = ""
        self._child = ChildProcess("registry", self.root / "registry.log")
        self._maintenance = threading.Lock()  # held while garbage collection restarts it

    @property
    def url(self) -> str:
        if not self.addr:
            raise RuntimeError("the registry is not started")
        return f"http://{self.addr}"

    @property
    def storage(self) -> Path:
        return self.root / "data"

    def start(self, *, readonly: bool = False, timeout: float = 30.0) -> RegistryProcess:
        if not Path(self.binary).exists():
            raise PermanentError(
                f"{self.binary} is missing: install Debian's docker-registry package "
                "(or name an external registry with YUNZHOU_REGISTRY_URL)"
            )
        if not self.addr:  # keep the port across restarts (maintenance), so clients keep their URL
            self.addr = f"127.0.0.1:{self._port or _free_port()}"
        self._write_config(readonly=readonly)
        env = {k: v for k, v in os.environ.items() if k in _ENV_KEYS}
        self._child.start(
            [self.binary, "serve", str(self.config_path)], env=env, ready=self._answers, timeout=timeout
        )
        # for the processes that use it without running it (an API started with --no-runtime)
        address = json.dumps({"url": self.url, "realm": self.realm}).encode()
        (self.root / ADDRESS_FILE).unlink(missing_ok=True)
        write_private(self.root / ADDRESS_FILE, address, 0o600)
        return self

    def _write_config(self, *, readonly: bool) -> None:
        config = registry_config(
            self.root,
            addr=self.addr,
            realm=self.realm,
            rootcertbundle=self.issuer.cert_path,
            secret=secrets.token_urlsafe(32),
            readonly=readonly,
        )
        self.config_path.unlink(missing_ok=True)
        write_private(self.config_path, yaml.safe_dump(config, sort_keys=True).encode(), 0o600)

    def _answers(self) -> bool:
        try:
            response = httpx.get(f"{self.url}/v2/", timeout=2.0, trust_env=False)
        except httpx.HTTPError:
            return False
        return response.status_code == 401

    def running(self) -> bool:
        return self._child.running()

    @property
    def pid(self) -> int:
        return self._child.pid

    def ensure(self) -> bool:
        """Start it again when it exited (on the same address); True when it had to. During maintenance
        (garbage collection restarts it on purpose) it does nothing."""
        if not self._maintenance.acquire(blocking=False):
            return False
        try:
            if self.running():
                return False
            self.start()
            return True
        finally:
            self._maintenance.release()

    def stop(self) -> None:
        self._child.stop()
        (self.root / ADDRESS_FILE).unlink(missing_ok=True)

    @contextmanager
    def maintenance(self) -> Iterator[None]:
        """Restart read-only for the duration (pulls are served, pushes refused), then normally."""
        with self._maintenance:
            self.stop()
            self.start(readonly=True)
            try:
                yield
            finally:
                self.stop()
                self.start()

    def garbage_collect(self, *, timeout: float = 600.0) -> str:
        """``docker-registry garbage-collect`` on the storage, with the registry read-only meanwhile
        (a concurrent push could otherwise lose blobs). Untagged manifests stay: deleting images is
        the retention policy's decision (registry.gc), not the collector's. Returns its output."""
        with self.maintenance():
            done = subprocess.run(
                [self.binary, "garbage-collect", str(self.config_path), "--delete-untagged=false"],
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
                env={k: v for k, v in os.environ.items() if k in _ENV_KEYS},
            )
        if done.returncode != 0:
            raise PermanentError(
                f"docker-registry garbage-collect failed ({done.returncode}): {done.stderr.strip()[-500:]}"
            )
        return done.stdout

    def __enter__(self) -> RegistryProcess:
        return self

    def __exit__(self, *_: Any) -> None:
        self.stop()
