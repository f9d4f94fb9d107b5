"""The PowerDNS HTTP API against a real pdns_server (sqlite3 backend): refusals are clear permanent errors
that never echo the key, an unknown zone is NotFound, an absent or silent API is a temporary error."""

from __future__ import annotations

import socket

import pytest

from tests.integration.dns.conftest import powerdns_settings
from yunzhou.domain.errors import NotFound, PermanentError, TemporaryError
from yunzhou.names.dns import PowerDnsProvider, PowerDnsSettings
from yunzhou.testing.dns_servers import ZONE, PowerDnsServer
from yunzhou.testing.server import free_port

APP = "orders.dev.shop.example.test"


def test_wrong_api_key_is_refused_clearly_and_writes_nothing(pdns: PowerDnsServer) -> None:
    wrong = "not-the-key-" + pdns.api_key[:4]
    provider = PowerDnsProvider(powerdns_settings(pdns, api_key=wrong))

    with pytest.raises(PermanentError) as caught:
        provider.upsert(ZONE, APP, "A", ["10.0.0.1"], 60)
    with pytest.raises(PermanentError, match=r"refused the API key"):
        provider.list_records(ZONE)

    message = str(caught.value)
    assert "refused the API key" in message
    assert "401" in message
    assert "dns.powerdns.api_key" in message
    assert wrong not in message
    assert pdns.api_key not in message
    good = PowerDnsProvider(powerdns_settings(pdns))
    assert [r for r in good.list_records(ZONE) if r.name == APP] == []


def test_a_zone_the_server_does_not_have_is_not_found(pdns: PowerDnsServer) -> None:
    provider = PowerDnsProvider(powerdns_settings(pdns))

    with pytest.raises(NotFound, match=r"zone other\.test does not exist"):
        provider.upsert("other.test", "a.other.test", "A", ["10.0.0.1"], 60)
    with pytest.raises(NotFound):
        provider.list_records("other.test")


def test_a_change_powerdns_rejects_is_a_permanent_error_with_its_reason(pdns: PowerDnsServer) -> None:
    provider = PowerDnsProvider(powerdns_settings(pdns))
    provider.upsert(ZONE, APP, "A", ["10.0.0.1"], 60)

    with pytest.raises(PermanentError, match=r"refused replacing CNAME .*: 422 .*(?i:conflict)"):
        provider.upsert(ZONE, APP, "CNAME", ["www.example.test"], 60)  # a CNAME cannot sit beside an A


def test_unreachable_api_is_a_temporary_error() -> None:
    provider = PowerDnsProvider(
        PowerDnsSettings(api_url=f"http://127.0.0.1:{free_port()}", api_key="k")  # nothing listens there
    )

    with pytest.raises(TemporaryError, match=r"unreachable") as caught:
        provider.upsert(ZONE, APP, "A", ["10.0.0.1"], 60)
    assert caught.value.retry_after > 0


def test_an_api_that_never_answers_is_a_temporary_error() -> None:
    with socket.socket() as silent:  # accepts connections (backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        provider = PowerDnsProvider(PowerDnsSettings(api_url=url, api_key="k", timeout=0.5))

        with pytest.raises(TemporaryError, match=r"did not answer .* within 0\.5 s"):
            provider.delete(ZONE, APP, "A")
