"""The local target's certificate keeper: issues missing certificates, renews due ones into new files,
backs off on failures (logged once), serves what it issued again after a restart."""

from __future__ import annotations

import datetime as dt
import logging
import os
import stat
from collections.abc import Sequence
from pathlib import Path

import pytest

from yunzhou.domain.errors import TemporaryError
from yunzhou.names.tls.issuers import Leaf
from yunzhou.names.tls.local_ca import LocalCA, LocalCaIssuer
from yunzhou.runtimes.local.certificates import (
    CertificateKeeper,
    host_directory_name,
    https_hosts,
    not_secured,
)
from yunzhou.runtimes.protocol import RouteSpec

HOST = "orders.dev.shop.localhost"


class Clocks:
    def __init__(self) -> None:
        self.mono = 100.0
        self.wall = dt.datetime.now(dt.UTC)

    def advance(self, seconds: float) -> None:
        self.mono += seconds
        self.wall += dt.timedelta(seconds=seconds)


class FlakyIssuer:
    """The local CA behind a switch: fails with ``error`` while it is set."""

    name = "acme"

    def __init__(self, ca: LocalCA) -> None:
        self.inner = LocalCaIssuer(ca, lifetime=dt.timedelta(days=1))
        self.error: Exception | None = None
        self.calls = 0
        self.key_mode = 0o600

    def issue(self, hosts: Sequence[str], directory: Path) -> Leaf:
        self.calls += 1
        if self.error is not None:
            raise self.error
        leaf = self.inner.issue(hosts, directory)
        os.chmod(leaf.key_file, self.key_mode)
        return Leaf(leaf.hosts, leaf.cert_file, leaf.key_file, leaf.not_before, leaf.not_after, self.name)


@pytest.fixture
def clocks() -> Clocks:
    return Clocks()


def keeper_for(tmp_path: Path, clocks: Clocks, **issuers: object) -> tuple[CertificateKeeper, list[int]]:
    changes: list[int] = []
    keeper = CertificateKeeper(
        tmp_path / "tls" / "hosts",
        issuers,  # type: ignore[arg-type]
        lambda: changes.append(1),
        clock=lambda: clocks.mono,
        now=lambda: clocks.wall,
    )
    return keeper, changes


def test_a_wanted_host_gets_a_certificate_in_its_own_directory_and_a_push(
    tmp_path: Path, clocks: Clocks
) -> None:
    ca = LocalCA.open(tmp_path / "tls" / "ca")
    keeper, changes = keeper_for(tmp_path, clocks, local=LocalCaIssuer(ca))
    keeper.want({HOST: "local"})
    assert keeper.section() == {}  # wanting never issues: the pass that asks does not wait for a CA
    assert keeper.problems([HOST]) == (f"{HOST}: a certificate from the local CA is being issued",)
    keeper.run_once()
    section = keeper.section()
    cert_file, key_file = Path(section[HOST]["cert_file"]), Path(section[HOST]["key_file"])
    assert cert_file.parent.parent == tmp_path / "tls" / "hosts" / HOST
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert changes == [1]
    assert keeper.problems([HOST]) == ()
    keeper.run_once()  # nothing due: no new files, no push
    assert keeper.section() == section
    assert changes == [1]
    keeper.want({})  # TLS turned off for the app: no longer in the snapshot
    assert keeper.section() == {}


def test_a_due_certificate_is_renewed_into_new_files_and_the_old_generation_pruned(
    tmp_path: Path, clocks: Clocks
) -> None:
    ca = LocalCA.open(tmp_path / "tls" / "ca")
    keeper, changes = keeper_for(tmp_path, clocks, local=LocalCaIssuer(ca, lifetime=dt.timedelta(hours=3)))
    keeper.want({HOST: "local"})
    keeper.run_once()
    first = keeper.section()[HOST]["cert_file"]
    clocks.advance(3600 * 1.9)  # 1.1 h of 3 h left: more than a third
    assert keeper.run_once() == 60.0  # not due: looks again in a minute at most
    assert keeper.section()[HOST]["cert_file"] == first
    clocks.advance(3600 * 0.2)  # 0.9 h left: less than a third
    keeper.run_once()
    second = keeper.section()[HOST]["cert_file"]
    assert second != first  # new files: the router never reads a new key beside an old chain
    assert Path(first).exists()  # the previous generation stays while the router switches
    clocks.advance(3600 * 2.1)
    keeper.run_once()
    assert not Path(first).exists()
    assert Path(second).exists()
    assert changes == [1, 1, 1]


