"""RFC 2136 + TSIG against a real BIND 9 (``named``): a record written through the provider is what ``dig``
gets from it, and a TSIG key mismatch is a clear permanent error. The provider contract tests run against
BIND too (``rfc2136-bind`` in conftest.PROVIDERS)."""

from __future__ import annotations

import base64
import secrets
import shutil
import subprocess

import pytest

from tests.integration.dns.conftest import rfc2136_settings
from yunzhou.domain.errors import PermanentError
from yunzhou.names.dns import Rfc2136Provider
from yunzhou.testing.dns_servers import BIND_MISSING, ZONE, BindServer
from yunzhou.testing.polling import wait_until

APP = "orders.dev.shop.example.test"


def dig_short(server: BindServer, name: str, type: str) -> list[str]:
    """``dig @127.0.0.1 -p PORT name TYPE +short``: the answer lines, sorted."""
    dig = shutil.which("dig")
    assert dig, BIND_MISSING
    out = subprocess.run(
        [dig, "@127.0.0.1", "-p", str(server.dns_port), name, type, "+short", "+time=5", "+tries=2"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    return sorted(line for line in out.splitlines() if line)


def test_upserted_record_is_answered_by_bind_to_dig_and_delete_removes_it(bind: BindServer) -> None:
    provider = Rfc2136Provider(rfc2136_settings(bind))

    provider.upsert(ZONE, APP, "A", ["10.0.0.7", "10.0.0.8"], 60)
    wait_until(
        "dig gets the A record", lambda: dig_short(bind, APP, "A") == ["10.0.0.7", "10.0.0.8"], timeout=20
    )

    provider.delete(ZONE, APP, "A")
    wait_until("dig gets nothing", lambda: dig_short(bind, APP, "A") == [], timeout=20)


def test_wrong_tsig_secret_against_bind_is_a_permanent_error_naming_the_key(bind: BindServer) -> None:
    wrong = base64.b64encode(secrets.token_bytes(32)).decode()
    provider = Rfc2136Provider(rfc2136_settings(bind, key_secret=wrong))

    with pytest.raises(PermanentError) as caught:
        provider.upsert(ZONE, APP, "A", ["10.0.0.1"], 60)

    message = str(caught.value)
    assert "yunzhou-test." in message
    assert "key_secret" in message
    assert wrong not in message
    assert dig_short(bind, APP, "A") == []  # nothing was written


def test_unknown_tsig_key_name_against_bind_is_a_permanent_error_naming_it(bind: BindServer) -> None:
    provider = Rfc2136Provider(rfc2136_settings(bind, key_name="intruder."))

    with pytest.raises(PermanentError, match=r"'intruder\.'"):
        provider.upsert(ZONE, APP, "A", ["10.0.0.1"], 60)
    with pytest.raises(PermanentError, match=r"'intruder\.'"):
        provider.list_records(ZONE)
