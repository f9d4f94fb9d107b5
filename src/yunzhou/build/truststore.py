"""A Java trust store (JKS) made from a PEM bundle, byte for byte the same for the same certificates.

Debian's ca-certificates-java writes ``/etc/ssl/certs/java/cacerts`` as a PKCS#12 keystore with a random
salt, so two otherwise identical builds of a Java stack differ in that one file (and so in digest). The
JKS format has no salt: entries, each with a timestamp we fix, and a SHA-1 over the password, a constant
and the content. Java 17 reads a JKS file wherever it expects a PKCS#12 one (``keystore.type.compat``).
"""

from __future__ import annotations

import base64
import hashlib
import re
import struct

# the well-known password of every Java default trust store (Debian's too): not a secret
PASSWORD = "changeit"  # noqa: S105
_MAGIC = 0xFEEDFEED
_VERSION = 2
_TRUSTED_CERT = 2
_PEM = re.compile(rb"-----BEGIN CERTIFICATE-----\s*(.+?)\s*-----END CERTIFICATE-----", re.DOTALL)


def pem_certificates(bundle: bytes) -> list[bytes]:
    """The DER certificates of a PEM bundle, in order, each once."""
    seen: dict[bytes, None] = {}
    for match in _PEM.finditer(bundle):
        seen.setdefault(base64.b64decode(b"".join(match.group(1).split())), None)
    return list(seen)


def _utf(text: str) -> bytes:
    data = text.encode()  # aliases are ASCII: Java's modified UTF-8 is plain UTF-8 here
    return struct.pack(">H", len(data)) + data


def jks_truststore(certificates: list[bytes], timestamp_ms: int, password: str = PASSWORD) -> bytes:
    """A JKS keystore with one trusted-certificate entry per DER certificate, aliased by its SHA-256."""
    entries = sorted((f"yunzhou:{hashlib.sha256(der).hexdigest()[:32]}", der) for der in certificates)
    body = struct.pack(">III", _MAGIC, _VERSION, len(entries))
    for alias, der in entries:
        body += struct.pack(">I", _TRUSTED_CERT) + _utf(alias) + struct.pack(">q", timestamp_ms)
        body += _utf("X.509") + struct.pack(">I", len(der)) + der
    keyed = b"".join(struct.pack(">H", ord(c)) for c in password) + b"Mighty Aphrodite"
    return body + hashlib.sha1(keyed + body, usedforsecurity=False).digest()
