"""A canary nobody calls, on the local target (a real control plane, its router and real app processes):
its analysis says "no traffic to analyse" and waits while the stable release serves, the rollout's own
progress deadline (``rollout.progressDeadlineSeconds``) then fails it with that reason, and with
``allowNoTraffic`` such a step is promoted instead."""

from __future__ import annotations

import time
from typing import Any

from tests.integration.local.test_traffic import APPS, DEADLINE, client, deploy, mesh_score, server
from yunzhou.client import YunzhouClient
from yunzhou.testing import ControlPlaneProcess, polling

__all__ = ["client", "server"]  # the fixtures, shared with test_traffic
WINDOW = 2.0


def canary(**rollout: Any) -> dict[str, Any]:
    step = {"weight": 50, "analysis": {"window": f"{WINDOW:g}s", "maxErrorRate": 0.01, "minRequests": 5}}
    return {"replicas": 1, "rollout": {"strategy": "canary", "steps": [step], **rollout}}


def test_a_canary_without_traffic_waits_with_the_reason_then_fails_at_its_progress_deadline(
    server: ControlPlaneProcess, client: YunzhouClient
) -> None:
    deploy(client, "quiet", canary(), "v1")  # the first release rolls out plainly
    started = time.monotonic()
    v2 = client.deploy(
        "shop", "dev", mesh_score("quiet", "v2"), canary(progressDeadlineSeconds=20),
        client.upload_artifact(APPS / "mesh"),
    )  # fmt: skip
    rollout_id = v2["rollout"]["id"]

    def rollout() -> dict[str, Any]:
        found = [r for r in client.list_rollouts("shop", "dev", "quiet") if r["id"] == rollout_id]
        return found[0]

    waiting = polling.wait_until(
        "the analysis to say it has no traffic",
        lambda: r if "no traffic to analyse" in (r := rollout())["message"] else None,
        DEADLINE,
        interval=0.2,
    )
    assert waiting["state"] == "progressing", waiting
    assert "canary step 1/1: 50% to release 2 — no traffic to analyse" in waiting["message"], waiting
    # it used to abort as InvalidRelease once the window ended; now it keeps waiting, the stable serving
    until = time.monotonic() + 3 * WINDOW
    while time.monotonic() < until:
        app = client.get_app("shop", "dev", "quiet")
        assert rollout()["state"] == "progressing"
        assert app["status"] == "progressing", app
        assert app["ready_replicas"] >= 1, app
        time.sleep(0.5)
    progressing = {c["type"]: c for c in app["conditions"]}["Progressing"]
    assert "no traffic to analyse" in progressing["message"], progressing

    done = client.wait_for_rollout("shop", "dev", "quiet", rollout_id, timeout=DEADLINE, interval=0.2)
    took = time.monotonic() - started
    assert done["state"] == "failed", done
    # the reconciler's deadline (from the rollout's start) or the step's own (from its start), whichever
    # comes first: "ProgressDeadlineExceeded: canary step 1/1: … — no traffic to analyse; …" or
    # "canary aborted at step 1 (50%): no traffic to analyse within the progress deadline (20 s)"
    assert "no traffic to analyse" in done["message"], done
    assert 20 <= took < 20 + DEADLINE, took  # the app's own deadline, not the default 600 s

    def aborted() -> dict[str, Any] | None:  # either way the canary ends: its instance drained
        app = client.get_app("shop", "dev", "quiet")
        progressing = {c["type"]: c for c in app["conditions"]}["Progressing"]
        return app if "canary aborted" in progressing["message"] else None

    app = polling.wait_until("the canary to be aborted", aborted, DEADLINE, interval=0.2)
    assert "no traffic to analyse within the progress deadline (20 s)" in str(app["conditions"]), app
    assert app["ready_replicas"] == 1, app  # release 1 serves on
    progressing = {c["type"]: c for c in app["conditions"]}["Progressing"]
    assert progressing["reason"] == "RolloutAborted", progressing  # not InvalidRelease


def test_allow_no_traffic_promotes_a_canary_nobody_calls(
    server: ControlPlaneProcess, client: YunzhouClient
) -> None:
    deploy(client, "idle", canary(), "v1")
    deploy(client, "idle", canary(allowNoTraffic=True), "v2")  # asserts the rollout succeeded
    app = client.get_app("shop", "dev", "idle")
    assert (app["current_release"], app["status"]) == (2, "running"), app
