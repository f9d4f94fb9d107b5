from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.unit.client.fake_api import ADMIN_TOKEN, FakeApi
from yunzhou.client import (
    ApiError,
    ClientConfig,
    ServerUnreachable,
    WaitTimeout,
    YunzhouClient,
    artifact_digest,
    build_artifact,
)
from yunzhou.domain.errors import FieldProblem

SCORE: dict[str, Any] = {
    "apiVersion": "score.dev/v1b1",
    "metadata": {"name": "orders"},
    "containers": {"web": {"image": "orders:1"}},
}


def _setup(client: YunzhouClient) -> None:
    client.create_project("shop", display_name="Shop")
    client.create_environment("shop", "dev")


def test_requests_carry_the_bearer_token_and_hit_api_v1(client: YunzhouClient, fake: FakeApi) -> None:
    client.whoami()
    request = fake.requests[-1]
    assert request.headers["authorization"] == f"Bearer {ADMIN_TOKEN}"
    assert str(request.url) == "http://yunzhou.test/api/v1/whoami"


def test_base_url_tolerates_a_trailing_slash_or_api_prefix(fake: FakeApi) -> None:
    for url in ("http://yunzhou.test/", "http://yunzhou.test/api/v1/"):
        with YunzhouClient(url, ADMIN_TOKEN, transport=fake.transport) as client:
            assert client.healthz() == {"status": "ok", "version": "0.1.0"}
            assert str(fake.requests[-1].url) == "http://yunzhou.test/api/v1/healthz"


def test_from_config_uses_url_and_token(fake: FakeApi) -> None:
    config = ClientConfig(url="http://yunzhou.test", token=ADMIN_TOKEN)
    with YunzhouClient.from_config(config, transport=fake.transport) as client:
        assert client.whoami()["principal"] == "admin"


def test_projects_members_and_environments(client: YunzhouClient) -> None:
    project = client.create_project("shop", display_name="Shop")
    assert project["name"] == "shop"
    assert [p["name"] for p in client.list_projects()] == ["shop"]
    assert client.get_project("shop")["display_name"] == "Shop"
    assert client.set_member("shop", "alice", "developer") == {"principal": "alice", "role": "developer"}
    assert {"principal": "alice", "role": "developer"} in client.list_members("shop")
    client.remove_member("shop", "alice")
    assert all(m["principal"] != "alice" for m in client.list_members("shop"))
    env = client.create_environment("shop", "dev", namespace="shop-dev")
    assert (env["target"], env["namespace"]) == ("local", "shop-dev")
    assert [e["name"] for e in client.list_environments("shop")] == ["dev"]
    assert client.get_environment("shop", "dev")["name"] == "dev"
    client.delete_environment("shop", "dev")
    client.delete_project("shop", version=1)
    assert client.list_projects() == []


def test_path_segments_are_escaped(client: YunzhouClient, fake: FakeApi) -> None:
    client.create_project("shop")
    client.set_member("shop", "team/a b", "viewer")
    assert fake.requests[-1].url.raw_path == b"/api/v1/projects/shop/members/team%2Fa%20b"
    assert {"principal": "team/a b", "role": "viewer"} in client.list_members("shop")


