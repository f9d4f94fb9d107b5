"""``yunzhou alerts``: active alerts, history, an app's timeline, rules, receivers and silences.

SCOPE is ``global``, ``PROJECT``, ``PROJECT/ENV`` or ``PROJECT/ENV/APP``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from yunzhou.cli.common import ListFormat, ListOutput, connect, print_list, say, short_time

alerts_app = typer.Typer(
    help="Alerts: what fires now, history, rules (and tuning the default ones), receivers, silences.",
    no_args_is_help=True,
)
rules_app = typer.Typer(help="Alert rules and tunings of the default rules, per scope.", no_args_is_help=True)
receivers_app = typer.Typer(help="Where notifications go: webhook or email.", no_args_is_help=True)
silence_app = typer.Typer(help="Mute alerts matching label matchers for a while.", no_args_is_help=True)
alerts_app.add_typer(rules_app, name="rules")
alerts_app.add_typer(receivers_app, name="receivers")
alerts_app.add_typer(silence_app, name="silence")

ScopeArg = Annotated[
    str, typer.Argument(metavar="SCOPE", help="global, PROJECT, PROJECT/ENV or PROJECT/ENV/APP")
]
Json = dict[str, Any]


def _scope(value: str) -> tuple[str | None, str | None, str | None]:
    if value == "global":
        return None, None, None
    parts = value.split("/")
    if len(parts) > 3 or not all(parts):
        raise typer.BadParameter("write global, PROJECT, PROJECT/ENV or PROJECT/ENV/APP", param_hint="SCOPE")
    parts += [""] * (3 - len(parts))
    return parts[0], parts[1] or None, parts[2] or None


def _project_scope(value: str) -> tuple[str, str | None, str | None]:
    project, env, app = _scope(value)
    if project is None:
        raise typer.BadParameter("name a project (PROJECT[/ENV[/APP]])", param_hint="SCOPE")
    return project, env, app


def _app(value: str) -> tuple[str, str, str]:
    project, env, app = _scope(value)
    if not (project and env and app):
        raise typer.BadParameter("write PROJECT/ENV/APP", param_hint="ADDRESS")
    return project, env, app


def _load(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise typer.BadParameter(f"cannot read {path}: {exc}", param_hint="--file") from None


def _where(item: Json) -> str:
    return "/".join(p for p in (item.get("project"), item.get("env"), item.get("app")) if p) or "-"


@alerts_app.command("list")
def list_alerts(ctx: typer.Context, scope: ScopeArg, output: ListOutput = ListFormat.table) -> None:
    """Pending and firing alerts; ``global``: those of no project (certificate and domain expiry)."""
    project, env, app = _scope(scope)
    items = connect(ctx).list_alerts(project, env, app)
    print_list(
        items,
        output,
        [
            ("ALERT", lambda a: a.get("alertname")),
            ("STATE", lambda a: a.get("state")),
            ("WHERE", _where),
            ("VALUE", lambda a: a.get("value")),
            ("SUMMARY", lambda a: a.get("annotations", {}).get("summary")),
        ],
        empty="No alert is pending or firing.",
    )


@alerts_app.command("history")
def history(
    ctx: typer.Context,
    scope: ScopeArg,
    kind: Annotated[str | None, typer.Option("--kind", help="alert or action")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=1000)] = 50,
    output: ListOutput = ListFormat.table,
) -> None:
    """Alerts that went pending, fired or resolved, and healing actions — newest first."""
    project, env, app = _project_scope(scope)
    items = connect(ctx).alert_history(project, env, app, kind, limit)
    _print_events(items, output)


@alerts_app.command("events")
def events(
    ctx: typer.Context,
    address: Annotated[str, typer.Argument(metavar="ADDRESS", help="PROJECT/ENV/APP")],
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=1000)] = 50,
    output: ListOutput = ListFormat.table,
) -> None:
    """The app's timeline: alerts fired and resolved, healing actions taken."""
    items = connect(ctx).app_events(*_app(address), limit=limit)
    _print_events(items, output)


