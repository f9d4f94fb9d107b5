"""A user works with alerts through the real CLI against a real `yunzhou server`: a rule from a YAML file
fires on collected metrics, shows in `alerts list` and the app's timeline; default rules are tuned and
switched off; a silence is created, listed and expired; receivers are listed as JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.local.test_local_runtime import wait_until
from yunzhou.outbound import ALLOW_ENV
from yunzhou.testing import ControlPlaneProcess

pytestmark = pytest.mark.e2e
APP_DIR = Path(__file__).resolve().parents[1] / "integration" / "observe" / "alerts" / "apps" / "flaky"
SCORE = {
    "apiVersion": "score.dev/v1b1",
    "metadata": {"name": "web"},
    "containers": {"web": {"image": "python:3.11-slim", "command": ["python3", "app.py"]}},
    "service": {"ports": {"web": {"port": 8080}}},
}


def test_alerts_through_the_cli(tmp_path: Path) -> None:
    env = {"YUNZHOU_SCRAPE_INTERVAL": "0.5", "YUNZHOU_ALERT_INTERVAL": "0.5", ALLOW_ENV: "127.0.0.1"}
    with ControlPlaneProcess(tmp_path / "data", env=env) as server:

        def cli(*args: str) -> str:
            done = subprocess.run(
                [sys.executable, "-m", "yunzhou", *args], env=server.client_env() | {"COLUMNS": "200"},
                capture_output=True, text=True, timeout=120, check=False,
            )  # fmt: skip
            assert done.returncode == 0, f"{args}: exit {done.returncode}\n{done.stdout}\n{done.stderr}"
            return done.stdout

        def cli_json(*args: str) -> Any:
            return json.loads(cli(*args, "-o", "json"))

        score_file = tmp_path / "score.yaml"
        score_file.write_text(yaml.safe_dump(SCORE))
        cli("project", "create", "shop")
        cli("env", "create", "shop/dev")
        cli("deploy", "shop/dev", "-f", str(score_file), "--source", str(APP_DIR), "--wait")

        rule = tmp_path / "rule.yaml"
        rule.write_text(
            yaml.safe_dump(
                {
                    "expr": 'yunzhou_app_replicas_ready{app="web"} > 0',
                    "labels": {"severity": "info"},
                    "annotations": {"summary": "{{ $labels.app }} has {{ $value }} ready"},
                }
            )
        )
        assert "stored at shop/dev/web" in cli(
            "alerts", "rules", "set", "shop/dev/web", "WebServing", "-f", str(rule)
        )
        off = tmp_path / "off.yaml"
        off.write_text("enabled: false\n")
        cli("alerts", "rules", "set", "shop", "AppLatencyHigh", "-f", str(off))
        stored = cli_json("alerts", "rules", "list", "shop")
        assert [(r["name"], r["kind"]) for r in stored] == [("AppLatencyHigh", "override")]
        effective = {r["alert"]: r for r in cli_json("alerts", "rules", "effective", "shop/dev/web")}
        assert effective["AppLatencyHigh"]["enabled"] is False
        assert effective["WebServing"]["expr"].startswith("yunzhou_app_replicas_ready")

        firing = wait_until(
            "WebServing to fire",
            lambda: [a for a in cli_json("alerts", "list", "shop/dev/web") if a["alertname"] == "WebServing"
                     and a["state"] == "firing"],
        )  # fmt: skip
        assert firing[0]["annotations"]["summary"] == "web has 1 ready"
        events = cli_json("alerts", "events", "shop/dev/web")
        assert ("alert", "firing", "WebServing") in {(e["kind"], e["state"], e["alertname"]) for e in events}
        assert "WebServing" in cli("alerts", "history", "shop")

        created = cli("alerts", "silence", "create", "shop", "-m", 'app="web"', "-d", "30m", "-c", "demo")
        silence_id = created.split()[1]
        listed = cli_json("alerts", "silence", "list", "shop")
        assert [(str(s["id"]), s["state"]) for s in listed] == [(silence_id, "active")]
        cli("alerts", "silence", "expire", "shop", silence_id)
        assert cli_json("alerts", "silence", "list", "shop") == []
        assert cli_json("alerts", "silence", "list", "shop", "--expired")[0]["state"] == "expired"

        receiver = tmp_path / "hook.yaml"
        receiver.write_text(yaml.safe_dump({"kind": "webhook", "config": {"url": "http://127.0.0.1:9/hook"}}))
        cli("alerts", "receivers", "set", "shop", "hook", "-f", str(receiver))
        assert cli_json("alerts", "receivers", "list", "shop")[0]["route"]["group_wait"] == "30s"

        # the tables (the default output) render every kind of row
        assert "WebServing" in cli("alerts", "list", "shop")
        assert "firing" in cli("alerts", "events", "shop/dev/web")
        table = cli("alerts", "rules", "effective", "shop/dev/web")
        assert "AppErrorRateHigh" in table
        assert "ok" in table
        assert "AppLatencyHigh" in cli("alerts", "rules", "list", "shop")
        assert "http://127.0.0.1:9/hook" in cli("alerts", "receivers", "list", "shop")
        assert "expired" in cli("alerts", "silence", "list", "shop", "--expired")