def test_deploy_scale_settings_releases_rollback(client: YunzhouClient, fake: FakeApi) -> None:
    _setup(client)
    deployment = client.deploy("shop", "dev", SCORE, {"replicas": 2}, None)
    assert deployment["release"]["number"] == 1
    assert fake.bodies("POST", "/deployments")[-1] == {
        "score": SCORE,
        "settings": {"replicas": 2},
        "artifact": None,
    }
    assert [a["name"] for a in client.list_apps("shop", "dev")] == ["orders"]
    assert client.get_app("shop", "dev", "orders")["replicas"] == 2
    assert client.scale("shop", "dev", "orders", 4)["replicas"] == 4
    assert fake.bodies("PUT", "/replicas")[-1] == {"replicas": 4}
    assert client.get_settings("shop", "dev", "orders") == {"settings": {"replicas": 2}, "version": 2}
    patched = client.update_settings("shop", "dev", "orders", {"rollout": {"maxSurge": 2}}, version=2)
    assert patched["release"]["number"] == 2
    assert fake.bodies("PATCH", "/settings")[-1] == {"settings": {"rollout": {"maxSurge": 2}}, "version": 2}
    assert [r["number"] for r in client.list_releases("shop", "dev", "orders")] == [2, 1]
    assert client.get_release("shop", "dev", "orders", 1)["score"] == SCORE
    rolled = client.rollback("shop", "dev", "orders")
    assert fake.bodies("POST", "/rollback")[-1] == {"to": None}
    assert rolled["release"]["cause"] == "rollback to 1"
    client.rollback("shop", "dev", "orders", to=2)
    assert fake.bodies("POST", "/rollback")[-1] == {"to": 2}
    rollouts = client.list_rollouts("shop", "dev", "orders")
    assert client.get_rollout("shop", "dev", "orders", rollouts[0]["id"])["id"] == rollouts[0]["id"]
    assert client.remove_app("shop", "dev", "orders") is None
    assert client.get_app("shop", "dev", "orders")["status"] == "removing"


def test_audit_filters_are_sent_as_query_parameters(client: YunzhouClient, fake: FakeApi) -> None:
    _setup(client)
    events = client.list_audit(project="shop", action="project.create", limit=5)
    assert [e["action"] for e in events] == ["project.create"]
    params = fake.requests[-1].url.params
    assert dict(params) == {"project": "shop", "action": "project.create", "limit": "5"}


def test_tokens(client: YunzhouClient, fake: FakeApi) -> None:
    created = client.create_token("ci", ["read", "write"], expires_in_seconds=3600, principal="bot")
    assert created["token"].startswith("yz_secret_")
    body = fake.bodies("POST", "/tokens")[-1]
    assert body == {"name": "ci", "scopes": ["read", "write"], "expires_in_seconds": 3600, "principal": "bot"}
    assert created["id"] in [t["id"] for t in client.list_tokens()]
    client.revoke_token(created["id"])
    revoked = YunzhouClient("http://yunzhou.test", created["token"], transport=fake.transport)
    with revoked, pytest.raises(ApiError) as caught:
        revoked.whoami()
    assert caught.value.status == 401


def test_api_error_carries_code_problems_and_request_id(client: YunzhouClient) -> None:
    _setup(client)
    with pytest.raises(ApiError) as caught:
        client.deploy("shop", "dev", {"metadata": {"name": "orders"}, "containers": {"web": {}}})
    error = caught.value
    assert (error.status, error.code, error.message) == (422, "invalid", "Score file is invalid")
    assert error.problems == [FieldProblem("containers.web.image", "required")]
    assert error.request_id is not None
    assert error.request_id.startswith("req-")
    assert str(error) == "Score file is invalid\n  - containers.web.image: required"


def test_missing_token_is_a_401(fake: FakeApi) -> None:
    with YunzhouClient("http://yunzhou.test", None, transport=fake.transport) as anonymous:
        assert "authorization" not in anonymous._http.headers
        with pytest.raises(ApiError) as caught:
            anonymous.list_projects()
    assert (caught.value.status, caught.value.code) == (401, "unauthenticated")


def _client_answering(response: httpx.Response | Exception) -> YunzhouClient:
    def handler(request: httpx.Request) -> httpx.Response:
        if isinstance(response, Exception):
            raise response
        return response

    return YunzhouClient("http://yunzhou.test", "t", transport=httpx.MockTransport(handler))


@pytest.mark.parametrize(
    ("response", "code", "message", "problems"),
    [
        (httpx.Response(500, text="boom"), "error", "HTTP 500: boom", []),
        (httpx.Response(404, text=""), "not_found", "HTTP 404", []),
        (
            httpx.Response(422, json={"detail": [{"loc": ["body", "name"], "msg": "field required"}]}),
            "invalid",
            "request is invalid",
            [FieldProblem("name", "field required")],
        ),
        (httpx.Response(403, json={"detail": "nope"}), "forbidden", "nope", []),
    ],
)
def test_error_bodies_outside_the_contract_still_make_api_errors(
    response: httpx.Response, code: str, message: str, problems: list[FieldProblem]
) -> None:
    with _client_answering(response) as client, pytest.raises(ApiError) as caught:
        client.list_projects()
    assert (caught.value.code, caught.value.message, caught.value.problems) == (code, message, problems)


