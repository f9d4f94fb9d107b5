"""Tokens created with tokens never outlive or outgrow them (issue 14, security item 7): at most the
creator's scopes, an expiry no later than the creator's, and revocation or expiry of any token above ends
a token at the API. On SQLite and PostgreSQL (the recursive queries run on both)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import update

from tests.conftest import Api
from yunzhou.services.tokens import _MAX_CHAIN
from yunzhou.store.models import Token

V1 = "/api/v1"


def mint(api: Api, headers: dict[str, str], **body: Any) -> Any:
    return api.http.post(
        f"{V1}/tokens", json={"name": "t", "scopes": ["read", "write"], **body}, headers=headers
    )


def created(api: Api, headers: dict[str, str], **body: Any) -> tuple[str, dict[str, str]]:
    r = mint(api, headers, **body)
    assert r.status_code == 201, r.text
    return r.json()["id"], api.headers(r.json()["token"])


def whoami(api: Api, headers: dict[str, str]) -> Any:
    return api.http.get(f"{V1}/whoami", headers=headers)


def test_a_read_token_cannot_mint_tokens_at_all(api: Api) -> None:
    reader = api.token_for("dash", ("read",))
    for scopes in (["write"], ["read"]):
        r = mint(api, reader, scopes=scopes, expires_in_seconds=600)
        assert r.status_code == 403, r.text
        assert "'write' scope" in r.json()["error"]["message"]
    assert [t["name"] for t in api.http.get(f"{V1}/tokens", headers=reader).json()["items"]] == ["dash-token"]


def test_a_token_grants_only_scopes_it_has(api: Api) -> None:
    writer = api.token_for("alice")
    r = mint(api, writer, scopes=["read", "admin"])
    assert r.status_code == 403, r.text
    problem = r.json()["error"]["problems"][0]
    assert problem["path"] == "scopes"
    assert "not yours: admin" in problem["message"]
    assert "allowed: pull, read, write" in problem["message"]  # pull: registry pulls only (docs/images.md)
    assert mint(api, writer, scopes=["metrics"]).status_code == 403
    assert mint(api, writer, scopes=["read"]).status_code == 201


def test_a_child_expires_no_later_than_its_creator(api: Api) -> None:
    _, parent = created(api, api.admin, principal="alice", expires_in_seconds=3600)
    for asked in (None, 7200):
        r = mint(api, parent, expires_in_seconds=asked)
        assert r.status_code == 422, r.text
        problem = r.json()["error"]["problems"][0]
        assert problem["path"] == "expires_in_seconds"
        assert "must be at most" in problem["message"]
        assert "cannot outlive its creator" in problem["message"]
    r = mint(api, parent, expires_in_seconds=1800)
    assert r.status_code == 201, r.text
    parent_expiry = api.http.get(f"{V1}/tokens", headers=parent).json()["items"][0]["expires_at"]
    assert datetime.fromisoformat(r.json()["expires_at"]) <= datetime.fromisoformat(parent_expiry)
    assert [t["name"] for t in api.http.get(f"{V1}/tokens", headers=api.admin).json()["items"]].count(
        "t"
    ) == 2


def test_revoking_a_token_ends_its_children_and_grandchildren(api: Api) -> None:
    parent_id, parent = created(api, api.admin, principal="alice")
    child_id, child = created(api, parent)
    grandchild_id, grandchild = created(api, child)
    _, sibling = created(api, api.admin, principal="alice")
    listed = {t["id"]: t for t in api.http.get(f"{V1}/tokens", headers=api.admin).json()["items"]}
    assert (listed[child_id]["parent_id"], listed[grandchild_id]["parent_id"]) == (parent_id, child_id)

    assert api.http.delete(f"{V1}/tokens/{child_id}", headers=parent).status_code == 204
    assert whoami(api, parent).status_code == 200  # revocation goes down, never up
    for ended in (child, grandchild):
        assert whoami(api, ended).status_code == 401

    _, other_child = created(api, parent)
    assert api.http.delete(f"{V1}/tokens/{parent_id}", headers=api.admin).status_code == 204
    r = whoami(api, other_child)
    assert r.status_code == 401
    assert f"revoked with {parent_id}" in r.json()["error"]["message"]
    assert whoami(api, sibling).status_code == 200
    listed = {t["id"]: t for t in api.http.get(f"{V1}/tokens", headers=api.admin).json()["items"]}
    assert listed[grandchild_id]["revoked"]


def test_a_revocation_recorded_only_on_the_parent_still_ends_the_child(api: Api) -> None:
    """Authentication walks the chain: a child is refused even if only its parent's row says revoked."""
    parent_id, parent = created(api, api.admin, principal="alice")
    _, child = created(api, parent)
    with api.cp.ctx.db.transaction() as s:
        s.execute(update(Token).where(Token.id == parent_id).values(revoked_at=api.cp.ctx.clock()))
    assert whoami(api, child).status_code == 401


def test_a_parents_expiry_ends_the_child(api: Api) -> None:
    parent_id, parent = created(api, api.admin, principal="alice", expires_in_seconds=3600)
    _, child = created(api, parent, expires_in_seconds=1800)
    assert whoami(api, child).status_code == 200
    # the parent's expiry moves into the past (as if its row said so): no event, yet the child ends
    past = api.cp.ctx.clock() - timedelta(seconds=1)
    with api.cp.ctx.db.transaction() as s:
        s.execute(update(Token).where(Token.id == parent_id).values(expires_at=past))
    r = whoami(api, child)
    assert r.status_code == 401
    assert f"with {parent_id}, the token it was created with" in r.json()["error"]["message"]


def test_tokens_without_a_parent_keep_working(api: Api) -> None:
    """Tokens from before parents were recorded (and the bootstrap admin token) have parent_id NULL."""
    _, legacy = created(api, api.admin, principal="alice")
    with api.cp.ctx.db.transaction() as s:
        s.execute(update(Token).where(Token.principal == "alice").values(parent_id=None))
    assert whoami(api, legacy).status_code == 200
    assert whoami(api, api.admin).status_code == 200


def test_a_chain_too_deep_for_the_walk_cannot_outlive_its_revoked_root(api: Api) -> None:
    """Authentication and revocation walk at most _MAX_CHAIN tokens: a holder who minted a chain deeper
    than that kept a token past its root's revocation (neither walk reached it). Creating a token that far
    down is refused now, so every token is within both walks."""
    root_id, holder = created(api, api.admin, principal="alice")
    chain = [holder]
    refused = None
    for _ in range(2 * _MAX_CHAIN + 10):
        r = mint(api, chain[-1])
        if r.status_code != 201:
            refused = r
            break
        chain.append(api.headers(r.json()["token"]))
    assert refused is not None, "a chain deeper than the walks was minted"
    assert refused.status_code == 403, refused.text
    assert f"{_MAX_CHAIN} tokens" in refused.json()["error"]["message"]
    assert len(chain) == _MAX_CHAIN - 1  # below the admin token, which counts too
    assert api.http.delete(f"{V1}/tokens/{root_id}", headers=api.admin).status_code == 204
    assert [whoami(api, h).status_code for h in chain] == [401] * len(chain)
