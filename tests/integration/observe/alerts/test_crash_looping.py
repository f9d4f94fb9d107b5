"""AppCrashLooping for real, untuned: a `yunzhou server` process (supervisor, the embedded metrics store
scraping every 0.5 s, alerts every 0.5 s) runs a release whose process exits at once. The supervisor
restarts it with back-off (1 s, 2 s, 4 s …); the default rule (more than 2 restarts in 10m, for 0s) fires
for that instance, named by its ``instance`` label, from the restarts the instance collector reported.
(The other default rules are fired on the same metrics path with simulated time in test_default_rules.py.)"""

from __future__ import annotations

from pathlib import Path

from tests.integration.observe.alerts.test_alert_healing import APP_DIR, score
from yunzhou.client import YunzhouClient
from yunzhou.testing import ControlPlaneProcess
from yunzhou.testing.polling import wait_until


def test_a_crashing_release_fires_app_crash_looping_for_its_instance(tmp_path: Path) -> None:
    env = {"YUNZHOU_SCRAPE_INTERVAL": "0.5", "YUNZHOU_ALERT_INTERVAL": "0.5"}
    with (
        ControlPlaneProcess(tmp_path / "data", env=env, host_processes=True) as server,
        YunzhouClient(server.url, server.admin_token) as client,
    ):
        client.create_project("shop")
        client.create_environment("shop", "dev")
        crashing = score(False, "v1")
        crashing["containers"]["web"]["command"] = ["python3", "-c", "raise SystemExit(3)"]
        client.deploy("shop", "dev", crashing, None, client.upload_artifact(APP_DIR))

        firing = wait_until(
            "AppCrashLooping to fire",
            lambda: [a for a in client.list_alerts("shop", "dev", "web")
                     if a["alertname"] == "AppCrashLooping" and a["state"] == "firing"],
            timeout=60,
        )  # fmt: skip
        instances = client.list_instances("shop", "dev", "web")
        assert [a["labels"]["instance"] for a in firing] == [instances[0]["id"]]
        assert firing[0]["labels"]["severity"] == "critical"
        assert firing[0]["value"] > 2
        assert instances[0]["last_exit"] == "exit 3"
        assert "restarted" in firing[0]["annotations"]["summary"]
