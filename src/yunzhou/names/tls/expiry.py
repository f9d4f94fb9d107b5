"""When a certificate stops being valid: the leaf's ``notAfter``, read from PEM.

Pure (bytes in, a UTC datetime out) apart from :func:`read_not_after`, which reads the file first. Used by
the router to export ``yunzhou_certificate_expiry_timestamp_seconds`` for each certificate it serves.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from cryptography import x509

from yunzhou.domain.errors import invalid

_BEGIN = b"-----BEGIN CERTIFICATE-----"


def pem_not_after(pem: bytes, field: str = "cert_file") -> dt.datetime:
    """The ``notAfter`` (UTC) of the first certificate in a PEM chain — the leaf, as servers send it first.

    Raises ``UserError`` naming ``field`` when there is no readable certificate (a key or junk).
    """
    start = pem.find(_BEGIN)
    if start < 0:
        raise invalid(field, "holds no PEM certificate (-----BEGIN CERTIFICATE-----)")
    try:
        certificate = x509.load_pem_x509_certificate(pem[start:])
    except ValueError:
        raise invalid(field, "the first PEM certificate cannot be parsed") from None
    return certificate.not_valid_after_utc


def read_not_after(path: str | Path, field: str = "cert_file") -> dt.datetime:
    """:func:`pem_not_after` of a file (``OSError`` when it cannot be read)."""
    return pem_not_after(Path(path).read_bytes(), field)
