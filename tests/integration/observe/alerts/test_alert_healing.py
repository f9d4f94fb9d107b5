"""The whole alert path for real: a `yunzhou server` process (router, app processes, the embedded metrics
store scraping the router, the alert evaluator in its Runner), a webhook receiver (an HTTP server in this
test) and an SMTP server (aiosmtpd). A release that answers 500 fires AppErrorRateHigh; the webhook gets
the Alertmanager payload and the email arrives; the rollback action restores the last healthy release;
the alert resolves and says so; a silenced alert sends nothing and takes no action."""

from __future__ import annotations

import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from tests.integration.local.test_local_runtime import wait_until
from tests.integration.observe.alerts.receivers import Mailbox, Webhook
from yunzhou.client import YunzhouClient
from yunzhou.outbound import ALLOW_ENV
from yunzhou.testing import ControlPlaneProcess

APP_DIR = Path(__file__).parent / "apps" / "flaky"
ALERT_INTERVAL = 0.5
SCRAPE_INTERVAL = 0.5
RULE_FOR = 2.0
HOST = "web.dev.shop.localhost"


def _seconds(rfc3339: str) -> float:
    return datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp()


def score(fail: bool, version: str) -> dict[str, Any]:
    return {
        "apiVersion": "score.dev/v1b1",
        "metadata": {"name": "web"},
        "containers": {
            "web": {
                "image": "python:3.11-slim",
                "command": ["python3", "app.py"],
                "variables": {"FAIL": "1" if fail else "0", "APP_VERSION": version},
                "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080}},
            }
        },
        "service": {"ports": {"web": {"port": 8080}}},
    }


class Load:
    """Requests through the router without pause, keeping (time, status) of each."""

    def __init__(self, router_port: int) -> None:
        import httpx

        self.client = httpx.Client(
            base_url=f"http://127.0.0.1:{router_port}", headers={"Host": HOST}, timeout=5
        )
        self.results: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import httpx

        while not self._stop.is_set():
            try:
                self.results.append((time.time(), self.client.get("/").status_code))
            except httpx.HTTPError:
                self.results.append((time.time(), 0))

    def first(self, status: int, after: float) -> float | None:
        return next((t for t, s in list(self.results) if s == status and t >= after), None)

    def recent_all(self, status: int, n: int = 20) -> bool:
        tail = self.results[-n:]
        return len(tail) == n and all(s == status for _, s in tail)

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)
        self.client.close()


