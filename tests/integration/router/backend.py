"""A small HTTP/1.1 backend process for router tests: ``python backend.py NAME READY_FILE``.

It listens on a free loopback port, writes ``{"port": N}`` to READY_FILE, and answers:
  GET  /...                  200 JSON: backend name, method, path, request headers, peer port, request count
  POST /echo                 200 JSON: body length and sha256 (reads Content-Length and chunked bodies)
  GET  /slow?s=SECONDS       waits, then answers like GET (for timeouts and graceful shutdown)
  GET  /chunked?size=N       N bytes of 'x' with Transfer-Encoding: chunked, in 8 KiB chunks
  GET  /big?size=N           N bytes of 'y' with Content-Length
  GET  /status?code=N        an empty response with that status
  GET  /drip                 a chunked response: one chunk now, the rest once GET /release arrives
  GET  /release              lets every waiting /drip finish
  GET  /garbage              bytes that are not HTTP, then close
  GET  /control/fail?rate=R&code=C   from now on answer that share of requests with status C (deterministic:
                             the failures are spread evenly); rate=0 heals it
  GET  /control/stats        {"count": requests seen, "failed": requests answered with the injected status}
"""

from __future__ import annotations

import hashlib
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

NAME = sys.argv[1] if len(sys.argv) > 1 else "backend"
_released = threading.Event()
_count_lock = threading.Lock()
_count = 0
_fail = {"rate": 0.0, "code": 500, "acc": 0.0, "failed": 0}


def _should_fail() -> bool:
    with _count_lock:
        if _fail["rate"] <= 0:
            return False
        _fail["acc"] += _fail["rate"]
        if _fail["acc"] >= 1.0 - 1e-9:
            _fail["acc"] -= 1.0
            _fail["failed"] += 1
            return True
        return False


def _next_count() -> int:
    global _count
    with _count_lock:
        _count += 1
        return _count


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are separate writes: no 40 ms delayed-ACK stall
    server_version = "test-backend"

    def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
        pass

    def _query(self) -> dict[str, str]:
        return {k: v[-1] for k, v in parse_qs(urlsplit(self.path).query).items()}

    def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _describe(self) -> bytes:
        doc = {
            "backend": NAME,
            "method": self.command,
            "path": self.path,
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "peer_port": self.client_address[1],
            "count": _next_count(),
        }
        return json.dumps(doc).encode()

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            parts = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def do_HEAD(self) -> None:
        self._send(200, self._describe())

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        query = self._query()
        if path == "/control/fail":
            with _count_lock:
                _fail.update(rate=float(query.get("rate", "0")), code=int(query.get("code", "500")), acc=0.0)
            self._send(200, b"{}")
            return
        if path == "/control/stats":
            with _count_lock:
                doc = {"count": _count, "failed": _fail["failed"]}
            self._send(200, json.dumps(doc).encode())
            return
        if _should_fail():
            _next_count()
            self._send(int(_fail["code"]), b'{"injected": true}')
            return
        if path == "/slow":
            time.sleep(float(query.get("s", "1")))
        if path == "/chunked":
            size = int(query.get("size", "100000"))
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            while size > 0:
                piece = min(size, 8192)
                self.wfile.write(b"%x\r\n%s\r\n" % (piece, b"x" * piece))
                size -= piece
            self.wfile.write(b"0\r\n\r\n")
            return
        if path == "/big":
            self._send(200, b"y" * int(query.get("size", "1000000")), "application/octet-stream")
            return
        if path == "/drip":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.write(b"6\r\nfirst\n\r\n")
            self.wfile.flush()
            _released.wait(30)
            self.wfile.write(b"5\r\nrest\n\r\n0\r\n\r\n")
            return
        if path == "/release":
            _released.set()
            self._send(200, b"released")
            return
        if path == "/garbage":
            self.wfile.write(b"THIS IS NOT HTTP\r\n\r\n")
            self.close_connection = True
            return
        if path == "/status":
            self._send(int(query.get("code", "200")), b"")
            return
        self._send(200, self._describe())

    def do_POST(self) -> None:
        body = self._read_body()
        doc = {"backend": NAME, "length": len(body), "sha256": hashlib.sha256(body).hexdigest()}
        self._send(200, json.dumps(doc).encode())

    do_PUT = do_POST


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def handle_error(self, request: object, client_address: object) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # the router closing a connection is normal
            super().handle_error(request, client_address)  # type: ignore[arg-type]


def main() -> None:
    ready_file = Path(sys.argv[2])
    server = Server(("127.0.0.1", 0), Handler)
    tmp = ready_file.with_name(ready_file.name + ".tmp")
    tmp.write_text(json.dumps({"port": server.server_address[1]}))
    tmp.replace(ready_file)
    server.serve_forever()


if __name__ == "__main__":
    main()
