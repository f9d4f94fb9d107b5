"""Test app: tries to read what an app must never see, prints what happened to each try, then serves.

PROBE_FILES / PROBE_DIRS: JSON objects label → path. One line per try: ``PROBE <label>: refused <error>``
or ``PROBE <label>: READ <what it got>``; then a scan of every /proc/<pid>/environ that is not its own.
"""

import contextlib
import json
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def attempt(label: str, action) -> None:  # type: ignore[no-untyped-def]
    try:
        got = action()
    except OSError as exc:
        print(f"PROBE {label}: refused {exc!r}", flush=True)
    else:
        print(f"PROBE {label}: READ {got!r}", flush=True)


def read(path: str) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(4096)


def write_into(directory: str) -> str:
    path = os.path.join(directory, "planted")
    with open(path, "w") as fh:
        fh.write("x")
    return oct(os.stat(path).st_mode & 0o777)


for label, path in json.loads(os.environ.get("PROBE_FILES", "{}")).items():
    attempt(label, lambda path=path: read(path))
for label, path in json.loads(os.environ.get("PROBE_DIRS", "{}")).items():
    attempt(label, lambda path=path: os.listdir(path))
attempt("release-write", lambda: write_into("."))

readable = []
for pid in filter(str.isdigit, os.listdir("/proc")):
    if int(pid) == os.getpid():
        continue
    with contextlib.suppress(OSError):
        readable.append((pid, read(f"/proc/{pid}/environ")))
print(f"SCAN readable environ of other processes: {readable!r}", flush=True)
print(f"HOME {write_into(os.environ['HOME'])} uid={os.getuid()} gid={os.getgid()} groups={os.getgroups()}",
      flush=True)  # fmt: skip


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, fmt: str, *args: object) -> None:
        pass


ThreadingHTTPServer(("0.0.0.0", int(os.environ["PORT"])), Handler).serve_forever()
