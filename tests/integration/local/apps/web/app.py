"""Test app: answers with its APP_VERSION; /healthz; CRASH=1 exits at once; drains on SIGTERM."""

import json
import os
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

if os.environ.get("CRASH") == "1":
    print("crashing on purpose", file=sys.stderr, flush=True)
    sys.exit(1)

VERSION = os.environ.get("APP_VERSION", "v?")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as two writes; don't wait for the ACK between

    def do_GET(self) -> None:
        body = json.dumps({"version": VERSION, "pid": os.getpid()}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt: str, *args: object) -> None:
        pass


server = ThreadingHTTPServer(("0.0.0.0", int(os.environ["PORT"])), Handler)
server.daemon_threads = False  # server_close waits for in-flight requests
signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
print(json.dumps({"msg": "listening", "version": VERSION}), flush=True)
server.serve_forever()
server.server_close()
