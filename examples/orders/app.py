"""orders: takes orders and asks inventory, by its internal name through the router. Stdlib only."""

import http.client
import json
import os
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

VERSION = os.environ.get("APP_VERSION", "v1")
# The platform tells every instance where the router is; other apps are reached through it by name.
ROUTER = os.environ.get("YUNZHOU_ROUTER", "127.0.0.1:8080")
INVENTORY_HOST = os.environ.get("INVENTORY_HOST", "inventory.dev.shop.localhost")


def ask_inventory(path: str) -> tuple[int, object]:
    host, _, port = ROUTER.partition(":")
    conn = http.client.HTTPConnection(host, int(port or 80), timeout=5)
    try:
        conn.request("GET", path, headers={"Host": INVENTORY_HOST})
        resp = conn.getresponse()
        body = resp.read()
        try:
            return resp.status, json.loads(body)
        except ValueError:
            return resp.status, body.decode(errors="replace")
    finally:
        conn.close()


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
            return
        if self.path.startswith("/order/"):
            item = self.path.removeprefix("/order/")
            try:
                status, stock = ask_inventory(f"/stock/{item}")
            except OSError as exc:
                self._send(502, {"error": f"inventory unreachable: {exc}"})
                return
            if status != 200:
                self._send(status, {"error": "inventory said no", "detail": stock})
                return
            ok = isinstance(stock, dict) and stock.get("available", 0) > 0
            self._send(
                200 if ok else 409, {"item": item, "accepted": ok, "inventory": stock, "version": VERSION}
            )
            return
        self._send(200, {"service": "orders", "version": VERSION, "try": "/order/apple"})

    def log_message(self, fmt: str, *args: object) -> None:
        print(json.dumps({"msg": fmt % args, "path": self.path}), flush=True)


def main() -> None:
    # every address: in its container the router reaches the instance at its own bridge address
    server = ThreadingHTTPServer(("", int(os.environ.get("PORT", "8000"))), Handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(json.dumps({"msg": "orders listening", "port": server.server_port}), flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
