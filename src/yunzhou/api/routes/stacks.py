"""Stacks: list them, ask for a build (202: the stack-build worker runs it), export and import archives."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path as FilePath
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field, StringConstraints
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from yunzhou.api.auth import caller_of, control_plane, operation
from yunzhou.build.stacks import STACKS
from yunzhou.domain.access import Permission
from yunzhou.domain.errors import invalid
from yunzhou.services import Caller, ControlPlane
from yunzhou.services.stacks import StackService

router = APIRouter()
CP = Annotated[ControlPlane, Depends(control_plane)]
Who = Annotated[Caller, Depends(caller_of)]
# the schema names the stacks, so an unknown one is a 422 that lists them
_STACK_PATTERN = "^(" + "|".join(STACKS) + ")$"
StackName = Annotated[str, StringConstraints(pattern=_STACK_PATTERN)]
ARCHIVE_TYPES = ("application/x-tar", "application/octet-stream")
CHUNK = 1 << 20


class StackBuildStatus(BaseModel):
    state: str = Field(description="queued, building, built or failed")
    step: str
    fraction: float
    message: str | None = Field(description="Why it failed (mmdebstrap's last lines)")
    digest: str | None
    updated_at: str | None
    requested_by: str | None = None


class Stack(BaseModel):
    name: str
    version: str
    description: str
    packages: list[str]
    build_packages: list[str] = Field(description="Only in the stack's build image (npm for node)")
    image: str = Field(description="Its tag in the server's image store, e.g. stacks/python:3.11")
    digest: str | None = Field(description="null: not built (or imported) on this server")
    size: int | None = Field(description="Bytes: manifest + config + compressed layers")
    current: bool = Field(description="Built from this Yunzhou version's definition of the stack")
    state: str = Field(description="built, outdated or not built")
    build: StackBuildStatus | None = Field(description="The last build requested on this server")


class Stacks(BaseModel):
    items: list[Stack]


class StackImport(BaseModel):
    images: dict[str, str] = Field(description="tag → manifest digest of each stack imported")


def _service(cp: ControlPlane) -> StackService:
    return StackService(cp.ctx, cp.data_dir)


@operation(
    router, "GET", "/stacks", name="stack.list", permission=Permission.AUTHENTICATED, response_model=Stacks
)
def list_stacks(cp: CP) -> Any:
    return {"items": _service(cp).list()}


@operation(
    router,
    "GET",
    "/stacks/export",
    name="stack.export",
    permission=Permission.PLATFORM_ADMIN,
    response_class=StreamingResponse,
    responses={200: {"content": {"application/x-tar": {}}, "description": "An OCI image layout tar"}},
)
def export_stacks(
    cp: CP, name: Annotated[list[StackName], Query(min_length=1, max_length=10)]
) -> StreamingResponse:
    """The named stacks' images (with node's build image) as one OCI layout archive, for
    `POST /stacks/import` on a machine without a package mirror."""
    handle, raw = tempfile.mkstemp(prefix="yunzhou-stacks-", suffix=".tar")
    os.close(handle)
    out = FilePath(raw)
    try:
        _service(cp).export(name, out)
    except BaseException:
        out.unlink(missing_ok=True)
        raise
    return StreamingResponse(
        _file_chunks(out),
        media_type="application/x-tar",
        headers={
            "Content-Disposition": 'attachment; filename="yunzhou-stacks.tar"',
            "Content-Length": str(out.stat().st_size),
        },
        background=BackgroundTask(out.unlink, missing_ok=True),
    )


def _file_chunks(path: FilePath) -> Iterator[bytes]:
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            yield chunk


@operation(
    router,
    "POST",
    "/stacks/import",
    name="stack.import",
    permission=Permission.PLATFORM_ADMIN,
    response_model=StackImport,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {t: {"schema": {"type": "string", "format": "binary"}} for t in ARCHIVE_TYPES},
        }
    },
)
async def import_stacks(request: Request, cp: CP, caller: Who) -> Any:
    """An archive from `GET /stacks/export`: every blob is checked against its digest, and each stack
    must have been built from this Yunzhou's definition of it."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip()
    if ctype not in ARCHIVE_TYPES:
        raise invalid("content-type", f"{ctype or 'none'} is not accepted; send application/x-tar")
    handle, raw = tempfile.mkstemp(prefix="yunzhou-stacks-", suffix=".tar")
    archive = FilePath(raw)
    try:
        with os.fdopen(handle, "wb") as f:
            async for chunk in request.stream():
                await run_in_threadpool(f.write, chunk)
        imported = await run_in_threadpool(_service(cp).import_archive, caller, archive)
    finally:
        archive.unlink(missing_ok=True)
    return {"images": imported}


@operation(
    router,
    "POST",
    "/stacks/{name}/build",
    name="stack.build",
    permission=Permission.PLATFORM_ADMIN,
    status_code=202,
    response_model=Stack,
)
def build_stack(name: Annotated[StackName, Path()], cp: CP, caller: Who) -> Any:
    """Queue a build (the server's stack-build worker runs mmdebstrap); `GET /stacks` shows how far it is."""
    return _service(cp).request_build(caller, name)