def test_a_failing_issuer_is_retried_with_backoff_logged_once_and_reported(
    tmp_path: Path, clocks: Clocks, caplog: pytest.LogCaptureFixture
) -> None:
    issuer = FlakyIssuer(LocalCA.open(tmp_path / "tls" / "ca"))
    issuer.error = TemporaryError("the ACME server at https://acme.test/dir did not answer")
    keeper, changes = keeper_for(tmp_path, clocks, acme=issuer)
    keeper.want({HOST: "acme"})
    with caplog.at_level(logging.WARNING, "yunzhou.runtimes.local.certificates"):
        assert keeper.run_once() == pytest.approx(5.0)
        assert issuer.calls == 1
        keeper.run_once()  # before the retry time: not tried
        assert issuer.calls == 1
        clocks.advance(5)
        assert keeper.run_once() == pytest.approx(10.0)  # doubled
        assert issuer.calls == 2
    assert len([r for r in caplog.records if "did not answer" in r.getMessage()]) == 1
    (problem,) = keeper.problems([HOST])
    assert "did not answer (attempt 2, next in 10 s)" in problem
    assert keeper.section() == {}
    assert not list((tmp_path / "tls" / "hosts" / HOST).iterdir())  # a failed attempt leaves no files
    issuer.error = None
    clocks.advance(10)
    keeper.run_once()
    assert HOST in keeper.section()
    assert keeper.problems([HOST]) == ()
    assert changes == [1]


def test_a_key_readable_by_others_is_never_put_in_a_snapshot(tmp_path: Path, clocks: Clocks) -> None:
    """The router refuses a whole snapshot that names a group/world-readable key: such a certificate
    must fail on its own instead of stopping every route from being published."""
    issuer = FlakyIssuer(LocalCA.open(tmp_path / "tls" / "ca"))
    issuer.key_mode = 0o644
    keeper, _ = keeper_for(tmp_path, clocks, acme=issuer)
    keeper.want({HOST: "acme"})
    keeper.run_once()
    assert keeper.section() == {}
    (problem,) = keeper.problems([HOST])
    assert "mode 0644" in problem


def test_an_issuer_the_server_lacks_is_reported(tmp_path: Path, clocks: Clocks) -> None:
    keeper, _ = keeper_for(tmp_path, clocks, local=LocalCaIssuer(LocalCA.open(tmp_path / "tls" / "ca")))
    keeper.want({HOST: "acme"})
    keeper.run_once()
    (problem,) = keeper.problems([HOST])
    assert "this server has no acme CA configured" in problem
    assert not_secured(None, [HOST]) == (
        f"{HOST}: this server has no HTTPS listener (YUNZHOU_TLS_LISTEN, docs/tls.md)",
    )


def test_certificates_issued_before_a_restart_are_served_again_without_issuing(
    tmp_path: Path, clocks: Clocks
) -> None:
    ca = LocalCA.open(tmp_path / "tls" / "ca")
    keeper, _ = keeper_for(tmp_path, clocks, local=LocalCaIssuer(ca))
    keeper.want({HOST: "local", "*.preview.shop.localhost": "local"})
    keeper.run_once()
    before = keeper.section()
    issuer = FlakyIssuer(ca)
    again, changes = keeper_for(tmp_path, clocks, local=issuer)
    again.want({HOST: "local", "*.preview.shop.localhost": "local"})
    assert again.section() == before  # in the first snapshot after the restart
    issuer.name = "local"
    again.run_once()
    assert issuer.calls == 0
    assert changes == []


def test_https_hosts_are_the_routes_of_apps_with_tls_and_directories_are_safe_names() -> None:
    routes = {
        1: ("shop/dev/web", (RouteSpec("web.dev.shop.localhost"), RouteSpec("shop.example.test", "/a"))),
        2: ("shop/dev/api", (RouteSpec("api.dev.shop.localhost"),)),
        3: ("shop/prod/web", (RouteSpec("shop.example.test", "/b"),)),
    }
    assert https_hosts({1: "local", 3: "acme"}, routes) == {
        "web.dev.shop.localhost": "local",
        "shop.example.test": "local",  # shared by two apps: the older app's issuer
    }
    assert host_directory_name(HOST) == HOST
    assert host_directory_name("*.preview.shop.localhost").startswith("h-")
    assert host_directory_name("../etc").startswith("h-")
