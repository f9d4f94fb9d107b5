"""``yunzhou_domain_expiry_timestamp_seconds{domain}``: when each watched registered domain's registration
expires (Unix time, as RDAP last said; docs/dns.md), for the ``DomainExpiringSoon`` platform rule."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from yunzhou.observe.metrics.exposition import Sample

DOMAIN_EXPIRY = "yunzhou_domain_expiry_timestamp_seconds"


class DomainExpiryCollector:
    name = "domains"

    def __init__(self, expiries: Callable[[], list[tuple[str, float]]]) -> None:
        self.expiries = expiries
        self.types = {DOMAIN_EXPIRY: "gauge"}
        self.help = {
            DOMAIN_EXPIRY: "When a watched registered domain's registration expires (Unix time, RDAP)."
        }

    def collect(self, now: float) -> Iterable[Sample]:
        return [
            Sample(DOMAIN_EXPIRY, {"domain": domain}, expires) for domain, expires in sorted(self.expiries())
        ]
