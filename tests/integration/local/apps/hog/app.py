"""Test app: becomes ready, then allocates memory without bound when /hog is requested."""

import os
from http.server import BaseHTTPRequestHandler, HTTPServer

hoard = []


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/hog":
            while True:
                hoard.append(bytearray(8 * 1024 * 1024))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, fmt: str, *args: object) -> None:
        pass


HTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