def test_error_rate_alert_notifies_rolls_back_resolves_and_silence_mutes(
    tmp_path: Path, smtp: tuple[Mailbox, int]
) -> None:
    mailbox, smtp_port = smtp
    env = {"YUNZHOU_SCRAPE_INTERVAL": str(SCRAPE_INTERVAL), "YUNZHOU_ALERT_INTERVAL": str(ALERT_INTERVAL)}
    env[ALLOW_ENV] = "127.0.0.1"  # the webhook receiver listens on loopback
    with (
        ControlPlaneProcess(tmp_path / "data", env=env, host_processes=True) as server,
        YunzhouClient(server.url, server.admin_token) as client,
        Webhook() as hook,
    ):
        client.create_project("shop")
        client.create_environment("shop", "dev")
        artifact = client.upload_artifact(APP_DIR)

        def deploy(fail: bool, version: str) -> dict[str, Any]:
            result = client.deploy("shop", "dev", score(fail, version), None, artifact)
            rollout = client.wait_for_rollout(
                "shop", "dev", "web", result["rollout"]["id"], timeout=60, interval=0.1
            )
            assert rollout["state"] == "succeeded", rollout
            return result

        deploy(False, "v1")
        route = {"group_wait": "0s", "group_interval": "1s", "repeat_interval": "1h"}
        client.put_alert_receiver("shop", "hook", "webhook", {"url": hook.url}, route)
        client.put_alert_receiver(
            "shop", "mail", "email",
            {"to": ["oncall@example.test"], "from": "yunzhou@example.test",
             "smarthost": f"127.0.0.1:{smtp_port}"},
            route,
        )  # fmt: skip
        client.put_alert_rule(
            "shop", "AppErrorRateHigh",
            {"window": "3s", "for": f"{RULE_FOR:g}s", "actions": [{"type": "rollback"}], "cooldown": "1s"},
            env="dev", app="web",
        )  # fmt: skip
        effective = {r["alert"]: r for r in client.effective_alert_rules("shop", "dev", "web")}
        assert effective["AppErrorRateHigh"]["for"] == "2s"

        with Load(server.router_port) as load:
            wait_until("traffic through the router", lambda: load.recent_all(200))
            started = time.time()
            deploy(True, "v2")
            first_500 = wait_until("the bad release to answer 500", lambda: load.first(500, started))

            # fires within `for` + one evaluation interval (+ the scrapes a rate needs to see the errors)
            firing = wait_until(
                "AppErrorRateHigh to fire",
                lambda: [a for a in client.list_alerts("shop", "dev", "web")
                         if a["alertname"] == "AppErrorRateHigh" and a["state"] == "firing"],
                timeout=30,
            )  # fmt: skip
            fired_after = time.time() - first_500
            history = [  # newest first
                e
                for e in client.alert_history("shop", "dev", "web", kind="alert")
                if e["alertname"] == "AppErrorRateHigh"
            ]
            fired = next(i for i, e in enumerate(history) if e["state"] == "firing")
            pending = next(e for e in history[fired:] if e["state"] == "pending")
            held = _seconds(history[fired]["time"]) - _seconds(pending["time"])
            print(f"\nfired {fired_after:.2f}s after the first 500; pending → firing took {held:.2f}s")
            # the rule's clock: from the evaluation that saw the error rate to the one that fired it
            assert RULE_FOR <= held <= RULE_FOR + ALERT_INTERVAL + 0.5, held
            # the whole way, including the scrapes a rate needs and this test's polling
            assert fired_after <= RULE_FOR + ALERT_INTERVAL + 2 * SCRAPE_INTERVAL + 2.0, fired_after
            assert firing[0]["labels"]["severity"] == "critical"

            # the webhook: Alertmanager's version-4 payload
            body = wait_until(
                "the firing webhook",
                lambda: next(iter(b for b in hook.bodies if b["status"] == "firing"), None),
            )
            assert body["version"] == "4"
            assert body["receiver"] == "hook"
            assert body["groupLabels"] == {
                "alertname": "AppErrorRateHigh",
                "project": "shop",
                "env": "dev",
                "app": "web",
            }
            alert = body["alerts"][0]
            assert alert["status"] == "firing"
            assert alert["endsAt"] == "0001-01-01T00:00:00Z"
            assert alert["labels"]["app"] == "web"
            assert "of requests fail" in alert["annotations"]["summary"]
            assert set(body) >= {
                "groupKey",
                "commonLabels",
                "commonAnnotations",
                "externalURL",
                "truncatedAlerts",
            }

            # the email, as delivered to the SMTP server
            mail = wait_until(
                "the firing email",
                lambda: next(iter(m for m in mailbox.messages if "FIRING" in m["Subject"]), None),
            )
            assert mail["Subject"].startswith("[FIRING:1] AppErrorRateHigh")
            assert mail["To"] == "oncall@example.test"
            assert "of requests fail" in mail.get_payload()

            # the rollback action restores release 1's content as a new release; the app answers 200 again
            actions = wait_until(
                "the rollback action", lambda: client.alert_history("shop", "dev", "web", kind="action")
            )
            assert actions[0]["action"] == "rollback"
            assert actions[0]["state"] == "done", actions[0]
            assert actions[0]["to_release"] == 1
            healed = time.time()
            wait_until(
                "200s again through the router", lambda: load.recent_all(200, 50) and load.first(200, healed)
            )
            app = client.get_app("shop", "dev", "web")
            assert app["desired_release"] == 3

            # resolved: the alert leaves the active list and both receivers hear it
            wait_until(
                "the alert to resolve", lambda: not client.list_alerts("shop", "dev", "web"), timeout=30
            )
            resolved = wait_until(
                "the resolved webhook", lambda: [b for b in hook.bodies if b["status"] == "resolved"]
            )
            assert resolved[0]["alerts"][0]["endsAt"] != "0001-01-01T00:00:00Z"
            wait_until(
                "the resolved email", lambda: [m for m in mailbox.messages if "RESOLVED" in m["Subject"]]
            )
            sent_before, mails_before = len(hook.bodies), len(mailbox.messages)

            # the timeline tells the story in order (newest first)
            timeline = [(e["kind"], e["state"]) for e in client.app_events("shop", "dev", "web")]
            assert timeline[:3] == [("alert", "resolved"), ("action", "done"), ("alert", "firing")], timeline

            # silenced: the same failure fires again, but nobody is told and nothing is rolled back
            silence = client.create_silence(
                "shop", ['alertname="AppErrorRateHigh"', 'app="web"'], "10m", "maintenance"
            )
            started = time.time()
            deploy(True, "v4")
            wait_until(
                "the silenced alert to fire and stay firing for 3 group intervals",
                lambda: [a for a in client.list_alerts("shop", "dev", "web")
                         if a["state"] == "firing" and time.time() - a["fired_at"] >= 3.0],
                timeout=30,
            )  # fmt: skip
            assert len(hook.bodies) == sent_before
            assert len(mailbox.messages) == mails_before
            assert len(client.alert_history("shop", "dev", "web", kind="action")) == 1
            assert client.get_app("shop", "dev", "web")["desired_release"] == 4

            # expiring the silence lets the notification and the rollback (to 3, the last healthy) through
            client.expire_silence("shop", silence["id"])
            wait_until("the firing webhook after the silence", lambda: len(hook.bodies) > sent_before)
            actions = wait_until(
                "the second rollback",
                lambda: [a for a in client.alert_history("shop", "dev", "web", kind="action")
                         if a["state"] == "done" and a.get("to_release") == 3],
            )  # fmt: skip
            assert actions
            wait_until("200s again", lambda: load.first(200, time.time() - 0.5) and load.recent_all(200, 50))
