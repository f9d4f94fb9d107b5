"""The PowerDNS Authoritative HTTP API (``/api/v1/servers/<server>/zones/<zone>``): rrsets are replaced or
deleted with one PATCH each, so a record set never exists half-written."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import dns.exception
import httpx

from yunzhou.domain.errors import NotFound, PermanentError, TemporaryError
from yunzhou.names.dns._rdata import from_presentation, presentation
from yunzhou.names.dns.records import DnsRecord, RecordType, check_name, check_record, check_type, check_zone


@dataclass(frozen=True)
class PowerDnsSettings:
    """``api_url`` is the webserver's base (``http://127.0.0.1:8081``); ``api_key`` its ``api-key``."""

    api_url: str
    api_key: str
    server_id: str = "localhost"
    timeout: float = 10.0


class PowerDnsProvider:
    """:class:`yunzhou.names.dns.DnsProvider` over the PowerDNS HTTP API."""

    def __init__(self, settings: PowerDnsSettings) -> None:
        self.settings = settings

    def list_records(self, zone: str) -> list[DnsRecord]:
        origin = check_zone(zone)
        body = self._call("GET", origin, f"reading zone {origin}").json()
        records = []
        for rrset in body.get("rrsets", []):
            try:
                type_ = RecordType(rrset["type"])
            except ValueError:
                continue  # SOA, NS, … are the zone's own, not records we manage
            contents = [r["content"] for r in rrset.get("records", []) if not r.get("disabled")]
            if not contents:
                continue
            try:
                values = tuple(sorted(from_presentation(type_, c) for c in contents))
            except dns.exception.DNSException as e:
                raise PermanentError(
                    f"PowerDNS returned an unreadable {type_} at {rrset['name']}: {e}"
                ) from e
            records.append(DnsRecord(rrset["name"].rstrip("."), type_, int(rrset["ttl"]), values))
        return sorted(records, key=lambda r: (r.name, r.type))

    def upsert(self, zone: str, name: str, type: str, values: Iterable[str], ttl: int) -> DnsRecord:
        record = check_record(zone, name, type, values, ttl)
        rrset = {
            "name": record.name + ".",
            "type": record.type.value,
            "ttl": record.ttl,
            "changetype": "REPLACE",
            "records": [{"content": presentation(record.type, v), "disabled": False} for v in record.values],
        }
        self._patch(check_zone(zone), rrset, f"replacing {record.type} {record.name}")
        return record

    def delete(self, zone: str, name: str, type: str) -> None:
        origin = check_zone(zone)
        absolute = check_name(name, origin)
        type_ = check_type(type)
        rrset = {"name": absolute + ".", "type": type_.value, "changetype": "DELETE"}
        self._patch(origin, rrset, f"deleting {type_} {absolute}")

    def _patch(self, origin: str, rrset: dict[str, Any], what: str) -> None:
        self._call("PATCH", origin, what, json={"rrsets": [rrset]})

    def _call(self, method: str, origin: str, what: str, json: Any = None) -> httpx.Response:
        s = self.settings
        path = f"/api/v1/servers/{quote(s.server_id, safe='')}/zones/{quote(origin + '.', safe='')}"
        where = f"PowerDNS API {s.api_url}"
        try:
            key = {"X-API-Key": s.api_key}
            with httpx.Client(base_url=s.api_url, headers=key, timeout=s.timeout) as http:
                response = http.request(method, path, json=json)
        except httpx.TimeoutException as e:
            raise TemporaryError(
                f"{where} did not answer {what} within {s.timeout:g} s", retry_after=5.0
            ) from e
        except httpx.TransportError as e:
            raise TemporaryError(f"{where} is unreachable while {what}: {e}", retry_after=5.0) from e
        if response.is_success:
            return response
        reason = _reason(response)
        if response.status_code in (401, 403):
            raise PermanentError(
                f"{where} refused the API key while {what}: {response.status_code} {reason} "
                "(check dns.powerdns.api_key)"
            )
        if response.status_code == 404:
            raise NotFound(f"{where}: zone {origin} does not exist on server {s.server_id!r} ({reason})")
        if response.status_code >= 500 or response.status_code == 429:
            raise TemporaryError(f"{where} failed {what}: {response.status_code} {reason}", retry_after=5.0)
        raise PermanentError(f"{where} refused {what}: {response.status_code} {reason}")


def _reason(response: httpx.Response) -> str:
    """PowerDNS's own ``error`` text when it sends one (bounded: it is echoed into conditions)."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:300] or response.reason_phrase
    error = body.get("error") if isinstance(body, dict) else None
    return str(error)[:300] if error else response.reason_phrase
