"""Stacks as the API sees them: the list (built or not, with the last build's state), a build request
(recorded as a work item the stack-build worker runs: reconcile/stacks.py), export and import.

A build's progress lives in ``<data dir>/stacks/<name>.json`` (written by the worker, atomically), so any
API replica can answer ``GET /stacks`` while the worker builds. The API never runs mmdebstrap.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from yunzhou.build.oci import ImageStore
from yunzhou.build.stacks import StackCatalog, default_cache_dir, stack_definition
from yunzhou.domain.errors import FieldProblem, UserError
from yunzhou.services.base import ServiceContext
from yunzhou.services.context import Caller, iso, record_audit
from yunzhou.store.leases import enqueue

STACK_BUILD_KIND = "stack-build"
IMAGES_DIR = "images"  # the server's image store under the data dir
STATUS_DIR = "stacks"
BUILD_STATES = ("queued", "building", "built", "failed")


def server_catalog(data_dir: Path, **options: Any) -> StackCatalog:
    """The catalog of the server whose data dir this is: the shared stack cache, the server's images."""
    return StackCatalog(default_cache_dir(), ImageStore(data_dir / IMAGES_DIR), **options)


def status_path(data_dir: Path, name: str) -> Path:
    return data_dir / STATUS_DIR / f"{name}.json"


def write_build_status(data_dir: Path, name: str, **status: Any) -> None:
    """Replace the stack's build status (atomically: a reader sees the old or the new one)."""
    path = status_path(data_dir, name)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    tmp.write_text(json.dumps(status, sort_keys=True))
    os.replace(tmp, path)


def read_build_status(data_dir: Path, name: str) -> dict[str, Any] | None:
    try:
        status = json.loads(status_path(data_dir, name).read_text())
    except (OSError, ValueError):
        return None
    return status if isinstance(status, dict) and status.get("state") in BUILD_STATES else None


def _known(name: str) -> str:
    try:
        return stack_definition(name).name
    except UserError as exc:
        raise UserError(exc.message, problems=[FieldProblem("name", exc.message)]) from None


class StackService:
    def __init__(self, ctx: ServiceContext, data_dir: Path) -> None:
        self.ctx = ctx
        self.data_dir = data_dir

    def catalog(self) -> StackCatalog:
        return server_catalog(self.data_dir)

    def list(self) -> list[dict[str, Any]]:
        """Every stack: version, packages, its image's digest and size (null: not built), the last build."""
        return [self._item(asdict(info)) for info in self.catalog().list()]

    def get(self, name: str) -> dict[str, Any]:
        _known(name)
        return next(item for item in self.list() if item["name"] == name)

    def _item(self, info: dict[str, Any]) -> dict[str, Any]:
        build = read_build_status(self.data_dir, info["name"])
        state = "built" if info["current"] else "outdated"
        if info["digest"] is None:
            state = "not built"
        info.update(
            packages=list(info["packages"]),
            build_packages=list(info["build_packages"]),
            state=state,
            build=build,
        )
        return info

    def request_build(self, caller: Caller, name: str) -> dict[str, Any]:
        """Record the intent (a work item + audit) and return the stack with its build queued."""
        _known(name)
        now = self.ctx.clock()
        with self.ctx.db.transaction() as s:
            enqueue(s, STACK_BUILD_KIND, name, now)
            record_audit(s, caller, now, action="stack.build", target=name, project=None)
        write_build_status(
            self.data_dir, name, state="queued", step="queued", fraction=0.0, message=None,
            digest=None, updated_at=iso(now), requested_by=caller.principal,
        )  # fmt: skip
        return self.get(name)

    def export(self, names: Sequence[str], out: Path) -> tuple[str, ...]:
        for i, name in enumerate(names):
            try:
                stack_definition(name)
            except UserError as exc:
                raise UserError(exc.message, problems=[FieldProblem(f"name.{i}", exc.message)]) from None
        return self.catalog().export(names, out)

    def import_archive(self, caller: Caller, archive: Path) -> dict[str, str]:
        """Register an exported archive's stacks (digests checked; built from this version's definitions)."""
        try:
            imported = server_catalog(self.data_dir, offline=True).import_archive(archive)
        except UserError as exc:  # about the upload, not the server's temporary file it was kept in
            message = exc.message.replace(str(archive), "the uploaded archive")
            raise UserError(message, problems=[FieldProblem("body", message)]) from None
        with self.ctx.db.transaction() as s:
            record_audit(
                s, caller, self.ctx.clock(), action="stack.import", target=",".join(sorted(imported)),
                project=None, detail={"images": imported},
            )  # fmt: skip
        return imported
