"""``yunzhou secret``: secrets of an environment or app. Values are read from stdin or a file — never
from the command line, so they stay out of shell history and process lists — and are printed only by
an explicit, audited ``reveal``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from yunzhou.cli.common import ListFormat, ListOutput, connect, env_hint, print_list, say, short_time
from yunzhou.cli.config import AddressArg, releases_note

secret_app = typer.Typer(
    help="Secrets of an environment or app: set (value on stdin), list, reveal, unset, rotate-key.",
    no_args_is_help=True,
)


def _read_value(from_file: Path | None) -> str:
    if from_file is not None:
        try:
            return from_file.read_text()
        except OSError as exc:
            raise typer.BadParameter(
                f"cannot read {from_file}: {exc.strerror}", param_hint="--from-file"
            ) from None
    if sys.stdin.isatty():
        value = typer.prompt("Value (not echoed)", hide_input=True)
        return str(value)
    value = sys.stdin.read()
    return value.removesuffix("\n").removesuffix("\r")  # `echo` / here-strings add one newline


@secret_app.command("set")
def set_(
    ctx: typer.Context,
    address: AddressArg,
    name: Annotated[str, typer.Argument(metavar="KEY", help="The secret's name, e.g. DB_PASSWORD.")],
    from_file: Annotated[
        Path | None, typer.Option("--from-file", metavar="FILE", help="Read the value from FILE (exactly).")
    ] = None,
) -> None:
    """Store a new version of a secret; the value comes from stdin (or --from-file), never argv."""
    value = _read_value(from_file)
    if not value:
        raise typer.BadParameter("the value is empty (pipe it on stdin or use --from-file)", param_hint="KEY")
    client = connect(ctx, not_found=env_hint(address.env))
    meta = client.set_secret(address.project, address.env.env, name, value, address.app)
    if meta.get("changed") is False:
        say(
            f"Secret {name} in {address} already has this value "
            f"(version {meta.get('version')}); nothing changed"
        )
        return
    say(
        f"Set secret {name} in {address} (version {meta.get('version')}); "
        f"{releases_note(meta.get('releases'))}"
    )


@secret_app.command("list")
def list_(ctx: typer.Context, address: AddressArg, output: ListOutput = ListFormat.table) -> None:
    """Names, scopes, versions and who set them when — never values."""
    items = connect(ctx, not_found=env_hint(address.env)).list_secrets(
        address.project, address.env.env, address.app
    )
    columns = [
        ("NAME", lambda s: s.get("name")),
        (
            "SCOPE",
            lambda s: s.get("app") or str(address.env) if s.get("scope") == "app" else str(address.env),
        ),
        ("VERSION", lambda s: s.get("version")),
        ("VERSIONS", lambda s: s.get("versions")),
        ("UPDATED", lambda s: short_time(s.get("updated_at"))),
        ("BY", lambda s: s.get("updated_by")),
    ]
    print_list(items, output, columns, empty=f"{address} has no secrets: `yunzhou secret set {address} KEY`.")


@secret_app.command("unset")
def unset(
    ctx: typer.Context,
    address: AddressArg,
    name: Annotated[str, typer.Argument(metavar="KEY")],
) -> None:
    """Remove a secret (its old versions stay for rollbacks; refused while a deployed app uses it)."""
    result = connect(ctx, not_found=env_hint(address.env)).unset_secret(
        address.project, address.env.env, name, address.app
    )
    say(f"Unset secret {name} in {address}; {releases_note(result.get('releases'))}")


@secret_app.command("reveal")
def reveal(
    ctx: typer.Context,
    address: AddressArg,
    name: Annotated[str, typer.Argument(metavar="KEY")],
) -> None:
    """Print a secret's current value to stdout (maintainers and above; every reveal is audited)."""
    result = connect(ctx, not_found=env_hint(address.env)).reveal_secret(
        address.project, address.env.env, name, address.app
    )
    typer.echo(str(result.get("value", "")))


@secret_app.command("rotate-key")
def rotate_key(ctx: typer.Context) -> None:
    """Re-encrypt every secret under a new key, then retire the old key (platform admins)."""
    result = connect(ctx).rotate_secret_key()
    retired = ", ".join(result.get("retired") or []) or "none"
    say(f"Secrets now encrypted under key {result.get('key')} ({result.get('reencrypted')} re-encrypted); "
        f"retired: {retired}")  # fmt: skip
