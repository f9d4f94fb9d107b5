"""Uploaded source archives, content-addressed (sha256) under the data dir.

An upload arrives as a file the API streamed to disk under the body limit (``receiving``); ``upload`` then
checks it member by member while decompressing (domain/archive.py: paths, kinds, entry count and unpacked
size; at the end, symlinks resolved through each other), and only an archive that passes is moved into
place and recorded. It reads and hashes the whole archive: the API runs it in a worker thread, never on
the event loop.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import tarfile
import uuid
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

from yunzhou.domain.archive import ArchiveChecker
from yunzhou.domain.errors import invalid
from yunzhou.domain.limits import Limits
from yunzhou.services.base import ServiceContext
from yunzhou.services.context import Caller, record_audit
from yunzhou.store.files import artifact_path, incoming_artifacts
from yunzhou.store.models import Artifact

CHUNK = 1024 * 1024
ABANDONED_AFTER_S = 86400.0


def check_archive(path: Path, limits: Limits) -> None:
    """A gzip'd tar within ``limits`` whose members stay inside the archive root; UserError otherwise.

    Streamed: content is decompressed and skipped, never held, and a header that alone exceeds the
    unpacked-size limit is refused before its content is read.
    """
    checker = ArchiveChecker(limits)
    try:
        # GzipFile inflates only what is asked for; tarfile's own "r|gz" inflates a whole compressed block
        # and slices it, so a bomb cost memory and quadratic copying before any limit could apply
        with gzip.open(path, "rb") as stream, tarfile.open(fileobj=stream, mode="r|") as tar:
            for member in tar:
                checker.admit(member)
                if member.isfile():
                    checker.count(member.size)
        checker.finish()  # links resolved through each other, also through those that came later
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        raise invalid("body", f"not a gzip-compressed tar archive ({exc})") from exc


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return "sha256:" + digest.hexdigest()


class ArtifactService:
    def __init__(self, ctx: ServiceContext, data_dir: Path) -> None:
        self.ctx = ctx
        self.data_dir = data_dir

    @contextmanager
    def receiving(self) -> Iterator[tuple[Path, BinaryIO]]:
        """A new file to stream an upload into (path, open handle); removed on exit unless ``upload``
        moved it into place, so a refused or broken upload leaves nothing behind."""
        folder = incoming_artifacts(self.data_dir)
        folder.mkdir(parents=True, exist_ok=True)
        self._remove_abandoned(folder)
        path = folder / f"{uuid.uuid4().hex}.part"
        try:
            with path.open("xb") as handle:
                yield path, handle
        finally:
            path.unlink(missing_ok=True)

    def _remove_abandoned(self, folder: Path) -> None:
        """Uploads a killed server never finished (no upload takes a day; another replica's may be live)."""
        cutoff = self.ctx.clock().timestamp() - ABANDONED_AFTER_S
        for part in folder.glob("*.part"):
            try:
                if part.stat().st_mtime < cutoff:
                    part.unlink()
            except FileNotFoundError:
                continue  # another upload removed it first

    def upload(self, caller: Caller, received: Path) -> dict[str, Any]:
        size = received.stat().st_size
        if not size:
            raise invalid("body", "empty upload; send a tar.gz of the source directory")
        check_archive(received, self.ctx.limits)
        digest = _sha256(received)
        path = artifact_path(self.data_dir, digest)
        now = self.ctx.clock()
        with self.ctx.db.transaction() as s:
            if s.get(Artifact, digest) is None:
                path.parent.mkdir(parents=True, exist_ok=True)
                os.replace(received, path)  # the file exists before the row that names it commits
                s.add(Artifact(digest=digest, size=size, created_at=now, created_by=caller.principal))
            record_audit(
                s,
                caller,
                now,
                action="artifact.upload",
                target=digest,
                project=None,
                detail={"size": size},
            )
        return {"digest": digest, "size": size}
