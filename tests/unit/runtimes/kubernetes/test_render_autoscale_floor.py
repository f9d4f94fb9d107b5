"""The HPA's minReplicas under a floor kept by the autoscale loop (schedules/predictive):
clamp(max(policy.minReplicas, floor), 1, maxReplicas); no floor without schedules/predictive."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from yunzhou.domain.autoscale import parse_autoscaling
from yunzhou.runtimes.kubernetes.render import Target, render
from yunzhou.runtimes.kubernetes.render_autoscale import HPA, hpa_min_replicas
from yunzhou.runtimes.protocol import AppIntent, RouteSpec

CPU = {"type": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}
WINDOW = {"name": "peak", "cron": "0 8 * * *", "durationSeconds": 3600, "minReplicas": 5}


def policy(**extra: Any) -> dict[str, Any]:
    return {"minReplicas": 2, "maxReplicas": 6, "metrics": [CPU], **extra}


@pytest.mark.parametrize(
    ("min_replicas", "floor", "expected"),
    [(2, None, 2), (2, 0, 2), (2, 1, 2), (2, 4, 4), (2, 6, 6), (2, 9, 6), (1, None, 1), (1, 0, 1), (1, 3, 3)],
)
def test_clamp(min_replicas: int, floor: int | None, expected: int) -> None:
    p = parse_autoscaling(policy(minReplicas=min_replicas, schedules=[WINDOW]))
    assert hpa_min_replicas(p, floor) == expected


def hpa_min(autoscaling: dict[str, Any], replicas: int) -> int:
    score = {
        "apiVersion": "score.dev/v1b1",
        "metadata": {"name": "orders"},
        "containers": {"web": {"image": "registry.test/orders:1"}},
        "service": {"ports": {"http": {"port": 80, "targetPort": 8080}}},
    }
    intent = AppIntent(1, "shop/dev/orders", 3, score, {"autoscaling": autoscaling}, None, None, 1, False,
                       (RouteSpec("orders.dev.shop.localhost"),), "cluster:c", "ns")  # fmt: skip
    objects = render(replace(intent, replicas=replicas), Target("ns", apis=frozenset({HPA})))
    hpa = next(o for o in objects if o["kind"] == "HorizontalPodAutoscaler")
    return int(hpa["spec"]["minReplicas"])


def test_the_floor_is_the_intents_replicas_when_the_policy_has_schedules() -> None:
    scheduled = policy(schedules=[WINDOW])
    assert [hpa_min(scheduled, r) for r in (0, 1, 2, 5, 50)] == [2, 2, 2, 5, 6]


def test_a_plain_hpa_policy_ignores_the_intents_replicas() -> None:
    assert [hpa_min(policy(), r) for r in (1, 5)] == [2, 2]
