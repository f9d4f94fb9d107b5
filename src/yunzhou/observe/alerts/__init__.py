"""Alert evaluation, notification (grouping, silences, webhook and email) and healing actions."""

from yunzhou.observe.alerts.delivery import DeliveryError, NotifiedAlert, webhook_payload
from yunzhou.observe.alerts.evaluator import DEFAULT_INTERVAL, AlertEvaluator, InstantQuery, alert_interval
from yunzhou.observe.alerts.notifier import Notifier, Sent

__all__ = [
    "DEFAULT_INTERVAL",
    "AlertEvaluator",
    "DeliveryError",
    "InstantQuery",
    "NotifiedAlert",
    "Notifier",
    "Sent",
    "alert_interval",
    "webhook_payload",
]
