"""What the Kubernetes runtime needs to know about images (``runtimes.kubernetes.images.ClusterImages``):
each cluster's registry address, read from its row, and each project's pull credential (made on first
use by ``services.pull_credentials``), kept for a minute so a pass does not read it for every app."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from sqlalchemy import select

from yunzhou.domain.errors import PermanentError
from yunzhou.runtimes.kubernetes.images import PullCredential
from yunzhou.services.pull_credentials import PullCredentialService
from yunzhou.store import Database
from yunzhou.store.models import Cluster

CREDENTIAL_TTL = 60.0  # seconds a credential is reused before the store is asked again (revocation)


class ClusterImageAccess:
    def __init__(
        self,
        db: Database,
        credentials: PullCredentialService,
        platform_registry: Callable[[], str | None],
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.db = db
        self.credentials = credentials
        self.platform_registry = platform_registry  # host[:port] of the registry the platform runs or uses
        self.clock = clock
        self._cache: dict[str, tuple[float, PullCredential]] = {}
        self._lock = threading.Lock()

    def registry(self, cluster: str) -> str | None:
        with self.db.transaction() as s:
            row = s.scalar(select(Cluster.registry_address).where(Cluster.name == cluster))
            if row is None and s.scalar(select(Cluster.id).where(Cluster.name == cluster)) is None:
                raise PermanentError(f"cluster {cluster!r} is not registered (see `yunzhou cluster list`)")
        return row or self.platform_registry()

    def pull_credential(self, project: str) -> PullCredential:
        now = self.clock()
        with self._lock:
            cached = self._cache.get(project)
            if cached is not None and now - cached[0] < CREDENTIAL_TTL:
                return cached[1]
        login = self.credentials.ensure(project)
        credential = PullCredential(login.username, login.password)
        with self._lock:
            self._cache[project] = (now, credential)
        return credential
