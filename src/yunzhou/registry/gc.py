"""Retention and garbage collection of the managed registry.

The caller says which images releases refer to (``repo@sha256:…``; the store stays out of this
package). Per repository, every referenced image is kept, and so are the newest ``keep_last`` others
and anything pushed within ``keep_days``; the rest are deleted through the API with their ``.sig`` and
``.sbom`` attachments (and attachments whose image is gone). Then ``docker-registry garbage-collect``
frees their blobs, with the registry restarted read-only for the duration (pulls keep working, pushes are
refused with 503 for those seconds — ``GcReport.readonly_seconds``).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from yunzhou.envnumbers import number_from_env
from yunzhou.registry.client import RegistryClient
from yunzhou.registry.images import StoredImage, blobs_bytes, list_images
from yunzhou.registry.server import RegistryProcess

log = logging.getLogger("yunzhou.registry")


@dataclass(frozen=True)
class RetentionPolicy:
    keep_last: int = 10  # unreferenced images kept per repository, newest first
    keep_days: float = 7.0  # anything pushed more recently is kept (a build's release may be on its way)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> RetentionPolicy:
        """``YUNZHOU_REGISTRY_KEEP_LAST`` (0-100000, default 10) and ``YUNZHOU_REGISTRY_KEEP_DAYS``
        (0-3650, default 7)."""
        env = os.environ if environ is None else environ
        return cls(
            keep_last=int(
                number_from_env("YUNZHOU_REGISTRY_KEEP_LAST", 10, 0, 100_000, unit="images", environ=env)
            ),
            keep_days=number_from_env("YUNZHOU_REGISTRY_KEEP_DAYS", 7.0, 0, 3650, unit="days", environ=env),
        )


def doomed(
    images: Sequence[StoredImage], referenced: set[str], policy: RetentionPolicy, now: dt.datetime
) -> list[StoredImage]:
    """Which images (not attachments) of one repository go: never a referenced one, never one of the
    ``keep_last`` newest unreferenced ones, never one pushed within ``keep_days`` (or of unknown age)."""
    newest_first = sorted(
        (i for i in images if i.attachment_of is None),
        key=lambda i: (i.pushed_at or now, i.digest),
        reverse=True,
    )
    unreferenced = [i for i in newest_first if i.digest not in referenced]
    cutoff = now - dt.timedelta(days=policy.keep_days)
    return [i for i in unreferenced[policy.keep_last :] if i.pushed_at is not None and i.pushed_at < cutoff]


@dataclass
class GcReport:
    deleted: list[str] = field(default_factory=list)  # repo@digest of each image deleted
    attachments_deleted: int = 0
    kept: int = 0
    referenced_kept: int = 0
    bytes_before: int = 0
    bytes_after: int = 0
    readonly_seconds: float = 0.0
    seconds: float = 0.0

    @property
    def freed_bytes(self) -> int:
        return max(0, self.bytes_before - self.bytes_after)

    def view(self) -> dict[str, Any]:
        return {
            "deleted": self.deleted,
            "attachments_deleted": self.attachments_deleted,
            "kept": self.kept,
            "referenced_kept": self.referenced_kept,
            "freed_bytes": self.freed_bytes,
            "bytes_after": self.bytes_after,
            "readonly_seconds": round(self.readonly_seconds, 3),
            "seconds": round(self.seconds, 3),
        }


def _by_repository(referenced: Iterable[str]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for ref in referenced:
        repo, at, digest = ref.rpartition("@")
        if at and digest.startswith("sha256:"):
            out.setdefault(repo, set()).add(digest)
    return out


def collect(
    process: RegistryProcess,
    client: RegistryClient,
    referenced: Iterable[str],
    policy: RetentionPolicy,
    now: dt.datetime | None = None,
) -> GcReport:
    """Apply ``policy`` to every repository of the managed registry, then collect the blobs freed."""
    started = time.monotonic()
    now = now or dt.datetime.now(dt.UTC)
    keep = _by_repository(referenced)
    report = GcReport(bytes_before=blobs_bytes(process.storage))
    for repo in client.repositories():
        images = list_images(client, repo, process.storage)
        gone = {i.digest for i in doomed(images, keep.get(repo, set()), policy, now)}
        present = {i.digest for i in images if i.attachment_of is None}
        for image in images:
            if image.attachment_of is None:
                if image.digest in gone:
                    client.delete(repo, image.digest)
                    report.deleted.append(f"{repo}@{image.digest}")
                else:
                    report.kept += 1
                    report.referenced_kept += image.digest in keep.get(repo, set())
            elif image.attachment_of in gone or image.attachment_of not in present:
                client.delete(repo, image.digest)
                report.attachments_deleted += 1
    readonly_from = time.monotonic()
    process.garbage_collect()
    report.readonly_seconds = time.monotonic() - readonly_from
    report.bytes_after = blobs_bytes(process.storage)
    report.seconds = time.monotonic() - started
    return report


def gc_interval(environ: Mapping[str, str] | None = None) -> float:
    """``YUNZHOU_REGISTRY_GC_INTERVAL``: seconds between retention runs (default a day; 0 turns it off)."""
    return number_from_env(
        "YUNZHOU_REGISTRY_GC_INTERVAL", 86400, 0, 30 * 86400, unit="seconds", environ=environ
    )


BUSY_RETRY_SECONDS = 60.0


class GcLoop:
    """Retention and garbage collection every ``interval`` seconds, in a thread of the server that runs
    the managed registry; each run's report is logged (and kept in ``last``). While ``busy()`` says a
    build is running, a run waits (checking every minute): a push into the read-only window would fail."""

    def __init__(
        self,
        process: RegistryProcess,
        client: Callable[[], RegistryClient],
        referenced: Callable[[], set[str]],
        policy: RetentionPolicy,
        interval: float,
        busy: Callable[[], bool] = lambda: False,
        busy_retry: float = BUSY_RETRY_SECONDS,
    ) -> None:
        self.process = process
        self.busy = busy
        self.busy_retry = busy_retry
        self.client = client
        self.referenced = referenced
        self.policy = policy
        self.interval = interval
        self.last: GcReport | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="yunzhou-registry-gc", daemon=True)

    def run_once(self) -> GcReport:
        with self.client() as client:
            # read the references after listing would race a release made meanwhile; read them first and
            # rely on keep_days for images pushed since (a build's release comes right after its push)
            report = collect(self.process, client, self.referenced(), self.policy)
        log.info("registry retention: %s", report.view())
        self.last = report
        return report

    def start(self) -> None:
        if self.interval > 0:
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                while self.busy():
                    if self._stop.wait(self.busy_retry):
                        return
                self.run_once()
            except Exception:  # a failed run is logged and tried again at the next interval
                log.exception("registry retention failed")

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=60)
