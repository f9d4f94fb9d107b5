"""Receivers (webhook, email) and the route that says which alerts reach one, grouped how and how often —
Alertmanager's model, parsed and validated here (pure)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from yunzhou.domain.alerts import LABEL_NAME, Matcher, format_duration, parse_duration, parse_matchers
from yunzhou.domain.errors import FieldProblem, UserError, invalid

RECEIVER_KINDS = ("webhook", "email")
RECEIVER_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_HOSTNAME = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
# an RFC 5321 mailbox as a dot-atom local part @ a host name: no display names, quotes or comments
_ADDRESS = re.compile(rf"^{_ATOM}(\.{_ATOM})*@{_HOSTNAME}$")
_HOST = re.compile(rf"^{_HOSTNAME}$")
_HOSTPORT = re.compile(rf"^(?P<host>{_HOSTNAME}|\[[0-9a-fA-F:.]+\]):(?P<port>\d{{1,5}})$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")  # CR/LF would end an SMTP command or an HTTP header line
MAX_URL = 2048
MAX_ADDRESS = 254
DEFAULT_GROUP_BY = ("alertname", "project", "env", "app")


@dataclass(frozen=True)
class Route:
    matchers: tuple[Matcher, ...] = ()
    group_by: tuple[str, ...] = DEFAULT_GROUP_BY  # ("...",) groups by every label, as in Alertmanager
    group_wait_s: float = 30.0
    group_interval_s: float = 300.0
    repeat_interval_s: float = 4 * 3600.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "matchers": [str(m) for m in self.matchers],
            "group_by": list(self.group_by),
            "group_wait": format_duration(self.group_wait_s),
            "group_interval": format_duration(self.group_interval_s),
            "repeat_interval": format_duration(self.repeat_interval_s),
        }

    def group_key(self, labels: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
        if self.group_by == ("...",):
            return tuple(sorted(labels.items()))
        # as Alertmanager: groupLabels hold only the group_by labels the alert has (no empty values)
        return tuple((k, labels[k]) for k in self.group_by if labels.get(k))


ROUTE_FIELDS = {"matchers", "group_by", "group_wait", "group_interval", "repeat_interval"}


def parse_route(doc: object, path: str = "route") -> Route:
    if doc is None:
        return Route()
    if not isinstance(doc, Mapping):
        raise invalid(path, f"must be a mapping of: {', '.join(sorted(ROUTE_FIELDS))}")
    problems: list[FieldProblem] = [
        FieldProblem(f"{path}.{k}", f"unknown field; allowed: {', '.join(sorted(ROUTE_FIELDS))}")
        for k in sorted(set(map(str, doc)) - ROUTE_FIELDS)
    ] + control_characters(doc, path)
    matchers: tuple[Matcher, ...] = ()
    if doc.get("matchers"):
        try:
            matchers = parse_matchers(doc["matchers"], f"{path}.matchers")
        except UserError as exc:
            problems += exc.problems
    group_by = doc.get("group_by", list(DEFAULT_GROUP_BY))
    if not isinstance(group_by, list) or not all(
        isinstance(g, str) and (LABEL_NAME.match(g) or g == "...") for g in group_by
    ):
        problems.append(FieldProblem(f"{path}.group_by", 'must be a list of label names, or ["..."]'))
        group_by = list(DEFAULT_GROUP_BY)
    elif "..." in group_by and len(group_by) > 1:  # Alertmanager refuses the mix too
        problems.append(FieldProblem(f"{path}.group_by", '"..." (every label) stands alone'))
    times: dict[str, float] = {}
    for key, default in (("group_wait", 30.0), ("group_interval", 300.0), ("repeat_interval", 14400.0)):
        try:
            times[key] = parse_duration(doc[key], f"{path}.{key}") if key in doc else default
        except UserError as exc:
            problems += exc.problems
            times[key] = default
    if times["group_interval"] <= 0 or times["repeat_interval"] <= 0:
        problems.append(
            FieldProblem(f"{path}.group_interval", "group_interval and repeat_interval must be > 0")
        )
    if problems:
        raise UserError("the route is invalid: nothing was changed", problems=problems)
    return Route(
        matchers, tuple(group_by), times["group_wait"], times["group_interval"], times["repeat_interval"]
    )


def control_characters(doc: object, path: str) -> list[FieldProblem]:
    """Every string (key or value) in a document that holds a control character (CR/LF, NUL …)."""
    if isinstance(doc, str):
        found = _CONTROL.search(doc)
        if found is None:
            return []
        return [FieldProblem(path, f"holds a control character ({found.group()!r}); none are allowed")]
    problems: list[FieldProblem] = []
    if isinstance(doc, Mapping):
        for k, v in doc.items():
            problems += control_characters(str(k), path) + control_characters(v, f"{path}.{k}")
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            problems += control_characters(v, f"{path}[{i}]")
    return problems


def _webhook_url(url: object, path: str) -> list[FieldProblem]:
    if not isinstance(url, str) or len(url) > MAX_URL:
        return [FieldProblem(path, f"required: an http:// or https:// URL of at most {MAX_URL} characters")]
    try:
        parts = urlsplit(url)
        port = parts.port  # a port that is not a number from 0 to 65535 raises here
    except ValueError as exc:
        return [FieldProblem(path, f"not a valid URL ({exc})")]
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return [FieldProblem(path, "required: an http:// or https:// URL with a host")]
    if port == 0 or " " in url:
        return [FieldProblem(path, "not a valid URL (port 0, or a space: encode it as %20)")]
    return []


def _smarthost(value: object, path: str) -> list[FieldProblem]:
    m = _HOSTPORT.fullmatch(value) if isinstance(value, str) else None
    if m is None or not 1 <= int(m["port"]) <= 65535:
        return [
            FieldProblem(path, "required: host:port of the SMTP server (port 1-65535, [v6 address]:port)")
        ]
    return []


def split_smarthost(smarthost: str) -> tuple[str, int]:
    """``host:port`` or ``[v6 address]:port`` (as _smarthost admits it) as host and port."""
    host, _, port = smarthost.rpartition(":")
    return host.strip("[]"), int(port)


def is_address(value: object) -> bool:
    return isinstance(value, str) and len(value) <= MAX_ADDRESS and _ADDRESS.fullmatch(value) is not None


def parse_receiver_config(kind: object, doc: object, path: str = "config") -> dict[str, Any]:
    """Webhook: {url, send_resolved?, max_alerts?}. Email: {to, from, smarthost, starttls?, ca_file?, hello?,
    send_resolved?} (ca_file: the CAs that sign the SMTP server's certificate, else the system's).
    Returned normalised, as stored and as the notifier reads it. Strict, because each value ends up in an
    HTTP request line or an SMTP command: no control characters anywhere, addresses are plain mailboxes."""
    if kind not in RECEIVER_KINDS:
        raise invalid("kind", f"must be one of: {', '.join(RECEIVER_KINDS)}")
    if not isinstance(doc, Mapping):
        raise invalid(path, "must be a mapping")
    problems: list[FieldProblem] = control_characters(doc, path)
    if problems:
        raise UserError("the receiver is invalid: nothing was changed", problems=problems)
    allowed = (
        {"url", "max_alerts"}
        if kind == "webhook"
        else {"to", "from", "smarthost", "starttls", "ca_file", "hello"}
    )
    allowed |= {"send_resolved"}
    problems += [
        FieldProblem(f"{path}.{k}", f"unknown field; allowed: {', '.join(sorted(allowed))}")
        for k in sorted(set(map(str, doc)) - allowed)
    ]
    send_resolved = doc.get("send_resolved", True)
    if not isinstance(send_resolved, bool):
        problems.append(FieldProblem(f"{path}.send_resolved", "must be true or false"))
    out: dict[str, Any] = {"send_resolved": send_resolved}
    if kind == "webhook":
        url = doc.get("url")
        problems += _webhook_url(url, f"{path}.url")
        max_alerts = doc.get("max_alerts", 0)
        if isinstance(max_alerts, bool) or not isinstance(max_alerts, int) or max_alerts < 0:
            problems.append(FieldProblem(f"{path}.max_alerts", "must be an integer >= 0 (0: no limit)"))
        out |= {"url": url, "max_alerts": max_alerts}
    else:
        to = doc.get("to")
        to_list = [to] if isinstance(to, str) else to
        if not isinstance(to_list, list) or not to_list or not all(is_address(a) for a in to_list):
            problems.append(
                FieldProblem(f"{path}.to", "required: an address or a list of addresses (name@host)")
            )
        if not is_address(doc.get("from")):
            problems.append(FieldProblem(f"{path}.from", "required: the sender's address (name@host)"))
        problems += _smarthost(doc.get("smarthost"), f"{path}.smarthost")
        starttls = doc.get("starttls", False)
        if not isinstance(starttls, bool):
            problems.append(FieldProblem(f"{path}.starttls", "must be true or false"))
        out |= {
            "to": to_list,
            "from": doc.get("from"),
            "smarthost": doc.get("smarthost"),
            "starttls": starttls,
        }
        ca_file = doc.get("ca_file")
        if ca_file is not None:
            if not isinstance(ca_file, str) or not ca_file.startswith("/"):
                problems.append(FieldProblem(f"{path}.ca_file", "an absolute path to PEM CA certificates"))
            elif not starttls:
                problems.append(FieldProblem(f"{path}.ca_file", "only used with starttls: true"))
            else:
                out["ca_file"] = ca_file
        if "hello" in doc:
            hello = doc["hello"]
            if not isinstance(hello, str) or len(hello) > 253 or not _HOST.fullmatch(hello):
                problems.append(FieldProblem(f"{path}.hello", "a host name to greet the SMTP server with"))
            out["hello"] = hello
    if problems:
        raise UserError("the receiver is invalid: nothing was changed", problems=problems)
    return out


def is_receiver_name(name: str) -> bool:
    return RECEIVER_NAME.match(name) is not None
