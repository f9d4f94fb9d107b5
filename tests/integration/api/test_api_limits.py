"""Security item 11 of issue 14 at the API's edge: bounded audit of refused strangers, a capped and paged
audit list, 64-bit numbers, 405 with Allow, and a 500 that leaves the keep-alive connection usable."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select

from tests.conftest import Api
from tests.helpers import UnixClock, served
from yunzhou.api import create_app
from yunzhou.api.errors import ANONYMOUS_AUDIT_PER_MINUTE, AnonymousAuditBudget
from yunzhou.services import ControlPlane
from yunzhou.store.models import AuditEvent

V1 = "/api/v1"
TOO_BIG = str(2**64)


def _audit_rows(api: Api) -> list[AuditEvent]:
    with api.cp.ctx.db.transaction() as s:
        rows = list(s.scalars(select(AuditEvent).order_by(AuditEvent.id)))
        s.expunge_all()
        return rows


def test_refused_stranger_writes_bounded_audit_rows(api: Api) -> None:
    huge = "p" * 5000
    r = api.http.post(f"{V1}/projects/{huge}/environments", json={"name": "x" * 100_000})
    assert r.status_code == 401
    (row,) = _audit_rows(api)
    assert row.actor == "anonymous"
    assert row.project is None  # not a name any project can have: not recorded
    assert len(row.target) <= 300
    assert len(row.action) <= 60
    assert len(str(row.detail)) < 200


def test_a_flood_of_unauthenticated_requests_grows_the_audit_log_by_a_bounded_amount(api: Api) -> None:
    bad = {"Authorization": "Bearer yzt_not-a-token"}
    for _ in range(ANONYMOUS_AUDIT_PER_MINUTE + 40):
        assert api.http.post(f"{V1}/projects", json={"name": "a"}, headers=bad).status_code == 401
    rows = _audit_rows(api)
    assert len(rows) == ANONYMOUS_AUDIT_PER_MINUTE  # the other 40 are only counted


def test_the_budget_reports_what_it_suppressed_when_the_next_window_opens() -> None:
    clock = UnixClock()
    budget = AnonymousAuditBudget(per_window=2, window_seconds=60)
    assert [budget.admit(clock())[0] for _ in range(5)] == [True, True, False, False, False]
    start = clock()
    clock.t += 61
    assert budget.admit(clock()) == (True, 3, start)
    assert budget.admit(clock() + timedelta(seconds=1)) == (True, 0, None)


def test_audit_limit_above_the_cap_is_refused_naming_limit_and_the_maximum(api: Api) -> None:
    r = api.http.get(f"{V1}/audit", params={"limit": 1001}, headers=api.admin)
    assert r.status_code == 422
    (problem,) = r.json()["error"]["problems"]
    assert problem["path"].endswith("limit")
    assert "1000" in problem["message"]


def test_audit_pages_with_next_before_id(api: Api) -> None:
    for name in ("a1", "a2", "a3"):
        assert api.http.post(f"{V1}/projects", json={"name": name}, headers=api.admin).status_code == 201
    first = api.http.get(f"{V1}/audit", params={"limit": 2}, headers=api.admin).json()
    assert len(first["items"]) == 2
    assert first["next_before_id"] == first["items"][-1]["id"]
    rest = api.http.get(
        f"{V1}/audit", params={"limit": 2, "before_id": first["next_before_id"]}, headers=api.admin
    ).json()
    assert [e["target"] for e in first["items"] + rest["items"]] == ["a3", "a2", "a1"]
    assert rest["next_before_id"] is None


@pytest.mark.parametrize(
    ("path", "param"),
    [
        (f"{V1}/audit?before_id={TOO_BIG}", "before_id"),
        (f"{V1}/projects/shop/alerts/history?before_id={TOO_BIG}", "before_id"),
        (f"{V1}/projects/shop/environments/dev/apps/web/logs?after_id={TOO_BIG}", "after_id"),
        (f"{V1}/projects/shop/environments/dev/apps/web/releases/{TOO_BIG}", "number"),
        (f"{V1}/projects/shop/environments/dev/apps/web/rollouts/{TOO_BIG}", "rollout_id"),
    ],
)
def test_numbers_past_64_bits_are_422_naming_the_parameter(api: Api, path: str, param: str) -> None:
    r = api.http.get(path, headers=api.admin)
    assert r.status_code == 422, r.text
    assert [p["path"].rsplit(".", 1)[-1] for p in r.json()["error"]["problems"]] == [param]


def test_silence_ids_past_64_bits_are_422(api: Api) -> None:
    r = api.http.delete(f"{V1}/alerts/silences/{TOO_BIG}", headers=api.admin)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["problems"][0]["path"].endswith("silence_id")


def test_405_lists_every_method_of_the_path_in_allow(api: Api) -> None:
    r = api.http.patch(f"{V1}/projects/shop/members/bob", headers=api.admin)
    assert r.status_code == 405
    assert r.headers["allow"] == "DELETE, PUT"
    assert r.json()["error"]["code"] == "method_not_allowed"


@pytest.fixture
def real_server(control_plane: ControlPlane) -> Iterator[str]:
    """The API served by uvicorn on a loopback port, plus a route that fails as a bug would."""
    app = create_app(control_plane)

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("a bug")

    with served(app) as url:
        yield url


def test_after_a_500_the_keep_alive_connection_still_serves(real_server: str) -> None:
    with httpx.Client(base_url=real_server, timeout=10) as http:
        r = http.get("/boom")
        assert r.status_code == 500
        assert r.json()["error"]["code"] == "internal"
        assert r.json()["error"]["request_id"] == r.headers["x-request-id"]
        # the same pooled connection: before the fix uvicorn reset it and this raised ReadError
        assert http.get(f"{V1}/healthz").status_code == 200
