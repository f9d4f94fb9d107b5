"""An environment's HTTPS setting (``Environment.tls``), parsed once for every place that reads it.

Values: None or ``"off"`` (plain HTTP), ``"local"`` (the platform's own CA; on a cluster a CA of the
namespace's own, docs/kubernetes.md), ``"acme"`` (the platform's ACME CA), and on a cluster
``"issuer:NAME"`` / ``"cluster-issuer:NAME"`` (an existing cert-manager Issuer in the namespace or
ClusterIssuer).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from yunzhou.domain.errors import invalid
from yunzhou.domain.names import is_dns_name

TlsKind = Literal["off", "local", "acme", "issuer", "cluster-issuer"]
TLS_RULE = (
    "must be off, local, acme, issuer:NAME or cluster-issuer:NAME "
    "(NAME: a cert-manager Issuer/ClusterIssuer, a lower-case DNS name)"
)


@dataclass(frozen=True)
class TlsMode:
    kind: TlsKind = "off"
    issuer: str = ""  # the Issuer/ClusterIssuer's name, for kind issuer / cluster-issuer

    @property
    def enabled(self) -> bool:
        return self.kind != "off"


def parse_tls_mode(value: object, path: str = "tls") -> TlsMode:
    """Raises UserError naming ``path`` for anything but the values above."""
    if value is None or value == "off":
        return TlsMode()
    if value in ("local", "acme"):
        return TlsMode(value)
    if isinstance(value, str):
        kind, sep, name = value.partition(":")
        if sep and kind in ("issuer", "cluster-issuer") and is_dns_name(name):
            return TlsMode(kind, name)  # type: ignore[arg-type]
    raise invalid(path, f"{value!r} {TLS_RULE}" if isinstance(value, str) else TLS_RULE)
