"""Test app that leaks its secret the ways apps do: API_KEY on stdout and stderr, in a JSON log field,
percent-encoded in a URL and base64-encoded in a Basic header; a too-short secret (PIN) too. Then it serves
/healthz on PORT."""

import base64
import json
import os
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote

key = os.environ["API_KEY"]
print(f"starting with API_KEY={key}", flush=True)
print(f"error: could not connect using {key}", file=sys.stderr, flush=True)
print(json.dumps({"level": "info", "msg": "config loaded", "api_key": key}), flush=True)
print(f"GET https://api.example.test/v1?key={quote(key, safe='')}", flush=True)
print("Authorization: Basic " + base64.b64encode(f"svc:{key}".encode()).decode(), flush=True)
print(f"pin={os.environ.get('PIN', '')}", flush=True)


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, fmt: str, *args: object) -> None:
        pass


server = ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler)
signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
print("ready", flush=True)
server.serve_forever()
server.server_close()
