"""The registered-domain expiry checker: looks each watched domain up by RDAP (``yunzhou.names.rdap``) —
a new one within a poll, then every ``YUNZHOU_DOMAIN_CHECK_INTERVAL`` seconds (default 6 h) — and records
the expiry, or the error with the last known expiry kept (services/watched_domains.py). The metric
``yunzhou_domain_expiry_timestamp_seconds`` is read from what is recorded (metrics/collect_domains.py).

Settings: ``YUNZHOU_RDAP_URL`` (the RDAP base URL, default ``https://rdap.org``, a redirector to each TLD's
registry), ``YUNZHOU_DOMAIN_CHECK_INTERVAL`` (60 s – 7 days). Nothing is asked while the list is empty.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta

from yunzhou.domain.errors import YunzhouError
from yunzhou.envnumbers import number_from_env
from yunzhou.names.rdap import RdapClient, RdapSettings
from yunzhou.services.watched_domains import DomainWatchService

log = logging.getLogger("yunzhou.reconcile.domain_expiry")
DEFAULT_RDAP_URL = "https://rdap.org"
DEFAULT_EVERY = 6 * 3600.0
DEFAULT_POLL = 5.0  # seconds between looks for due domains (one small query): how soon a new one is checked


def rdap_settings(environ: Mapping[str, str]) -> RdapSettings:
    url = environ.get("YUNZHOU_RDAP_URL", "").strip() or DEFAULT_RDAP_URL
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"YUNZHOU_RDAP_URL={url!r}: must be an http:// or https:// URL (an RDAP base URL)")
    return RdapSettings(url)


def check_interval(environ: Mapping[str, str]) -> float:
    return number_from_env(
        "YUNZHOU_DOMAIN_CHECK_INTERVAL", DEFAULT_EVERY, 60, 7 * 86400, unit="seconds", environ=environ
    )


class DomainExpiryChecker:
    def __init__(
        self,
        service: DomainWatchService,
        expiration: Callable[[str], datetime],
        clock: Callable[[], datetime],
        *,
        every: float = DEFAULT_EVERY,
        poll: float = DEFAULT_POLL,
    ) -> None:
        """``expiration(domain)``: the registration's expiry (``RdapClient.expiration``) or a YunzhouError."""
        self.service = service
        self.expiration = expiration
        self.clock = clock
        self.every = timedelta(seconds=every)
        self.poll = poll
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def from_env(
        cls, service: DomainWatchService, clock: Callable[[], datetime], environ: Mapping[str, str]
    ) -> DomainExpiryChecker:
        client = RdapClient(rdap_settings(environ))
        return cls(service, client.expiration, clock, every=check_interval(environ))

    def run_once(self) -> int:
        """Look up every due domain; returns how many were looked up."""
        due = self.service.due(self.clock(), self.every)
        for domain in due:
            try:
                expires, error = self.expiration(domain), None
            except (
                YunzhouError
            ) as exc:  # recorded, shown by `yunzhou domains list`; tried again next interval
                expires, error = None, str(exc)
                log.warning("RDAP lookup of %s failed: %s", domain, exc)
            self.service.record(domain, self.clock(), expires, error)
        return len(due)

    def start(self) -> DomainExpiryChecker:
        self._thread = threading.Thread(target=self._run, name="yunzhou-domain-expiry", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception:
                log.exception("domain expiry pass failed")
            self._stop.wait(self.poll)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
