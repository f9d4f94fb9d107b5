"""Test app for the autoscaling metric kinds: it burns CPU, holds requests or reports a backlog when asked.

GET /             {"pid"}
GET /healthz      200
GET /burn         starts a child process that keeps one CPU busy (in this instance's cgroup) until /rest
GET /rest         stops it
GET /slow?s=N     answers after N seconds (concurrent requests are held concurrently)
GET /queue?n=N    sets the queue_depth gauge to N
GET /metrics      queue_depth in the Prometheus text format
"""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

# the burner stops by itself once this process is gone (it polls its parent), so it never outlives us
BURN = "import os\nparent = os.getppid()\nwhile os.getppid() == parent:\n    pass\n"
STATE: dict[str, object] = {"depth": 0.0, "burner": None}
LOCK = threading.Lock()


def rest() -> None:
    with LOCK:
        burner = STATE["burner"]
        STATE["burner"] = None
    if isinstance(burner, subprocess.Popen):
        burner.kill()
        burner.wait()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def _send(self, body: bytes, ctype: str = "application/json") -> None:
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        if url.path == "/burn":
            with LOCK:
                if STATE["burner"] is None:
                    STATE["burner"] = subprocess.Popen([sys.executable, "-c", BURN])
        elif url.path == "/rest":
            rest()
        elif url.path == "/slow":
            time.sleep(float(query.get("s", "1")))  # the request being held is the point of this route
        elif url.path == "/queue":
            with LOCK:
                STATE["depth"] = float(query.get("n", "0"))
        elif url.path == "/metrics":
            with LOCK:
                depth = STATE["depth"]
            text = f"# TYPE queue_depth gauge\nqueue_depth {depth}\n"
            self._send(text.encode(), "text/plain; version=0.0.4")
            return
        self._send(json.dumps({"pid": os.getpid()}).encode())

    def log_message(self, fmt: str, *args: object) -> None:
        pass


def stop(*_: object) -> None:
    rest()
    threading.Thread(target=server.shutdown).start()


server = ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler)
server.daemon_threads = True  # held /slow requests must not hold up a stop
signal.signal(signal.SIGTERM, stop)
print(json.dumps({"msg": "listening", "pid": os.getpid()}), flush=True)
server.serve_forever()
server.server_close()
