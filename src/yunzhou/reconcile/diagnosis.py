"""Why an app's instances do not serve: the failing instance's last stderr lines and last probe result,
picked from a runtime's observation (pure). The app controller keeps it as the ``InstanceHealth``
condition; ``yunzhou status``, ``--wait`` failures and the console show it (docs/local-runtime.md)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from yunzhou.domain.masking import SecretMask
from yunzhou.domain.plan import INSTANCE_HEALTH
from yunzhou.runtimes.base import InstanceStatus, ProbeResult
from yunzhou.services.context import iso

CONDITION = INSTANCE_HEALTH
#: A not-ready instance is reported once its readiness check has failed for this long (a start is not).
READINESS_GRACE_S = 10.0


def mask(text: str, secrets: Iterable[str]) -> str:
    """``text`` with the release's secret values (and their encodings) masked as its logs are."""
    return SecretMask.of(secrets).apply(text)


def _problem(s: InstanceStatus) -> tuple[int, str] | None:
    """(rank, reason) of what is wrong with an instance, lower rank first; None when nothing is."""
    probe = s.last_probe
    if s.state in ("crashloop", "failed"):
        return 0, "CrashLoopBackOff" if s.state == "crashloop" else "Failed"
    if s.state in ("terminating", "stopped") or s.ready:
        return None
    if probe is not None and not probe.ok and probe.probe == "liveness":
        return 1, "LivenessProbeFailing"
    if probe is not None and not probe.ok and probe.at - probe.since >= READINESS_GRACE_S:
        return 2, "ReadinessProbeFailing"
    if s.restarts > 0 and s.last_exit:
        return 3, "Restarted"
    return None


def diagnose(
    instances: Iterable[InstanceStatus], release: int, secrets: Iterable[str] = ()
) -> dict[str, Any] | None:
    """The most telling unhealthy instance (the release's own first) as plain data, or None. Secret
    values in its stderr lines are masked."""
    found = [(p, s) for s in instances if (p := _problem(s)) is not None]
    if not found:
        return None
    (_rank, reason), s = min(found, key=lambda f: (f[1].release != release, f[0][0], f[1].instance_id))
    hidden = SecretMask.of(secrets)
    stderr = [hidden.apply(line) for line in s.stderr_tail]
    doc: dict[str, Any] = {
        "reason": reason,
        "instance": s.instance_id,
        "release": s.release,
        "state": s.state,
        "restarts": s.restarts,
        "last_exit": s.last_exit,
        "stderr": stderr,
        "probe": _probe_view(s.last_probe),
    }
    doc["message"] = summary(doc)
    return doc


def _probe_view(p: ProbeResult | None) -> dict[str, Any] | None:
    if p is None:
        return None
    return {
        "probe": p.probe,
        "type": p.kind,
        "target": p.target,
        "ok": p.ok,
        "result": p.detail,
        # when the current outcome began (not each run's time: the stored condition changes only with it)
        "since": iso(datetime.fromtimestamp(p.since, UTC)),
    }


def probe_line(probe: dict[str, Any]) -> str:
    """``readiness GET /healthz → HTTP 503``."""
    return f"{probe.get('probe')} {probe.get('target')} → {probe.get('result')}"


def summary(doc: dict[str, Any]) -> str:
    """One line: which instance, what is wrong, and the most telling evidence."""
    where = f"instance {doc['instance']} (release {doc['release']})"
    if doc["reason"] in ("CrashLoopBackOff", "Failed", "Restarted"):
        what = f"{where} exited ({doc['last_exit'] or 'unknown'}, {doc['restarts']} restarts)"
    else:
        what = f"{where} is not ready"
    parts = [what]
    probe = doc.get("probe")
    if probe and not probe.get("ok"):
        parts.append(probe_line(probe))
    if doc["stderr"]:
        parts.append(f"last stderr: {doc['stderr'][-1]}")
    return "; ".join(parts)