def _print_events(items: list[Json], output: ListFormat) -> None:
    def what(e: Json) -> object:
        if e.get("kind") == "action":
            return f"{e.get('action')}: {e.get('reason') or e.get('to_release') or e.get('replicas') or ''}"
        return (e.get("annotations") or {}).get("summary")

    print_list(
        items,
        output,
        [
            ("TIME", lambda e: short_time(e.get("time"))),
            ("KIND", lambda e: e.get("kind")),
            ("ALERT", lambda e: e.get("alertname")),
            ("STATE", lambda e: e.get("state")),
            ("WHERE", _where),
            ("RELEASE", lambda e: e.get("release")),
            ("WHAT", what),
        ],
        empty="Nothing happened yet.",
    )


# ---- rules
@rules_app.command("list")
def rules_list(ctx: typer.Context, scope: ScopeArg, output: ListOutput = ListFormat.table) -> None:
    """Rules and default-rule tunings stored at exactly this scope."""
    project, env, app = _scope(scope)
    items = connect(ctx).list_alert_rules(project, env, app)
    print_list(
        items,
        output,
        [
            ("NAME", lambda r: r.get("name")),
            ("KIND", lambda r: r.get("kind")),
            ("SCOPE", lambda r: r.get("scope")),
            ("SPEC", lambda r: yaml.safe_dump(r.get("spec"), default_flow_style=True, width=1000).strip()),
            ("VERSION", lambda r: r.get("version")),
        ],
        empty="No rule is stored at this scope (the default rules still apply).",
    )


@rules_app.command("effective")
def rules_effective(
    ctx: typer.Context,
    address: Annotated[str, typer.Argument(metavar="ADDRESS", help="PROJECT/ENV/APP")],
    output: ListOutput = ListFormat.table,
) -> None:
    """Every rule evaluated for an app, after global, project, environment and app tuning."""
    items = connect(ctx).effective_alert_rules(*_app(address))
    print_list(
        items,
        output,
        [
            ("ALERT", lambda r: r.get("alert")),
            ("DEFAULT", lambda r: r.get("default")),
            ("ON", lambda r: r.get("enabled", True)),
            ("FOR", lambda r: r.get("for", "0s") if "expr" in r else None),
            ("EXPR", lambda r: r.get("expr")),
            ("ACTIONS", lambda r: [a["type"] for a in r.get("actions", [])]),
            ("HEALTH", lambda r: r.get("health") if not r.get("last_error") else f"err: {r['last_error']}"),
        ],
    )


@rules_app.command("set")
def rules_set(
    ctx: typer.Context,
    scope: ScopeArg,
    name: Annotated[str, typer.Argument(help="The alert's name (a default rule's name tunes it).")],
    file: Annotated[
        Path, typer.Option("--file", "-f", help="YAML: the rule, or the tuning of a default rule.")
    ],
    version: Annotated[int | None, typer.Option("--version", help="Expected version (409 if stale).")] = None,
) -> None:
    """Create or replace a rule, or tune a default rule (threshold, window, for, enabled: false …)."""
    project, env, app = _scope(scope)
    row = connect(ctx).put_alert_rule(project, name, _load(file), env, app, version)
    say(f"Rule {name} stored at {row.get('scope')} ({row.get('kind')}, version {row.get('version')})")


@rules_app.command("delete")
def rules_delete(ctx: typer.Context, scope: ScopeArg, name: Annotated[str, typer.Argument()]) -> None:
    """Remove a rule or a tuning (a default rule goes back to the wider scope's setting)."""
    project, env, app = _scope(scope)
    connect(ctx).delete_alert_rule(project, name, env, app)
    say(f"Rule {name} removed from {scope}")


# ---- receivers
@receivers_app.command("list")
def receivers_list(ctx: typer.Context, scope: ScopeArg, output: ListOutput = ListFormat.table) -> None:
    project, _, _ = _scope(scope)
    items = connect(ctx).list_alert_receivers(project)
    print_list(
        items,
        output,
        [
            ("NAME", lambda r: r.get("name")),
            ("KIND", lambda r: r.get("kind")),
            ("TO", lambda r: r["config"].get("url") or r["config"].get("to")),
            ("MATCHERS", lambda r: r["route"].get("matchers")),
            ("GROUP BY", lambda r: r["route"].get("group_by")),
            ("DELIVERY", _delivery),
        ],
        empty="No receiver: alerts are recorded but nobody is notified.",
    )


