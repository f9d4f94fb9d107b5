"""The snapshot's certificates section and TLS route settings, and loading certificates: no sockets."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from yunzhou.domain.errors import UserError
from yunzhou.names.tls.local_ca import LocalCA, write_leaf
from yunzhou.router import parse_snapshot
from yunzhou.router.tls import NO_CERTIFICATES, load_certificates

HOST = "orders.dev.shop.localhost"


def doc(**extra: Any) -> dict[str, Any]:
    route = {"host": HOST, "app": "shop/dev/orders", "backends": [], **extra.pop("route", {})}
    return {"version": 1, "routes": [route], **extra}


@pytest.fixture
def files(tmp_path: Path) -> dict[str, str]:
    cert_file, key_file = write_leaf(LocalCA.open(tmp_path / "ca").issue([HOST]), tmp_path / "leaves", "a")
    return {"cert_file": str(cert_file), "key_file": str(key_file)}


def test_certificates_section_round_trips_as_paths(files: dict[str, str]) -> None:
    snapshot = parse_snapshot(
        doc(certificates={HOST.upper() + ".": files, "*.dev.shop.localhost": files, "*": files})
    )
    assert snapshot.to_json()["certificates"] == {"*": files, "*.dev.shop.localhost": files, HOST: files}


@pytest.mark.parametrize(
    ("certificates", "path"),
    [
        ([], "certificates"),
        ({"bad host!": {}}, "certificates.bad host!"),
        ({"*.*.x": {}}, "certificates.*.*.x"),
        ({HOST: "pem"}, f"certificates.{HOST}"),
        ({HOST: {"cert_file": "rel.pem", "key_file": "/k"}}, f"certificates.{HOST}.cert_file"),
        ({HOST: {"cert_file": "/c", "key_file": "/k", "key_pem": "x"}}, f"certificates.{HOST}.key_pem"),
        ({HOST: {"cert_file": "/c"}}, f"certificates.{HOST}.key_file"),
    ],
)
def test_bad_certificates_section_is_refused_naming_the_field(certificates: object, path: str) -> None:
    with pytest.raises(UserError) as refused:
        parse_snapshot(doc(certificates=certificates))
    assert path in [p.path for p in refused.value.problems]


def test_route_tls_settings_round_trip_and_bad_ones_drop_the_route() -> None:
    snapshot = parse_snapshot(doc(route={"redirect_https": True, "hsts_max_age": 600}))
    route = snapshot.routes[0]
    assert (route.redirect_https, route.hsts, route.to_json()["hsts_max_age"]) == (True, b"max-age=600", 600)
    assert "redirect_https" not in parse_snapshot(doc()).routes[0].to_json()
    for bad, field in (({"redirect_https": "yes"}, "redirect_https"), ({"hsts_max_age": -1}, "hsts_max_age")):
        dropped = parse_snapshot(doc(route=bad)).dropped
        assert len(dropped) == 1
        assert f"routes[0].{field}" in dropped[0].reason


def test_context_for_picks_exact_then_one_label_wildcard_then_default(files: dict[str, str]) -> None:
    specs = parse_snapshot(doc(certificates={HOST: files, "*.dev.shop.localhost": files})).certificates
    certs = load_certificates(specs, NO_CERTIFICATES)
    exact, wildcard = certs.context_for(HOST), certs.context_for("billing.dev.shop.localhost")
    assert exact is not None
    assert wildcard is not None
    assert exact is not wildcard
    assert certs.context_for("BILLING.dev.shop.localhost.") is wildcard
    assert certs.context_for("a.billing.dev.shop.localhost") is None  # one label only, and no default
    assert certs.context_for(None) is None
    with_default = load_certificates(parse_snapshot(doc(certificates={"*": files})).certificates, certs)
    assert with_default.context_for("anything.example") is with_default.context_for(None) is not None


def test_unchanged_files_reuse_their_context_and_rewritten_ones_reload(
    files: dict[str, str], tmp_path: Path
) -> None:
    specs = parse_snapshot(doc(certificates={HOST: files})).certificates
    first = load_certificates(specs, NO_CERTIFICATES)
    assert load_certificates(specs, first).context_for(HOST) is first.context_for(HOST)
    write_leaf(LocalCA.open(tmp_path / "ca").issue([HOST]), tmp_path / "leaves", "a")  # same paths, new files
    assert load_certificates(specs, first).context_for(HOST) is not first.context_for(HOST)


def test_key_file_others_can_read_or_missing_is_refused(files: dict[str, str], tmp_path: Path) -> None:
    os.chmod(files["key_file"], 0o640)
    specs = parse_snapshot(doc(certificates={HOST: files})).certificates
    with pytest.raises(UserError) as readable:
        load_certificates(specs, NO_CERTIFICATES)
    assert readable.value.problems[0].path == f"certificates.{HOST}.key_file"
    assert "0640" in readable.value.problems[0].message
    missing = {**files, "cert_file": str(tmp_path / "nope.pem")}
    os.chmod(files["key_file"], 0o600)
    with pytest.raises(UserError) as absent:
        load_certificates(parse_snapshot(doc(certificates={HOST: missing})).certificates, NO_CERTIFICATES)
    assert absent.value.problems[0].path == f"certificates.{HOST}.cert_file"
