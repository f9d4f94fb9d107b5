"""DNS providers behind one interface (docs/dns.md): RFC 2136 + TSIG, the PowerDNS HTTP API,
and a hosts-file block for the local target.

A library: it knows nothing of the store, the use-cases or the reconcilers; they hand it settings.
"""

from yunzhou.names.dns.local import LocalDnsProvider, LocalDnsSettings
from yunzhou.names.dns.powerdns import PowerDnsProvider, PowerDnsSettings
from yunzhou.names.dns.records import DnsProvider, DnsRecord, RecordType, check_record
from yunzhou.names.dns.rfc2136 import Rfc2136Provider, Rfc2136Settings

__all__ = [
    "DnsProvider",
    "DnsRecord",
    "LocalDnsProvider",
    "LocalDnsSettings",
    "PowerDnsProvider",
    "PowerDnsSettings",
    "RecordType",
    "Rfc2136Provider",
    "Rfc2136Settings",
    "check_record",
]
