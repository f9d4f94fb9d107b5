"""TLS termination: the snapshot's ``certificates`` section, one SSL context per certificate, SNI choice.

A snapshot names certificates by host (``orders.example.com``), by wildcard (``*.example.com``: one
label) or ``*`` (the default, for unknown names and clients that send no SNI). Each entry is two file
paths, ``cert_file`` (PEM chain, leaf first) and ``key_file`` (PEM private key). Keys never travel in the
snapshot: the admin API, ``GET /config`` and the logs only ever see paths. A key file must be a regular
file its owner alone can read (mode 0600 or 0400), else the snapshot is refused with the field named.

The listener has one base context whose ``sni_callback`` looks the name up in the router's current
``Certificates`` (one attribute read): a new snapshot is used for the next handshake at once, and open
connections keep the session they negotiated. An unknown name without a default fails the handshake
with an ``unrecognized_name`` alert.

Each loaded certificate's leaf ``notAfter`` is kept beside its context, so the metrics endpoint exports
``yunzhou_certificate_expiry_timestamp_seconds{host}`` for exactly what is served, without reading files.
"""

from __future__ import annotations

import os
import re
import ssl
import stat
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from yunzhou.domain.errors import FieldProblem, UserError
from yunzhou.names.tls.expiry import read_not_after

_LABEL_RE = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_ENTRY_KEYS = frozenset({"cert_file", "key_file"})
DEFAULT_NAME = "*"
MAX_CERTIFICATES = 10_000


@dataclass(frozen=True, slots=True)
class CertificateSpec:
    name: str  # a host, '*.zone' or '*'
    cert_file: str
    key_file: str

    def to_json(self) -> dict[str, Any]:
        return {"cert_file": self.cert_file, "key_file": self.key_file}


def _valid_name(name: str) -> bool:
    if name == DEFAULT_NAME:
        return True
    labels = name[2:].split(".") if name.startswith("*.") else name.split(".")
    return len(name) <= 253 and len(labels) >= 1 and all(_LABEL_RE.match(label) for label in labels)


def parse_certificates(raw: object, found: list[FieldProblem]) -> dict[str, CertificateSpec]:
    """The ``certificates`` section: name → spec. Problems (with their field paths) go to ``found``."""
    if not isinstance(raw, dict):
        found.append(FieldProblem("certificates", "must map host names to {cert_file, key_file}"))
        return {}
    if len(raw) > MAX_CERTIFICATES:
        found.append(FieldProblem("certificates", f"at most {MAX_CERTIFICATES} certificates"))
        return {}
    out: dict[str, CertificateSpec] = {}
    for key, doc in raw.items():
        path = f"certificates.{key}"
        name = key.lower().rstrip(".") if isinstance(key, str) else ""
        if not _valid_name(name):
            message = f"{key!r} is not a host name, a wildcard '*.zone' or '*' (the default certificate)"
            found.append(FieldProblem(path, message))
            continue
        if not isinstance(doc, dict):
            found.append(FieldProblem(path, "must be an object with cert_file and key_file"))
            continue
        for unknown in sorted(set(doc) - _ENTRY_KEYS):
            found.append(
                FieldProblem(f"{path}.{unknown}", "unknown field; allowed fields are cert_file, key_file")
            )
        files = []
        for field_name in ("cert_file", "key_file"):
            value = doc.get(field_name)
            if not isinstance(value, str) or not os.path.isabs(value) or "\x00" in value:
                found.append(FieldProblem(f"{path}.{field_name}", "must be an absolute file path"))
            else:
                files.append(value)
        if name in out:
            found.append(FieldProblem(path, f"{name!r} is listed twice"))
        elif len(files) == 2:
            out[name] = CertificateSpec(name, files[0], files[1])
    return out


def _stamp(path: str) -> tuple[int, int, int, int]:
    st = os.stat(path)
    return st.st_ino, st.st_size, st.st_mtime_ns, st.st_mode


def _check_key_file(path: str) -> str | None:
    """Why a key file is refused (its mode or type), or None."""
    st = os.stat(path)
    if not stat.S_ISREG(st.st_mode):
        return "must be a regular file"
    if st.st_mode & 0o077:
        return f"must be readable by its owner only (mode 0600 or 0400), not {stat.S_IMODE(st.st_mode):04o}"
    return None


def server_context() -> ssl.SSLContext:
    """A TLS server context with the router's settings (TLS 1.2+, HTTP/1.1 by ALPN)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["http/1.1"])
    return context


def _not_after(spec: CertificateSpec) -> float | None:
    """The leaf's notAfter as a Unix time; None if it cannot be read (OpenSSL took it, so seldom)."""
    try:
        return read_not_after(spec.cert_file).timestamp()
    except (OSError, UserError):
        return None


