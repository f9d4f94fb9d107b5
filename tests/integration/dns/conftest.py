"""Real authoritative servers behind each DNS provider, fresh per test (they start in well under a second)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dns.rdatatype
import dns.resolver
import pytest

from yunzhou.names.dns import (
    DnsProvider,
    PowerDnsProvider,
    PowerDnsSettings,
    Rfc2136Provider,
    Rfc2136Settings,
)
from yunzhou.testing.dns_servers import ZONE, BindServer, KnotServer, PowerDnsServer

PROVIDERS = ["rfc2136-knot", "rfc2136-bind", "powerdns"]


@dataclass
class ProviderCase:
    """A provider wired to a running server, and that server's DNS port for reading answers back."""

    provider: DnsProvider
    dns_port: int
    zone: str = ZONE

    def answer(self, name: str, type: str) -> list[str]:
        """What the server answers for ``name``/``type`` over real DNS (TCP), sorted; [] if nothing."""
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = ["127.0.0.1"]
        resolver.port = self.dns_port
        resolver.lifetime = 10
        try:
            rrset = resolver.resolve(name + ".", type, tcp=True, raise_on_no_answer=False).rrset
        except dns.resolver.NXDOMAIN:
            return []
        if rrset is None:
            return []
        if rrset.rdtype == dns.rdatatype.TXT:
            return sorted(b"".join(rd.strings).decode() for rd in rrset)
        return sorted(rd.to_text().rstrip(".") for rd in rrset)


@pytest.fixture
def knot(tmp_path: Path) -> Iterator[KnotServer]:
    with KnotServer(tmp_path / "knot") as server:
        yield server


@pytest.fixture
def bind(tmp_path: Path) -> Iterator[BindServer]:
    with BindServer(tmp_path / "bind") as server:
        yield server


def rfc2136_settings(server: KnotServer | BindServer, **overrides: object) -> Rfc2136Settings:
    return server.rfc2136_settings(**overrides)


@pytest.fixture
def pdns(tmp_path: Path) -> Iterator[PowerDnsServer]:
    with PowerDnsServer(tmp_path / "pdns") as server:
        yield server


def powerdns_settings(pdns: PowerDnsServer, **overrides: object) -> PowerDnsSettings:
    fields: dict[str, object] = {"api_url": pdns.api_url, "api_key": pdns.api_key}
    fields.update(overrides)
    return PowerDnsSettings(**fields)  # type: ignore[arg-type]


@pytest.fixture(params=PROVIDERS)
def case(request: pytest.FixtureRequest) -> ProviderCase:
    assert request.param in PROVIDERS
    if request.param.startswith("rfc2136-"):
        primary: KnotServer | BindServer = request.getfixturevalue(request.param.removeprefix("rfc2136-"))
        return ProviderCase(Rfc2136Provider(rfc2136_settings(primary)), primary.dns_port)
    pdns: PowerDnsServer = request.getfixturevalue("pdns")
    return ProviderCase(PowerDnsProvider(powerdns_settings(pdns)), pdns.dns_port)
