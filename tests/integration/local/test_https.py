"""HTTPS for apps on the local target, end to end: a real `yunzhou server` with an HTTPS listener
(YUNZHOU_TLS_LISTEN), an environment with tls "local", the app's certificate from the platform's local CA
served by the router and renewed while a client keeps calling, with no failed request."""

from __future__ import annotations

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
            try:
                return https_get(port, HOST, ca_file)
            except (ssl.SSLError, OSError):
                return None  # not issued yet: no certificate for the name

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

        def served() -> tuple[bytes, int] | None:
            try:
                return https_get(port, HOST, ca_file)
            except (ssl.SSLError, OSError):
                return None

        _, first_serial = polling.wait_until("the app over HTTPS", served, DEADLINE, interval=0.1)
        serials: list[int] = []
        failures: list[str] = []
        stop = threading.Event()

        def keep_calling() -> None:
            while not stop.is_set():
                try:
                    status, serial = https_get(port, HOST, ca_file)
                except (ssl.SSLError, OSError) as exc:
                    failures.append(repr(exc))
                    continue
                if status != b"HTTP/1.1 200 OK":
                    failures.append(status.decode(errors="replace"))
                serials.append(serial)

        callers = [threading.Thread(target=keep_calling) for _ in range(2)]
        for caller in callers:
            caller.start()
        try:
            polling.wait_until(
                "two renewals", lambda: len(set(serials) - {first_serial}) >= 2, DEADLINE, interval=0.2
            )
        finally:
            stop.set()
            for caller in callers:
                caller.join(timeout=30)
        assert failures == []
        assert len(serials) > 20
        generations = list((tmp_path / "data" / "tls" / "hosts" / HOST).iterdir())
        assert len(generations) <= 2  # renewed files replace older generations
