"""The platform as the registry's token issuer (the Docker/distribution token authentication scheme).

A client that the registry answers ``401 WWW-Authenticate: Bearer realm=…,service=…,scope=…`` asks the
realm (the platform's ``/api/v1/registry/token``) for a short-lived JWT. We sign it with an EC P-256 key
(ES256) whose self-signed certificate is the registry's ``rootcertbundle``; the header's ``kid`` is the
libtrust key id of the public key, which is how docker-registry 2.8 finds the trusted key.

What a caller gets is decided here, from its role in the repository's project (the first path component
of the name): viewers pull, developers and above pull and push, platform admins (and the server's own
service token) anything they ask for. Another project's repositories, malformed names and unknown scope
types get nothing — the registry then refuses the request itself.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import hashlib
import json
import os
import re
import secrets
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from yunzhou.domain.access import Role

REGISTRY_DIR = "registry"  # under the data dir: the token key and certificate, the managed registry
SERVICE = "yunzhou-registry"
ISSUER = "yunzhou"
KEY_FILE = "token-key.pem"
CERT_FILE = "token-cert.pem"
DEFAULT_TTL = 300  # seconds; clients ask again when a token expires
MAX_TTL = 3600
PULL, PUSH, DELETE = "pull", "push", "delete"
# the distribution reference grammar: lower-case components separated by "/", each [a-z0-9] runs joined
# by one "." or "_", "__" or any number of "-"
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPOSITORY = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
_MAX_NAME = 255


@dataclass(frozen=True)
class Access:
    """One entry of a token's ``access`` claim (and of a request's ``scope``)."""

    type: str
    name: str
    actions: tuple[str, ...]

    def claim(self) -> dict[str, Any]:
        return {"type": self.type, "name": self.name, "actions": list(self.actions)}


def parse_scope(scopes: Iterable[str]) -> list[Access]:
    """``repository:shop/web:pull,push`` (several ``scope`` parameters, or several scopes separated by
    spaces in one) → access requests. The name may contain ``:`` (a registry host with a port), so the
    type is the first field and the actions the last. Malformed entries are dropped: they grant nothing."""
    wanted: list[Access] = []
    for raw in scopes:
        for item in raw.split():
            kind, _, rest = item.partition(":")
            name, _, actions = rest.rpartition(":")
            if not kind or not name:
                continue
            acts = tuple(dict.fromkeys(a for a in actions.split(",") if a))
            if acts:
                wanted.append(Access(kind, name, acts))
    return wanted


def project_of(repository: str) -> str | None:
    """The project a repository belongs to: its first path component, when the name is a valid
    repository name with at least two components (``shop/web``); else None (nobody's)."""
    if len(repository) > _MAX_NAME or not _REPOSITORY.fullmatch(repository) or "/" not in repository:
        return None
    return repository.split("/", 1)[0]


def allowed_actions(role: Role | None, *, can_write: bool) -> frozenset[str]:
    """What a project role allows on the project's repositories (a read-only token: pull at most)."""
    if role is None:
        return frozenset()
    if role.includes(Role.DEVELOPER) and can_write:
        return frozenset({PULL, PUSH})
    return frozenset({PULL})


def grant(
    requested: Sequence[Access], *, roles: Mapping[str, Role], admin: bool, can_write: bool
) -> list[Access]:
    """The subset of ``requested`` the caller may have. ``admin`` (a platform admin or the server's own
    service identity) gets every action asked for, the catalog included."""
    granted: list[Access] = []
    for access in requested:
        if access.type == "repository":
            if project_of(access.name) is None:
                continue
            if admin:
                actions: tuple[str, ...] = access.actions
            else:
                project = project_of(access.name)
                allowed = allowed_actions(roles.get(project or ""), can_write=can_write)
                actions = tuple(a for a in access.actions if a in allowed)
        elif access.type == "registry" and access.name == "catalog" and admin:
            actions = access.actions
        else:
            continue  # unknown types, or the catalog for a non-admin: nothing
        if actions:
            granted.append(Access(access.type, access.name, actions))
    return granted


@dataclass(frozen=True)
class IssuedToken:
    token: str
    expires_in: int
    issued_at: str  # RFC 3339

    def answer(self) -> dict[str, Any]:
        """The token endpoint's answer, as the specification spells it (``access_token`` for OAuth2
        clients, ``token`` for docker's)."""
        return {
            "token": self.token,
            "access_token": self.token,
            "expires_in": self.expires_in,
            "issued_at": self.issued_at,
        }


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def libtrust_key_id(public_key: ec.EllipticCurvePublicKey) -> str:
    """libtrust's key id: SHA-256 of the DER SubjectPublicKeyInfo, first 240 bits, base32 without padding,
    in 12 groups of 4 joined by ':' — what docker-registry 2.8 indexes its rootcertbundle keys by."""
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    encoded = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode("ascii").rstrip("=")
    return ":".join(encoded[i : i + 4] for i in range(0, len(encoded), 4))


def es256_sign(key: ec.EllipticCurvePrivateKey, signing_input: bytes) -> bytes:
    """A JWS ES256 signature: r || s, 32 bytes each (not DER)."""
    r, s = decode_dss_signature(key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def write_private(path: Path, data: bytes, mode: int) -> None:
    """Write ``data`` to ``path`` once, atomically, with ``mode``; when another process got there first its
    file is kept (so concurrent first starts agree on one key)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(FileExistsError):  # another process wrote it first: keep theirs
            os.link(tmp, path)
    finally:
        os.unlink(tmp)


def load_or_create_key(path: Path) -> ec.EllipticCurvePrivateKey:
    """An EC P-256 private key kept in ``path`` (PEM, 0600), made on first use."""
    if not path.exists():
        fresh = ec.generate_private_key(ec.SECP256R1())
        pem = fresh.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        write_private(path, pem, 0o600)
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise ValueError(f"{path}: not an EC P-256 private key")
    return key


class TokenIssuer:
    """Signs registry tokens with the key in ``directory`` (made on first use, with its certificate)."""

    def __init__(
        self,
        directory: Path,
        *,
        issuer: str = ISSUER,
        service: str = SERVICE,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.directory = directory
        self.issuer = issuer
        self.service = service
        self.clock = clock
        self._key = load_or_create_key(directory / KEY_FILE)
        self.key_id = libtrust_key_id(self._key.public_key())
        self.cert_path = directory / CERT_FILE
        if not self.cert_path.exists():
            write_private(self.cert_path, self._certificate(), 0o644)

    def _certificate(self) -> bytes:
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{self.issuer} registry token issuer")])
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self._key, hashes.SHA256())
        )
        return cert.public_bytes(serialization.Encoding.PEM)

    def issue(self, subject: str, access: Sequence[Access], ttl: int = DEFAULT_TTL) -> IssuedToken:
        ttl = max(60, min(ttl, MAX_TTL))
        now = int(self.clock())
        header = {"typ": "JWT", "alg": "ES256", "kid": self.key_id}
        claims = {
            "iss": self.issuer,
            "sub": subject,
            "aud": self.service,
            "exp": now + ttl,
            "nbf": now - 5,  # a little slack for the registry's clock
            "iat": now,
            "jti": secrets.token_hex(16),
            "access": [a.claim() for a in access],
        }
        signing_input = ".".join(
            _b64url(json.dumps(part, separators=(",", ":")).encode()) for part in (header, claims)
        ).encode("ascii")
        token = signing_input.decode("ascii") + "." + _b64url(es256_sign(self._key, signing_input))
        issued = dt.datetime.fromtimestamp(now, dt.UTC).isoformat().replace("+00:00", "Z")
        return IssuedToken(token, ttl, issued)
