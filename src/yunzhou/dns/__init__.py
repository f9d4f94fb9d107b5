"""DNS providers behind one interface (docs/dns.md).

A library: it knows nothing of the store, the use-cases or the reconcilers; they hand it settings.
"""

from yunzhou.dns.records import DnsProvider, DnsRecord, RecordType, check_record

__all__ = ["DnsProvider", "DnsRecord", "RecordType", "check_record"]
