"""Test app for WebSocket through the router: a minimal RFC 6455 echo server, standard library only.

GET /healthz   200 (the readiness probe)
GET /ws        a WebSocket (the handshake with Sec-WebSocket-Key/Accept); every text or binary message
               comes back as it was, except the text ``version?``, answered with APP_VERSION. Pings are
               answered, a close frame is returned and the connection closed. Unfragmented frames only.
"""

import asyncio
import base64
import hashlib
import os
import struct

VERSION = os.environ.get("APP_VERSION", "v?")
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    first, second = await reader.readexactly(2)
    size = second & 0x7F
    if size == 126:
        size = struct.unpack("!H", await reader.readexactly(2))[0]
    elif size == 127:
        size = struct.unpack("!Q", await reader.readexactly(8))[0]
    mask = await reader.readexactly(4) if second & 0x80 else b"\0\0\0\0"
    data = await reader.readexactly(size)
    key = int.from_bytes((mask * (size // 4 + 1))[:size], "big")  # XOR the whole payload at once
    return first & 0x0F, (int.from_bytes(data, "big") ^ key).to_bytes(size, "big")


def frame(opcode: int, data: bytes) -> bytes:
    size = len(data)
    if size < 126:
        head = struct.pack("!BB", 0x80 | opcode, size)
    elif size < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 126, size)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 127, size)
    return head + data


def answer(writer: asyncio.StreamWriter, status: str, body: bytes) -> None:
    head = f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    writer.write(head.encode() + body)


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        path = head[0].split(" ")[1]
        headers = {
            k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in head[1:] if line)
        }
        if path == "/healthz":
            answer(writer, "200 OK", b"ok\n")
        elif path != "/ws" or headers.get("upgrade", "").lower() != "websocket":
            answer(writer, "426 Upgrade Required", b"GET /ws with Upgrade: websocket\n")
        else:
            key = headers["sec-websocket-key"].encode()
            accept = base64.b64encode(hashlib.sha1(key + GUID).digest()).decode()  # noqa: S324 - RFC 6455 asks for SHA-1
            writer.write(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Accept: {accept}\r\n\r\n".encode()
            )
            while True:
                opcode, data = await read_frame(reader)
                if opcode == 8:  # close: answer it, then end the connection
                    writer.write(frame(8, data[:2]))
                    break
                if opcode == 9:
                    writer.write(frame(10, data))
                elif opcode in (1, 2):
                    writer.write(frame(opcode, VERSION.encode() if data == b"version?" else data))
                await writer.drain()
        await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def main() -> None:
    server = await asyncio.start_server(handle, "127.0.0.1", int(os.environ["PORT"]), limit=1 << 20)
    async with server:
        await server.serve_forever()


asyncio.run(main())
