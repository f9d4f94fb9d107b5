"""Reading a certificate's notAfter (pure) and the router's expiry gauge for what it serves."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from yunzhou.domain.errors import UserError
from yunzhou.names.tls.expiry import pem_not_after, read_not_after
from yunzhou.names.tls.local_ca import LocalCA, write_leaf
from yunzhou.router import parse_snapshot
from yunzhou.router.metrics import render_certificate_expiry
from yunzhou.router.tls import NO_CERTIFICATES, load_certificates

HOST = "orders.dev.shop.localhost"


def test_pem_not_after_is_the_leafs_not_the_cas(tmp_path: Path) -> None:
    ca = LocalCA.open(tmp_path / "ca")
    leaf = ca.issue([HOST], lifetime=dt.timedelta(days=3))
    cert_file, _ = write_leaf(leaf, tmp_path / "leaves", "a")  # chain: leaf, then the 10-year CA

    assert read_not_after(cert_file) == leaf.certificate.not_valid_after_utc
    assert pem_not_after(b"junk before\n" + cert_file.read_bytes()) == leaf.certificate.not_valid_after_utc


@pytest.mark.parametrize(
    "pem", [b"", b"-----BEGIN PRIVATE KEY-----\nMC4=\n", b"-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n"]
)
def test_pem_without_a_certificate_is_a_user_error_naming_the_field(pem: bytes) -> None:
    with pytest.raises(UserError) as refused:
        pem_not_after(pem, field="certificates.x.cert_file")
    assert [p.path for p in refused.value.problems] == ["certificates.x.cert_file"]


def test_router_keeps_each_served_certificates_not_after_and_renders_the_gauge(tmp_path: Path) -> None:
    ca = LocalCA.open(tmp_path / "ca")
    leaf = ca.issue([HOST], lifetime=dt.timedelta(days=3))
    cert_file, key_file = write_leaf(leaf, tmp_path / "leaves", "a")
    files = {"cert_file": str(cert_file), "key_file": str(key_file)}
    doc = {"version": 1, "routes": [], "certificates": {HOST: files, "*": files}}
    specs = parse_snapshot(doc).certificates

    loaded = load_certificates(specs, NO_CERTIFICATES)
    again = load_certificates(specs, loaded)  # unchanged files: reused contexts keep their notAfter

    expires = leaf.certificate.not_valid_after_utc.timestamp()
    assert loaded.not_after == again.not_after == {HOST: expires, "*": expires}
    text = render_certificate_expiry(again.not_after)
    assert "# TYPE yunzhou_certificate_expiry_timestamp_seconds gauge" in text
    assert f'yunzhou_certificate_expiry_timestamp_seconds{{host="{HOST}"}} {int(expires)}' in text
    assert 'yunzhou_certificate_expiry_timestamp_seconds{host="*"}' in text
    assert render_certificate_expiry({}) == ""
