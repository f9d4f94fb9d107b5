"""Test app with its own Prometheus endpoint: / takes an order, /fail answers 500, /metrics counts orders."""

import os
import signal
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ORDERS = {"count": 0}
LOCK = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def _send(self, status: int, body: bytes, ctype: str = "text/plain") -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path == "/metrics":
            with LOCK:
                count = ORDERS["count"]
            text = f'# TYPE orders_total counter\norders_total{{kind="book"}} {count}\n'
            if os.environ.get("METRICS_BROKEN") == "1":  # not the exposition format: unquoted label value
                text = f"orders_total{{kind=book}} {count}\n"
            self._send(200, text.encode(), "text/plain; version=0.0.4")
        elif self.path == "/healthz":
            self._send(200, b"ok\n")
        elif self.path == "/fail":
            self._send(500, b"failing on purpose\n")
        else:
            with LOCK:
                ORDERS["count"] += 1
            self._send(200, b"ok\n")

    def log_message(self, fmt: str, *args: object) -> None:
        pass


server = ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler)
signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
server.serve_forever()
server.server_close()
