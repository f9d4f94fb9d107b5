"""The token issuer's pieces: scope parsing, grants, the libtrust key id, key files, the JWT itself."""

from __future__ import annotations

import base64
import json
import stat
import threading
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from yunzhou.domain.access import Role
from yunzhou.registry.server import RegistrySettings, registry_config
from yunzhou.registry.tokens import Access, TokenIssuer, grant, libtrust_key_id, parse_scope, project_of


def test_parse_scope_reads_several_and_names_with_a_port() -> None:
    assert parse_scope(["repository:shop/web:pull,push", "repository:localhost:5000/shop/web:pull x"]) == [
        Access("repository", "shop/web", ("pull", "push")),
        Access("repository", "localhost:5000/shop/web", ("pull",)),
    ]
    assert parse_scope(["repository:shop/web:", ":shop/web:pull", "repository::pull"]) == []


@pytest.mark.parametrize(
    ("name", "project"),
    [("shop/web", "shop"), ("shop/web/worker", "shop"), ("shop", None), ("Shop/web", None),
     ("shop/../bank/x", None), ("shop//web", None), ("localhost:5000/shop/web", None),
     ("s" * 300 + "/x", None)],
)  # fmt: skip
def test_project_of(name: str, project: str | None) -> None:
    assert project_of(name) == project


def test_grants_never_cross_projects() -> None:
    wanted = parse_scope(
        ["repository:shop/web:pull,push,delete", "repository:bank/web:pull", "registry:catalog:*"]
    )
    roles = {"shop": Role.OWNER}
    assert grant(wanted, roles=roles, admin=False, can_write=True) == [
        Access("repository", "shop/web", ("pull", "push"))
    ]
    assert grant(wanted, roles=roles, admin=False, can_write=False) == [
        Access("repository", "shop/web", ("pull",))
    ]
    assert grant(wanted, roles={"shop": Role.VIEWER}, admin=False, can_write=True) == [
        Access("repository", "shop/web", ("pull",))
    ]
    assert grant(wanted, roles={}, admin=True, can_write=True) == wanted


def test_libtrust_key_id_format() -> None:
    key_id = libtrust_key_id(ec.generate_private_key(ec.SECP256R1()).public_key())
    groups = key_id.split(":")
    assert len(groups) == 12
    # base32 (A-Z, 2-7): a group may be all digits ("2345"), which str.isupper() calls not upper case
    assert all(len(g) == 4 and set(g) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567") for g in groups)


def test_key_and_certificate_are_made_once_with_their_modes(tmp_path: Path) -> None:
    issuers: list[TokenIssuer] = []
    threads = [threading.Thread(target=lambda: issuers.append(TokenIssuer(tmp_path / "r"))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({i.key_id for i in issuers}) == 1  # concurrent first starts agree on one key
    assert stat.S_IMODE((tmp_path / "r" / "token-key.pem").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "r" / "token-cert.pem").stat().st_mode) == 0o644
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == ["token-cert.pem", "token-key.pem"]


def test_the_jwt_is_es256_with_the_claims_the_registry_checks(tmp_path: Path) -> None:
    issuer = TokenIssuer(tmp_path, clock=lambda: 1_800_000_000.0)
    issued = issuer.issue("alice", [Access("repository", "shop/web", ("pull",))], ttl=120)
    header_b64, claims_b64, signature_b64 = issued.token.split(".")

    def decode(part: str) -> bytes:
        return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))

    assert json.loads(decode(header_b64)) == {"typ": "JWT", "alg": "ES256", "kid": issuer.key_id}
    claims = json.loads(decode(claims_b64))
    assert claims["access"] == [{"type": "repository", "name": "shop/web", "actions": ["pull"]}]
    assert (claims["iss"], claims["aud"], claims["sub"], claims["exp"]) == (
        "yunzhou",
        "yunzhou-registry",
        "alice",
        1_800_000_120,
    )
    signature = decode(signature_b64)
    der = encode_dss_signature(int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big"))
    key = TokenIssuer(tmp_path)._key.public_key()
    key.verify(der, f"{header_b64}.{claims_b64}".encode(), ec.ECDSA(hashes.SHA256()))
    assert issued.answer()["expires_in"] == 120
    assert issued.issued_at == "2027-01-15T08:00:00Z"


def test_registry_config_is_data_with_token_auth(tmp_path: Path) -> None:
    config = registry_config(
        tmp_path, addr="127.0.0.1:5000", realm="http://x/t", rootcertbundle=tmp_path / "c.pem", secret="s"
    )
    assert config["auth"]["token"] == {
        "realm": "http://x/t", "service": "yunzhou-registry", "issuer": "yunzhou",
        "rootcertbundle": str(tmp_path / "c.pem"),
    }  # fmt: skip
    assert config["storage"]["delete"] == {"enabled": True}
    assert config["storage"]["maintenance"]["readonly"] == {"enabled": False}


def test_registry_settings_from_env() -> None:
    assert RegistrySettings.from_env({}).managed
    external = RegistrySettings.from_env(
        {
            "YUNZHOU_REGISTRY_URL": "https://r.example:5000/",
            "YUNZHOU_REGISTRY_USERNAME": "u",
            "YUNZHOU_REGISTRY_PASSWORD": "p",
        }
    )
    assert (external.url, external.username, external.password, external.managed) == (
        "https://r.example:5000",
        "u",
        "p",
        False,
    )
    with pytest.raises(ValueError, match="YUNZHOU_REGISTRY_URL"):
        RegistrySettings.from_env({"YUNZHOU_REGISTRY_URL": "r.example:5000"})
    with pytest.raises(ValueError, match="YUNZHOU_REGISTRY_PORT"):
        RegistrySettings.from_env({"YUNZHOU_REGISTRY_PORT": "70000"})
