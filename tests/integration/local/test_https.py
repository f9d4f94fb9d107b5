"""HTTPS for apps on the local target, end to end: a real `yunzhou server` with an HTTPS listener
(YUNZHOU_TLS_LISTEN), an environment with tls "local", the app's certificate from the platform's local CA
served by the router and renewed while a client keeps calling, with no failed request."""

from __future__ import annotations

import re
import socket
import ssl
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from tests.integration.local.test_traffic import APPS, DEADLINE, mesh_score
from yunzhou.client import YunzhouClient
from yunzhou.testing import ControlPlaneProcess, polling
from yunzhou.testing.server import free_port

HOST = "web.dev.shop.localhost"


TLS_PORT = free_port()  # the router's HTTPS port (YUNZHOU_TLS_LISTEN)


def start_server(tmp_path: Path, **env: str) -> ControlPlaneProcess:
    listen = {"YUNZHOU_TLS_LISTEN": f"127.0.0.1:{TLS_PORT}"}
    return ControlPlaneProcess(tmp_path / "data", host_processes=True, env={**listen, **env})


def deploy_web(client: YunzhouClient, env: str = "dev") -> None:
    result = client.deploy("shop", env, mesh_score("web", "v1"), {}, client.upload_artifact(APPS / "mesh"))
    done = client.wait_for_rollout(
        "shop", env, "web", result["rollout"]["id"], timeout=DEADLINE, interval=0.1
    )
    assert done["state"] == "succeeded", done


def https_get(port: int, host: str, ca_file: Path) -> tuple[bytes, int]:
    """One request on a new TLS connection (SNI ``host``, verified against ``ca_file``): the response's
    first line and the serial number of the certificate the router served."""
    context = ssl.create_default_context(cafile=str(ca_file))
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=host) as tls,
    ):
        tls.sendall(f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        answer = b""
        while chunk := tls.recv(65536):
            answer += chunk
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return answer.split(b"\r\n", 1)[0], x509.load_der_x509_certificate(der).serial_number


def try_https_get(port: int, host: str, ca_file: Path) -> tuple[bytes, int] | None:
    """``https_get``, or None while the router has no certificate for ``host`` (handshake refused)."""
    try:
        return https_get(port, host, ca_file)
    except OSError:  # ssl.SSLError is one
        return None


class KeepCalling:
    """Threads making request after request, each on a new TLS connection, until the ``with`` ends: the
    serials served and every failure (an error or a status other than 200)."""

    def __init__(self, port: int, host: str, ca_file: Path, threads: int = 1) -> None:
        self.serials: list[int] = []
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(port, host, ca_file)) for _ in range(threads)
        ]

    def _run(self, port: int, host: str, ca_file: Path) -> None:
        while not self._stop.is_set():
            try:
                status, serial = https_get(port, host, ca_file)
            except OSError as exc:
                self.failures.append(repr(exc))
                continue
            if status != b"HTTP/1.1 200 OK":
                self.failures.append(status.decode(errors="replace"))
            self.serials.append(serial)

    def __enter__(self) -> KeepCalling:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)


class KeptConnection:
    """One TLS connection kept open across requests (HTTP/1.1 keep-alive)."""

    def __init__(self, port: int, host: str, ca_file: Path) -> None:
        context = ssl.create_default_context(cafile=str(ca_file))
        self.tls = context.wrap_socket(
            socket.create_connection(("127.0.0.1", port), timeout=10), server_hostname=host
        )
        self.host = host
        self.pending = b""
        der = self.tls.getpeercert(binary_form=True)
        assert der is not None
        self.serial = x509.load_der_x509_certificate(der).serial_number

    def _more(self) -> None:
        chunk = self.tls.recv(65536)
        if not chunk:
            raise ConnectionError("the router closed the kept connection")
        self.pending += chunk

    def get(self) -> bytes:
        """The status line of one more request on this connection."""
        self.tls.sendall(f"GET / HTTP/1.1\r\nHost: {self.host}\r\n\r\n".encode())
        while b"\r\n\r\n" not in self.pending:
            self._more()
        head, _, self.pending = self.pending.partition(b"\r\n\r\n")
        length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
        assert length is not None, head
        while len(self.pending) < int(length.group(1)):
            self._more()
        self.pending = self.pending[int(length.group(1)) :]
        return head.split(b"\r\n", 1)[0]

    def close(self) -> None:
        self.tls.close()


def secured(client: YunzhouClient, env: str = "dev") -> dict[str, Any] | None:
    conditions = client.get_app("shop", env, "web")["conditions"]
    return next((c for c in conditions if c["type"] == "Secured"), None)


@pytest.fixture
def ca_file(tmp_path: Path) -> Path:
    return tmp_path / "data" / "tls" / "ca" / "ca.pem"


