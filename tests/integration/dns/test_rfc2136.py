"""RFC 2136 + TSIG against a real Knot: refusals are clear permanent errors, an absent or silent server is a
temporary one (the reconciler retries it)."""

from __future__ import annotations

import base64
import secrets
import socket

import pytest

from tests.integration.dns.conftest import rfc2136_settings
from yunzhou.domain.errors import PermanentError, TemporaryError
from yunzhou.names.dns import Rfc2136Provider
from yunzhou.testing.dns_servers import ZONE, KnotServer
from yunzhou.testing.server import free_port

APP = "orders.dev.shop.example.test"


def test_wrong_tsig_secret_is_refused_clearly_and_writes_nothing(knot: KnotServer) -> None:
    wrong = base64.b64encode(secrets.token_bytes(32)).decode()
    provider = Rfc2136Provider(rfc2136_settings(knot, key_secret=wrong))

    with pytest.raises(PermanentError) as caught:
        provider.upsert(ZONE, APP, "A", ["10.0.0.1"], 60)

    message = str(caught.value)
    assert "refused the TSIG signature" in message
    assert "yunzhou-test." in message
    assert "key_secret" in message
    assert wrong not in message  # the secret never reaches an error message
    good = Rfc2136Provider(rfc2136_settings(knot))
    assert [r for r in good.list_records(ZONE) if r.name == APP] == []


def test_unknown_tsig_key_name_is_refused_for_updates_and_transfers(knot: KnotServer) -> None:
    provider = Rfc2136Provider(rfc2136_settings(knot, key_name="intruder."))

    with pytest.raises(PermanentError, match=r"PeerBadKey.*'intruder\.'"):
        provider.upsert(ZONE, APP, "A", ["10.0.0.1"], 60)
    with pytest.raises(PermanentError, match=r"PeerBadKey"):
        provider.list_records(ZONE)


def test_a_zone_the_server_does_not_serve_is_refused(knot: KnotServer) -> None:
    provider = Rfc2136Provider(rfc2136_settings(knot))

    with pytest.raises(PermanentError, match=r"primary for the zone"):
        provider.upsert("other.test", "a.other.test", "A", ["10.0.0.1"], 60)
    with pytest.raises(PermanentError, match=r"NOTAUTH"):
        provider.list_records("other.test")


def test_a_secret_that_is_not_base64_is_a_settings_error(knot: KnotServer) -> None:
    with pytest.raises(PermanentError, match=r"dns\.rfc2136\.key_secret"):
        Rfc2136Provider(rfc2136_settings(knot, key_secret="not base64!"))
    with pytest.raises(PermanentError, match=r"dns\.rfc2136\.key_algorithm"):
        Rfc2136Provider(rfc2136_settings(knot, key_algorithm="hmac-md4"))


def test_unreachable_server_is_a_temporary_error(knot: KnotServer) -> None:
    provider = Rfc2136Provider(rfc2136_settings(knot, port=free_port()))  # nothing listens there

    with pytest.raises(TemporaryError, match=r"unreachable") as caught:
        provider.upsert(ZONE, APP, "A", ["10.0.0.1"], 60)
    assert caught.value.retry_after > 0
    with pytest.raises(TemporaryError, match=r"unreachable"):
        provider.list_records(ZONE)


def test_a_server_that_never_answers_is_a_temporary_error(knot: KnotServer) -> None:
    with socket.socket() as silent:  # accepts connections (backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        port = silent.getsockname()[1]
        provider = Rfc2136Provider(rfc2136_settings(knot, port=port, timeout=0.5))

        with pytest.raises(TemporaryError, match=r"did not answer .* within 0\.5 s"):
            provider.delete(ZONE, APP, "A")
