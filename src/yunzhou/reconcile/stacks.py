"""The stack-build worker: runs the builds `POST /stacks/{name}/build` recorded (work items of kind
``stack-build``), writing each one's progress where the API reads it (services/stacks.py).

It runs in its own ``Worker`` (the composition root starts it), so a build of a minute or more never
holds up app reconciliation; its lease lasts as long as a build may. A failed build is recorded with
mmdebstrap's last lines and not retried: the next build request tries again.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from yunzhou.build.stacks import StackCatalog
from yunzhou.domain.errors import YunzhouError
from yunzhou.reconcile.worker import Clock, Outcome
from yunzhou.services.context import iso
from yunzhou.services.stacks import STACK_BUILD_KIND, server_catalog, write_build_status

log = logging.getLogger("yunzhou.reconcile.stacks")
BUILD_TIMEOUT = 1800.0  # per image; node builds two (its run and build images)
LEASE_TTL = 2 * BUILD_TIMEOUT + 300.0


class StackBuildController:
    kind = STACK_BUILD_KIND

    def __init__(self, data_dir: Path, clock: Clock, catalog: StackCatalog | None = None) -> None:
        self.data_dir = data_dir
        self.clock = clock
        self.cancel = threading.Event()  # set when the server stops: a running mmdebstrap is stopped
        self.catalog = catalog or server_catalog(data_dir, timeout=BUILD_TIMEOUT, cancel=self.cancel)

    def _status(self, name: str, state: str, step: str, fraction: float, **more: object) -> None:
        write_build_status(
            self.data_dir, name, state=state, step=step, fraction=round(fraction, 3),
            updated_at=iso(self.clock()), **{"message": None, "digest": None, **more},
        )  # fmt: skip

    def reconcile(self, key: str) -> Outcome:
        name = key
        self._status(name, "building", "starting", 0.0)
        try:
            ref = self.catalog.build(name, progress=lambda step, f: self._status(name, "building", step, f))
        except YunzhouError as exc:
            log.warning("stack %s: build failed: %s", name, exc)
            self._status(name, "failed", "failed", 1.0, message=exc.message)
            return Outcome()
        except Exception as exc:  # a bug: recorded for the user, not retried in a loop
            log.exception("stack %s: build failed", name)
            self._status(name, "failed", "failed", 1.0, message=f"{type(exc).__name__}: {exc}")
            return Outcome()
        log.info("stack %s: %s", name, ref.digest)
        self._status(name, "built", "ready", 1.0, digest=ref.digest)
        return Outcome()
