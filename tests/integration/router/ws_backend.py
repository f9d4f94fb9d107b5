"""A WebSocket backend process for router tests: ``python ws_backend.py NAME READY_FILE``.

Built on the ``websockets`` library (a real RFC 6455 server). It listens on a free loopback port, writes
``{"port": N}`` to READY_FILE, and serves:
  /echo     WebSocket: every message comes back as it was, except the text messages ``name?`` (answered
            with NAME) and ``caller?`` (the X-Yunzhou-Caller header of the handshake, or ``-``)
  /plain    200 text/plain to any request, upgrade or not (a backend that declines the upgrade)
  /stats    200 JSON ``{"open": N}``: WebSocket connections open now (read directly, not through a router)
"""

from __future__ import annotations

import asyncio
import json
import sys
from http import HTTPStatus
from pathlib import Path

from websockets.asyncio.server import Request, Response, ServerConnection, serve

NAME = sys.argv[1] if len(sys.argv) > 1 else "ws"
_open: set[ServerConnection] = set()


async def handler(connection: ServerConnection) -> None:
    _open.add(connection)
    try:
        async for message in connection:
            if message == "name?":
                await connection.send(NAME)
            elif message == "caller?":
                assert connection.request is not None
                await connection.send(connection.request.headers.get("x-yunzhou-caller", "-"))
            else:
                await connection.send(message)
    finally:
        _open.discard(connection)


def process_request(connection: ServerConnection, request: Request) -> Response | None:
    path = request.path.partition("?")[0]
    if path == "/plain":
        return connection.respond(HTTPStatus.OK, f"plain answer from {NAME}\n")
    if path == "/stats":
        response = connection.respond(HTTPStatus.OK, json.dumps({"open": len(_open)}))
        response.headers["Content-Type"] = "application/json"
        return response
    return None


async def main() -> None:
    ready_file = Path(sys.argv[2])
    async with serve(handler, "127.0.0.1", 0, process_request=process_request, max_size=None) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        tmp = ready_file.with_name(ready_file.name + ".tmp")
        tmp.write_text(json.dumps({"port": port}))
        tmp.replace(ready_file)
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
