"""The names reconciler against real DNS servers (Knot, BIND 9, PowerDNS): an app gets its record by the
environment's rule, loses it when removed, never overwrites a record someone else made, restores a hand
edit, keeps records under ``upsert-only``, reports a wrong TSIG key, and verifies custom domains."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dns.resolver
import pytest
from sqlalchemy import select

from tests.helpers import UnixClock, score
from yunzhou.domain.errors import Conflict, UserError
from yunzhou.names.dns import DnsProvider, PowerDnsProvider, Rfc2136Provider
from yunzhou.reconcile.apps import AppController
from yunzhou.reconcile.names import NamesReconciler
from yunzhou.services import SYSTEM, ControlPlane
from yunzhou.store import Database, sqlite_url, upgrade
from yunzhou.store.models import App, DnsRecordRow
from yunzhou.testing.dns_servers import ZONE, BindServer, KnotServer, PowerDnsServer

from .conftest import powerdns_settings, rfc2136_settings

SERVERS = ["knot", "bind", "powerdns"]


@dataclass
class Setup:
    cp: ControlPlane
    names: NamesReconciler
    provider: DnsProvider  # the same server, for the test's own reads and foreign writes
    dns_port: int
    kind: str

    def answer(self, name: str, type: str = "A") -> list[str]:
        return self.answer_at(self.dns_port, name, type)

    @staticmethod
    def answer_at(port: int, name: str, type: str) -> list[str]:
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers, resolver.port, resolver.lifetime = ["127.0.0.1"], port, 10
        try:
            rrset = resolver.resolve(name + ".", type, tcp=True, raise_on_no_answer=False).rrset
        except dns.resolver.NXDOMAIN:
            return []
        if rrset is None:
            return []
        if type == "TXT":
            return sorted(b"".join(rd.strings).decode() for rd in rrset)
        return sorted(rd.to_text().rstrip(".") for rd in rrset)

    def records(self) -> dict[str, dict[str, Any]]:
        return {f"{r['name']} {r['type']}": r for r in self.cp.names.records(SYSTEM)}


def _server(kind: str, workdir: Path) -> KnotServer | BindServer | PowerDnsServer:
    return {"knot": KnotServer, "bind": BindServer, "powerdns": PowerDnsServer}[kind](workdir)


def _txt(port: int) -> Any:
    def resolve(name: str) -> list[str]:
        return Setup.answer_at(port, name, "TXT")

    return resolve


@contextmanager
def _setup(kind: str, tmp_path: Path) -> Iterator[Setup]:
    db = Database(sqlite_url(tmp_path))
    upgrade(db.engine)
    data = tmp_path / "data"
    data.mkdir()
    clock = UnixClock()
    cp = ControlPlane.create(db, data, clock=clock)
    assert cp.ctx.secret_box is not None
    with _server(kind, tmp_path / kind) as server:
        if isinstance(server, PowerDnsServer):
            provider: DnsProvider = PowerDnsProvider(powerdns_settings(server))
            settings: dict[str, Any] = {"zones": [ZONE], "api_url": server.api_url}
            cp.names.add_provider(SYSTEM, "corp", "powerdns", settings, server.api_key)
        else:
            provider = Rfc2136Provider(rfc2136_settings(server))
            settings = {
                "zones": [ZONE], "server": "127.0.0.1", "port": server.dns_port,
                "key_name": server.key_name, "key_algorithm": server.key_algorithm,
            }  # fmt: skip
            cp.names.add_provider(SYSTEM, "corp", "rfc2136", settings, server.key_secret)
        names = NamesReconciler(
            db, cp.ctx.secret_box.open, clock, data_dir=data, hosts_file=tmp_path / "hosts",
            resolve_txt=_txt(server.dns_port),
        )  # fmt: skip
        cp.projects.create(SYSTEM, "shop")
        cp.projects.create_environment(SYSTEM, "shop", "prod", "local", None)
        try:
            yield Setup(cp, names, provider, server.dns_port, kind)
        finally:
            db.dispose()


@pytest.fixture(params=SERVERS)
def setup(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Setup]:
    with _setup(request.param, tmp_path) as value:
        yield value


@pytest.fixture(params=["knot", "bind"])
def tsig_setup(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Setup]:
    with _setup(request.param, tmp_path) as value:
        yield value


def _name(app: str = "orders") -> str:
    return f"{app}.prod.shop.{ZONE}"


def test_an_app_gets_its_record_by_rule_and_loses_it_when_removed(setup: Setup) -> None:
    cp = setup.cp
    cp.names.set_environment(
        SYSTEM, "shop", "prod", names={"provider": "corp", "zone": ZONE, "addresses": ["10.0.0.7"]}
    )
    cp.apps.deploy(SYSTEM, "shop", "prod", score("orders"), None, None)
    counts = setup.names.run_once()
    assert counts["upserted"] == 1, counts
    assert setup.answer(_name()) == ["10.0.0.7"]
    row = setup.records()[f"{_name()} A"]
    assert (row["state"], row["owner"], row["values"]) == ("synced", "shop/prod/orders", ["10.0.0.7"])
    if setup.kind == "bind":  # the must-show: checked with dig against the real BIND
        assert shutil.which("dig"), "dig (bind9-dnsutils) is installed by .ci/run"
        out = subprocess.run(
            ["dig", "@127.0.0.1", "-p", str(setup.dns_port), _name(), "A", "+short", "+tcp"],
            capture_output=True, text=True, timeout=30, check=True,
        )  # fmt: skip
        assert out.stdout.split() == ["10.0.0.7"]
    assert setup.names.run_once()["upserted"] == 0  # a second pass changes nothing
    # the name is the app's: another project cannot route it
    cp.projects.create(SYSTEM, "evil")
    cp.projects.create_environment(SYSTEM, "evil", "dev", "local", None)
    with pytest.raises(Conflict, match="another app's DNS name"):
        cp.apps.deploy(SYSTEM, "evil", "dev", score("intruder"), {"routes": [{"host": _name()}]}, None)

    cp.apps.remove(SYSTEM, "shop", "prod", "orders")
    assert setup.names.run_once()["deleted"] == 1
    assert setup.answer(_name()) == []
    assert setup.records() == {}


def test_a_record_someone_else_made_is_never_overwritten(setup: Setup) -> None:
    cp = setup.cp
    setup.provider.upsert(ZONE, _name(), "A", ["192.0.2.1"], 60)  # the DNS team's own record
    cp.names.set_environment(
        SYSTEM, "shop", "prod", names={"provider": "corp", "zone": ZONE, "addresses": ["10.0.0.7"]}
    )
    cp.apps.deploy(SYSTEM, "shop", "prod", score("orders"), None, None)
    assert setup.names.run_once()["conflicts"] == 1
    assert setup.answer(_name()) == ["192.0.2.1"]
    row = setup.records()[f"{_name()} A"]
    assert row["state"] == "conflict"
    assert "192.0.2.1" in row["message"]
    assert "never overwritten" in row["message"]
    # removing the app leaves the foreign record alone
    cp.apps.remove(SYSTEM, "shop", "prod", "orders")
    setup.names.run_once()
    assert setup.answer(_name()) == ["192.0.2.1"]
    assert setup.records() == {}


def test_the_record_is_written_once_the_foreign_one_is_gone(setup: Setup) -> None:
    cp = setup.cp
    setup.provider.upsert(ZONE, _name(), "A", ["192.0.2.1"], 60)
    cp.names.set_environment(
        SYSTEM, "shop", "prod", names={"provider": "corp", "zone": ZONE, "addresses": ["10.0.0.7"]}
    )
    cp.apps.deploy(SYSTEM, "shop", "prod", score("orders"), None, None)
    setup.names.run_once()
    setup.provider.delete(ZONE, _name(), "A")
    assert setup.names.run_once()["upserted"] == 1
    assert setup.answer(_name()) == ["10.0.0.7"]
    assert setup.records()[f"{_name()} A"]["state"] == "synced"


def test_a_hand_edit_is_restored_by_the_full_check(setup: Setup) -> None:
    cp = setup.cp
    cp.names.set_environment(
        SYSTEM, "shop", "prod", names={"provider": "corp", "zone": ZONE, "addresses": ["10.0.0.7"]}
    )
    cp.apps.deploy(SYSTEM, "shop", "prod", score("orders"), None, None)
    setup.names.run_once()
    setup.provider.upsert(ZONE, _name(), "A", ["203.0.113.9"], 300)  # someone edits Yunzhou's record
    setup.names.full_check_every = 0.0
    assert setup.names.run_once()["upserted"] == 1
    assert setup.answer(_name()) == ["10.0.0.7"]


def test_upsert_only_keeps_the_records_of_removed_apps(setup: Setup) -> None:
    cp = setup.cp
    names = {"provider": "corp", "zone": ZONE, "addresses": ["10.0.0.7"], "policy": "upsert-only"}
    cp.names.set_environment(SYSTEM, "shop", "prod", names=names)
    cp.apps.deploy(SYSTEM, "shop", "prod", score("orders"), None, None)
    setup.names.run_once()
    cp.apps.remove(SYSTEM, "shop", "prod", "orders")
    setup.names.run_once()
    assert setup.answer(_name()) == ["10.0.0.7"]
    assert setup.records()[f"{_name()} A"]["state"] == "retained"
    # the environment stops naming and the provider goes: the kept record stays at the provider, forgotten
    cp.names.set_environment(SYSTEM, "shop", "prod", names=None)
    setup.names.run_once()
    assert setup.answer(_name()) == ["10.0.0.7"]
    cp.names.remove_provider(SYSTEM, "corp")
    assert setup.records() == {}
    assert setup.answer(_name()) == ["10.0.0.7"]


def test_a_custom_rule_cname_and_ipv6(setup: Setup) -> None:
    cp = setup.cp
    rule = "{app}-{env}.{project}.{zone}"
    names = {"provider": "corp", "zone": ZONE, "rule": rule, "addresses": ["10.0.0.7", "2001:db8::7"]}
    cp.names.set_environment(SYSTEM, "shop", "prod", names=names)
    cp.apps.deploy(SYSTEM, "shop", "prod", score("orders"), None, None)
    setup.names.run_once()
    name = f"orders-prod.shop.{ZONE}"
    assert (setup.answer(name), setup.answer(name, "AAAA")) == (["10.0.0.7"], ["2001:db8::7"])
    # the rule changes to a CNAME: the old record sets go (sync), the new one comes
    cp.names.set_environment(
        SYSTEM, "shop", "prod", names={"provider": "corp", "zone": ZONE, "cname": f"lb.{ZONE}"}
    )
    setup.names.run_once()
    assert (setup.answer(name), setup.answer(name, "AAAA")) == ([], [])  # nothing left at the old name
    assert setup.answer(_name(), "CNAME") == [f"lb.{ZONE}"]


def test_a_wrong_tsig_key_is_a_clear_error_and_writes_nothing(tsig_setup: Setup) -> None:
    setup = tsig_setup
    cp = setup.cp
    settings = next(p for p in cp.names.list_providers() if p["name"] == "corp")["settings"]
    cp.names.add_provider(
        SYSTEM, "wrongkey", "rfc2136", settings, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
    )
    cp.names.set_environment(
        SYSTEM, "shop", "prod", names={"provider": "wrongkey", "zone": ZONE, "addresses": ["10.0.0.7"]}
    )
    cp.apps.deploy(SYSTEM, "shop", "prod", score("orders"), None, None)
    assert setup.names.run_once()["errors"] == 1
    row = setup.records()[f"{_name()} A"]
    assert row["state"] == "error"
    assert settings["key_name"] in row["message"]
    assert "AAAAAAAA" not in row["message"]
    assert setup.answer(_name()) == []


def test_custom_domain_is_routed_only_once_its_txt_record_is_seen(setup: Setup) -> None:
    cp = setup.cp
    cp.apps.deploy(SYSTEM, "shop", "prod", score("orders"), None, None)
    host = f"www.{ZONE}"
    d = cp.custom_domains.add(SYSTEM, "shop", "prod", "orders", host)
    assert d["state"] == "pending"
    assert d["challenge"]["name"] == f"_yunzhou-challenge.{host}"
    controller = AppController(cp.ctx.db, {}, cp.data_dir, cp.ctx.clock)
    with cp.ctx.db.transaction() as s:
        app_id = s.scalar(select(App.id).where(App.name == "orders"))
    assert app_id is not None

    def routed() -> set[str]:
        loaded = controller._load(app_id)
        assert loaded is not None
        return {r.host for r in loaded[0].routes}

    assert setup.names.run_once()["verified"] == 0
    assert host not in routed()
    listed = cp.custom_domains.list("shop", "prod", "orders")[0]
    assert "no TXT record" in listed["message"]
    setup.provider.upsert(ZONE, d["challenge"]["name"], "TXT", [d["challenge"]["value"]], 60)
    cp.custom_domains.verify(SYSTEM, "shop", "prod", "orders", host)  # look again now
    assert setup.names.run_once()["verified"] == 1
    assert cp.custom_domains.list("shop", "prod", "orders")[0]["state"] == "verified"
    assert host in routed()
    # a host belongs to one app: another project cannot route or ask for it
    cp.projects.create(SYSTEM, "evil")
    cp.projects.create_environment(SYSTEM, "evil", "dev", "local", None)
    with pytest.raises(Conflict) as taken:
        cp.apps.deploy(SYSTEM, "evil", "dev", score("intruder"), {"routes": [{"host": host}]}, None)
    assert "custom domain" in str(taken.value)
    assert "shop" not in str(taken.value)
    cp.apps.deploy(SYSTEM, "evil", "dev", score("intruder"), None, None)
    with pytest.raises(Conflict):
        cp.custom_domains.add(SYSTEM, "evil", "dev", "intruder", host)
    with pytest.raises(UserError):
        # a name under the base domain is given by rule, never asked for
        cp.custom_domains.add(SYSTEM, "evil", "dev", "intruder", "intruder.dev.evil.localhost")


def test_a_record_never_written_is_checked_again_after_an_error(setup: Setup) -> None:
    """A first write that failed (server down, refused) leaves a row in state error that was never
    written; if meanwhile someone else made a record at that name, the next pass must see it and not
    overwrite it (the row is not the platform's record until the platform wrote it)."""
    cp = setup.cp
    cp.names.set_environment(
        SYSTEM, "shop", "prod", names={"provider": "corp", "zone": ZONE, "addresses": ["10.0.0.7"]}
    )
    cp.apps.deploy(SYSTEM, "shop", "prod", score("orders"), None, None)
    with cp.ctx.db.transaction() as s:  # as a pass leaves it when the provider refused the first write
        s.add(
            DnsRecordRow(
                provider="corp", zone=ZONE, name=_name(), type="A", values=["10.0.0.7"], ttl=300,
                owner="shop/prod/orders", state="error", message="unreachable", updated_at=cp.ctx.clock(),
                app_id=s.scalar(select(App.id).where(App.name == "orders")),
            )
        )  # fmt: skip
    setup.provider.upsert(ZONE, _name(), "A", ["192.0.2.1"], 60)  # someone else's, made meanwhile
    assert setup.names.run_once()["conflicts"] == 1
    assert setup.answer(_name()) == ["192.0.2.1"]
    assert setup.records()[f"{_name()} A"]["state"] == "conflict"
    cp.apps.remove(SYSTEM, "shop", "prod", "orders")
    setup.names.run_once()
    assert setup.answer(_name()) == ["192.0.2.1"]  # and removing the app leaves it alone


def test_a_domain_left_pending_is_looked_up_less_often(setup: Setup) -> None:
    cp = setup.cp
    cp.apps.deploy(SYSTEM, "shop", "prod", score("orders"), None, None)
    cp.custom_domains.add(SYSTEM, "shop", "prod", "orders", f"www.{ZONE}")
    lookups: list[str] = []
    setup.names.resolve_txt = lambda name: lookups.append(name) or []
    clock = cp.ctx.clock
    assert isinstance(clock, UnixClock)
    for _ in range(3):  # its first hour: every 10 s
        setup.names.run_once()
        clock.t += 10
    assert len(lookups) == 3
    clock.t += 3600
    setup.names.run_once()
    for _ in range(20):  # later: every 5 minutes
        clock.t += 10
        setup.names.run_once()
    assert len(lookups) == 4
    clock.t += 300
    setup.names.run_once()
    assert len(lookups) == 5
    cp.custom_domains.verify(SYSTEM, "shop", "prod", "orders", f"www.{ZONE}")  # `verify`: look now
    setup.names.run_once()
    assert len(lookups) == 6
