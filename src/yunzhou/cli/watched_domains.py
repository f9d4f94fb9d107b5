"""``yunzhou domains …``: registered domains the platform watches for registration expiry (RDAP;
platform admins). An app's own host names are ``yunzhou custom-domains``."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from yunzhou.cli.common import ListFormat, ListOutput, connect, print_list, say

watched_domains_app = typer.Typer(
    help="Registered domains watched for registration expiry (RDAP): add, list, remove (admins).",
    no_args_is_help=True,
)
Json = dict[str, Any]
DomainArg = Annotated[str, typer.Argument(metavar="DOMAIN", help="A registered domain, e.g. example.com.")]


def _status(d: Json) -> str:
    if d.get("error"):
        return f"lookup failed: {d['error']}"
    return "not looked up yet" if not d.get("checked_at") else "ok"


@watched_domains_app.command("add")
def add(ctx: typer.Context, domain: DomainArg) -> None:
    """Watch a domain; the server looks up its expiry by RDAP within seconds, then every few hours."""
    added = connect(ctx).watch_domain(domain)
    say(f"Watching {added['name']}: `yunzhou domains list` shows its expiry once looked up")


@watched_domains_app.command("list")
def list_domains(ctx: typer.Context, output: ListOutput = ListFormat.table) -> None:
    """Watched domains, when each registration expires (per RDAP) and the last lookup."""
    items = connect(ctx).list_watched_domains()
    columns = [
        ("DOMAIN", lambda d: d.get("name")),
        ("EXPIRES", lambda d: d.get("expires_at") or "-"),
        ("CHECKED", lambda d: d.get("checked_at") or "-"),
        ("STATUS", _status),
    ]
    print_list(items, output, columns, empty="No domain is watched; add one with `yunzhou domains add`.")


@watched_domains_app.command("remove")
def remove(ctx: typer.Context, domain: DomainArg) -> None:
    """Stop watching a domain (its expiry series and alerts go with it)."""
    connect(ctx).unwatch_domain(domain)
    say(f"No longer watching {domain}")
