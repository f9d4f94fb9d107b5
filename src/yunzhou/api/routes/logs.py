"""An app's logs: captured stdout/stderr and router access records, from the embedded log store."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import StringConstraints

from yunzhou.api import schemas
from yunzhou.api.auth import control_plane, operation
from yunzhou.domain.access import Permission
from yunzhou.domain.errors import TemporaryError
from yunzhou.observe import (
    MAX_QUERY_LIMIT,
    FieldFilter,
    LogStore,
    format_rfc3339,
    json_fields,
    parse_filters,
    parse_time_bound,
)
from yunzhou.services import ControlPlane

router = APIRouter()
CP = Annotated[ControlPlane, Depends(control_plane)]
APP = "/projects/{project}/environments/{env}/apps/{app}"
TIME_HELP = "A duration before now (90s, 10m, 1h30m, 2d) or an RFC 3339 time (2024-05-01T10:00:00Z)"
WHERE_HELP = (
    "Field filters on JSON lines, all must hold: KEY OP VALUE with OP one of = != > >= < <= "
    '(level=error, user_id=42, status>=500, msg="two words"); repeat it, or separate filters by spaces'
)
# bounded so that a request with every filter at its longest still fits the server's 64 KiB request line
Where = Annotated[
    list[Annotated[str, StringConstraints(max_length=200)]] | None,
    Query(max_length=10, description=WHERE_HELP + " (at most 10, each at most 200 characters)"),
]
GREP_HELP = "Case-insensitive substring, taken literally"
Grep = Annotated[str | None, Query(max_length=1000, description=GREP_HELP)]


def log_store(request: Request) -> LogStore:
    store: LogStore | None = getattr(request.app.state, "log_store", None)
    if store is None:
        raise TemporaryError("this server keeps no logs yet (its log store is not running)", retry_after=5.0)
    return store


@operation(
    router,
    "GET",
    APP + "/logs",
    name="logs.list",
    permission=Permission.APP_READ,
    response_model=schemas.LogPage,
)
def list_logs(
    request: Request,
    project: schemas.Label,
    env: schemas.Label,
    app: schemas.Label,
    cp: CP,
    since: Annotated[str | None, Query(max_length=64, description=TIME_HELP + "; inclusive")] = None,
    until: Annotated[str | None, Query(max_length=64, description=TIME_HELP + "; exclusive")] = None,
    grep: Grep = None,
    instance: Annotated[str | None, Query(max_length=200)] = None,
    stream: Literal["stdout", "stderr", "access"] | None = None,
    where: Where = None,
    after_id: Annotated[
        int | None,
        Query(ge=0, le=schemas.INT_MAX, description="Only records after this id (paging forward)"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_QUERY_LIMIT)] = 100,
) -> Any:
    """Without after_id: the newest `limit` matching records. With it: the first `limit` after it."""
    cp.apps.get(project, env, app)  # 404 for an app that does not exist
    now = time.time()
    since_time, until_time = _time_bounds(since, until, now)
    filters = parse_filters(where or (), field="query.where")
    pods = cp.apps.runtime_logs(
        project, env, app, since_seconds=None if since_time is None else max(1, int(now - since_time)),
        instance=instance, limit=limit,
    )  # fmt: skip
    if pods is not None:  # a cluster target: read from the pods, filtered here like the store filters
        app_fields = {"project": project, "env": env, "app": app}
        return _pod_page(
            pods, app_fields, grep=grep, stream=stream, where=filters, after_id=after_id, limit=limit
        )
    page = log_store(request).page(
        f"{project}/{env}/{app}",
        since=since_time,
        until=until_time,
        grep=grep,
        instance=instance,
        stream=stream,
        where=filters,
        after_id=after_id,
        limit=limit,
    )
    items = [{**record, "time": format_rfc3339(record["time"])} for record in page.items]
    return {"items": items, "next_after_id": page.next_after_id}


@operation(
    router,
    "GET",
    APP + "/logs/export",
    name="logs.export",
    permission=Permission.APP_READ,
    response_class=StreamingResponse,
    responses={200: {"content": {"application/x-ndjson": {}}, "description": "One record per line"}},
)
def export_logs(
    request: Request,
    project: schemas.Label,
    env: schemas.Label,
    app: schemas.Label,
    cp: CP,
    since: Annotated[str | None, Query(max_length=64, description=TIME_HELP + "; inclusive")] = None,
    until: Annotated[str | None, Query(max_length=64, description=TIME_HELP + "; exclusive")] = None,
    grep: Grep = None,
    instance: Annotated[str | None, Query(max_length=200)] = None,
    stream: Literal["stdout", "stderr", "access"] | None = None,
    where: Where = None,
) -> StreamingResponse:
    """Every matching record, oldest first, as JSON lines (application/x-ndjson): the same objects as
    the list's items, for shipping to a collector (Elasticsearch, Loki, OpenSearch …). Ends at the newest
    record stored when the export began."""
    cp.apps.get(project, env, app)
    since_time, until_time = _time_bounds(since, until, time.time())
    filters = parse_filters(where or (), field="query.where")
    store = log_store(request)
    records = store.export(
        f"{project}/{env}/{app}",
        since=since_time,
        until=until_time,
        grep=grep,
        instance=instance,
        stream=stream,
        where=filters,
    )
    return StreamingResponse(_ndjson(records), media_type="application/x-ndjson")


def _ndjson(records: Iterator[dict[str, Any]]) -> Iterator[bytes]:
    chunk: list[str] = []
    for record in records:
        chunk.append(json.dumps({**record, "time": format_rfc3339(record["time"])}, ensure_ascii=False))
        if len(chunk) >= 1000:
            yield ("\n".join(chunk) + "\n").encode()
            chunk = []
    if chunk:
        yield ("\n".join(chunk) + "\n").encode()


def _time_bounds(since: str | None, until: str | None, now: float) -> tuple[float | None, float | None]:
    since_time = None if since is None else parse_time_bound(since, now=now, field="query.since")
    until_time = None if until is None else parse_time_bound(until, now=now, field="query.until")
    return since_time, until_time


def _pod_page(
    lines: list[dict[str, Any]],
    app_fields: dict[str, str],
    *,
    grep: str | None,
    stream: str | None,
    where: tuple[FieldFilter, ...],
    after_id: int | None,
    limit: int,
) -> dict[str, Any]:
    """Pod log lines as log records. Their id is the line's time in microseconds, so following with
    after_id works the same as for the log store."""
    items = []
    for line in lines:
        stamp = str(line["time"])
        seconds = parse_time_bound(stamp[:26].rstrip("Z") + "Z", now=time.time(), field="time")
        record_id = int(seconds * 1_000_000)
        if after_id is not None and record_id <= after_id:
            continue
        if grep and grep.lower() not in str(line["line"]).lower():
            continue
        if stream and stream != line["stream"]:
            continue
        fields = json_fields(str(line["line"])) or {}
        if not all(check.matches(fields) for check in where):
            continue
        items.append({
            "id": record_id, "time": format_rfc3339(seconds), **app_fields, "instance": line["instance"],
            "stream": line["stream"], "line": line["line"], "release": line["release"], "fields": fields,
        })  # fmt: skip
    items = items[-limit:] if after_id is None else items[:limit]
    return {"items": items, "next_after_id": items[-1]["id"] if items else after_id or 0}
