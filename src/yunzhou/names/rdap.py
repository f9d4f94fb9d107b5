"""When a registered domain's registration expires, from RDAP (RFC 9082 queries, RFC 9083 responses).

``GET <base_url>/domain/<name>`` answers a JSON domain object whose ``events`` list holds
``{"eventAction": "expiration", "eventDate": "2027-03-01T00:00:00Z"}`` (RFC 9083 §4.5). The base URL is a
registry's RDAP service (IANA's bootstrap file ``dns.json`` names one per TLD) or a redirector such as
``https://rdap.org``; redirects are followed.

Errors are the project's: ``NotFound`` when the server has no such domain (404), ``TemporaryError`` when it
is unreachable, times out, or answers 429/5xx; ``PermanentError`` when the answer is not an RDAP domain
object with an expiration date. Messages name the URL asked, never more of the answer than the field.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from yunzhou.domain.errors import NotFound, PermanentError, TemporaryError

RDAP_MEDIA_TYPE = "application/rdap+json"


@dataclass(frozen=True)
class RdapSettings:
    base_url: str  # e.g. https://rdap.org (the server setting YUNZHOU_RDAP_URL)
    timeout: float = 10.0


def _parse_date(value: object) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    return parsed.replace(tzinfo=dt.UTC) if parsed.tzinfo is None else parsed.astimezone(dt.UTC)


def expiration_of(doc: object, where: str = "the RDAP answer") -> dt.datetime:
    """The ``expiration`` event's date of an RDAP domain object (UTC). Pure; raises ``PermanentError``
    naming the field when the object has none (or it is not an RFC 3339 date)."""
    if not isinstance(doc, Mapping) or doc.get("objectClassName", "domain") != "domain":
        raise PermanentError(f"{where} is not an RDAP domain object (objectClassName 'domain')")
    events = doc.get("events")
    if not isinstance(events, list):
        raise PermanentError(f"{where} has no events list")
    for index, event in enumerate(events):
        if isinstance(event, Mapping) and event.get("eventAction") == "expiration":
            date = _parse_date(event.get("eventDate"))
            if date is None:
                raise PermanentError(f"{where}: events[{index}].eventDate is not an RFC 3339 date")
            return date
    raise PermanentError(
        f"{where} has no event with eventAction 'expiration' (the registry does not publish it)"
    )


class RdapClient:
    def __init__(self, settings: RdapSettings, transport: httpx.BaseTransport | None = None) -> None:
        self.settings = settings
        self._client = httpx.Client(
            timeout=settings.timeout,
            follow_redirects=True,
            headers={"Accept": f"{RDAP_MEDIA_TYPE}, application/json"},
            trust_env=False,
            transport=transport,
        )

    def url_for(self, domain: str) -> str:
        return f"{self.settings.base_url.rstrip('/')}/domain/{quote(domain, safe='')}"

    def expiration(self, domain: str) -> dt.datetime:
        """When ``domain``'s registration expires, per the RDAP server."""
        url = self.url_for(domain)
        try:
            response = self._client.get(url)
        except httpx.TimeoutException:
            raise TemporaryError(
                f"RDAP server {url} did not answer within {self.settings.timeout:g} s", retry_after=300
            ) from None
        except httpx.HTTPError as exc:
            raise TemporaryError(
                f"RDAP server {url} is unreachable: {type(exc).__name__}", retry_after=300
            ) from None
        status = response.status_code
        if status == 404:
            raise NotFound(f"RDAP server {url} has no domain {domain} (404)")
        if status == 429 or status >= 500:
            raise TemporaryError(f"RDAP server {url} answered {status}", retry_after=300)
        if status != 200:
            raise PermanentError(f"RDAP server {url} refused the query ({status})")
        try:
            doc: Any = response.json()
        except ValueError:
            raise PermanentError(f"RDAP server {url} answered something that is not JSON") from None
        return expiration_of(doc, f"the RDAP answer from {url}")

    def close(self) -> None:
        self._client.close()
