"""AcmeIssuer checks its settings before talking to a CA; needs_renewal is the local CA's rule."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from yunzhou.domain.errors import PermanentError
from yunzhou.names.tls.acme import AcmeIssuer, AcmeSettings, DirectoryResponder, needs_renewal
from yunzhou.names.tls.local_ca import LocalCA, write_leaf

HOST = "orders.dev.shop.example.test"


def settings(tmp_path: Path, challenge: str = "http-01") -> AcmeSettings:
    return AcmeSettings(
        directory_url="https://127.0.0.1:9/dir",  # never contacted by these tests
        email="ops@example.test",
        ca_bundle=None,
        account_key_file=tmp_path / "account.key",
        challenge=challenge,  # type: ignore[arg-type]
    )


def test_a_challenge_without_its_solver_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PermanentError, match="http-01 needs a responder"):
        AcmeIssuer(settings(tmp_path))
    with pytest.raises(PermanentError, match="dns-01 needs a DNS provider"):
        AcmeIssuer(settings(tmp_path, "dns-01"))
    with pytest.raises(PermanentError, match="'tls-alpn-01' is not one of http-01, dns-01"):
        AcmeIssuer(settings(tmp_path, "tls-alpn-01"))


def test_http01_refuses_a_wildcard_before_contacting_the_ca(tmp_path: Path) -> None:
    issuer = AcmeIssuer(settings(tmp_path), http01=DirectoryResponder(tmp_path / "challenges"))
    with pytest.raises(PermanentError, match="only be validated by dns-01"):
        issuer.issue(["*.apps.example.test"], tmp_path / "leaf")
    with pytest.raises(PermanentError, match="at least one host"):
        issuer.issue([], tmp_path / "leaf")
    assert not (tmp_path / "account.key").exists()


def test_needs_renewal_follows_the_local_ca_rule_for_certificate_files(tmp_path: Path) -> None:
    ca = LocalCA.open(tmp_path / "ca")
    leaf = ca.issue([HOST], lifetime=dt.timedelta(days=30))
    cert_file, _ = write_leaf(leaf, tmp_path / "leaves", "orders")
    issued = leaf.certificate.not_valid_before_utc
    assert not needs_renewal(cert_file, [HOST], now=issued + dt.timedelta(days=19))
    assert needs_renewal(cert_file, [HOST], now=issued + dt.timedelta(days=21))  # < 1/3 of 30 days left
    assert needs_renewal(cert_file, [HOST, "billing.example.test"], now=issued)
    assert needs_renewal(tmp_path / "absent.pem", [HOST])
