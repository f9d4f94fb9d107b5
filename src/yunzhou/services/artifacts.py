"""Uploaded source archives, content-addressed (sha256) under the data dir."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
from pathlib import Path
from typing import Any

from yunzhou.domain.errors import invalid
from yunzhou.services.base import ServiceContext
from yunzhou.services.context import Caller, record_audit
from yunzhou.store.files import artifact_path
from yunzhou.store.models import Artifact

MAX_ARTIFACT_BYTES = 200 * 1024 * 1024


def _check_archive(body: bytes) -> None:
    """A gzip'd tar whose members stay inside the archive root (no absolute paths, no '..', no devices)."""
    try:
        with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as tar:
            for member in tar.getmembers():
                name = member.name
                if name.startswith("/") or ".." in Path(name).parts:
                    raise invalid("body", f"archive member {name!r} points outside the archive")
                if not (member.isfile() or member.isdir() or member.issym()):
                    raise invalid("body", f"archive member {name!r} is not a file, directory or symlink")
                if member.issym() and (
                    member.linkname.startswith("/") or ".." in Path(member.linkname).parts
                ):
                    raise invalid("body", f"symlink {name!r} points outside the archive")
    except (tarfile.TarError, gzip.BadGzipFile, EOFError, OSError) as exc:
        raise invalid("body", f"not a gzip-compressed tar archive ({exc})") from exc


class ArtifactService:
    def __init__(self, ctx: ServiceContext, data_dir: Path) -> None:
        self.ctx = ctx
        self.data_dir = data_dir

    def upload(self, caller: Caller, body: bytes) -> dict[str, Any]:
        if not body:
            raise invalid("body", "empty upload; send a tar.gz of the source directory")
        if len(body) > MAX_ARTIFACT_BYTES:
            raise invalid("body", f"archive is {len(body)} bytes; the limit is {MAX_ARTIFACT_BYTES}")
        _check_archive(body)
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        path = artifact_path(self.data_dir, digest)
        now = self.ctx.clock()
        with self.ctx.db.transaction() as s:
            if s.get(Artifact, digest) is None:
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(f".{os.getpid()}.tmp")
                tmp.write_bytes(body)
                os.replace(tmp, path)  # the file exists before the row that names it commits
                s.add(Artifact(digest=digest, size=len(body), created_at=now, created_by=caller.principal))
            record_audit(
                s,
                caller,
                now,
                action="artifact.upload",
                target=digest,
                project=None,
                detail={"size": len(body)},
            )
        return {"digest": digest, "size": len(body)}
