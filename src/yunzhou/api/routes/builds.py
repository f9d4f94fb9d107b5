"""Build jobs: start (202), list, get, follow the log, cancel. The build runs in a reconcile worker."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from yunzhou.api import schemas
from yunzhou.api.auth import caller_of, control_plane, operation
from yunzhou.domain.access import Permission
from yunzhou.services import Caller, ControlPlane

router = APIRouter()
CP = Annotated[ControlPlane, Depends(control_plane)]
Who = Annotated[Caller, Depends(caller_of)]
ENV = "/projects/{project}/environments/{env}"
BuildId = Annotated[str, Path(pattern=r"^b[0-9a-f]{12}$", description="A build's id (b + 12 hex digits)")]
FOLLOW_POLL_S = 0.5
HEARTBEAT_S = 15.0  # an empty chunk at least this often while the log is silent (clients time out at 90 s)
# One response follows for at most this long, then ends without the closing line and the client goes on
# from its offset: a server that stops drains its open responses before it stops its builds, so an
# endless one would hold the stop until the build ended.
FOLLOW_MAX_S = 30.0


class BuildCreate(schemas.Body):
    artifact: str = Field(
        min_length=1, max_length=80, description="sha256:… digest returned by POST /artifacts"
    )
    score: Any = Field(
        default=None, description="The Score to deploy when the build succeeds; omit for a build only"
    )
    settings: Any = Field(default=None, description="Platform settings deployed with the Score")
    app: schemas.Label | None = Field(default=None, description="The app (required without a Score)")
    stack: str | None = Field(
        default=None,
        max_length=40,
        description="python, node, java, tomcat, static or dockerfile; default: detected",
    )
    time_limit_seconds: int | None = Field(default=None, ge=1, description="Default YUNZHOU_BUILD_TIME_LIMIT")


class BuildProgress(BaseModel):
    step: str
    fraction: float


class Build(BaseModel):
    id: str
    project: str
    env: str
    app: str
    address: str
    state: str = Field(description="queued, running, succeeded, failed or cancelled")
    stack: str | None
    stack_version: str | None
    stack_digest: str | None
    artifact: str
    image: str | None = Field(description="PROJECT/APP@sha256:… once built")
    image_digest: str | None
    image_size: int | None
    deps_cached: bool | None
    pushed: bool
    error: str
    progress: BuildProgress
    deploy: bool = Field(description="Whether success deploys the image as a new release")
    release: int | None = Field(description="The release the build created")
    time_limit_seconds: int
    cancel_requested: bool
    created_by: str
    created_at: str
    started_at: str | None
    finished_at: str | None


class BuildLog(BaseModel):
    text: str
    offset: int
    next_offset: int
    state: str
    done: bool = Field(description="The build finished and the whole log has been read")


@operation(
    router,
    "POST",
    ENV + "/builds",
    name="build.start",
    permission=Permission.APP_DEPLOY,
    status_code=202,
    response_model=Build,
)
def start_build(project: schemas.Label, env: schemas.Label, body: BuildCreate, cp: CP, caller: Who) -> Any:
    """Queue a build of an uploaded artifact. Everything a deploy checks is checked now (422/404/409 and
    nothing queued); at most YUNZHOU_BUILD_MAX_ACTIVE builds per project are queued or running (409)."""
    return cp.builds.start(
        caller, project, env, artifact=body.artifact, score=body.score, settings=body.settings,
        app=body.app, stack=body.stack, time_limit_seconds=body.time_limit_seconds,
    )  # fmt: skip


@operation(
    router,
    "GET",
    ENV + "/builds",
    name="build.list",
    permission=Permission.APP_READ,
    response_model=schemas.Items[Build],
)
def list_builds(
    project: schemas.Label,
    env: schemas.Label,
    cp: CP,
    caller: Who,
    app: Annotated[schemas.Label | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> Any:
    """Newest first."""
    return {"items": cp.builds.list(caller, project, env, app, limit)}


@operation(
    router,
    "GET",
    "/builds/{build_id}",
    name="build.get",
    permission=Permission.BUILD_READ,
    response_model=Build,
)
def get_build(build_id: BuildId, cp: CP, caller: Who) -> Any:
    """Viewers of the build's project; 404 for anyone else."""
    return cp.builds.get(caller, build_id)


@operation(
    router,
    "GET",
    "/builds/{build_id}/logs",
    name="build.logs",
    permission=Permission.BUILD_READ,
    response_model=BuildLog,
    responses={
        200: {"content": {"application/x-ndjson": {}}, "description": "With follow: one chunk per line"}
    },
)
def build_logs(
    build_id: BuildId,
    cp: CP,
    caller: Who,
    offset: Annotated[int, Query(ge=0, le=schemas.INT_MAX)] = 0,
    follow: bool = False,
) -> Any:
    """The log from a byte offset. With follow: application/x-ndjson, one `{"offset", "text",
    "next_offset"}` object per chunk as it is written, ending with `{"done": true, "state", "error",
    "release", "next_offset"}` once the build finished. A response lasts at most 30 s: one that ends
    without that line is followed on from the `next_offset` of its last chunk."""
    page = cp.builds.log(caller, build_id, offset)  # 404 here, before any streaming starts
    if not follow:
        return page
    return StreamingResponse(_follow(cp, caller, build_id, page), media_type="application/x-ndjson")


def _follow(cp: ControlPlane, caller: Caller, build_id: str, page: dict[str, Any]) -> Iterator[bytes]:
    pause = threading.Event()
    quiet_since = started = time.monotonic()
    while time.monotonic() - started < FOLLOW_MAX_S:
        if page["text"]:
            yield _line({"offset": page["offset"], "text": page["text"], "next_offset": page["next_offset"]})
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since >= HEARTBEAT_S:  # a silent step: tell the client we are here
            yield _line({"offset": page["offset"], "text": ""})
            quiet_since = time.monotonic()
        if page["done"]:
            build = cp.builds.get(caller, build_id)
            end = {
                "done": True,
                "state": build["state"],
                "error": build["error"],
                "release": build["release"],
            }
            yield _line({**end, "next_offset": page["next_offset"]})
            return
        if not page["text"]:
            pause.wait(FOLLOW_POLL_S)
        page = cp.builds.log(caller, build_id, page["next_offset"])


def _line(doc: dict[str, Any]) -> bytes:
    return (json.dumps(doc, ensure_ascii=False) + "\n").encode()


@operation(
    router,
    "POST",
    "/builds/{build_id}/cancel",
    name="build.cancel",
    permission=Permission.BUILD_CANCEL,
    response_model=Build,
)
def cancel_build(build_id: BuildId, cp: CP, caller: Who) -> Any:
    """A queued build is cancelled at once; a running one stops within seconds (state shows when)."""
    return cp.builds.cancel(caller, build_id)
