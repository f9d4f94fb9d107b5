"""A local certificate authority for internal names, used when no ACME CA is configured.

``LocalCA.open(directory)`` creates, once, an ECDSA P-256 CA key (``ca.key``, mode 0600) and a
self-signed CA certificate (``ca.pem``, ten years) in ``directory`` (mode 0700), and loads them on later
calls. ``issue(hosts)`` signs a short-lived leaf certificate (30 days by default, ECDSA P-256, the hosts
as DNS subject alternative names, serverAuth only) and writes its chain and key as files the router can
name in its snapshot (``write_leaf``). ``needs_renewal`` says whether a leaf is due: when less than a
third of its lifetime is left, or it no longer covers the hosts asked for.

Clients trust these certificates by trusting ``ca.pem`` (e.g. ``curl --cacert``); nothing installs it in
a system trust store.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from yunzhou.names.tls.issuers import Leaf as IssuedLeaf

CA_KEY_FILE = "ca.key"
CA_CERT_FILE = "ca.pem"
CA_LIFETIME = dt.timedelta(days=3650)
LEAF_LIFETIME = dt.timedelta(days=30)
_BACKDATE = dt.timedelta(minutes=5)  # tolerate clocks slightly behind ours


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _write_private(path: Path, data: bytes) -> None:
    """Write a file created 0600 from the start (never readable by others, even for a moment)."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, data)
    finally:
        os.close(fd)
    tmp.replace(path)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@dataclass(frozen=True)
class Leaf:
    """An issued leaf: its certificate, the chain to serve (leaf then CA) and its private key (PEM)."""

    certificate: x509.Certificate
    chain_pem: bytes
    key_pem: bytes


class LocalCA:
    def __init__(
        self, directory: Path, key: ec.EllipticCurvePrivateKey, certificate: x509.Certificate
    ) -> None:
        self.directory = directory
        self._key = key
        self.certificate = certificate

    @property
    def cert_file(self) -> Path:
        return self.directory / CA_CERT_FILE

    @classmethod
    def open(cls, directory: Path, name: str = "Yunzhou local CA") -> LocalCA:
        """Load the CA in ``directory``, creating it (key 0600, directory 0700) on first use."""
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(directory, 0o700)
        key_path, cert_path = directory / CA_KEY_FILE, directory / CA_CERT_FILE
        if key_path.exists() and cert_path.exists():
            loaded = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
            if not isinstance(loaded, ec.EllipticCurvePrivateKey):
                raise ValueError(f"{key_path} is not an ECDSA key")
            return cls(directory, loaded, x509.load_pem_x509_certificate(cert_path.read_bytes()))
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = _now()
        ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        certificate = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _BACKDATE)
            .not_valid_after(now + CA_LIFETIME)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(ski, critical=False)
            .sign(key, hashes.SHA256())
        )
        _write_private(key_path, _key_pem(key))
        cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        return cls(directory, key, certificate)

    def issue(self, hosts: list[str], lifetime: dt.timedelta = LEAF_LIFETIME) -> Leaf:
        """A leaf certificate for ``hosts`` (DNS names, wildcards allowed), signed by this CA."""
        if not hosts:
            raise ValueError("a certificate needs at least one host name")
        key = ec.generate_private_key(ec.SECP256R1())
        now = _now()
        ca_ski = self.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        certificate = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - min(_BACKDATE, lifetime / 10))  # short test lifetimes stay short
            .not_valid_after(now + lifetime)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(h) for h in hosts]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False
            )
            .sign(self._key, hashes.SHA256())
        )
        pem = serialization.Encoding.PEM
        chain = certificate.public_bytes(pem) + self.certificate.public_bytes(pem)
        return Leaf(certificate, chain, _key_pem(key))


def write_leaf(leaf: Leaf, directory: Path, name: str) -> tuple[Path, Path]:
    """Write ``<name>.pem`` (chain) and ``<name>.key`` (mode 0600) under ``directory`` (0700)."""
    return _write_pair(leaf, directory, f"{name}.pem", f"{name}.key")


def _write_pair(leaf: Leaf, directory: Path, cert_name: str, key_name: str) -> tuple[Path, Path]:
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    cert_path, key_path = directory / cert_name, directory / key_name
    _write_private(key_path, leaf.key_pem)
    tmp = cert_path.with_name(cert_path.name + ".tmp")
    tmp.write_bytes(leaf.chain_pem)
    tmp.replace(cert_path)
    return cert_path, key_path


def dns_names(certificate: x509.Certificate) -> list[str]:
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return san.get_values_for_type(x509.DNSName)


def needs_renewal(certificate: x509.Certificate, hosts: list[str], now: dt.datetime | None = None) -> bool:
    """True when less than a third of the certificate's lifetime is left or it misses one of ``hosts``."""
    if renewal_due(certificate.not_valid_before_utc, certificate.not_valid_after_utc, now or _now()):
        return True
    return not set(hosts) <= set(dns_names(certificate))


def renewal_due(not_before: dt.datetime, not_after: dt.datetime, now: dt.datetime) -> bool:
    """The renewal rule for a certificate from any CA: less than a third of its lifetime is left."""
    return now >= not_after - (not_after - not_before) / 3


def _file_stem(host: str) -> str:
    return host.replace("*", "_wildcard")


def ensure_leaves(
    ca: LocalCA, hosts: list[str], directory: Path, now: dt.datetime | None = None
) -> dict[str, dict[str, str]]:
    """One leaf per host under ``directory`` (``<host>.pem`` and ``<host>.key``), issued when missing, due
    for renewal or not signed by ``ca``; returns the router snapshot's ``certificates`` section for them.

    Files are replaced whole (rename), so the router, which reloads a certificate whose files changed,
    sees either the old pair or the new one once the snapshot naming them is pushed.
    """
    section: dict[str, dict[str, str]] = {}
    for host in hosts:
        stem = _file_stem(host)
        cert_path, key_path = directory / f"{stem}.pem", directory / f"{stem}.key"
        current: x509.Certificate | None = None
        if cert_path.exists() and key_path.exists():
            current = x509.load_pem_x509_certificate(cert_path.read_bytes())
        if current is None or current.issuer != ca.certificate.subject or needs_renewal(current, [host], now):
            write_leaf(ca.issue([host]), directory, stem)
        section[host] = {"cert_file": str(cert_path), "key_file": str(key_path)}
    return section


class LocalCaIssuer:
    """The ``CertificateIssuer`` (issuers.py) of the local CA: one leaf for ``hosts``, written as
    ``directory/cert.pem`` (leaf then CA) and ``directory/key.pem`` (0600), each replaced by rename."""

    name = "local"

    def __init__(self, ca: LocalCA, lifetime: dt.timedelta = LEAF_LIFETIME) -> None:
        self.ca = ca
        self.lifetime = lifetime

    def issue(self, hosts: Sequence[str], directory: Path) -> IssuedLeaf:
        leaf = self.ca.issue(list(hosts), self.lifetime)
        cert_file, key_file = _write_pair(leaf, directory, "cert.pem", "key.pem")
        cert = leaf.certificate
        return IssuedLeaf(
            tuple(hosts), cert_file, key_file, cert.not_valid_before_utc, cert.not_valid_after_utc, self.name
        )
