"""The Rendered condition from a runtime's not-rendered notes (a pure function of the observation)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from yunzhou.reconcile.apps import _conditions
from yunzhou.runtimes.protocol import AppIntent, AppObservation

T0 = datetime(2026, 1, 1, tzinfo=UTC)
INTENT = AppIntent(
    app_id=1, address="shop/dev/orders", release=1, score={}, settings={}, artifact=None,
    artifact_digest=None, replicas=1, removing=False, routes=(), target="cluster:kwok", namespace="n",
)  # fmt: skip
MISSING = (
    "ServiceMonitor not rendered: the cluster does not serve monitoring.coreos.com/v1 ServiceMonitor",
    "rateLimit not rendered on Kubernetes (enforced by the local router only)",
)


def observe(*notes: str) -> AppObservation:
    return AppObservation((), 1, 1, True, False, 0, not_rendered=notes)


def rendered(conditions: list[dict[str, object]]) -> dict[str, object] | None:
    return next((c for c in conditions if c["type"] == "Rendered"), None)


def test_no_notes_no_condition() -> None:
    assert rendered(_conditions([], T0, INTENT, observe(), False)) is None


def test_missing_apis_then_all_rendered() -> None:
    first = _conditions([], T0, INTENT, observe(*MISSING), False)
    cond = rendered(first)
    assert cond is not None
    assert (cond["status"], cond["reason"]) == ("False", "MissingAPIs")
    assert cond["message"] == (
        "ServiceMonitor → the cluster does not serve monitoring.coreos.com/v1 ServiceMonitor; "
        "rateLimit not rendered on Kubernetes (enforced by the local router only)"
    )
    again = rendered(_conditions(first, T0 + timedelta(seconds=5), INTENT, observe(*MISSING), False))
    assert again == cond  # nothing moved, not even the transition time
    later = rendered(_conditions(first, T0 + timedelta(seconds=9), INTENT, observe(), False))
    assert later is not None
    assert (later["status"], later["reason"]) == ("True", "AllRendered")
    assert later["last_transition"] != cond["last_transition"]


def test_only_unsupported_fields() -> None:
    cond = rendered(_conditions([], T0, INTENT, observe(MISSING[1]), False))
    assert cond is not None
    assert (cond["status"], cond["reason"]) == ("False", "NotSupported")