def test_success_with_a_non_json_body_is_an_api_error() -> None:
    with _client_answering(httpx.Response(200, text="<html>")) as client, pytest.raises(ApiError) as caught:
        client.whoami()
    assert caught.value.code == "bad_response"


def test_connection_refused_says_how_to_start_a_server() -> None:
    refused = httpx.ConnectError("[Errno 111] Connection refused")
    with _client_answering(refused) as client, pytest.raises(ServerUnreachable) as caught:
        client.list_projects()
    message = str(caught.value)
    assert "not reachable at http://yunzhou.test" in message
    assert "yunzhou server" in message
    assert isinstance(caught.value, ApiError)
    assert caught.value.status == 0


def test_timeouts_become_api_errors() -> None:
    with _client_answering(httpx.ReadTimeout("slow")) as client, pytest.raises(ApiError) as caught:
        client.list_projects()
    assert caught.value.code == "timeout"


def test_reads_are_retried_after_503_honouring_retry_after(client: YunzhouClient, fake: FakeApi) -> None:
    fake.unavailable_for = 2
    assert client.list_projects() == []
    assert fake.slept == [2.0, 2.0]


def test_reads_give_up_after_the_retries(client: YunzhouClient, fake: FakeApi) -> None:
    fake.unavailable_for = 5
    with pytest.raises(ApiError) as caught:
        client.list_projects()
    assert (caught.value.status, caught.value.retry_after) == (503, 2.0)
    assert len(fake.requests) == 3


def test_writes_are_not_retried(client: YunzhouClient, fake: FakeApi) -> None:
    fake.unavailable_for = 1
    with pytest.raises(ApiError) as caught:
        client.create_project("shop")
    assert caught.value.code == "temporary"
    assert fake.slept == []


def test_wait_for_rollout_reports_progress_until_it_succeeds(client: YunzhouClient, fake: FakeApi) -> None:
    _setup(client)
    rollout = client.deploy("shop", "dev", SCORE)["rollout"]
    seen: list[str] = []
    final = client.wait_for_rollout(
        "shop", "dev", "orders", rollout["id"], on_progress=lambda r: seen.append(r["state"])
    )
    assert final["state"] == "succeeded"
    assert seen == ["progressing", "succeeded"]
    assert fake.slept == [1.0]


def test_wait_for_rollout_returns_a_failed_rollout(client: YunzhouClient, fake: FakeApi) -> None:
    _setup(client)
    fake.rollout_outcome = "failed"
    rollout = client.deploy("shop", "dev", SCORE)["rollout"]
    final = client.wait_for_rollout("shop", "dev", "orders", rollout["id"])
    assert final["state"] == "failed"
    assert "readiness probe failed" in final["message"]


def test_wait_for_rollout_stops_at_the_deadline(client: YunzhouClient, fake: FakeApi) -> None:
    _setup(client)
    fake.rollout_outcome = "progressing"  # never finishes
    rollout = client.deploy("shop", "dev", SCORE)["rollout"]
    with pytest.raises(WaitTimeout) as caught:
        client.wait_for_rollout("shop", "dev", "orders", rollout["id"], timeout=5, interval=2)
    assert caught.value.rollout["state"] == "progressing"
    assert fake.slept == [2, 2, 1]
    assert "still progressing after 5s" in str(caught.value)


def test_upload_artifact_posts_the_deterministic_archive(
    client: YunzhouClient, fake: FakeApi, tmp_path: Path
) -> None:
    (tmp_path / "app.py").write_text("print('hi')\n")
    digest = client.upload_artifact(tmp_path)
    request = fake.requests[-1]
    assert request.headers["content-type"] == "application/gzip"
    assert request.content == build_artifact(tmp_path)
    assert digest == artifact_digest(request.content)
    assert client.upload_artifact(tmp_path) == digest


def test_list_methods_return_the_items(client: YunzhouClient) -> None:
    _setup(client)
    assert json.loads(json.dumps(client.list_projects())) == [client.get_project("shop")]
