"""A tiny stdlib-only app for supervisor tests: ``python app.py MODE``.

Modes:
  serve   HTTP on $PORT. GET / → 200 "hello"; /healthz → 500 while $SICK_FILE exists, else 200;
          /ready → 200 once $READY_FILE exists, else 503. SIGTERM writes $TERM_FILE and exits 0
          (ignored entirely when $IGNORE_TERM=1). Logs one stdout, one stderr and one JSON line.
  family  like serve, but first starts a grandchild (same process group) and prints its pid.
  exit    prints to stderr and exits with status 1 at once.
  hog     allocates memory in 8 MiB pages until killed.
  spin    like serve, with a thread that keeps one CPU busy.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path


class Handler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        code, body = 200, b"hello " + str(os.getpid()).encode()
        if self.path == "/healthz" and _exists("SICK_FILE"):
            code, body = 500, b"sick"
        elif self.path == "/ready" and not _exists("READY_FILE"):
            code, body = 503, b"not yet"
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def _exists(var: str) -> bool:
    path = os.environ.get(var)
    return path is not None and Path(path).exists()


def _on_term(_signum: int, _frame: object) -> None:
    path = os.environ.get("TERM_FILE")
    if path:
        Path(path).write_text("TERM")
    os._exit(0)


def serve() -> None:
    if os.environ.get("IGNORE_TERM") == "1":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    else:
        signal.signal(signal.SIGTERM, _on_term)
    server = HTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler)
    print("listening on", os.environ["PORT"], flush=True)
    print("a line on stderr", file=sys.stderr, flush=True)
    print(json.dumps({"level": "info", "msg": "started", "port": int(os.environ["PORT"])}), flush=True)
    server.serve_forever()


def _spin() -> None:
    while True:
        pass


def main() -> None:
    mode = sys.argv[1]
    if mode == "serve":
        serve()
    elif mode == "family":
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        print(json.dumps({"grandchild": child.pid}), flush=True)
        serve()
    elif mode == "exit":
        print("failing on purpose", file=sys.stderr, flush=True)
        sys.exit(1)
    elif mode == "spin":
        threading.Thread(target=_spin, daemon=True).start()
        serve()
    elif mode == "hog":
        hoard = []
        while True:
            hoard.append(bytearray(8 * 1024 * 1024))  # bytearray zero-fills: the pages are touched


if __name__ == "__main__":
    main()
