"""How notifications to each alert receiver went — recorded by the notifier's thread, shown with the
receiver — and the checks a receiver's stored configuration gets: where it is written (the API, strict)
and where the notifier loads it (a value stored before validation was strict marks that one receiver as
failing instead of stopping every notification)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from yunzhou.domain.alert_routing import parse_receiver_config, parse_route, split_smarthost
from yunzhou.domain.errors import UserError, invalid
from yunzhou.outbound import Refused, Unresolved, checked_addresses
from yunzhou.services.context import iso
from yunzhou.store.models import AlertDelivery, AlertReceiver


@dataclass(frozen=True)
class DeliveryOutcome:
    """One message to one receiver: error None when it was delivered; next_retry (unix seconds) if not."""

    receiver_id: int
    error: str | None
    next_retry: float | None = None


def refuse_receiver_to_self(kind: str, config: Mapping[str, Any]) -> None:
    """A webhook URL or an SMTP smarthost whose host resolves to the control plane itself (loopback,
    link-local, its own addresses: its API, the router's admin port, a local MTA that relays for localhost)
    is refused unless the operator allows it. A name that does not resolve now is accepted: the notifier
    checks it again before every delivery."""
    if kind == "webhook":
        parts = urlsplit(str(config["url"]))
        path, host = "config.url", parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
    elif kind == "email":
        path, (host, port) = "config.smarthost", split_smarthost(str(config["smarthost"]))
    else:
        return
    try:
        checked_addresses(host, port)
    except Refused as exc:
        raise invalid(path, str(exc)) from exc
    except Unresolved:
        return


def stored_problem(kind: str, config: Mapping[str, Any], route: object) -> str:
    """Why a stored receiver cannot be used as it is ("" when it can)."""
    try:
        parse_receiver_config(kind, config)
        parse_route(route)
    except UserError as exc:
        return "the stored receiver is invalid (store it again): " + "; ".join(map(str, exc.problems))
    return ""


def record_outcomes(s: Session, outcomes: Iterable[DeliveryOutcome], now: datetime) -> None:
    """One flush's outcomes: every message counts as an attempt; a receiver with any failed message in the
    flush has one more consecutive failure, its last error and the soonest retry; else it is ok again."""
    by_receiver: dict[int, list[DeliveryOutcome]] = {}
    for o in outcomes:
        by_receiver.setdefault(o.receiver_id, []).append(o)
    if not by_receiver:
        return
    existing = set(s.scalars(select(AlertReceiver.id).where(AlertReceiver.id.in_(by_receiver))))
    rows = {
        r.receiver_id: r
        for r in s.scalars(select(AlertDelivery).where(AlertDelivery.receiver_id.in_(existing)))
    }
    for receiver_id in existing:
        row = rows.get(receiver_id)
        if row is None:
            row = AlertDelivery(receiver_id=receiver_id, attempts=0, failures=0, last_error="")
            s.add(row)
        mine = by_receiver[receiver_id]
        failed = [o for o in mine if o.error is not None]
        row.attempts += len(mine)
        row.last_attempt_at = now
        if failed:
            row.failures += 1
            row.last_error = str(failed[-1].error)[:2000]
            retries = [o.next_retry for o in failed if o.next_retry is not None]
            row.next_retry_at = datetime.fromtimestamp(min(retries), UTC) if retries else None
        else:
            row.failures, row.next_retry_at, row.last_success_at = 0, None, now


def delivery_view(row: AlertDelivery | None) -> dict[str, Any] | None:
    """None until the notifier first sent (or tried to send) something to the receiver."""
    if row is None:
        return None
    return {
        "state": "failing" if row.failures else "ok",
        "attempts": row.attempts,
        "failures": row.failures,
        "last_error": row.last_error or None,
        "last_attempt_at": iso(row.last_attempt_at),
        "last_success_at": iso(row.last_success_at),
        "next_retry_at": iso(row.next_retry_at),
    }


def deliveries(s: Session, receiver_ids: Iterable[int]) -> dict[int, AlertDelivery]:
    ids = list(receiver_ids)
    return {
        r.receiver_id: r for r in s.scalars(select(AlertDelivery).where(AlertDelivery.receiver_id.in_(ids)))
    }
