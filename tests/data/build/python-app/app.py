"""A small web app for the builder's tests: answers with the version of its one dependency."""

import os
from http.server import BaseHTTPRequestHandler, HTTPServer

import six


class Hello(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = f"python ok six {six.__version__}\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


HTTPServer(("", int(os.environ["PORT"])), Hello).serve_forever()
