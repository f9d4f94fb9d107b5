"""Test app for scale-to-zero tests: starts listening only after START_DELAY seconds (a slow cold start).

GET /         {"version", "pid"}
GET /healthz  200
"""

import json
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

VERSION = os.environ.get("APP_VERSION", "v?")
time.sleep(float(os.environ.get("START_DELAY", "0")))  # the slow start under test, before the port opens


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = json.dumps({"version": VERSION, "pid": os.getpid()}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt: str, *args: object) -> None:
        pass


server = ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler)
signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
print(json.dumps({"msg": "listening", "version": VERSION}), flush=True, file=sys.stdout)
server.serve_forever()
server.server_close()
