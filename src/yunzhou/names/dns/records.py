"""DNS records as data, the provider protocol, and the validation every provider shares.

Names are absolute and lower case without the trailing dot (``orders.dev.shop.example.test``); a record's
name is the zone itself or a name under it. Values are in their canonical text form: an address for A and
AAAA, a name (no trailing dot) for CNAME, the text itself (no quotes) for TXT.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from yunzhou.domain.errors import invalid

TTL_MIN = 1
TTL_MAX = 86400
TXT_MAX = 255
MAX_VALUES = 100
# Host-name labels, plus '_' for service and challenge labels such as _acme-challenge (RFC 8552).
_LABEL = r"[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?"
_NAME_RE = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*$")
NAME_RULE = "labels of a-z, 0-9, '-' and '_', at most 63 characters each and 253 in all"


def _is_dns_name(value: object) -> bool:
    return isinstance(value, str) and _NAME_RE.fullmatch(value) is not None


class RecordType(StrEnum):
    A = "A"
    AAAA = "AAAA"
    CNAME = "CNAME"
    TXT = "TXT"


@dataclass(frozen=True)
class DnsRecord:
    """One record set: every value of one type at one name, with one TTL (values sorted)."""

    name: str
    type: RecordType
    ttl: int
    values: tuple[str, ...]


class DnsProvider(Protocol):
    """What every DNS provider does. Errors are ``yunzhou.domain.errors``: UserError for bad input
    (before anything is sent), TemporaryError when the server cannot be reached or times out,
    PermanentError when it refuses (a wrong key, a zone it does not serve), NotFound for an unknown zone."""

    def list_records(self, zone: str) -> list[DnsRecord]:
        """The A, AAAA, CNAME and TXT record sets of ``zone``, sorted by name and type."""
        ...

    def upsert(self, zone: str, name: str, type: str, values: Iterable[str], ttl: int) -> DnsRecord:
        """Make the record set at ``name``/``type`` exactly ``values`` (replacing what was there)."""
        ...

    def delete(self, zone: str, name: str, type: str) -> None:
        """Remove the record set at ``name``/``type``; removing one that is absent is not an error."""
        ...


def check_zone(zone: object, path: str = "zone") -> str:
    text = zone.lower().rstrip(".") if isinstance(zone, str) else zone
    if not _is_dns_name(text):
        raise invalid(path, f"{zone!r} must be a DNS name such as example.test ({NAME_RULE})")
    assert isinstance(text, str)
    return text


def check_name(name: object, zone: str, path: str = "name") -> str:
    text = name.lower().rstrip(".") if isinstance(name, str) else name
    if not _is_dns_name(text):
        raise invalid(path, f"{name!r} must be a DNS name such as app.dev.shop.{zone} ({NAME_RULE})")
    assert isinstance(text, str)
    if text != zone and not text.endswith("." + zone):
        raise invalid(path, f"{name!r} is not in zone {zone}: it must be {zone} or end with .{zone}")
    return text


def check_type(type: object, path: str = "type") -> RecordType:
    if isinstance(type, str) and type.upper() in RecordType.__members__:
        return RecordType(type.upper())
    allowed = ", ".join(t.value for t in RecordType)
    raise invalid(path, f"{type!r} is not a supported record type; one of {allowed}")


def check_ttl(ttl: object, path: str = "ttl") -> int:
    if isinstance(ttl, bool) or not isinstance(ttl, int) or not TTL_MIN <= ttl <= TTL_MAX:
        raise invalid(path, f"{ttl!r} must be an integer number of seconds from {TTL_MIN} to {TTL_MAX}")
    return ttl


def _check_value(type: RecordType, value: object, path: str) -> str:
    if not isinstance(value, str):
        raise invalid(path, f"{value!r} must be a string")
    try:
        if type is RecordType.A:
            return str(ipaddress.IPv4Address(value))
        if type is RecordType.AAAA:
            return str(ipaddress.IPv6Address(value))
    except ValueError:
        raise invalid(path, f"{value!r} must be an IPv{4 if type is RecordType.A else 6} address") from None
    if type is RecordType.CNAME:
        target = value.lower().rstrip(".")
        if not _is_dns_name(target):
            raise invalid(path, f"{value!r} must be a DNS name (the CNAME's target)")
        return target
    if len(value) > TXT_MAX or not all(" " <= c <= "~" for c in value):
        raise invalid(path, f"must be at most {TXT_MAX} printable ASCII characters")
    return value


def check_values(type: RecordType, values: object, path: str = "values") -> tuple[str, ...]:
    if isinstance(values, str | bytes) or not isinstance(values, Iterable):
        raise invalid(path, "must be a list of strings")
    items = list(values)
    if not items:
        raise invalid(path, "must not be empty (use delete to remove a record set)")
    if len(items) > MAX_VALUES:
        raise invalid(path, f"must have at most {MAX_VALUES} values")
    if type is RecordType.CNAME and len(items) != 1:
        raise invalid(path, "a CNAME has exactly one value")
    return tuple(sorted({_check_value(type, v, f"{path}[{i}]") for i, v in enumerate(items)}))


def check_record(zone: object, name: object, type: object, values: object, ttl: object) -> DnsRecord:
    """The validated record an upsert writes, or a UserError naming the first wrong field."""
    zone_ = check_zone(zone)
    type_ = check_type(type)
    return DnsRecord(check_name(name, zone_), type_, check_ttl(ttl), check_values(type_, values))
