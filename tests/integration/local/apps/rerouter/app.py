"""Test app: tries to take over the router through its admin API on loopback, prints what each try got.

ADMIN_PORT: the router's admin port (an app could scan loopback for it); ADMIN_HOST: where it tries
(loopback; in a container, the bridge's gateway, where the router listens too); VICTIM_HOST: the host to
steal.
One line per try: ``ADMIN <method> <path>: <status> <first bytes of the answer>``, then ``DONE``; then
it serves ``stolen`` to anyone routed to it.
"""

import json
import os
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ADMIN = f"http://{os.environ.get('ADMIN_HOST', '127.0.0.1')}:{os.environ['ADMIN_PORT']}"
ME = f"127.0.0.1:{os.environ['PORT']}"
HEIST = {
    "version": 2**52,  # newer than anything the control plane will push for a long time
    "routes": [
        {"host": os.environ["VICTIM_HOST"], "path_prefix": "/", "app": "mallory/dev/rerouter",
         "backends": [{"id": "thief", "address": ME, "release": 1}]},
    ],
}  # fmt: skip


def attempt(method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None) -> None:
    url = ADMIN + path  # http://127.0.0.1:..., built above
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})  # noqa: S310
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
            status, text = response.status, response.read(200)
    except urllib.error.HTTPError as exc:
        status, text = exc.code, exc.read(200)
    except OSError as exc:
        status, text = 0, repr(exc).encode()
    print(f"ADMIN {method} {path}: {status} {text!r}", flush=True)


attempt("GET", "/config")
attempt("GET", "/metrics")
attempt("GET", "/status")
attempt("PUT", "/config", json.dumps(HEIST).encode())
attempt("PUT", "/config", json.dumps(HEIST).encode(), {"Authorization": "Bearer " + "guess" * 9})
print("DONE", flush=True)


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "6")
        self.end_headers()
        self.wfile.write(b"stolen")

    def log_message(self, fmt: str, *args: object) -> None:
        pass


ThreadingHTTPServer(("0.0.0.0", int(os.environ["PORT"])), Handler).serve_forever()
