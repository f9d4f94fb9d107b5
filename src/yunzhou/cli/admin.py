"""``yunzhou audit``, ``yunzhou token …`` and ``yunzhou whoami``."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any

import typer

from yunzhou.cli.common import (
    PANEL_ACCESS,
    ListFormat,
    ListOutput,
    ShowFormat,
    ShowOutput,
    connect,
    note,
    print_fields,
    print_list,
    print_object,
    short_time,
    text,
)

Json = dict[str, Any]
token_app = typer.Typer(help="Create, list and revoke API tokens.", no_args_is_help=True)

_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION_RE = re.compile(r"^(\d+)([smhdw]?)$")


class Outcome(StrEnum):
    success = "success"
    denied = "denied"
    invalid = "invalid"
    conflict = "conflict"
    not_found = "not_found"
    error = "error"


class Scope(StrEnum):
    read = "read"
    write = "write"
    admin = "admin"
    metrics = "metrics"


def parse_expires(value: str) -> int | None:
    """``30d`` / ``12h`` / ``90m`` / ``3600`` → seconds; ``never`` → None."""
    value = value.strip().lower()
    if value == "never":
        return None
    match = _DURATION_RE.match(value)
    if not match or int(match.group(1)) == 0:
        raise typer.BadParameter(f"{value!r}: use a duration such as 30d, 12h, 90m, 3600 (seconds), or never")
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2) or "s"]


def audit(
    ctx: typer.Context,
    project: Annotated[str | None, typer.Option("--project", help="Only events of this project.")] = None,
    actor: Annotated[str | None, typer.Option("--actor", help="Only events by this principal.")] = None,
    action: Annotated[str | None, typer.Option("--action", help="Only this action, e.g. deploy.")] = None,
    outcome: Annotated[Outcome | None, typer.Option("--outcome", help="Only this outcome.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000, help="At most this many (1-1000).")] = 100,
    before: Annotated[int | None, typer.Option("--before", help="Only events older than this id.")] = None,
    output: ListOutput = ListFormat.table,
) -> None:
    """Audit events, newest first."""
    items = connect(ctx).list_audit(
        project=project,
        actor=actor,
        action=action,
        outcome=outcome.value if outcome else None,
        limit=limit,
        before_id=before,
    )
    columns = [
        ("ID", lambda e: e.get("id")),
        ("TIME", lambda e: short_time(e.get("time"))),
        ("ACTOR", lambda e: e.get("actor")),
        ("ACTION", lambda e: e.get("action")),
        ("TARGET", lambda e: e.get("target")),
        ("OUTCOME", lambda e: e.get("outcome")),
    ]
    print_list(items, output, columns, empty="No audit events match.")


@token_app.command("create")
def token_create(
    ctx: typer.Context,
    name: Annotated[str, typer.Option("--name", help="What the token is for, e.g. ci.")],
    scopes: Annotated[
        list[Scope] | None, typer.Option("--scope", help="read, write, admin or metrics; repeat for several.")
    ] = None,
    expires: Annotated[
        str, typer.Option("--expires", help="Lifetime: 30d, 12h, 90m, seconds, or never.")
    ] = "30d",
    principal: Annotated[
        str | None, typer.Option("--principal", help="Issue it for someone else (admin only).")
    ] = None,
) -> None:
    """Create a token. Only the token goes to stdout, so it can be captured: T=$(yunzhou token create …)."""
    if not scopes:
        raise typer.BadParameter(
            "give at least one --scope (read, write, admin, metrics)", ctx=ctx, param_hint="--scope"
        )
    try:
        expires_in = parse_expires(expires)
    except typer.BadParameter as exc:
        exc.ctx, exc.param_hint = ctx, "--expires"
        raise
    created = connect(ctx).create_token(
        name, [scope.value for scope in dict.fromkeys(scopes)], expires_in, principal
    )
    typer.echo(created["token"])
    expires_at = short_time(created.get("expires_at")) if expires_in else "never"
    note(
        f"Created token {created.get('id')} ({created.get('name', name)}) for {created.get('principal')}, "
        f"scopes {text(created.get('scopes'))}, expires {expires_at}. It is shown only this once."
    )


@token_app.command("list")
def token_list(ctx: typer.Context, output: ListOutput = ListFormat.table) -> None:
    """Your tokens (admins: all). Never shows the secrets."""
    items = connect(ctx).list_tokens()
    columns = [
        ("ID", lambda t: t.get("id")),
        ("NAME", lambda t: t.get("name")),
        ("PRINCIPAL", lambda t: t.get("principal")),
        ("SCOPES", lambda t: t.get("scopes")),
        ("CREATED", lambda t: short_time(t.get("created_at"))),
        ("EXPIRES", lambda t: short_time(t.get("expires_at")) if t.get("expires_at") else "never"),
        ("REVOKED", lambda t: t.get("revoked")),
        ("LAST USED", lambda t: short_time(t.get("last_used_at"))),
    ]
    print_list(items, output, columns, empty="No tokens.")


@token_app.command("revoke")
def token_revoke(ctx: typer.Context, token_id: Annotated[str, typer.Argument(metavar="ID")]) -> None:
    """Revoke a token; it stops working at once."""
    connect(ctx, not_found="`yunzhou token list` shows your tokens").revoke_token(token_id)
    typer.echo(f"Revoked token {token_id}")


def whoami(ctx: typer.Context, output: ShowOutput = ShowFormat.text) -> None:
    """Who the current token belongs to, its scopes and project roles."""
    me = connect(ctx).whoami()

    def render() -> None:
        roles = me.get("roles") or {}
        print_fields(
            [
                ("Principal", me.get("principal")),
                ("Token", me.get("token_id")),
                ("Scopes", me.get("scopes")),
                ("Admin", bool(me.get("admin"))),
                ("Roles", ", ".join(f"{project}: {role}" for project, role in sorted(roles.items())) or None),
            ]
        )

    print_object(me, output, render)


def register(app: typer.Typer) -> None:
    app.command("audit", rich_help_panel=PANEL_ACCESS)(audit)
    app.add_typer(token_app, name="token", rich_help_panel=PANEL_ACCESS)
    app.command("whoami", rich_help_panel=PANEL_ACCESS)(whoami)
