"""Sending one notification: the Alertmanager webhook payload (version 4) over HTTP, or an email over SMTP
(smtplib; STARTTLS when the receiver asks for it). Failures become DeliveryError with the reason."""

from __future__ import annotations

import smtplib
import socket
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

import httpx

from yunzhou.domain.alert_routing import split_smarthost
from yunzhou.outbound import Address, OutboundPolicy, Refused, Unresolved, checked_addresses

TIMEOUT = 10.0
_DEFAULT_PORTS = {"http": 80, "https": 443}
ZERO_TIME = "0001-01-01T00:00:00Z"  # Alertmanager's endsAt for an alert that has not ended


class DeliveryError(Exception):
    pass


@dataclass(frozen=True)
class NotifiedAlert:
    fingerprint: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    starts_at: float
    ends_at: float | None  # None while firing
    generator_url: str = ""
    project: str = ""  # the project whose receivers and silences it belongs to ("" → its project label)

    @property
    def owner(self) -> str:
        return self.project or self.labels.get("project", "")

    @property
    def status(self) -> str:
        return "firing" if self.ends_at is None else "resolved"

    def to_payload(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "labels": dict(self.labels),
            "annotations": dict(self.annotations),
            "startsAt": rfc3339(self.starts_at),
            "endsAt": ZERO_TIME if self.ends_at is None else rfc3339(self.ends_at),
            "generatorURL": self.generator_url,
            "fingerprint": self.fingerprint,
        }


