"""Why an app does not serve, through the real CLI against a real control plane on the local target: a
crash loop's last stderr lines and a failing readiness probe's result reach `deploy --wait`'s failure and
`yunzhou status` (human and -o json); `--wait` without `--timeout` waits for the app's own progress
deadline (``rollout.progressDeadlineSeconds``) and reports the rollout's own failure."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from tests.integration.local.test_traffic import client, server
from yunzhou.testing import ControlPlaneProcess

__all__ = ["client", "server"]  # the fixtures, shared with test_traffic

CRASH = (
    "import sys; print('starting', flush=True); "
    "print('boom: missing DATABASE_URL', file=sys.stderr); sys.exit(1)"
)
UNHEALTHY = """
import http.server, os
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(503 if self.path == "/healthz" else 200)
        self.end_headers()
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
"""


def score(name: str, code: str, **container: Any) -> dict[str, Any]:
    return {
        "apiVersion": "score.dev/v1b1",
        "metadata": {"name": name},
        "containers": {
            "main": {"image": "python:3.11-slim", "command": ["python3", "-c", code], **container}
        },
    }


def cli(server: ControlPlaneProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "yunzhou", *args], env=server.client_env() | {"COLUMNS": "200"},
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def write_score(tmp_path: Path, doc: dict[str, Any]) -> str:
    path = tmp_path / f"{doc['metadata']['name']}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return str(path)


def test_a_crash_loop_fails_deploy_wait_quickly_with_its_stderr(
    server: ControlPlaneProcess, client: Any, tmp_path: Path
) -> None:
    started = time.monotonic()
    result = cli(server, "deploy", "shop/dev", "-f", write_score(tmp_path, score("crashy", CRASH)), "--wait")
    took = time.monotonic() - started
    assert result.returncode == 1, result.stdout + result.stderr
    assert "CrashLoopBackOff" in result.stderr, result.stderr
    assert "last stderr: boom: missing DATABASE_URL" in result.stderr, result.stderr  # in the message
    # and the stderr lines below it (one per run, repeats folded); what it printed to stdout is not there
    assert "last stderr lines:\n    boom: missing DATABASE_URL (×" in result.stderr, result.stderr
    assert "    starting" not in result.stderr
    assert took < 90, took  # three quick restarts, not a deadline

    shown = json.loads(cli(server, "status", "shop/dev/crashy", "-o", "json").stdout)
    diagnosis = shown["diagnosis"]
    assert diagnosis["reason"] in ("CrashLoopBackOff", "Restarted"), diagnosis
    assert diagnosis["stderr"][-1] == "boom: missing DATABASE_URL", diagnosis
    assert diagnosis["last_exit"] == "exit 1", diagnosis
    assert "diagnosis" not in json.dumps(shown["conditions"])  # the detail is kept out of the table
    human = cli(server, "status", "shop/dev/crashy").stdout
    assert "Why it does not serve" in human, human
    assert "boom: missing DATABASE_URL" in human, human


def test_a_never_ready_app_fails_at_its_progress_deadline_showing_the_probe(
    server: ControlPlaneProcess, client: Any, tmp_path: Path
) -> None:
    probe = {"readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080}}}
    path = write_score(tmp_path, score("sulky", UNHEALTHY, **probe))
    started = time.monotonic()
    # no --timeout: --wait waits for the rollout's own outcome, here its 20 s progress deadline
    result = cli(
        server, "deploy", "shop/dev", "-f", path, "--set", "rollout.progressDeadlineSeconds=20", "--wait"
    )
    took = time.monotonic() - started
    assert result.returncode == 1, result.stdout + result.stderr
    assert "ProgressDeadlineExceeded" in result.stderr, result.stderr
    assert "last probe: readiness GET /healthz → HTTP 503 (failing since" in result.stderr, result.stderr
    assert 20 <= took < 120, took

    shown = json.loads(cli(server, "status", "shop/dev/sulky", "-o", "json").stdout)
    diagnosis = shown["diagnosis"]
    assert diagnosis["reason"] == "ReadinessProbeFailing", diagnosis
    assert diagnosis["probe"]["probe"] == "readiness"
    assert (diagnosis["probe"]["type"], diagnosis["probe"]["target"]) == ("http", "GET /healthz")
    assert (diagnosis["probe"]["ok"], diagnosis["probe"]["result"]) == (False, "HTTP 503")
    human = cli(server, "status", "shop/dev/sulky").stdout
    assert "readiness GET /healthz → HTTP 503" in human, human
