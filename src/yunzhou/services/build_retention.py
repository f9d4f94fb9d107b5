"""Retention of finished builds: their rows and logs do not grow without bound.

Per app (environment + name), the newest ``keep`` finished builds are kept (``YUNZHOU_BUILD_KEEP``,
default 50), and so is every build whose image a release of the app still records — the log of how a
release's image was made stays as long as a rollback can reach that release. Older ones lose their row
and their log file. Queued and running builds are never touched. The build worker runs this every
``PRUNE_EVERY_S`` (reconcile/builds.py).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path

from sqlalchemy import delete, select

from yunzhou.services.builds import FINISHED_STATES, positive_setting
from yunzhou.store import Database
from yunzhou.store.models import App, Build, Release

log = logging.getLogger("yunzhou.services.build_retention")
DEFAULT_KEEP = 50
PRUNE_EVERY_S = 600.0


def builds_to_keep(env: Mapping[str, str] | None = None) -> int:
    return positive_setting(os.environ if env is None else env, "YUNZHOU_BUILD_KEEP", DEFAULT_KEEP)


def prune_builds(db: Database, keep: int) -> list[str]:
    """Delete what the retention rule lets go; returns the ids deleted (their log files are removed)."""
    gone: list[tuple[str, str]] = []
    with db.transaction() as s:
        finished = s.execute(
            select(Build.id, Build.environment_id, Build.app, Build.image_digest, Build.log_path)
            .where(Build.state.in_(FINISHED_STATES))
            .order_by(Build.environment_id, Build.app, Build.created_at.desc(), Build.id.desc())
        ).all()
        released = {
            (env_id, name, image.rpartition("@")[2])
            for env_id, name, image in s.execute(
                select(App.environment_id, App.name, Release.image)
                .join(Release, Release.app_id == App.id)
                .where(Release.image.is_not(None))
            )
            if image and "@sha256:" in image
        }
        seen: dict[tuple[int, str], int] = {}
        for build_id, env_id, app, digest, log_path in finished:
            rank = seen.get((env_id, app), 0)
            seen[(env_id, app)] = rank + 1
            if rank < keep or (digest is not None and (env_id, app, digest) in released):
                continue
            gone.append((build_id, log_path))
        if gone:
            s.execute(delete(Build).where(Build.id.in_([b for b, _ in gone])))
    for _, log_path in gone:
        Path(log_path).unlink(missing_ok=True)
    if gone:
        log.info("build retention: deleted %d finished build(s) and their logs", len(gone))
    return [b for b, _ in gone]
