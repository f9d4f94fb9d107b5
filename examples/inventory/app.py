"""inventory: a tiny stock service (Python stdlib only). Listens on $PORT."""

import json
import os
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

STOCK = {"apple": 12, "pear": 0, "plum": 7}
VERSION = os.environ.get("APP_VERSION", "v1")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as two writes; don't wait for the ACK between

    def _send(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path == "/healthz":
            self._send(200, {"ok": True})
        elif self.path.startswith("/stock/"):
            item = self.path.removeprefix("/stock/")
            if item in STOCK:
                self._send(200, {"item": item, "available": STOCK[item], "version": VERSION})
            else:
                self._send(404, {"error": f"unknown item {item!r}"})
        else:
            self._send(200, {"service": "inventory", "version": VERSION, "items": sorted(STOCK)})

    def log_message(self, fmt: str, *args: object) -> None:
        print(json.dumps({"msg": fmt % args, "path": self.path}), flush=True)


def main() -> None:
    # every address: in its container the router reaches the instance at its own bridge address
    server = ThreadingHTTPServer(("", int(os.environ.get("PORT", "8000"))), Handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(json.dumps({"msg": "inventory listening", "port": server.server_port}), flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