def _load(spec: CertificateSpec, found: list[FieldProblem]) -> ssl.SSLContext | None:
    path = f"certificates.{spec.name}"
    for field_name, file in (("cert_file", spec.cert_file), ("key_file", spec.key_file)):
        try:
            refused = _check_key_file(file) if field_name == "key_file" else None
            with open(file, "rb"):
                pass
        except OSError as exc:
            found.append(FieldProblem(f"{path}.{field_name}", f"cannot be read: {exc.strerror}"))
            return None
        if refused is not None:
            found.append(FieldProblem(f"{path}.{field_name}", refused))
            return None
    try:
        context = server_context()
        context.load_cert_chain(spec.cert_file, spec.key_file)
    except ssl.SSLError as exc:  # OpenSSL's reason code only: never a byte of the files
        reason = exc.reason or "unreadable"
        message = f"cert_file and key_file are not a PEM certificate chain and its private key ({reason})"
        found.append(FieldProblem(path, message))
        return None
    except OSError as exc:  # changed since checked above
        found.append(FieldProblem(path, f"cannot be read: {exc.strerror}"))
        return None
    return context


class Certificates:
    """The SSL contexts of one snapshot's certificates, by name; swapped whole with the snapshot."""

    __slots__ = ("_contexts", "_default", "_stamps", "not_after", "specs")

    def __init__(
        self,
        specs: dict[str, CertificateSpec],
        contexts: dict[str, ssl.SSLContext],
        stamps: dict[str, tuple[object, ...]],
        not_after: dict[str, float] | None = None,
    ) -> None:
        self.specs = specs
        self._contexts = contexts
        self._stamps = stamps
        self.not_after = not_after or {}  # name → the leaf's notAfter (Unix time), for the expiry metric
        self._default = contexts.get(DEFAULT_NAME)

    def context_for(self, server_name: str | None) -> ssl.SSLContext | None:
        """The context for an SNI name: exact, then the one-label wildcard, then the default (or None)."""
        if server_name:
            name = server_name.lower().rstrip(".")
            context = self._contexts.get(name)
            if context is not None:
                return context
            dot = name.find(".")
            if dot > 0:
                context = self._contexts.get("*" + name[dot:])
                if context is not None:
                    return context
        return self._default

    def __len__(self) -> int:
        return len(self._contexts)


NO_CERTIFICATES = Certificates({}, {}, {})


def load_certificates(specs: dict[str, CertificateSpec], previous: Certificates) -> Certificates:
    """Build the contexts of a snapshot's certificates, reusing those whose entry and files are unchanged.

    Raises ``UserError`` naming each entry that cannot be loaded (nothing is swapped then).
    """
    found: list[FieldProblem] = []
    contexts: dict[str, ssl.SSLContext] = {}
    stamps: dict[str, tuple[object, ...]] = {}
    not_after: dict[str, float] = {}
    for name, spec in specs.items():
        try:
            stamp: tuple[object, ...] = (spec, _stamp(spec.cert_file), _stamp(spec.key_file))
        except OSError:
            stamp = ()
        old = previous._contexts.get(name)
        if stamp and old is not None and previous._stamps.get(name) == stamp:
            contexts[name] = old
            stamps[name] = stamp
            if name in previous.not_after:
                not_after[name] = previous.not_after[name]
            continue
        context = _load(spec, found)
        if context is not None:
            contexts[name] = context
            stamps[name] = stamp
            expires = _not_after(spec)
            if expires is not None:
                not_after[name] = expires
    if found:
        first = found[0]
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        raise UserError(f"invalid config snapshot: {first}{more}", problems=found)
    return Certificates(specs, contexts, stamps, not_after)


def listener_context(current: Callable[[], Certificates], unknown: Callable[[], None]) -> ssl.SSLContext:
    """The listener's context: each handshake takes the context ``current()`` has for its SNI name;
    ``unknown()`` is called for each handshake refused for want of a certificate."""
    base = server_context()

    def pick(sock: ssl.SSLObject, server_name: str | None, _: ssl.SSLContext) -> int | None:
        context = current().context_for(server_name)
        if context is None:
            unknown()
            return ssl.ALERT_DESCRIPTION_UNRECOGNIZED_NAME
        sock.context = context
        return None

    base.sni_callback = pick  # type: ignore[assignment,unused-ignore]
    return base
