"""Where the control plane may send a request whose address a user chose (alert webhooks): never to
itself. A host that resolves to a loopback, link-local, unspecified or multicast address, or to one of this
machine's own addresses (the API on 7070, the router's admin port …), is refused unless the operator allows
it with ``YUNZHOU_ALERTS_ALLOW_PRIVATE_WEBHOOKS``: ``true`` allows every address, or a comma-separated list
of addresses and networks (``127.0.0.1,10.0.0.0/8``) allows those.

Checked where a receiver is stored (the API) and again before every delivery, since DNS can change: the
delivery connects to the very address it checked. Both run on worker threads (the API's sync handlers,
the notifier's thread), never on the event loop."""

from __future__ import annotations

import errno
import logging
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network

log = logging.getLogger("yunzhou.outbound")
ALLOW_ENV = "YUNZHOU_ALERTS_ALLOW_PRIVATE_WEBHOOKS"
Address = IPv4Address | IPv6Address
HOW_TO_ALLOW = f"an operator may allow it with {ALLOW_ENV}=true or a list of addresses/networks"


class Refused(Exception):
    """The host resolves to an address the control plane does not send to (the message says which)."""


class Unresolved(Exception):
    """The host does not resolve (now)."""


@dataclass(frozen=True)
class OutboundPolicy:
    allow_all: bool = False
    allowed: tuple[IPv4Network | IPv6Network, ...] = ()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> OutboundPolicy:
        """Read at each check, so a change needs no restart. An entry that is not an address or network is
        ignored (and logged): the policy then refuses more, never less."""
        raw = (os.environ if environ is None else environ).get(ALLOW_ENV, "").strip()
        if raw.lower() in ("", "0", "false", "no"):
            return cls()
        if raw.lower() in ("1", "true", "yes"):
            return cls(allow_all=True)
        allowed = []
        for part in filter(None, (p.strip() for p in raw.split(","))):
            try:
                allowed.append(ip_network(part, strict=False))
            except ValueError:
                log.warning("%s: %r is not an address or a network; ignored", ALLOW_ENV, part)
        return cls(False, tuple(allowed))

    def refusal(self, address: Address) -> str | None:
        """Why the control plane will not connect to ``address``, or None."""
        if self.allow_all or any(address in n for n in self.allowed):
            return None
        mapped = address.ipv4_mapped if isinstance(address, IPv6Address) else None
        a = mapped or address
        kind = (
            "a loopback address" if a.is_loopback
            else "a link-local address" if a.is_link_local
            else "the unspecified address" if a.is_unspecified
            else "a multicast address" if a.is_multicast
            else "one of the control plane's own addresses" if is_own_address(a)
            else None
        )  # fmt: skip
        if kind is None:
            return None
        return f"{address} is {kind}: the control plane does not send webhooks to itself ({HOW_TO_ALLOW})"


def is_own_address(address: Address) -> bool:
    """Whether this machine holds ``address``: binding to it succeeds only then (every interface, secondary
    addresses included, without parsing /proc)."""
    family = socket.AF_INET6 if isinstance(address, IPv6Address) else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            s.bind((str(address), 0))
    except OSError as exc:
        if exc.errno not in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT, errno.EINVAL):
            log.debug("bind to %s: %s", address, exc)
        return False
    return True


def resolve(host: str, port: int) -> list[Address]:
    """Every address ``host`` resolves to (an address literal is itself). Raises Unresolved."""
    try:
        return [ip_address(host.strip("[]").split("%")[0])]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise Unresolved(f"{host} does not resolve: {exc}") from exc
    seen: dict[Address, None] = {}
    for info in infos:
        seen.setdefault(ip_address(str(info[4][0]).split("%")[0]), None)
    return list(seen)


def checked_addresses(host: str, port: int, policy: OutboundPolicy | None = None) -> list[Address]:
    """The addresses to connect to, in order, once every one ``host`` resolves to is allowed (a name that
    resolves to a public and a loopback address is refused). Raises Refused or Unresolved."""
    policy = OutboundPolicy.from_env() if policy is None else policy
    addresses = resolve(host, port)
    for a in addresses:
        why = policy.refusal(a)
        if why is not None:
            raise Refused(why if str(a) == host.strip("[]") else f"{host} resolves to {why}")
    if not addresses:
        raise Unresolved(f"{host} resolves to no address")
    return addresses
