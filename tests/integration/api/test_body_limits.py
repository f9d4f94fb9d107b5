"""Security item 4 (#14): every request body is bounded before it is read.

Against a real server process: a stranger's 150 MB body is refused (401, or the console's redirect to its
login) without the server reading it, so its peak memory barely moves (it grew by ~460 MB before); an
authenticated over-limit body gets 413 naming the limit and its setting, before or while it streams.
In process: the same refusals write nothing (no row, no file).
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Api
from yunzhou.domain.limits import Limits
from yunzhou.store.models import Artifact, Project
from yunzhou.testing import ControlPlaneProcess

BIG = 150 * 1024 * 1024
CHUNK = 1024 * 1024
MAX_GROWTH = 20 * 1024 * 1024


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlaneProcess]:
    data = tmp_path_factory.mktemp("limits") / "data"
    with ControlPlaneProcess(data, extra_args=("--no-runtime",), startup_timeout=120) as cp:
        yield cp


def _peak_rss(pid: int) -> int:
    """VmHWM: the most memory the process ever had resident, so a body buffered and freed still shows."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc status")


def _send(
    port: int, path: str, headers: dict[str, str], *, size: int, chunked: bool = False
) -> tuple[int, bytes]:
    """POST ``size`` bytes to ``path`` over a raw socket (a declared length, or chunked): the answer's
    status and body. Sending stops early if the server closes the connection."""
    head = {"Host": "127.0.0.1", "Content-Type": "application/json", **headers}
    head["Transfer-Encoding" if chunked else "Content-Length"] = "chunked" if chunked else str(size)
    request = f"POST {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in head.items()) + "\r\n"
    block = b"[" * CHUNK
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(request.encode())
        try:
            for _ in range(size // CHUNK):
                sock.sendall(b"%x\r\n%s\r\n" % (len(block), block) if chunked else block)
            if chunked:
                sock.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed: what matters is what it answered
        answer = b""
        while b"\r\n\r\n" not in answer and (data := sock.recv(65536)):
            answer += data
        head_bytes, _, body = answer.partition(b"\r\n\r\n")
        length = next(
            (
                int(line.split(b":")[1])
                for line in head_bytes.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            ),
            0,
        )
        while len(body) < length and (data := sock.recv(65536)):
            body += data
    return int(head_bytes.split(b" ", 2)[1]), body


@pytest.mark.parametrize(
    ("path", "chunked", "expected"),
    [
        ("/api/v1/projects", False, 401),  # JSON: FastAPI used to read and parse it before the 401
        ("/api/v1/projects", True, 401),
        ("/api/v1/artifacts", False, 401),
        ("/projects/shop/dev/deploy", False, 303),  # console form without a session: to the login page
    ],
)
def test_a_strangers_150mb_body_is_refused_unread(
    server: ControlPlaneProcess, path: str, chunked: bool, expected: int
) -> None:
    assert server.process is not None
    _send(server.api_port, "/api/v1/projects", {}, size=0)  # warm: the first request's own allocations
    before = _peak_rss(server.process.pid)
    status, _ = _send(
        server.api_port, path, {"Authorization": "Bearer not-a-token"}, size=BIG, chunked=chunked
    )
    growth = _peak_rss(server.process.pid) - before
    assert status == expected
    assert growth < MAX_GROWTH, f"peak RSS grew by {growth / 2**20:.0f} MiB for a refused 150 MB body"


@pytest.mark.parametrize("chunked", [False, True])
def test_an_authenticated_150mb_json_body_gets_413_naming_the_limit(
    server: ControlPlaneProcess, chunked: bool
) -> None:
    assert server.process is not None
    before = _peak_rss(server.process.pid)
    auth = {"Authorization": f"Bearer {server.admin_token}"}
    status, answer = _send(server.api_port, "/api/v1/projects", auth, size=BIG, chunked=chunked)
    growth = _peak_rss(server.process.pid) - before
    assert status == 413, answer
    error = json.loads(answer)["error"]
    assert error["code"] == "payload_too_large"
    assert error["message"].endswith(
        "a JSON request may be at most 1 MiB (server setting YUNZHOU_MAX_JSON_BODY)"
    )
    assert growth < MAX_GROWTH


def test_json_over_the_limit_is_413_and_creates_nothing(api: Api) -> None:
    api.cp.ctx.limits = Limits(json_body=1024)
    body = json.dumps({"name": "shop", "description": "x" * 2000}).encode()
    headers = api.admin | {"Content-Type": "application/json"}
    r = api.http.post("/api/v1/projects", content=body, headers=headers)
    assert r.status_code == 413, r.text
    error = r.json()["error"]
    assert error["code"] == "payload_too_large"
    assert error["message"] == (
        f"the request body is {len(body)} bytes: "
        "a JSON request may be at most 1 KiB (server setting YUNZHOU_MAX_JSON_BODY)"
    )
    assert error["problems"][0]["path"] == "body"
    with api.cp.ctx.db.transaction() as s:
        assert s.query(Project).count() == 0
    small = api.http.post("/api/v1/projects", json={"name": "shop"}, headers=api.admin)
    assert small.status_code == 201, small.text


def test_a_chunked_upload_over_the_limit_is_413_and_leaves_no_file(api: Api) -> None:
    api.cp.ctx.limits = Limits(artifact_body=64 * 1024)

    def body() -> Iterator[bytes]:
        for _ in range(20):
            yield b"\x1f\x8b" + bytes(8190)

    headers = api.admin | {"Content-Type": "application/gzip"}
    r = api.http.post("/api/v1/artifacts", content=body(), headers=headers)
    assert r.status_code == 413, r.text
    assert r.json()["error"]["code"] == "payload_too_large"
    assert "64 KiB (server setting YUNZHOU_MAX_ARTIFACT_BYTES)" in r.json()["error"]["message"]
    artifacts = api.cp.data_dir / "artifacts"
    assert [p for p in artifacts.rglob("*") if p.is_file()] == []
    with api.cp.ctx.db.transaction() as s:
        assert s.query(Artifact).count() == 0


def test_limits_come_from_the_servers_environment() -> None:
    limits = Limits.from_env({"YUNZHOU_MAX_JSON_BODY": "2Mi", "YUNZHOU_MAX_UNPACKED_FILES": "500"})
    assert (limits.json_body, limits.unpacked_files, limits.artifact_body) == (2 * 2**20, 500, 200 * 2**20)
    with pytest.raises(Exception, match="YUNZHOU_MAX_UNPACKED_BYTES"):
        Limits.from_env({"YUNZHOU_MAX_UNPACKED_BYTES": "lots"})
