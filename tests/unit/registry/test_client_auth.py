"""The registry client answering authentication challenges, and its error translation (MockTransport)."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from yunzhou.build.oci import MEDIA_MANIFEST, ImageStore
from yunzhou.domain.errors import PermanentError, TemporaryError, UserError
from yunzhou.registry.client import RegistryClient

DIGEST = "sha256:" + "a" * 64
CHALLENGE = 'Bearer realm="http://auth.test/token",service="reg",scope="repository:shop/web:pull"'


class FakeRegistry:
    """A registry that wants a bearer token from its realm, which wants basic auth alice:secret."""

    def __init__(self) -> None:
        self.valid_tokens = {"t1"}
        self.token_requests: list[httpx.QueryParams] = []
        self.issued = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.host == "auth.test":
            self.token_requests.append(request.url.params)
            expected = "Basic " + base64.b64encode(b"alice:secret").decode()
            if request.headers.get("Authorization") != expected:
                return httpx.Response(401)
            self.issued += 1
            return httpx.Response(200, json={"token": f"t{self.issued}"})
        auth = request.headers.get("Authorization", "")
        if auth.removeprefix("Bearer ") not in self.valid_tokens:
            return httpx.Response(401, headers={"WWW-Authenticate": CHALLENGE})
        return httpx.Response(200, headers={"Docker-Content-Digest": DIGEST})


def client_for(handler: FakeRegistry, **credentials: str) -> RegistryClient:
    return RegistryClient("http://reg.test", transport=httpx.MockTransport(handler), **credentials)


def test_bearer_challenge_fetches_a_token_with_basic_auth_and_reuses_it() -> None:
    registry = FakeRegistry()
    with client_for(registry, username="alice", password="secret") as client:
        assert client.resolve("shop/web", "v1") == DIGEST
        assert client.resolve("shop/web", "v2") == DIGEST
    assert len(registry.token_requests) == 1
    assert registry.token_requests[0].get_list("scope") == ["repository:shop/web:pull"]
    assert registry.token_requests[0]["service"] == "reg"


def test_an_expired_token_is_replaced_once() -> None:
    registry = FakeRegistry()
    with client_for(registry, username="alice", password="secret") as client:
        client.resolve("shop/web", "v1")
        registry.valid_tokens = {"t2"}  # t1 expired
        assert client.resolve("shop/web", "v1") == DIGEST
    assert registry.issued == 2


def test_wrong_credentials_are_a_user_error_naming_the_reference() -> None:
    with (
        client_for(FakeRegistry(), username="alice", password="wrong") as client,
        pytest.raises(UserError, match=r"refused access to shop/web:v1") as caught,
    ):
        client.resolve("shop/web", "v1")
    assert caught.value.code == "denied"


def test_a_token_that_does_not_grant_access_is_denied_not_retried_forever() -> None:
    registry = FakeRegistry()
    registry.valid_tokens = set()
    with (
        client_for(registry, username="alice", password="secret") as client,
        pytest.raises(UserError, match=r"registry refused shop/web:v1: not authenticated \(401\)"),
    ):
        client.resolve("shop/web", "v1")
    assert registry.issued == 1


def test_basic_challenge_sends_the_credentials() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("Authorization", ""))
        if not request.headers.get("Authorization", "").startswith("Basic "):
            return httpx.Response(401, headers={"WWW-Authenticate": 'Basic realm="reg"'})
        return httpx.Response(200, json={"tags": ["v1"]})

    with RegistryClient(
        "http://reg.test", username="bob", password="pw", transport=httpx.MockTransport(handler)
    ) as client:
        assert client.tags("shop/web") == ["v1"]
    assert seen[0] == ""
    assert seen[1].startswith("Basic ")


@pytest.mark.parametrize(
    ("status", "error", "message"),
    [
        (403, UserError, r"registry refused shop/web:v1: access denied \(403\): DENIED: no"),
        (404, UserError, r"shop/web:v1 not found in the registry: MANIFEST_UNKNOWN: no"),
        (500, TemporaryError, r"failed on shop/web:v1 \(500\)"),
        (503, TemporaryError, r"failed on shop/web:v1 \(503\)"),
    ],
)
def test_error_answers_are_translated(status: int, error: type[Exception], message: str) -> None:
    code = {403: "DENIED", 404: "MANIFEST_UNKNOWN"}.get(status, "UNKNOWN")

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json={"errors": [{"code": code, "message": "no"}]})

    with (
        RegistryClient("http://reg.test", transport=httpx.MockTransport(handler)) as client,
        pytest.raises(error, match=message),
    ):
        client.get_manifest("shop/web", "v1")


def test_a_push_refused_while_the_registry_is_read_only_is_a_temporary_error() -> None:
    """docker-registry in maintenance read-only mode (garbage collection) answers writes with 405
    UNSUPPORTED: the caller retries (a build's push, a signature), not a user error."""

    def handler(request: httpx.Request) -> httpx.Response:
        body = {"errors": [{"code": "UNSUPPORTED", "message": "The operation is unsupported."}]}
        return httpx.Response(405, json=body)

    with (
        RegistryClient("http://reg.test", transport=httpx.MockTransport(handler)) as client,
        pytest.raises(TemporaryError, match=r"read-only for maintenance \(405 UNSUPPORTED\)") as exc,
    ):
        client.put_manifest("shop/web", "v1", b"{}", "application/vnd.oci.image.manifest.v1+json")
    assert exc.value.retry_after >= 5


def test_any_other_405_is_still_a_user_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(405, json={"errors": [{"code": "DENIED", "message": "no"}]})

    with (
        RegistryClient("http://reg.test", transport=httpx.MockTransport(handler)) as client,
        pytest.raises(UserError, match=r"\(405\)"),
    ):
        client.get_manifest("shop/web", "v1")


def test_a_manifest_whose_content_is_not_the_asked_digest_is_refused(tmp_path: Path) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"Content-Type": MEDIA_MANIFEST}, content=b'{"layers":[]}')

    store = ImageStore(tmp_path / "store")
    with (
        RegistryClient("http://reg.test", transport=httpx.MockTransport(handler)) as client,
        pytest.raises(PermanentError, match=f"shop/web@{DIGEST}"),
    ):
        client.pull("shop/web", DIGEST, store)
    assert list(store.blob_dir.iterdir()) == []


def test_an_oversized_manifest_is_refused_without_reading_it_all() -> None:
    sent: list[int] = []

    def endless() -> Iterator[bytes]:
        for _ in range(64):  # 64 MiB offered; the client stops after 4
            sent.append(1)
            yield b" " * (1 << 20)

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"Content-Type": MEDIA_MANIFEST}, content=endless())

    with (
        RegistryClient("http://reg.test", transport=httpx.MockTransport(handler)) as client,
        pytest.raises(UserError, match="shop/web:v1 is larger than 4194304 bytes"),
    ):
        client.get_manifest("shop/web", "v1")
    assert len(sent) < 8