def test_an_app_in_an_environment_with_tls_local_is_served_over_https_with_the_local_ca(
    tmp_path: Path, ca_file: Path
) -> None:
    with start_server(tmp_path) as server, YunzhouClient(server.url, server.admin_token) as client:
        client.create_project("shop")
        client.create_environment("shop", "dev")
        client.create_environment("shop", "qa")
        client.set_environment_names("shop", "dev", tls="local")
        client.set_environment_names("shop", "qa", tls="acme")  # no ACME CA on this server
        deploy_web(client)
        deploy_web(client, "qa")
        port = TLS_PORT

        def served() -> tuple[bytes, int] | None:
            return try_https_get(port, HOST, ca_file)

        status, _ = polling.wait_until("the app over HTTPS", served, DEADLINE, interval=0.1)
        assert status == b"HTTP/1.1 200 OK"
        curl = subprocess.run(
            ["curl", "-sS", "--fail", "--cacert", str(ca_file), "--resolve", f"{HOST}:{port}:127.0.0.1",
             f"https://{HOST}:{port}/"],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        assert curl.returncode == 0, curl.stderr
        assert '"version": "v1"' in curl.stdout or '"version":"v1"' in curl.stdout, curl.stdout
        key_files = list((tmp_path / "data" / "tls" / "hosts" / HOST).glob("*/key.pem"))
        assert [oct(f.stat().st_mode & 0o777) for f in key_files] == ["0o600"]

        ok = polling.wait_until(
            "Secured=True", lambda: (c := secured(client)) and c["status"] == "True" and c, DEADLINE
        )
        assert ok["reason"] == "CertificatesIssued"
        failed = polling.wait_until(
            "qa's Secured=False",
            lambda: (c := secured(client, "qa")) and c["reason"] == "CertificateFailed" and c,
            DEADLINE,
        )
        assert (
            "web.qa.shop.localhost: no certificate from the acme CA: this server has no acme CA configured"
            in (failed["message"])
        )
        with pytest.raises(ssl.SSLError):  # the qa app has no certificate: the handshake is refused
            https_get(port, "web.qa.shop.localhost", ca_file)

        client.set_environment_names("shop", "dev", tls="off")  # plain HTTP again: no certificate served
        off = polling.wait_until(
            "Secured=TlsOff", lambda: (c := secured(client)) and c["reason"] == "TlsOff" and c, DEADLINE
        )
        assert off["status"] == "True"
        polling.wait_until("the handshake refused", lambda: served() is None, DEADLINE, interval=0.1)


def test_a_renewed_certificate_is_swapped_in_while_a_client_keeps_calling_without_a_failed_request(
    tmp_path: Path, ca_file: Path
) -> None:
    # a 12 s leaf: due for renewal when less than a third is left, so about every 8 s
    with (
        start_server(tmp_path, YUNZHOU_TLS_LOCAL_LIFETIME="12") as server,
        YunzhouClient(server.url, server.admin_token) as client,
    ):
        client.create_project("shop")
        client.create_environment("shop", "dev")
        client.set_environment_names("shop", "dev", tls="local")
        deploy_web(client)
        port = TLS_PORT
        _, first_serial = polling.wait_until(
            "the app over HTTPS", lambda: try_https_get(port, HOST, ca_file), DEADLINE, interval=0.1
        )
        kept = KeptConnection(port, HOST, ca_file)  # open across the renewals
        assert kept.get() == b"HTTP/1.1 200 OK"
        with KeepCalling(port, HOST, ca_file, threads=2) as calls:

            def renewed_twice() -> bool:
                assert kept.get() == b"HTTP/1.1 200 OK"  # the open connection is served throughout
                return len(set(calls.serials) - {first_serial}) >= 2

            polling.wait_until("two renewals", renewed_twice, DEADLINE, interval=0.2)
        serials = calls.serials
        assert calls.failures == []
        assert len(serials) > 20
        assert kept.get() == b"HTTP/1.1 200 OK"  # hot swap: an open connection keeps its session
        assert kept.serial in (first_serial, *serials)
        assert kept.serial != serials[-1]  # new connections got the renewed certificate
        kept.close()
        generations = list((tmp_path / "data" / "tls" / "hosts" / HOST).iterdir())
        assert len(generations) <= 2  # renewed files replace older generations


def test_settings_https_redirects_plain_http_and_sends_hsts_once_the_host_has_its_certificate(
    tmp_path: Path, ca_file: Path
) -> None:
    with start_server(tmp_path) as server, YunzhouClient(server.url, server.admin_token) as client:
        client.create_project("shop")
        client.create_environment("shop", "dev")
        client.set_environment_names("shop", "dev", tls="local")
        settings = {"https": {"redirect": True, "hstsMaxAge": 600}}
        result = client.deploy(
            "shop", "dev", mesh_score("web", "v1"), settings, client.upload_artifact(APPS / "mesh")
        )
        done = client.wait_for_rollout("shop", "dev", "web", result["rollout"]["id"], timeout=DEADLINE)
        assert done["state"] == "succeeded", done
        plain = f"http://127.0.0.1:{server.router_port}/orders?x=1"

        def redirected() -> Any:
            answer = subprocess.run(
                ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}",
                 "-H", f"Host: {HOST}", plain],
                capture_output=True, text=True, timeout=30, check=False,
            )  # fmt: skip
            return answer.stdout if answer.stdout.startswith("308") else None

        line = polling.wait_until("plain HTTP redirected", redirected, DEADLINE, interval=0.1)
        assert line == f"308 https://{HOST}:{TLS_PORT}/orders?x=1"  # the router's HTTPS port
        headers = subprocess.run(
            ["curl", "-sS", "-D", "-", "-o", "/dev/null", "--cacert", str(ca_file),
             "--resolve", f"{HOST}:{TLS_PORT}:127.0.0.1", f"https://{HOST}:{TLS_PORT}/"],
            capture_output=True, text=True, timeout=30, check=True,
        ).stdout.lower()  # fmt: skip
        assert headers.startswith("http/1.1 200")
        assert "strict-transport-security: max-age=600" in headers