def rfc3339(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _common(maps: Sequence[Mapping[str, str]]) -> dict[str, str]:
    if not maps:
        return {}
    first = dict(maps[0])
    return {k: v for k, v in first.items() if all(m.get(k) == v for m in maps[1:])}


def webhook_payload(
    receiver: str,
    group_key: str,
    group_labels: Mapping[str, str],
    alerts: Sequence[NotifiedAlert],
    external_url: str,
    max_alerts: int = 0,
) -> dict[str, Any]:
    """Alertmanager's webhook JSON (version 4), field for field. As Alertmanager's webhook notifier does,
    status and the common labels/annotations describe the alerts the message carries (after max_alerts)."""
    shown = list(alerts[:max_alerts]) if max_alerts else list(alerts)
    return {
        "version": "4",
        "groupKey": group_key,
        "truncatedAlerts": len(alerts) - len(shown),
        "status": "firing" if any(a.ends_at is None for a in shown) else "resolved",
        "receiver": receiver,
        "groupLabels": dict(group_labels),
        "commonLabels": _common([a.labels for a in shown]),
        "commonAnnotations": _common([a.annotations for a in shown]),
        "externalURL": external_url,
        "alerts": [a.to_payload() for a in shown],
    }


def send_webhook(url: str, payload: Mapping[str, Any], policy: OutboundPolicy | None = None) -> None:
    """POST to the address checked against the outbound policy, pinned (Host and TLS server name stay the
    URL's), so a name that resolves elsewhere after the check still cannot reach the control plane."""
    try:
        target = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise DeliveryError(f"webhook URL is not valid: {exc}") from exc
    try:
        addresses = checked_addresses(target.host, target.port or _DEFAULT_PORTS[target.scheme], policy)
    except (Refused, Unresolved) as exc:
        raise DeliveryError(f"webhook to {target.host}: {exc}") from exc
    extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
    headers = {"User-Agent": "Yunzhou-Alerts", "Host": target.netloc.decode("ascii")}
    with httpx.Client(timeout=TIMEOUT, headers=headers) as client:
        for i, address in enumerate(addresses):
            try:
                response = client.post(
                    target.copy_with(host=str(address)), json=payload, extensions=extensions
                )
                break
            except httpx.ConnectError as exc:  # as a client resolving the name would: try the next address
                if i == len(addresses) - 1:
                    raise DeliveryError(f"webhook to {target.host}: {exc}") from exc
            except httpx.HTTPError as exc:
                raise DeliveryError(f"webhook to {target.host}: {exc}") from exc
    if response.status_code >= 300:
        raise DeliveryError(
            f"webhook to {target.host} answered {response.status_code}: {response.text[:200]}"
        )


def email_message(config: Mapping[str, Any], payload: Mapping[str, Any]) -> EmailMessage:
    """Subject like Alertmanager's default: ``[FIRING:2] AlertName (group labels)``."""
    alerts: list[dict[str, Any]] = payload["alerts"]
    firing = [a for a in alerts if a["status"] == "firing"]
    resolved = [a for a in alerts if a["status"] == "resolved"]
    status = payload["status"].upper()
    count = f":{len(firing)}" if payload["status"] == "firing" else ""
    group = " ".join(f"{k}={v}" for k, v in sorted(payload["groupLabels"].items()) if k != "alertname")
    name = payload["groupLabels"].get("alertname") or payload["commonLabels"].get("alertname", "alerts")
    msg = EmailMessage()
    subject = f"[{status}{count}] {name}" + (f" ({group})" if group else "")
    msg["Subject"] = " ".join(subject.split())  # label values may hold line breaks; a header may not
    msg["From"] = config["from"]
    msg["To"] = ", ".join(config["to"])
    lines: list[str] = []
    for title, items in (("Firing", firing), ("Resolved", resolved)):
        if not items:
            continue
        lines.append(f"{title}:")
        for a in items:
            summary = a["annotations"].get("summary") or a["labels"].get("alertname", "")
            lines.append(f"- {summary}")
            lines.append("  labels: " + ", ".join(f"{k}={v}" for k, v in sorted(a["labels"].items())))
            lines.append(
                f"  since: {a['startsAt']}" + (f"  until: {a['endsAt']}" if a["status"] == "resolved" else "")
            )
        lines.append("")
    if payload.get("externalURL"):
        lines.append(f"Yunzhou: {payload['externalURL']}")
    msg.set_content("\n".join(lines))
    return msg


class _PinnedSMTP(smtplib.SMTP):
    """Connects to the addresses checked against the outbound policy, whatever the name resolves to by
    then; STARTTLS still checks the server's certificate against the name."""

    def __init__(self, addresses: list[Address], host: str, port: int, local_hostname: str | None) -> None:
        self.addresses = addresses
        super().__init__(host, port, local_hostname=local_hostname, timeout=TIMEOUT)  # connects

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        for address in self.addresses[:-1]:  # as a client resolving the name would: try the next one
            try:
                return socket.create_connection((str(address), port), timeout, self.source_address)
            except OSError:
                continue
        return socket.create_connection((str(self.addresses[-1]), port), timeout, self.source_address)


def send_email(
    config: Mapping[str, Any], payload: Mapping[str, Any], policy: OutboundPolicy | None = None
) -> None:
    """Via the smarthost, checked as a webhook's host is: never the control plane itself (a local MTA
    relaying for localhost included) unless the operator allows it."""
    host, port = split_smarthost(str(config["smarthost"]))
    try:
        addresses = checked_addresses(host, port, policy)
    except (Refused, Unresolved) as exc:
        raise DeliveryError(f"email via {config['smarthost']!r}: {exc}") from exc
    try:
        message = email_message(config, payload)
        with _PinnedSMTP(addresses, host, port, config.get("hello")) as smtp:
            if config.get("starttls"):
                smtp.starttls(context=ssl.create_default_context(cafile=config.get("ca_file")))
            smtp.send_message(message)
    except (OSError, ValueError, smtplib.SMTPException) as exc:  # ValueError: a header no message may hold
        raise DeliveryError(f"email via {config['smarthost']!r}: {exc}") from exc


def deliver(kind: str, config: Mapping[str, Any], payload: Mapping[str, Any]) -> None:
    if kind == "webhook":
        send_webhook(str(config["url"]), payload)
    elif kind == "email":
        send_email(config, payload)
    else:
        raise DeliveryError(f"unknown receiver kind {kind!r}")
