"""Certificates from a real ACME CA: Pebble resolving names through a real Knot, validating HTTP-01 against
the real router (``--acme-challenges``) and DNS-01 against records set through the RFC 2136 provider.

The issued chain is verified against Pebble's root with ``openssl verify`` and served by the router to
``curl --cacert <pebble root>``, as a user would check it.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography import x509

from yunzhou.domain.errors import PermanentError, TemporaryError
from yunzhou.names.dns import Rfc2136Provider
from yunzhou.names.tls.acme import AcmeIssuer, AcmeSettings, DirectoryResponder, Dns01Solver, needs_renewal
from yunzhou.router import RouterProcess
from yunzhou.testing.acme_ca import PebbleServer
from yunzhou.testing.dns_servers import ZONE, KnotServer
from yunzhou.testing.server import free_port

from .conftest import Backend, route, snapshot

pytestmark = pytest.mark.slow
HOST = f"orders.dev.shop.{ZONE}"
EMAIL = "ops@example.test"


@pytest.fixture
def knot(tmp_path: Path) -> Iterator[KnotServer]:
    with KnotServer(tmp_path / "knot") as server:
        yield server


def knot_provider(knot: KnotServer) -> Rfc2136Provider:
    return Rfc2136Provider(knot.rfc2136_settings())


def pebble_at(tmp_path: Path, knot: KnotServer, http_port: int) -> PebbleServer:
    return PebbleServer(tmp_path / "pebble", http_port=http_port, dns_server=("127.0.0.1", knot.dns_port))


def acme_settings(tmp_path: Path, pebble: PebbleServer, challenge: str = "http-01") -> AcmeSettings:
    return AcmeSettings(
        directory_url=pebble.directory_url,
        email=EMAIL,
        ca_bundle=pebble.ca_bundle,
        account_key_file=tmp_path / "acme" / "account.key",
        challenge=challenge,  # type: ignore[arg-type]
        timeout=20.0,
        validation_timeout=60.0,
    )


def openssl_verify(root: Path, chain: Path) -> None:
    """The leaf (first in ``chain``) verifies up to ``root`` through the intermediate served with it."""
    result = subprocess.run(
        ["openssl", "verify", "-CAfile", str(root), "-untrusted", str(chain), str(chain)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_http01_certificate_from_pebble_is_served_by_the_router_to_curl(
    tmp_path: Path,
    knot: KnotServer,
    backends: dict[str, Backend],
    router_factory: Callable[..., RouterProcess],
) -> None:
    challenges = tmp_path / "challenges"
    router = router_factory(tls_listen="127.0.0.1:0", acme_challenges=challenges)
    router.push_config(snapshot(1, route(HOST, [backends["a1"].entry()])))
    knot_provider(knot).upsert(ZONE, HOST, "A", ["127.0.0.1"], 60)  # Pebble resolves the host like a CA
    http_port = int(router.listen.rpartition(":")[2])
    with pebble_at(tmp_path, knot, http_port) as pebble:
        issuer = AcmeIssuer(acme_settings(tmp_path, pebble), http01=DirectoryResponder(challenges))
        leaf = issuer.issue([HOST], tmp_path / "leaves" / "orders")
        root = pebble.write_issuing_root(tmp_path / "pebble-root.pem")

    assert leaf.hosts == (HOST,)
    assert (leaf.cert_file.name, leaf.key_file.name) == ("cert.pem", "key.pem")
    assert mode(leaf.key_file) == 0o600
    assert mode(tmp_path / "acme" / "account.key") == 0o600
    assert leaf.issuer == "acme"
    chain = x509.load_pem_x509_certificates(leaf.cert_file.read_bytes())
    assert "Pebble Intermediate" in chain[0].issuer.rfc4514_string()
    assert chain[0].issuer == chain[1].subject  # leaf then the intermediate that signed it
    assert leaf.not_before < leaf.not_after
    assert not needs_renewal(leaf, [HOST])
    assert needs_renewal(leaf, [HOST, f"billing.dev.shop.{ZONE}"])  # a host it does not cover
    assert list(challenges.iterdir()) == []  # answers are removed once the CA is done
    openssl_verify(root, leaf.cert_file)

    router.push_config(
        {
            **snapshot(2, route(HOST, [backends["a1"].entry()])),
            "certificates": {HOST: {"cert_file": str(leaf.cert_file), "key_file": str(leaf.key_file)}},
        }
    )
    tls_port = router.tls_listen.rpartition(":")[2]
    curl = ["curl", "--silent", "--show-error", "--fail", "--noproxy", "*", "--max-time", "20"]
    resolve = f"{HOST}:{tls_port}:127.0.0.1"
    result = subprocess.run(
        [*curl, "--cacert", str(root), "--resolve", resolve, f"https://{HOST}:{tls_port}/hello"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert (answer["backend"], answer["path"]) == ("a1", "/hello")


def test_dns01_through_knot_covers_a_name_and_its_wildcard_and_reuses_the_account(
    tmp_path: Path, knot: KnotServer
) -> None:
    provider = knot_provider(knot)
    apps = f"apps.{ZONE}"
    hosts = [apps, f"*.{apps}"]  # both validated at _acme-challenge.apps.example.test: one TXT set, 2 values
    with pebble_at(tmp_path, knot, http_port=free_port()) as pebble:
        settings = acme_settings(tmp_path, pebble, challenge="dns-01")
        issuer = AcmeIssuer(settings, dns01=Dns01Solver(provider, ZONE))
        leaf = issuer.issue(hosts, tmp_path / "leaves" / "apps")
        account_key = settings.account_key_file.read_bytes()
        # a new issuer (a restarted control plane) finds the same account by its key
        restarted = AcmeIssuer(settings, dns01=Dns01Solver(provider, ZONE))
        again = restarted.issue([HOST], tmp_path / "leaves" / "orders")
        root = pebble.write_issuing_root(tmp_path / "pebble-root.pem")

    assert settings.account_key_file.read_bytes() == account_key
    assert leaf.hosts == tuple(hosts)
    openssl_verify(root, leaf.cert_file)
    openssl_verify(root, again.cert_file)
    assert not needs_renewal(leaf.cert_file, hosts)
    assert needs_renewal(leaf.cert_file, hosts, now=leaf.not_after - (leaf.not_after - leaf.not_before) / 4)
    assert [r for r in provider.list_records(ZONE) if r.type == "TXT"] == []  # challenge records removed


def test_http01_failure_is_a_permanent_error_naming_the_host(
    tmp_path: Path,
    knot: KnotServer,
    router_factory: Callable[..., RouterProcess],
) -> None:
    router = router_factory()  # no --acme-challenges: the token is never served (the router answers 404)
    knot_provider(knot).upsert(ZONE, HOST, "A", ["127.0.0.1"], 60)
    http_port = int(router.listen.rpartition(":")[2])
    with pebble_at(tmp_path, knot, http_port) as pebble:
        responder = DirectoryResponder(tmp_path / "unserved")
        issuer = AcmeIssuer(acme_settings(tmp_path, pebble), http01=responder)
        with pytest.raises(PermanentError) as failed:
            issuer.issue([HOST], tmp_path / "leaves" / "orders")
    message = str(failed.value)
    assert HOST in message
    assert "404" in message  # the CA's problem detail: what its validation request got
    assert not (tmp_path / "leaves" / "orders").exists()
    assert list((tmp_path / "unserved").iterdir()) == []


def test_unreachable_ca_is_a_temporary_error(tmp_path: Path) -> None:
    settings = AcmeSettings(
        directory_url=f"https://127.0.0.1:{free_port()}/dir",
        email=EMAIL,
        ca_bundle=None,
        account_key_file=tmp_path / "account.key",
        timeout=5.0,
    )
    issuer = AcmeIssuer(settings, http01=DirectoryResponder(tmp_path / "challenges"))
    with pytest.raises(TemporaryError, match="unreachable"):
        issuer.issue([HOST], tmp_path / "leaf")


def test_router_answers_a_challenge_on_plain_http_only_for_a_strict_token(
    tmp_path: Path, router_factory: Callable[..., RouterProcess]
) -> None:
    challenges = tmp_path / "challenges"
    challenges.mkdir()
    token = "Ab-_09" * 7
    (challenges / token).write_text(token + ".thumbprint")
    (challenges / "secret").write_text("not a challenge")
    os.symlink(challenges / "secret", challenges / "linked")
    router = router_factory(acme_challenges=challenges)

    def get(target: str, host: str = "anything.example") -> tuple[int, bytes]:
        curl = ["curl", "--silent", "--noproxy", "*", "--path-as-is", "--max-time", "10"]
        result = subprocess.run(
            [
                *curl,
                "--write-out",
                "\n%{http_code}",
                "-H",
                f"Host: {host}",
                f"http://{router.listen}{target}",
            ],
            capture_output=True,
            timeout=20,
        )
        body, _, status = result.stdout.rpartition(b"\n")
        return int(status), body

    prefix = "/.well-known/acme-challenge/"
    assert get(prefix + token) == (200, (token + ".thumbprint").encode())
    assert get(prefix + token, host="other.example")[0] == 200  # whatever the Host
    assert get(prefix + "linked")[0] == 404  # a symbolic link is not followed
    assert get(prefix + "../challenges/" + token)[0] == 404  # not base64url: falls through to routing
    assert get(prefix + "%2e%2e%2fsecret")[0] == 404
    assert get(prefix + "missing")[0] == 404
