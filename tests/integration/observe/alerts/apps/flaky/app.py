"""Test app: GET / answers 200 {"version"} — or 500 when FAIL=1; /healthz is always 200 (so a failing
release still rolls out, as a real bad release does)."""

import json
import os
import signal
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

FAIL = os.environ.get("FAIL") == "1"
VERSION = os.environ.get("APP_VERSION", "v?")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        failing = FAIL and self.path != "/healthz"
        body = json.dumps({"version": VERSION, "fail": failing}).encode()
        self.send_response(500 if failing else 200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt: str, *args: object) -> None:
        pass


# every address: in a container the router dials the instance's bridge IP
server = ThreadingHTTPServer(("0.0.0.0", int(os.environ["PORT"])), Handler)
server.daemon_threads = False
signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
server.serve_forever()
server.server_close()
