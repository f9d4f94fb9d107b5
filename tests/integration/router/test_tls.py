"""TLS termination by a real router process: SNI, hot swap, redirects, HSTS, keys kept out of sight.

Certificates come from the local CA (yunzhou.names.tls.local_ca); clients verify the chain against that CA.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import ssl
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from yunzhou.domain.errors import UserError
from yunzhou.names.tls.local_ca import LocalCA, write_leaf
from yunzhou.router import RouterProcess

from .conftest import Backend, admin_client, metric_value, proxy_client, read_response, route, snapshot

HOST = "orders.dev.shop.localhost"
HOST2 = "billing.dev.shop.localhost"
APP2 = "shop/dev/billing"
WS_SCRIPT = Path(__file__).with_name("ws_backend.py")


class Certs:
    """A local CA and leaf certificates written as files for snapshots."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.ca = LocalCA.open(directory / "ca")
        self.count = 0

    def leaf(self, *hosts: str) -> dict[str, str]:
        self.count += 1
        cert_file, key_file = write_leaf(
            self.ca.issue(list(hosts)), self.directory / "leaves", f"leaf{self.count}"
        )
        return {"cert_file": str(cert_file), "key_file": str(key_file)}

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca.cert_file))


@pytest.fixture
def certs(tmp_path: Path) -> Certs:
    return Certs(tmp_path / "tls")


@pytest.fixture
def tls_router(router_factory: Callable[..., RouterProcess]) -> RouterProcess:
    return router_factory(tls_listen="127.0.0.1:0")


def tls_snapshot(version: int, certificates: dict[str, Any], *routes: dict[str, Any]) -> dict[str, Any]:
    return {**snapshot(version, *routes), "certificates": certificates}


def https_client(router: RouterProcess, certs: Certs) -> httpx.Client:
    return httpx.Client(
        base_url=f"https://{router.tls_listen}", verify=certs.client_context(), trust_env=False
    )


def https_get(client: httpx.Client, host: str, path: str = "/") -> httpx.Response:
    """GET through the TLS listener with ``host`` as SNI name and Host header (verified against the CA)."""
    return client.get(path, headers={"Host": host}, extensions={"sni_hostname": host}, timeout=10.0)


def tls_socket(router: RouterProcess, server_name: str | None, context: ssl.SSLContext) -> ssl.SSLSocket:
    address, _, port = router.tls_listen.rpartition(":")
    sock = socket.create_connection((address, int(port)), timeout=10)
    try:
        return context.wrap_socket(sock, server_hostname=server_name)
    except BaseException:
        sock.close()
        raise


def served_names(sock: ssl.SSLSocket) -> list[str]:
    der = sock.getpeercert(binary_form=True)
    assert der is not None
    cert = x509.load_der_x509_certificate(der)
    return cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.DNSName
    )


