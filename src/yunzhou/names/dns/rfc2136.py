"""RFC 2136 dynamic update signed with TSIG (RFC 8945), for BIND 9, Knot and any server that speaks it.

Updates and reads go over TCP to the zone's primary. ``list_records`` is a zone transfer (AXFR), so the
server must allow transfers for the key as well as updates.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import dns.exception
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.tsig
import dns.tsigkeyring
import dns.update
import dns.xfr
import dns.zone

from yunzhou.domain.errors import PermanentError, TemporaryError, YunzhouError
from yunzhou.names.dns._rdata import to_rdata, value_text
from yunzhou.names.dns.records import DnsRecord, RecordType, check_name, check_record, check_type, check_zone

TSIG_ALGORITHMS = ("hmac-sha256", "hmac-sha384", "hmac-sha512", "hmac-sha224", "hmac-sha1")


@dataclass(frozen=True)
class Rfc2136Settings:
    """Where the primary listens and the TSIG key it accepts (``secret`` is base64, as in BIND/Knot)."""

    server: str
    key_name: str
    key_secret: str
    port: int = 53
    key_algorithm: str = "hmac-sha256"
    timeout: float = 10.0


class Rfc2136Provider:
    """:class:`yunzhou.names.dns.DnsProvider` over RFC 2136 + TSIG."""

    def __init__(self, settings: Rfc2136Settings) -> None:
        if settings.key_algorithm not in TSIG_ALGORITHMS:
            allowed = ", ".join(TSIG_ALGORITHMS)
            raise PermanentError(
                f"dns.rfc2136.key_algorithm: {settings.key_algorithm!r} is not one of {allowed}"
            )
        try:
            self._keyring = dns.tsigkeyring.from_text(
                {settings.key_name: (settings.key_algorithm, settings.key_secret)}
            )
        except (ValueError, dns.exception.DNSException) as e:
            raise PermanentError(f"dns.rfc2136.key_secret: not a base64 TSIG secret ({e})") from e
        self._key_name = dns.name.from_text(settings.key_name)
        self.settings = settings

    def list_records(self, zone: str) -> list[DnsRecord]:
        origin = check_zone(zone)
        transferred = dns.zone.Zone(origin + ".")
        assert transferred.origin is not None
        try:
            query, _ = dns.xfr.make_query(transferred, keyring=self._keyring, keyname=self._key_name)
            dns.query.inbound_xfr(
                self.settings.server,
                transferred,
                query,
                port=self.settings.port,
                timeout=self.settings.timeout,
            )
        except Exception as e:
            raise self._translate(e, f"transferring zone {origin} (AXFR)") from e
        records = []
        for name, node in transferred.nodes.items():
            absolute = name.derelativize(transferred.origin).to_text(omit_final_dot=True)
            for rdataset in node.rdatasets:
                try:
                    type_ = RecordType(dns.rdatatype.to_text(rdataset.rdtype))
                except ValueError:
                    continue  # SOA, NS, … are the zone's own, not records we manage
                values = tuple(sorted(value_text(type_, rd, transferred.origin) for rd in rdataset))
                records.append(DnsRecord(absolute, type_, rdataset.ttl, values))
        return sorted(records, key=lambda r: (r.name, r.type))

    def upsert(self, zone: str, name: str, type: str, values: Iterable[str], ttl: int) -> DnsRecord:
        record = check_record(zone, name, type, values, ttl)
        update = self._update(check_zone(zone))
        rdatas = [to_rdata(record.type, v) for v in record.values]
        update.replace(record.name + ".", record.ttl, *rdatas)
        self._send(update, f"replacing {record.type} {record.name}")
        return record

    def delete(self, zone: str, name: str, type: str) -> None:
        origin = check_zone(zone)
        absolute = check_name(name, origin)
        type_ = check_type(type)
        update = self._update(origin)
        update.delete(absolute + ".", type_.value)
        self._send(update, f"deleting {type_} {absolute}")

    def _update(self, origin: str) -> dns.update.UpdateMessage:
        return dns.update.UpdateMessage(
            origin + ".",
            keyring=self._keyring,
            keyname=self._key_name,
            keyalgorithm=self.settings.key_algorithm,
        )

    def _send(self, update: dns.update.UpdateMessage, what: str) -> None:
        try:
            response = dns.query.tcp(
                update, self.settings.server, port=self.settings.port, timeout=self.settings.timeout
            )
        except Exception as e:
            raise self._translate(e, what) from e
        rcode = response.rcode()
        if rcode == dns.rcode.NOERROR:
            return
        text = dns.rcode.to_text(rcode)
        if rcode == dns.rcode.SERVFAIL:
            raise TemporaryError(f"{self._where()} failed {what}: SERVFAIL", retry_after=5.0)
        if rcode == dns.rcode.NOTAUTH:
            raise PermanentError(
                f"{self._where()} refused {what}: NOTAUTH — it is not authoritative for the zone or does not "
                f"accept TSIG key {self.settings.key_name!r} (check dns.rfc2136.key_name/key_secret)"
            )
        raise PermanentError(f"{self._where()} refused {what}: {text}")

    def _where(self) -> str:
        return f"DNS server {self.settings.server}:{self.settings.port}"

    def _translate(self, error: Exception, what: str) -> YunzhouError:
        if isinstance(error, YunzhouError):
            return error
        where = self._where()
        if isinstance(error, dns.exception.Timeout | TimeoutError):
            return TemporaryError(
                f"{where} did not answer {what} within {self.settings.timeout:g} s", retry_after=5.0
            )
        if isinstance(error, dns.tsig.PeerError):
            return PermanentError(
                f"{where} refused the TSIG signature while {what}: {error.__class__.__name__} "
                f"({error}) — key {self.settings.key_name!r} or its secret is not the one the server has "
                "(check dns.rfc2136.key_name/key_secret/key_algorithm)"
            )
        if isinstance(error, dns.tsig.BadSignature | dns.tsig.BadTime):
            return PermanentError(f"{where}'s answer failed TSIG verification while {what}: {error}")
        if isinstance(error, dns.xfr.TransferError):
            key = self.settings.key_name
            return PermanentError(
                f"{where} refused {what}: {error} (does it allow transfers for key {key!r}?)"
            )
        if isinstance(error, OSError | EOFError | ConnectionError):
            return TemporaryError(f"{where} is unreachable while {what}: {error}", retry_after=5.0)
        if isinstance(error, dns.exception.DNSException):
            return PermanentError(
                f"{where}: {what} failed: {error} (is it the primary for the zone, and does it know TSIG key "
                f"{self.settings.key_name!r}?)"
            )
        raise error
