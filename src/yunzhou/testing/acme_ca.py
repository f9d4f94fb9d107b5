"""A real ACME CA for tests: Debian's ``pebble`` (Let's Encrypt's test CA) on free loopback ports.

``with PebbleServer(tmp_path, http_port=router_port, dns_server=("127.0.0.1", knot.dns_port)) as pebble:``

- ``pebble.directory_url`` — the ACME directory (``https://localhost:<port>/dir``), served with a
  certificate from a local CA made for this run; ``pebble.ca_bundle`` is that CA (give it to the client).
- HTTP-01 validation connects to ``<host>:http_port`` and DNS-01 looks TXT records up, both after
  resolving through ``dns_server`` (``-dnsserver``): names resolve as they would for a real CA, so the test
  must publish an A record for the host in that DNS server. Nothing is "always valid".
- ``pebble.issuing_root()`` — Pebble's root certificate (PEM, from its management interface's
  ``/roots/0``; regenerated each start), what a client trusts to verify issued chains (``curl --cacert``);
  ``write_issuing_root(path)`` stores it as a file.

Stopped with SIGTERM on leaving the ``with`` and killed if the test run dies first.
"""

from __future__ import annotations

import json
import os
import shutil
import ssl
from pathlib import Path
from types import TracebackType

import httpx

from yunzhou.components.child import ChildProcess
from yunzhou.names.tls.local_ca import LocalCA, write_leaf
from yunzhou.testing.server import free_port

PEBBLE_MISSING = "Debian's pebble package is needed (apt-get install pebble)"


class PebbleServer:
    def __init__(self, workdir: Path, *, http_port: int, dns_server: tuple[str, int]) -> None:
        self.workdir = workdir
        self.http_port = http_port
        self.dns_server = dns_server
        self.acme_port = free_port()
        self.management_port = free_port()
        self.directory_url = f"https://localhost:{self.acme_port}/dir"
        self.ca_bundle = workdir / "directory-ca" / "ca.pem"
        workdir.mkdir(parents=True, exist_ok=True)
        self.child = ChildProcess("pebble", workdir / "pebble.log")

    def config(self, cert_file: Path, key_file: Path) -> dict[str, object]:
        return {
            "pebble": {
                "listenAddress": f"127.0.0.1:{self.acme_port}",
                "managementListenAddress": f"127.0.0.1:{self.management_port}",
                "certificate": str(cert_file),
                "privateKey": str(key_file),
                "httpPort": self.http_port,
                "tlsPort": free_port(),  # TLS-ALPN-01 is not used; a port nothing listens on
                "ocspResponderURL": "",
                "externalAccountBindingRequired": False,
            }
        }

    def __enter__(self) -> PebbleServer:
        binary = shutil.which("pebble")
        assert binary, PEBBLE_MISSING
        ca = LocalCA.open(self.ca_bundle.parent, name="Pebble directory test CA")
        cert_file, key_file = write_leaf(ca.issue(["localhost"]), self.workdir / "directory-tls", "localhost")
        config_file = self.workdir / "pebble-config.json"
        config_file.write_text(json.dumps(self.config(cert_file, key_file)), encoding="utf-8")
        env = {
            **os.environ,
            "PEBBLE_VA_NOSLEEP": "1",  # validate at once instead of after a random pause of up to 15 s
            # Pebble rejects 5 % of nonces by default; the client retries once, so a double rejection
            # would fail a test about once in a few hundred requests.
            "PEBBLE_WFE_NONCEREJECT": "0",
        }
        env.pop("PEBBLE_VA_ALWAYS_VALID", None)  # validation must really happen
        dns_server = f"{self.dns_server[0]}:{self.dns_server[1]}"
        argv = [binary, "-config", str(config_file), "-dnsserver", dns_server]
        self.child.start(argv, env=env, ready=self._directory_up, timeout=60)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.child.stop(timeout=20)

    def _client(self) -> httpx.Client:
        context = ssl.create_default_context(cafile=str(self.ca_bundle))
        return httpx.Client(verify=context, trust_env=False, timeout=10.0)

    def _directory_up(self) -> bool:
        try:
            with self._client() as client:
                return client.get(self.directory_url).is_success
        except httpx.TransportError:
            return False

    def issuing_root(self) -> bytes:
        """Pebble's root certificate (PEM), which issued certificates chain up to."""
        with self._client() as client:
            response = client.get(f"https://localhost:{self.management_port}/roots/0")
        response.raise_for_status()
        return response.content

    def write_issuing_root(self, path: Path) -> Path:
        path.write_bytes(self.issuing_root())
        return path