def raw_get(sock: ssl.SSLSocket, host: str, reader: Any) -> tuple[int, dict[str, str], bytes]:
    sock.sendall(f"GET / HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    return read_response(reader)


def test_https_routes_by_sni_with_a_certificate_per_host(
    tls_router: RouterProcess, certs: Certs, backends: dict[str, Backend]
) -> None:
    tls_router.push_config(
        tls_snapshot(
            1,
            {HOST: certs.leaf(HOST), HOST2: certs.leaf(HOST2)},
            route(HOST, [backends["a1"].entry()]),
            route(HOST2, [backends["b1"].entry()], app=APP2),
        )
    )
    with https_client(tls_router, certs) as client:
        first, second = https_get(client, HOST), https_get(client, HOST2)
    assert (first.status_code, first.json()["backend"]) == (200, "a1")
    assert (second.status_code, second.json()["backend"]) == (200, "b1")
    assert first.json()["headers"]["x-forwarded-proto"] == "https"
    for host in (HOST, HOST2):  # each name got its own certificate, and the chain verifies to the CA
        with tls_socket(tls_router, host, certs.client_context()) as sock:
            assert served_names(sock) == [host]
            assert sock.selected_alpn_protocol() in (None, "http/1.1")
    with proxy_client(tls_router) as plain:  # the plain listener is unchanged
        assert plain.get("/", headers={"Host": HOST}).json()["headers"]["x-forwarded-proto"] == "http"


def test_wildcard_and_default_certificates_for_unlisted_names(
    tls_router: RouterProcess, certs: Certs, backends: dict[str, Backend]
) -> None:
    tls_router.push_config(
        tls_snapshot(
            1,
            {"*.dev.shop.localhost": certs.leaf("*.dev.shop.localhost")},
            route(HOST, [backends["a1"].entry()]),
        )
    )
    with tls_socket(tls_router, HOST, certs.client_context()) as sock:
        assert served_names(sock) == ["*.dev.shop.localhost"]
    # unknown name and no default: the handshake fails (no certificate is sent), the router goes on serving
    with pytest.raises(ssl.SSLError):
        tls_socket(tls_router, "other.example", certs.client_context()).close()
    insecure = ssl.create_default_context()
    insecure.check_hostname = False
    insecure.verify_mode = ssl.CERT_NONE
    with pytest.raises(ssl.SSLError):  # no SNI at all and no default: refused too
        tls_socket(tls_router, None, insecure).close()
    assert metric_value(tls_router.metrics_text(), "yunzhou_router_tls_unknown_name_total") == 2

    tls_router.push_config(
        tls_snapshot(
            2,
            {
                "*.dev.shop.localhost": certs.leaf("*.dev.shop.localhost"),
                "*": certs.leaf("default.localhost"),
            },
            route(HOST, [backends["a1"].entry()]),
        )
    )
    with tls_socket(tls_router, "other.example", insecure) as sock:
        assert served_names(sock) == ["default.localhost"]
    with tls_socket(tls_router, "a.b.dev.shop.localhost", insecure) as sock:  # a wildcard covers one label
        assert served_names(sock) == ["default.localhost"]
    with tls_socket(tls_router, None, insecure) as sock:  # a client that sends no SNI gets the default
        assert served_names(sock) == ["default.localhost"]
    with https_client(tls_router, certs) as client:
        assert https_get(client, HOST).json()["backend"] == "a1"


def test_certificate_hot_swap_keeps_open_connections(
    tls_router: RouterProcess, certs: Certs, backends: dict[str, Backend]
) -> None:
    tls_router.push_config(
        tls_snapshot(1, {HOST: certs.leaf(HOST, "old.localhost")}, route(HOST, [backends["a1"].entry()]))
    )
    context = certs.client_context()
    with tls_socket(tls_router, HOST, context) as old:
        reader = old.makefile("rb")
        assert raw_get(old, HOST, reader)[0] == 200
        assert served_names(old) == [HOST, "old.localhost"]
        new_leaf = certs.leaf(HOST, "new.localhost")
        assert tls_router.push_config(
            tls_snapshot(2, {HOST: new_leaf}, route(HOST, [backends["a1"].entry()]))
        )["applied"]
        with tls_socket(tls_router, HOST, context) as fresh:  # a new handshake sees the new certificate
            assert served_names(fresh) == [HOST, "new.localhost"]
            assert raw_get(fresh, HOST, fresh.makefile("rb"))[0] == 200
        for _ in range(3):  # the keep-alive connection made before the swap goes on serving
            status, headers, _ = raw_get(old, HOST, reader)
            assert status == 200
            assert headers.get("connection") != "close"
        reader.close()


def test_redirect_https_answers_308_with_the_https_url(
    tls_router: RouterProcess, certs: Certs, backends: dict[str, Backend]
) -> None:
    secure = {**route(HOST, [backends["a1"].entry()]), "redirect_https": True}
    tls_router.push_config(
        tls_snapshot(1, {HOST: certs.leaf(HOST)}, secure, route(HOST2, [backends["b1"].entry()], app=APP2))
    )
    port = tls_router.tls_listen.rpartition(":")[2]
    with proxy_client(tls_router) as plain:
        redirected = plain.post("/orders/7?full=1&x=%2F", headers={"Host": HOST}, content=b"body")
        untouched = plain.get("/", headers={"Host": HOST2})
    assert redirected.status_code == 308
    assert redirected.headers["location"] == f"https://{HOST}:{port}/orders/7?full=1&x=%2F"
    assert untouched.status_code == 200  # a route without the flag is served over plain HTTP
    with https_client(tls_router, certs) as client:  # the target works, and is not redirected again
        assert https_get(client, HOST, "/orders/7?full=1").status_code == 200
    assert tls_router.get_config()["routes"][0]["redirect_https"] is True


def test_hsts_is_sent_on_https_answers_only(
    tls_router: RouterProcess, certs: Certs, backends: dict[str, Backend]
) -> None:
    tls_router.push_config(
        tls_snapshot(
            1, {HOST: certs.leaf(HOST)}, {**route(HOST, [backends["a1"].entry()]), "hsts_max_age": 31536000}
        )
    )
    with https_client(tls_router, certs) as client:
        answered = https_get(client, HOST)
        local = https_get(client, HOST, "/")  # a second request on the same connection
        missing = client.get("/", headers={"Host": "nothing.localhost"}, extensions={"sni_hostname": HOST})
    assert answered.headers["strict-transport-security"] == "max-age=31536000"
    assert local.headers["strict-transport-security"] == "max-age=31536000"
    assert "strict-transport-security" not in missing.headers  # no route, no setting
    with proxy_client(tls_router) as plain:
        assert "strict-transport-security" not in plain.get("/", headers={"Host": HOST}).headers


def test_private_keys_never_in_config_errors_or_logs(
    tls_router: RouterProcess, certs: Certs, backends: dict[str, Backend]
) -> None:
    leaf = certs.leaf(HOST)
    key_pem = Path(leaf["key_file"]).read_text()
    key_body = key_pem.splitlines()[1]  # a line of base64 key material
    tls_router.push_config(tls_snapshot(1, {HOST: leaf}, route(HOST, [backends["a1"].entry()])))
    with admin_client(tls_router) as admin:
        shown = admin.get("/config").text
    assert json.loads(shown)["certificates"] == {HOST: leaf}  # paths only
    assert key_body not in shown
    assert "PRIVATE KEY" not in shown

    other = certs.leaf(HOST2)  # a key that does not belong to the certificate: refused, the key unnamed
    mismatched = {"cert_file": leaf["cert_file"], "key_file": other["key_file"]}
    with pytest.raises(UserError) as refused:
        tls_router.push_config(tls_snapshot(2, {HOST: mismatched}, route(HOST, [backends["a1"].entry()])))
    assert refused.value.problems[0].path == f"certificates.{HOST}"
    assert "PRIVATE KEY" not in str(refused.value)
    assert key_body not in str(refused.value)

    os.chmod(leaf["key_file"], 0o644)  # a key others can read is refused, naming the field and the mode
    with pytest.raises(UserError) as readable:
        tls_router.push_config(tls_snapshot(2, {HOST: leaf}, route(HOST, [backends["a1"].entry()])))
    assert readable.value.problems[0].path == f"certificates.{HOST}.key_file"
    assert "0644" in readable.value.problems[0].message
    assert tls_router.get_config()["version"] == 1  # nothing was swapped

    with https_client(tls_router, certs) as client:
        assert https_get(client, HOST).status_code == 200
    tls_router.stop()
    assert tls_router.log_file is not None
    logged = tls_router.log_file.read_text()
    assert "certificates" in logged
    assert key_body not in logged
    assert "PRIVATE KEY" not in logged


def test_websocket_upgrade_through_tls(
    tls_router: RouterProcess, certs: Certs, backend_factory: Callable[..., Backend]
) -> None:
    ws = backend_factory("ws1", WS_SCRIPT)
    tls_router.push_config(tls_snapshot(1, {HOST: certs.leaf(HOST)}, route(HOST, [ws.entry()])))
    address, _, port = tls_router.tls_listen.rpartition(":")
    sock = socket.create_connection((address, int(port)), timeout=10)
    with connect(
        f"wss://{HOST}/echo",
        sock=sock,
        ssl=certs.client_context(),
        server_hostname=HOST,
        compression=None,
        open_timeout=30,
        close_timeout=5,
    ) as conn:
        conn.send("hello over tls")
        assert conn.recv(timeout=10) == "hello over tls"
        conn.send("name?")
        assert conn.recv(timeout=10) == "ws1"


def test_forwarded_proto_from_the_client_is_replaced(
    tls_router: RouterProcess, certs: Certs, backends: dict[str, Backend]
) -> None:
    tls_router.push_config(tls_snapshot(1, {HOST: certs.leaf(HOST)}, route(HOST, [backends["a1"].entry()])))
    spoof = {"Host": HOST, "X-Forwarded-Proto": "https"}
    with proxy_client(tls_router) as plain:  # a plain-HTTP client cannot pass itself off as HTTPS
        assert plain.get("/", headers=spoof).json()["headers"]["x-forwarded-proto"] == "http"
    with https_client(tls_router, certs) as client:
        seen = client.get(
            "/", headers={"Host": HOST, "X-Forwarded-Proto": "http"}, extensions={"sni_hostname": HOST}
        )
    assert seen.json()["headers"]["x-forwarded-proto"] == "https"


def test_redirect_location_takes_no_host_or_port_from_the_client(
    tls_router: RouterProcess, certs: Certs, backends: dict[str, Backend]
) -> None:
    secure = {**route(HOST, [backends["a1"].entry()]), "redirect_https": True}
    tls_router.push_config(tls_snapshot(1, {HOST: certs.leaf(HOST)}, secure))
    port = tls_router.tls_listen.rpartition(":")[2]
    with proxy_client(tls_router) as plain:
        with_port = plain.get("/a", headers={"Host": f"{HOST.upper()}.:9999"})
    assert with_port.headers["location"] == f"https://{HOST}:{port}/a"
    address, _, plain_port = tls_router.listen.rpartition(":")
    with socket.create_connection((address, int(plain_port)), timeout=10) as sock:
        # absolute form names another host: it wins over Host, is not routed, and nothing redirects there
        sock.sendall(f"GET http://evil.example/a HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
        status, headers, _ = read_response(sock.makefile("rb"))
    assert status == 404
    assert "location" not in headers


def test_tls_handshake_that_never_starts_is_closed_after_the_header_timeout(
    router_factory: Callable[..., RouterProcess], certs: Certs, backends: dict[str, Backend]
) -> None:
    router = router_factory(tls_listen="127.0.0.1:0", header_timeout=1)
    router.push_config(tls_snapshot(1, {HOST: certs.leaf(HOST)}, route(HOST, [backends["a1"].entry()])))
    address, _, port = router.tls_listen.rpartition(":")
    with socket.create_connection((address, int(port)), timeout=15) as idle:
        started = time.monotonic()
        assert idle.recv(1) == b""  # closed by the router, not by our timeout
        assert time.monotonic() - started < 10


def test_access_policy_applies_over_https_and_to_upgrades_through_tls(
    tls_router: RouterProcess, certs: Certs, backend_factory: Callable[..., Backend]
) -> None:
    ws = backend_factory("ws1", WS_SCRIPT)
    doc = tls_snapshot(1, {HOST: certs.leaf(HOST)}, {**route(HOST, [ws.entry()]), "hsts_max_age": 60})
    doc["callers"] = {hashlib.sha256(b"tok-web").hexdigest(): "shop/dev/web"}
    strict = {"access": {"default": "deny", "allow": ["web"], "external": False}}
    doc["policies"] = {"shop/dev/orders": {"traffic": strict, "split": {"stable": 100}}}
    tls_router.push_config(doc)
    with https_client(tls_router, certs) as client:
        outside = https_get(client, HOST, "/plain")
        inside = client.get(
            "/plain",
            headers={"Host": HOST, "x-yunzhou-caller-token": "tok-web"},
            extensions={"sni_hostname": HOST},
        )
    assert outside.status_code == 403
    assert outside.headers["strict-transport-security"] == "max-age=60"  # router answers carry it too
    assert inside.status_code == 200
    address, _, port = tls_router.tls_listen.rpartition(":")
    sock = socket.create_connection((address, int(port)), timeout=10)
    with pytest.raises(InvalidStatus) as refused:  # the handshake through TLS meets the policy
        connect(
            f"wss://{HOST}/echo", sock=sock, ssl=certs.client_context(), server_hostname=HOST, open_timeout=30
        )
    assert refused.value.response.status_code == 403
