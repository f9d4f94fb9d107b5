"""A WebSocket backend process for router tests: ``python ws_backend.py NAME READY_FILE``.

Built on the ``websockets`` library (a real RFC 6455 server). It listens on a free loopback port, writes
``{"port": N}`` to READY_FILE, and serves:
  /echo     WebSocket: every message comes back as it was, except the text messages ``name?`` (answered
            with NAME), ``caller?`` (the X-Yunzhou-Caller header of the handshake, or ``-``) and
            ``flood N`` (answered with N binary messages of 1 MiB, each sent when the previous one was
            written: a client that does not read holds the server back)
  /plain    200 text/plain to any request, upgrade or not (a backend that declines the upgrade)
  /stats    200 JSON ``{"open": N, "flooded": BYTES}``: WebSocket connections open now and bytes of flood
            messages sent so far (read directly, not through a router)
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
_flooded = [0]
_MIB = b"z" * (1024 * 1024)


async def handler(connection: ServerConnection) -> None:
    _open.add(connection)
    try:
        async for message in connection:
            if message == "name?":
                await connection.send(NAME)
            elif message == "caller?":
                assert connection.request is not None
                await connection.send(connection.request.headers.get("x-yunzhou-caller", "-"))
            elif isinstance(message, str) and message.startswith("flood "):
                for _ in range(int(message.split()[1])):
                    await connection.send(_MIB)  # returns once the bytes are written: backpressure
                    _flooded[0] += len(_MIB)
            else:
                await connection.send(message)
    finally:
        _open.discard(connection)


def process_request(connection: ServerConnection, request: Request) -> Response | None:
    path = request.path.partition("?")[0]
    if path == "/plain":
        return connection.respond(HTTPStatus.OK, f"plain answer from {NAME}\n")
    if path == "/stats":
        response = connection.respond(HTTPStatus.OK, json.dumps({"open": len(_open), "flooded": _flooded[0]}))
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
