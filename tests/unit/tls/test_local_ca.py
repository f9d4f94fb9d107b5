"""The local CA: created once with a private key file, leaves for route hosts, the renewal decision."""

from __future__ import annotations

import datetime as dt
import ssl
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from yunzhou.names.tls.local_ca import (
    CA_CERT_FILE,
    CA_KEY_FILE,
    LEAF_LIFETIME,
    LocalCA,
    dns_names,
    ensure_leaves,
    needs_renewal,
    write_leaf,
)


def test_ca_is_created_once_with_an_owner_only_key(tmp_path: Path) -> None:
    ca = LocalCA.open(tmp_path / "ca")
    key_mode = stat.S_IMODE((tmp_path / "ca" / CA_KEY_FILE).stat().st_mode)
    assert key_mode == 0o600
    assert stat.S_IMODE((tmp_path / "ca").stat().st_mode) == 0o700
    constraints = ca.certificate.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert constraints.ca
    assert ca.certificate.subject == ca.certificate.issuer
    again = LocalCA.open(tmp_path / "ca")  # loaded, not made anew: leaves issued before stay valid
    assert again.certificate == ca.certificate
    assert (tmp_path / "ca" / CA_CERT_FILE).read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")


def test_leaf_names_the_hosts_is_short_lived_ecdsa_and_chains_to_the_ca(tmp_path: Path) -> None:
    ca = LocalCA.open(tmp_path / "ca")
    hosts = ["orders.dev.shop.internal", "*.preview.shop.internal"]
    leaf = ca.issue(hosts)
    cert = leaf.certificate
    assert dns_names(cert) == hosts
    public_key = cert.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    assert public_key.curve.name == "secp256r1"
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert LEAF_LIFETIME <= lifetime <= LEAF_LIFETIME + dt.timedelta(minutes=10)
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usages) == [ExtendedKeyUsageOID.SERVER_AUTH]
    cert.verify_directly_issued_by(ca.certificate)
    assert leaf.chain_pem.count(b"BEGIN CERTIFICATE") == 2  # leaf, then the CA


def test_written_leaf_loads_in_a_server_context_and_its_key_is_owner_only(tmp_path: Path) -> None:
    ca = LocalCA.open(tmp_path / "ca")
    cert_file, key_file = write_leaf(ca.issue(["a.internal"]), tmp_path / "leaves", "a")
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert b"PRIVATE KEY" not in cert_file.read_bytes()
    ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(cert_file, key_file)


def test_renewal_is_due_with_a_third_of_the_lifetime_left(tmp_path: Path) -> None:
    ca = LocalCA.open(tmp_path / "ca")
    cert = ca.issue(["a.internal"], lifetime=dt.timedelta(days=30)).certificate
    start = cert.not_valid_before_utc
    lifetime = cert.not_valid_after_utc - start
    assert not needs_renewal(cert, ["a.internal"], now=start + dt.timedelta(days=1))
    assert not needs_renewal(cert, ["a.internal"], now=start + lifetime * 0.66)
    assert needs_renewal(cert, ["a.internal"], now=start + lifetime * 0.67)
    assert needs_renewal(cert, ["a.internal"], now=cert.not_valid_after_utc + dt.timedelta(days=1))


def test_renewal_is_due_when_a_host_is_not_covered(tmp_path: Path) -> None:
    cert = LocalCA.open(tmp_path / "ca").issue(["a.internal"]).certificate
    assert needs_renewal(cert, ["a.internal", "b.internal"])
    assert not needs_renewal(cert, ["a.internal"])


def test_a_leaf_needs_a_host(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least one host"):
        LocalCA.open(tmp_path / "ca").issue([])


def test_ensure_leaves_issues_once_and_renews_when_due(tmp_path: Path) -> None:
    ca = LocalCA.open(tmp_path / "ca")
    hosts = ["a.internal", "*.dev.internal"]
    section = ensure_leaves(ca, hosts, tmp_path / "leaves")
    assert sorted(section) == sorted(hosts)
    wildcard = Path(section["*.dev.internal"]["cert_file"])
    assert wildcard.name == "_wildcard.dev.internal.pem"
    first = x509.load_pem_x509_certificate(wildcard.read_bytes())
    assert dns_names(first) == ["*.dev.internal"]
    ensure_leaves(ca, hosts, tmp_path / "leaves")  # not due: the same certificate
    assert x509.load_pem_x509_certificate(wildcard.read_bytes()).serial_number == first.serial_number
    later = first.not_valid_before_utc + dt.timedelta(days=25)  # under a third of 30 days left
    ensure_leaves(ca, hosts, tmp_path / "leaves", now=later)
    renewed = x509.load_pem_x509_certificate(wildcard.read_bytes())
    assert renewed.serial_number != first.serial_number
    key_file = Path(section["*.dev.internal"]["key_file"])
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(wildcard, key_file)  # the new pair matches


def test_local_ca_issuer_writes_cert_and_owner_only_key_in_the_directory(tmp_path: Path) -> None:
    from yunzhou.names.tls.issuers import CertificateIssuer
    from yunzhou.names.tls.local_ca import LocalCaIssuer

    ca = LocalCA.open(tmp_path / "ca")
    issuer: CertificateIssuer = LocalCaIssuer(ca, lifetime=dt.timedelta(seconds=30))
    leaf = issuer.issue(["orders.dev.shop.localhost"], tmp_path / "leaf")
    assert (leaf.cert_file, leaf.key_file) == (tmp_path / "leaf" / "cert.pem", tmp_path / "leaf" / "key.pem")
    assert stat.S_IMODE(leaf.key_file.stat().st_mode) == 0o600
    assert leaf.issuer == "local"
    assert leaf.hosts == ("orders.dev.shop.localhost",)
    # a short (test) lifetime is not swallowed by the clock-skew backdate: renewal is not due at once
    assert dt.timedelta(seconds=30) <= leaf.not_after - leaf.not_before <= dt.timedelta(seconds=33)
    ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(leaf.cert_file, leaf.key_file)  # a matching pair
