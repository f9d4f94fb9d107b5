"""Test app for traffic tests: answers with its version and the caller identity the router gave it.

GET /              {"version", "caller"}; with ERROR_RATE=R (0-1) that share of answers is a 500
GET /healthz       200
GET /call?host=H   calls app H through the router (YUNZHOU_ROUTER) with this app's caller token and answers
                   {"status", "body"} of that call
"""

import json
import os
import signal
import sys
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

VERSION = os.environ.get("APP_VERSION", "v?")
ERROR_RATE = float(os.environ.get("ERROR_RATE", "0"))
_lock = threading.Lock()
_acc = [0.0]


def _fail_now() -> bool:
    with _lock:
        _acc[0] += ERROR_RATE
        if _acc[0] >= 1.0 - 1e-9:
            _acc[0] -= 1.0
            return True
        return False


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def _send(self, status: int, doc: object) -> None:
        body = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path == "/healthz":
            self._send(200, {"ok": True})
            return
        if url.path == "/call":
            host = parse_qs(url.query)["host"][0]
            request = urllib.request.Request(
                f"http://{os.environ['YUNZHOU_ROUTER']}/",
                headers={"Host": host, "x-yunzhou-caller-token": os.environ.get("YUNZHOU_CALLER_TOKEN", "")},
            )
            opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
            try:
                with opener.open(request, timeout=10) as response:
                    self._send(200, {"status": response.status, "body": json.loads(response.read())})
            except urllib.error.HTTPError as exc:
                self._send(200, {"status": exc.code, "body": json.loads(exc.read() or b"{}")})
            return
        if ERROR_RATE and _fail_now():
            self._send(500, {"version": VERSION, "error": "injected"})
            return
        self._send(200, {"version": VERSION, "caller": self.headers.get("x-yunzhou-caller")})

    def log_message(self, fmt: str, *args: object) -> None:
        pass


server = ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler)
server.daemon_threads = False
signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
print(json.dumps({"msg": "listening", "version": VERSION}), flush=True, file=sys.stdout)
server.serve_forever()
server.server_close()
