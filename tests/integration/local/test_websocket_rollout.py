"""A WebSocket echo app on the local target, through the platform's router, across a rolling update.

A real control plane (host processes), its router and the app (apps/wsecho: a standard-library RFC 6455
server); the client is the ``websockets`` library.
"""

from __future__ import annotations

import socket
import time

from websockets.sync.client import ClientConnection, connect

from tests.integration.local.test_traffic import APPS, DEADLINE, client, mesh_score, server
from yunzhou.client import YunzhouClient
from yunzhou.testing import ControlPlaneProcess, polling

__all__ = ["client", "server"]  # the fixtures (host processes, project shop/dev), shared with test_traffic

HOST = "chat.dev.shop.localhost"


def deploy(client: YunzhouClient, version: str) -> str:
    """Start a rollout of ``version``; returns its id."""
    result = client.deploy(
        "shop", "dev", mesh_score("chat", version), {}, client.upload_artifact(APPS / "wsecho")
    )
    rollout_id: str = result["rollout"]["id"]
    return rollout_id


def finish(client: YunzhouClient, rollout_id: str) -> None:
    done = client.wait_for_rollout("shop", "dev", "chat", rollout_id, timeout=DEADLINE, interval=0.1)
    assert done["state"] == "succeeded", done


def chat(server: ControlPlaneProcess) -> ClientConnection:
    sock = socket.create_connection(("127.0.0.1", server.router_port), timeout=10)
    try:
        return connect(f"ws://{HOST}/ws", sock=sock, max_size=None, compression=None, ping_interval=None)
    except BaseException:
        sock.close()
        raise


def version_of(ws: ClientConnection) -> str:
    ws.send("version?")
    answer = ws.recv(timeout=10)
    assert isinstance(answer, str)
    return answer


def test_a_websocket_echo_app_works_through_the_router_across_a_rolling_update(
    server: ControlPlaneProcess, client: YunzhouClient
) -> None:
    finish(client, deploy(client, "v1"))
    with chat(server) as before:
        assert version_of(before) == "v1"
        before.send("hello " * 50_000)  # 300 KB: many TCP segments each way
        assert before.recv(timeout=10) == "hello " * 50_000

        rollout = deploy(client, "v2")  # a rolling update: v1 leaves the router once v2 is ready

        def new_connections_reach_v2() -> bool:
            with chat(server) as after:
                return version_of(after) == "v2"

        polling.wait_until("new connections to reach v2", new_connections_reach_v2, DEADLINE, interval=0.1)
        # the open connection still reaches v1: the drain waits for it (up to the runtime's drain limit)
        assert version_of(before) == "v1"
        with server.router_admin() as admin:  # in flight: the one open tunnel, to the v1 instance (r1)

            def one_in_flight() -> dict[str, int] | None:
                backends: dict[str, int] = admin.get("/inflight").json()["backends"]
                return backends if sum(backends.values()) == 1 else None

            busy = polling.wait_until("only the v1 tunnel in flight", one_in_flight, DEADLINE, interval=0.05)
        assert [backend_id.split("-")[-2] for backend_id in busy] == ["r1"], busy
    started = time.monotonic()
    finish(client, rollout)  # the tunnel closed: v1 has nothing in flight, is stopped, the rollout ends
    assert time.monotonic() - started < 20  # well before the 30 s drain limit: it did not wait that out
    with chat(server) as again:
        assert version_of(again) == "v2"
