"""Record values ↔ dnspython rdata, shared by the providers that speak DNS presentation format."""

from __future__ import annotations

import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TXT

from yunzhou.names.dns.records import RecordType


def to_rdata(type_: RecordType, value: str) -> dns.rdata.Rdata:
    """A validated value as rdata; TXT is built from bytes, so no value can change the record's shape."""
    if type_ is RecordType.TXT:
        return dns.rdtypes.ANY.TXT.TXT(dns.rdataclass.IN, dns.rdatatype.TXT, [value.encode()])
    text = value + "." if type_ is RecordType.CNAME else value
    return dns.rdata.from_text(dns.rdataclass.IN, type_.value, text)


def value_text(type_: RecordType, rdata: dns.rdata.Rdata, origin: dns.name.Name = dns.name.root) -> str:
    """The value as :class:`DnsRecord` holds it: TXT strings joined, names without the dot."""
    if isinstance(rdata, dns.rdtypes.ANY.TXT.TXT):
        return "".join(s.decode("ascii", "replace") for s in rdata.strings)
    text: str = rdata.to_text(origin=origin, relativize=False)
    return text.rstrip(".") if type_ is RecordType.CNAME else text


def presentation(type_: RecordType, value: str) -> str:
    """The value in zone-file form, e.g. ``"v=1 \\"quoted\\""`` for TXT, ``www.example.test.`` for CNAME."""
    text: str = to_rdata(type_, value).to_text()
    return text


def from_presentation(type_: RecordType, content: str) -> str:
    return value_text(
        type_, dns.rdata.from_text(dns.rdataclass.IN, type_.value, content, origin=dns.name.root)
    )
