"""Test app for config and secrets: answers with DEBUG and the sha256 of API_KEY — never the value."""

import hashlib
import json
import os
import signal
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DEBUG = os.environ.get("DEBUG", "")
KEY_SHA256 = hashlib.sha256(os.environ.get("API_KEY", "").encode()).hexdigest()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        body = json.dumps({"version": DEBUG, "debug": DEBUG, "key_sha256": KEY_SHA256}).encode()
        self.send_response(200)
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
print(json.dumps({"msg": "listening", "debug": DEBUG}), flush=True)
server.serve_forever()
server.server_close()
