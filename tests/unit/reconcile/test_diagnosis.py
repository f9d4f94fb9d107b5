"""The InstanceHealth diagnosis from a runtime's observation (pure): which instance, its last stderr lines
(secrets masked) and last probe result; kept as a condition and shown by the app's view."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from yunzhou.reconcile.apps import _conditions, _with_stderr
from yunzhou.reconcile.diagnosis import diagnose
from yunzhou.runtimes.base import InstanceStatus, ProbeResult, stderr_tail
from yunzhou.runtimes.protocol import AppIntent, AppObservation
from yunzhou.services.views import _diagnosis

T0 = datetime(2026, 1, 1, tzinfo=UTC)
INTENT = AppIntent(
    app_id=1, address="shop/dev/orders", release=2, score={}, settings={}, artifact=None,
    artifact_digest=None, replicas=1, removing=False, routes=(),
)  # fmt: skip
READY = InstanceStatus(
    "a", "shop/dev/orders", 1, 10, 8001, "ready", True, 0, None, "ready", 0.0, 0, 1.0, None
)
FAILING_503 = ProbeResult("readiness", "http", "GET /healthz", False, "HTTP 503", at=1000.0, since=985.0)


def crashing(**changes: object) -> InstanceStatus:
    base = replace(
        READY, instance_id="b", release=2, state="crashloop", ready=False, restarts=3, last_exit="exit 1"
    )
    return replace(base, **{"stderr_tail": ("boom: missing DATABASE_URL",), **changes})  # type: ignore[arg-type]


def test_a_crash_loop_is_diagnosed_with_its_stderr_and_secrets_are_masked() -> None:
    secret = "hunter2-very-secret"
    instance = crashing(stderr_tail=("connecting with hunter2-very-secret", "boom: missing DATABASE_URL"))
    found = diagnose([READY, instance], 2, {secret})
    assert found is not None
    assert (found["reason"], found["instance"], found["last_exit"]) == ("CrashLoopBackOff", "b", "exit 1")
    assert found["stderr"] == ["connecting with ***", "boom: missing DATABASE_URL"]  # as in its logs
    assert found["message"] == (
        "instance b (release 2) exited (exit 1, 3 restarts); last stderr: boom: missing DATABASE_URL"
    )
    failure = "CrashLoopBackOff: instance b of release 2 keeps exiting (exit 1)"
    assert _with_stderr(failure, found) == failure + "; last stderr: boom: missing DATABASE_URL"


def test_a_failing_readiness_probe_is_diagnosed_after_its_grace_only() -> None:
    starting = replace(READY, instance_id="c", release=2, state="starting", ready=False)
    fresh = replace(FAILING_503, since=998.0)
    assert diagnose([READY, replace(starting, last_probe=fresh)], 2) is None  # a start, not a problem
    found = diagnose([READY, replace(starting, last_probe=FAILING_503)], 2)
    assert found is not None
    assert found["reason"] == "ReadinessProbeFailing"
    assert found["probe"] == {
        "probe": "readiness", "type": "http", "target": "GET /healthz", "ok": False, "result": "HTTP 503",
        "since": "1970-01-01T00:16:25Z",
    }  # fmt: skip
    assert found["message"] == "instance c (release 2) is not ready; readiness GET /healthz → HTTP 503"
    assert diagnose([READY], 2) is None


def test_the_condition_carries_the_diagnosis_and_turns_true_when_it_is_gone() -> None:
    obs = AppObservation((READY, crashing()), 1, 0, False, False, 0, failure="CrashLoopBackOff: …")
    found = diagnose(obs.instances, 2)
    first = _conditions([], T0, INTENT, obs, False, found)
    health = next(c for c in first if c["type"] == "InstanceHealth")
    assert (health["status"], health["reason"]) == ("False", "CrashLoopBackOff")
    assert health["diagnosis"]["stderr"] == ["boom: missing DATABASE_URL"]
    view = _diagnosis(first)
    assert view is not None
    assert (view["reason"], view["instance"]) == ("CrashLoopBackOff", "b")
    healthy = AppObservation((READY,), 1, 1, True, False, 0)
    later = _conditions(first, T0 + timedelta(seconds=5), INTENT, healthy, False, None)
    health = next(c for c in later if c["type"] == "InstanceHealth")
    assert (health["status"], "diagnosis" in health) == ("True", False)
    assert _diagnosis(later) is None
    assert not any(c["type"] == "InstanceHealth" for c in _conditions([], T0, INTENT, healthy, False, None))


def test_the_stderr_tail_keeps_the_last_ten_lines_within_2_kib() -> None:
    assert stderr_tail([str(i) for i in range(15)]) == tuple(str(i) for i in range(5, 15))
    kept = stderr_tail(["a" * 1500, "b" * 1500])
    assert kept[-1] == "b" * 1500
    assert len("\n".join(kept).encode()) <= 2048 + 1


def test_an_aborted_canary_is_not_called_an_invalid_release() -> None:
    aborted = AppObservation((READY,), 1, 0, False, False, 0, failure="canary aborted at step 1 (10%): …")
    progressing = next(c for c in _conditions([], T0, INTENT, aborted, False) if c["type"] == "Progressing")
    assert (progressing["status"], progressing["reason"]) == ("False", "RolloutAborted")
