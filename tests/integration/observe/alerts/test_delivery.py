"""Delivery against real servers: email over STARTTLS to aiosmtpd (which refuses plain text), a
certificate the client does not trust, and unreachable endpoints — each failure a DeliveryError."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from yunzhou.domain.alert_routing import parse_receiver_config
from yunzhou.observe.alerts import DeliveryError, NotifiedAlert, webhook_payload
from yunzhou.observe.alerts.delivery import deliver
from yunzhou.outbound import ALLOW_ENV
from yunzhou.testing._k8s_pki import CertificateAuthority
from yunzhou.testing.server import free_port

ALERT = NotifiedAlert(
    "fp1", {"alertname": "E", "app": "web"}, {"summary": "web fails"}, 1_800_000_000.0, None
)
PAYLOAD = webhook_payload("mail", "{}:{}", {"alertname": "E"}, [ALERT], "http://yz")


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.tls: list[bool] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content))
        self.tls.append(session.ssl is not None)
        return "250 OK"


@pytest.fixture
def tls_smtp(tmp_path: Path) -> Iterator[tuple[Mailbox, int, Path]]:
    ca = CertificateAuthority("test-smtp-ca")
    serving = ca.issue_serving("127.0.0.1", ("127.0.0.1",))
    (tmp_path / "cert.pem").write_bytes(serving.cert)
    (tmp_path / "key.pem").write_bytes(serving.key)
    (tmp_path / "ca.pem").write_bytes(ca.pair.cert)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    box = Mailbox()
    controller = Controller(
        box, hostname="127.0.0.1", port=free_port(), tls_context=context, require_starttls=True
    )
    controller.start()
    try:
        yield box, controller.port, tmp_path / "ca.pem"
    finally:
        controller.stop()


def test_email_over_starttls_with_a_private_ca(
    tls_smtp: tuple[Mailbox, int, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ALLOW_ENV, "127.0.0.1")  # the test's SMTP server listens on loopback
    box, port, ca_file = tls_smtp
    config = parse_receiver_config(
        "email",
        {"to": "oncall@example.test", "from": "yz@example.test", "smarthost": f"127.0.0.1:{port}",
         "starttls": True, "ca_file": str(ca_file)},
    )  # fmt: skip
    deliver("email", config, PAYLOAD)
    assert box.tls == [True]
    assert box.messages[0]["Subject"] == "[FIRING:1] E"
    assert "web fails" in box.messages[0].get_payload()


def test_untrusted_certificate_and_plain_text_are_refused(
    tls_smtp: tuple[Mailbox, int, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ALLOW_ENV, "127.0.0.1")  # the test's SMTP server listens on loopback
    box, port, _ = tls_smtp
    base = {"to": "oncall@example.test", "from": "yz@example.test", "smarthost": f"127.0.0.1:{port}"}
    with pytest.raises(DeliveryError, match="CERTIFICATE_VERIFY_FAILED"):
        deliver("email", parse_receiver_config("email", {**base, "starttls": True}), PAYLOAD)
    with pytest.raises(DeliveryError, match="STARTTLS"):
        deliver("email", parse_receiver_config("email", base), PAYLOAD)
    assert box.messages == []


def test_unreachable_endpoints_are_delivery_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ALLOW_ENV, "127.0.0.1")  # loopback is refused unless allowed
    port = free_port()  # nothing listens there
    with pytest.raises(DeliveryError, match=r"webhook to 127\.0\.0\.1: .*refused"):
        deliver("webhook", {"url": f"http://127.0.0.1:{port}/hook"}, PAYLOAD)
    email = {"to": ["a@x.test"], "from": "b@x.test", "smarthost": f"127.0.0.1:{port}"}
    with pytest.raises(DeliveryError, match="email via"):
        deliver("email", email, PAYLOAD)
