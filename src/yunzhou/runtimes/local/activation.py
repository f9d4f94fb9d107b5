"""Scale to zero on the local target: the ``activation`` a route carries to the router. Pure.

An app whose ``autoscaling.scaleToZero`` is enabled keeps its route while it has no instance; the route's
``activation`` tells the router to hold its requests (at most ``queueLimit``, each for at most
``holdTimeoutSeconds``) until a snapshot lists a ready instance, instead of answering 503 at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from yunzhou.domain.autoscale.policy import collect_autoscaling
from yunzhou.domain.errors import FieldProblem


def route_activation(settings: Mapping[str, Any]) -> dict[str, Any] | None:
    """The router snapshot's ``routes[].activation`` for an app's settings; None without scale to zero."""
    problems: list[FieldProblem] = []  # settings were validated on deploy; a bad policy holds nothing
    policy = collect_autoscaling(settings.get("autoscaling"), "settings.autoscaling", problems)
    if policy is None or problems or not policy.scale_to_zero.enabled:
        return None
    stz = policy.scale_to_zero
    return {"timeout_seconds": float(stz.hold_timeout_seconds), "queue_limit": stz.queue_limit}
