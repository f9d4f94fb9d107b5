"""The restart action for real, per instance: a `yunzhou server` process (router, two app processes, the
embedded metrics store scraping every 0.5 s, the alert evaluator every 0.5 s). A rule whose alert names one
instance (the ``instance`` label of a per-instance series) restarts that instance and only that one: it is
replaced by a fresh process of the same release while the other keeps its pid, no release is made, the
requests through the router never fail, and the action is in the timeline and the audit trail."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.integration.observe.alerts.test_alert_healing import APP_DIR, Load, score
from yunzhou.client import YunzhouClient
from yunzhou.testing import ControlPlaneProcess
from yunzhou.testing.polling import wait_until

INTERVAL = "0.5"


def _all_ready(client: YunzhouClient, n: int) -> list[dict[str, Any]] | None:
    """The app's instances sorted by id when there are ``n`` and all are ready, else None."""
    now = sorted(client.list_instances("shop", "dev", "web"), key=lambda i: str(i["id"]))
    return now if len(now) == n and all(i["ready"] for i in now) else None


def test_restart_action_replaces_only_the_instance_the_alert_names(tmp_path: Path) -> None:
    env = {"YUNZHOU_SCRAPE_INTERVAL": INTERVAL, "YUNZHOU_ALERT_INTERVAL": INTERVAL}
    with (
        ControlPlaneProcess(tmp_path / "data", env=env, host_processes=True) as server,
        YunzhouClient(server.url, server.admin_token) as client,
    ):
        client.create_project("shop")
        client.create_environment("shop", "dev")
        artifact = client.upload_artifact(APP_DIR)
        deployed = client.deploy("shop", "dev", score(False, "v1"), {"replicas": 2}, artifact)
        rollout = client.wait_for_rollout(
            "shop", "dev", "web", deployed["rollout"]["id"], timeout=60, interval=0.1
        )
        assert rollout["state"] == "succeeded", rollout
        before = wait_until("two ready instances", lambda: _all_ready(client, 2))
        assert len(before) == 2
        failing, healthy = before
        pids = {i["id"]: i["pid"] for i in before}

        with Load(server.router_port) as load:
            wait_until("traffic through the router", lambda: load.recent_all(200))
            restart_from = len(load.results)
            client.put_alert_rule(
                "shop", "InstanceFailing",
                {"expr": f'yunzhou_instance_ready{{instance="{failing["id"]}"}} == 1', "for": "0s",
                 "actions": [{"type": "restart"}], "cooldown": "1h"},
                env="dev", app="web",
            )  # fmt: skip

            actions = wait_until(
                "the restart action",
                lambda: [a for a in client.alert_history("shop", "dev", "web", kind="action")
                         if a["alertname"] == "InstanceFailing"],
            )  # fmt: skip
            assert actions[0]["action"] == "restart"
            assert actions[0]["state"] == "done", actions[0]
            assert actions[0]["instances"] == [failing["id"]]
            restart = client.get_rollout("shop", "dev", "web", actions[0]["rollout"])
            assert restart["kind"] == "restart-instances"
            assert restart["strategy"]["instances"] == [failing["id"]]
            done = client.wait_for_rollout("shop", "dev", "web", restart["id"], timeout=60, interval=0.1)
            assert done["state"] == "succeeded", done

            after = wait_until(
                "the failing instance replaced by a fresh ready one",
                lambda: (
                    (now := _all_ready(client, 2)) and failing["id"] not in {i["id"] for i in now} and now
                ),
            )
            by_id = {i["id"]: i for i in after}
            assert by_id[healthy["id"]]["pid"] == pids[healthy["id"]]  # left alone
            fresh = next(i for i in after if i["id"] != healthy["id"])
            assert fresh["release"] == 1
            assert fresh["pid"] != pids[failing["id"]]
            wait_until("requests after the restart", lambda: load.recent_all(200, 50))
            during = load.results[restart_from:]
            assert during
            assert all(status == 200 for _, status in during), [s for _, s in during if s != 200][:5]

        app = client.get_app("shop", "dev", "web")
        assert app["desired_release"] == 1
        assert [r["number"] for r in client.list_releases("shop", "dev", "web")] == [1]
        audit = client.list_audit(project="shop", action="app.restart")
        assert audit[0]["actor"] == "alert:InstanceFailing"
        assert audit[0]["detail"]["instances"] == [failing["id"]]
        # the replaced instance's series ends, so the alert resolves; the cool-down kept it to one action
        wait_until("the alert to resolve", lambda: not client.list_alerts("shop", "dev", "web"), timeout=30)
        history = client.alert_history("shop", "dev", "web", kind="action")
        assert [a["state"] for a in history if a["alertname"] == "InstanceFailing"] == ["done"]
