"""What the control plane asks of a certificate issuer, whichever CA is behind it (local or ACME)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True)
class Leaf:
    """An issued certificate as files: ``cert_file`` (leaf then chain, PEM) and ``key_file`` (PEM, 0600)."""

    hosts: tuple[str, ...]
    cert_file: Path
    key_file: Path
    not_before: datetime
    not_after: datetime
    issuer: str


class CertificateIssuer(Protocol):
    name: str  # "local" or "acme"

    def issue(self, hosts: Sequence[str], directory: Path) -> Leaf:
        """Writes ``directory/cert.pem`` (leaf + chain) and ``directory/key.pem`` (0600 from creation),
        each replaced atomically."""
        ...