def _delivery(receiver: dict[str, Any]) -> str:
    """``ok``, or ``failing (3×): <last error>; retry at <time>``; ``-`` before the first message."""
    d = receiver.get("delivery")
    if not d:
        return "-"
    if d["state"] == "ok":
        return "ok"
    retry = f"; retry at {d['next_retry_at']}" if d.get("next_retry_at") else ""
    return f"failing ({d['failures']}×): {d.get('last_error') or ''}{retry}"


@receivers_app.command("set")
def receivers_set(
    ctx: typer.Context,
    scope: ScopeArg,
    name: Annotated[str, typer.Argument()],
    file: Annotated[
        Path, typer.Option("--file", "-f", help="YAML: {kind: webhook|email, config: {...}, route}")
    ],
) -> None:
    """Create or replace a receiver."""
    project, _, _ = _scope(scope)
    doc = _load(file)
    if not isinstance(doc, dict):
        raise typer.BadParameter(
            "must be a mapping with kind, config and optionally route", param_hint="--file"
        )
    row = connect(ctx).put_alert_receiver(
        project, name, doc.get("kind", ""), doc.get("config", {}), doc.get("route")
    )
    say(f"Receiver {name} ({row.get('kind')}) stored")


@receivers_app.command("delete")
def receivers_delete(ctx: typer.Context, scope: ScopeArg, name: Annotated[str, typer.Argument()]) -> None:
    project, _, _ = _scope(scope)
    connect(ctx).delete_alert_receiver(project, name)
    say(f"Receiver {name} removed")


# ---- silences
@silence_app.command("create")
def silence_create(
    ctx: typer.Context,
    scope: ScopeArg,
    matchers: Annotated[
        list[str], typer.Option("--matcher", "-m", help='e.g. app="web", severity=~"crit.*"')
    ],
    duration: Annotated[str, typer.Option("--duration", "-d", help="How long, e.g. 30m or 2h.")] = "1h",
    comment: Annotated[str, typer.Option("--comment", "-c")] = "",
) -> None:
    """Mute matching alerts: no notification and no healing action while the silence lasts."""
    project, _, _ = _scope(scope)
    s = connect(ctx).create_silence(project, list(matchers), duration, comment)
    matched = ", ".join(_matcher_text(m) for m in s["matchers"])
    say(f"Silence {s['id']} until {short_time(s['ends_at'])}: {matched}")


def _matcher_text(m: Json) -> str:
    op = {(False, True): "=", (False, False): "!=", (True, True): "=~", (True, False): "!~"}
    return f'{m["name"]}{op[(bool(m.get("isRegex")), bool(m.get("isEqual", True)))]}"{m["value"]}"'


@silence_app.command("list")
def silence_list(
    ctx: typer.Context,
    scope: ScopeArg,
    expired: Annotated[bool, typer.Option("--expired", help="Include expired silences.")] = False,
    output: ListOutput = ListFormat.table,
) -> None:
    project, _, _ = _scope(scope)
    items = connect(ctx).list_silences(project, expired)
    print_list(
        items,
        output,
        [
            ("ID", lambda s: s.get("id")),
            ("STATE", lambda s: s.get("state")),
            ("MATCHERS", lambda s: [_matcher_text(m) for m in s.get("matchers", [])]),
            ("ENDS", lambda s: short_time(s.get("ends_at"))),
            ("BY", lambda s: s.get("created_by")),
            ("COMMENT", lambda s: s.get("comment")),
        ],
        empty="No silence.",
    )


@silence_app.command("expire")
def silence_expire(
    ctx: typer.Context, scope: ScopeArg, silence_id: Annotated[int, typer.Argument(metavar="ID")]
) -> None:
    project, _, _ = _scope(scope)
    connect(ctx).expire_silence(project, silence_id)
    say(f"Silence {silence_id} expired")
