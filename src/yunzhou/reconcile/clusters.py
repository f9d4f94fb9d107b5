"""Cluster connections for reconcilers: the stored kubeconfig, decrypted on use, one cached client each."""

from __future__ import annotations

import json
import threading
from typing import Any

from sqlalchemy import select

from yunzhou.domain.errors import PermanentError, UserError
from yunzhou.runtimes.kubernetes.cluster import client_for
from yunzhou.services.clusters import Sealer
from yunzhou.store import Database
from yunzhou.store.models import Cluster


class ClusterDirectory:
    def __init__(self, db: Database, sealer: Sealer, *, allow_exec: bool = False) -> None:
        self.db = db
        self.sealer = sealer
        self.allow_exec = allow_exec  # the operator's YUNZHOU_KUBECONFIG_EXEC
        self._clients: dict[str, tuple[int, Any, str]] = {}  # name → (row version, client, base domain)
        self._lock = threading.Lock()

    def connect(self, name: str) -> tuple[Any, str]:
        with self.db.transaction() as s:
            row = s.scalar(select(Cluster).where(Cluster.name == name))
            if row is None:
                raise PermanentError(f"cluster {name!r} is not registered (see `yunzhou cluster list`)")
            version, ciphertext, context, domain = (
                row.version,
                row.kubeconfig_ciphertext,
                row.context,
                row.base_domain,
            )
        with self._lock:
            cached = self._clients.get(name)
            if cached is not None and cached[0] == version:
                return cached[1], cached[2]
            kubeconfig = json.loads(self.sealer.open(ciphertext))
            try:
                client = client_for(kubeconfig, context or None, allow_exec=self.allow_exec)
            except UserError as exc:  # stored before such kubeconfigs were refused, or exec turned off
                raise PermanentError(
                    f"cluster {name!r}: its stored kubeconfig is refused: {exc.message}",
                    problems=exc.problems,
                ) from exc
            self._clients[name] = (version, client, domain)
            return client, domain

    def close(self) -> None:
        with self._lock:
            for _, client, _ in self._clients.values():
                client.close()
            self._clients.clear()
