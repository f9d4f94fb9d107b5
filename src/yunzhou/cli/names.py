"""``yunzhou dns …``, ``yunzhou env names|tls`` and ``yunzhou custom-domains …`` (docs/names.md)."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from yunzhou.cli.common import (
    AppArg,
    EnvArg,
    ListFormat,
    ListOutput,
    ShowFormat,
    ShowOutput,
    app_hint,
    connect,
    env_hint,
    err_console,
    print_list,
    print_object,
    say,
    short_time,
)
from yunzhou.cli.environments import env_app
from yunzhou.cli.projects import VersionOption

dns_app = typer.Typer(help="DNS providers and the records the platform owns (admins).", no_args_is_help=True)
provider_app = typer.Typer(help="DNS providers: where the platform writes records.", no_args_is_help=True)
dns_app.add_typer(provider_app, name="provider")
domains_app = typer.Typer(help="An app's custom domains, verified by a TXT record.", no_args_is_help=True)


@dns_app.command("providers")
def providers(ctx: typer.Context, output: ListOutput = ListFormat.table) -> None:
    """The DNS providers (their secrets are never shown)."""
    items = connect(ctx).list_dns_providers()
    columns = [
        ("NAME", lambda p: p.get("name")),
        ("KIND", lambda p: p.get("kind")),
        ("ZONES", lambda p: ", ".join(p.get("settings", {}).get("zones", []))),
        ("ENVIRONMENTS", lambda p: ", ".join(p.get("environments", [])) or "-"),
        ("CREATED", lambda p: short_time(p.get("created_at"))),
    ]
    print_list(items, output, columns, empty="No DNS providers: `yunzhou dns provider add` makes one.")


@dns_app.command("zones")
def zones(ctx: typer.Context, output: ListOutput = ListFormat.table) -> None:
    """The zones an environment's names can use, by provider (any user)."""
    items = connect(ctx).list_dns_zones()
    columns = [
        ("PROVIDER", lambda p: p.get("name")),
        ("KIND", lambda p: p.get("kind")),
        ("ZONES", lambda p: ", ".join(p.get("zones", []))),
    ]
    print_list(
        items, output, columns, empty="No DNS providers yet: an admin adds one (`yunzhou dns provider add`)."
    )


@provider_app.command("add")
def provider_add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="A label, e.g. corp-bind.")],
    kind: Annotated[str, typer.Option("--kind", help="rfc2136 (BIND, Knot …), powerdns or local.")],
    zone: Annotated[list[str], typer.Option("--zone", help="A zone the platform may write in (repeat).")],
    server: Annotated[str | None, typer.Option("--server", help="rfc2136: the primary's IP address.")] = None,
    port: Annotated[int | None, typer.Option("--port", help="rfc2136: its port (53).")] = None,
    key_name: Annotated[str | None, typer.Option("--key-name", help="rfc2136: the TSIG key's name.")] = None,
    key_algorithm: Annotated[
        str | None, typer.Option("--key-algorithm", help="rfc2136: hmac-sha256 (default), hmac-sha512 …")
    ] = None,
    api_url: Annotated[str | None, typer.Option("--api-url", help="powerdns: the webserver's URL.")] = None,
    server_id: Annotated[
        str | None, typer.Option("--server-id", help="powerdns: localhost (default).")
    ] = None,
    secret_file: Annotated[
        Path | None,
        typer.Option(
            "--secret-file", help="File holding the TSIG secret (base64) or API key; '-' reads stdin."
        ),
    ] = None,
) -> None:
    """Add a DNS provider. The secret comes from a file or stdin, never the command line."""
    settings: dict[str, Any] = {"zones": zone}
    given = {
        "server": server, "port": port, "key_name": key_name, "key_algorithm": key_algorithm,
        "api_url": api_url, "server_id": server_id,
    }  # fmt: skip
    settings.update({k: v for k, v in given.items() if v is not None})
    secret = None
    if secret_file is not None:
        text = sys.stdin.read() if str(secret_file) == "-" else _read(secret_file)
        secret = text.strip()
    p = connect(ctx).add_dns_provider(name, kind, settings, secret)
    say(f"Added DNS provider {p['name']} ({p['kind']}; zones {', '.join(p['settings']['zones'])})")


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError as exc:
        raise typer.BadParameter(f"{path}: {exc.strerror}", param_hint="--secret-file") from None


@provider_app.command("remove")
def provider_remove(ctx: typer.Context, name: str) -> None:
    """Remove a DNS provider no environment uses and where the platform owns no record any more."""
    connect(ctx).remove_dns_provider(name)
    say(f"Removed DNS provider {name}")


@dns_app.command("records")
def records(
    ctx: typer.Context,
    project: Annotated[str | None, typer.Option("--project", help="Only this project's.")] = None,
    output: ListOutput = ListFormat.table,
) -> None:
    """The records the platform owns, with their state (synced, pending, conflict, error, retained)."""
    items = connect(ctx).list_dns_records(project)
    columns = [
        ("NAME", lambda r: r.get("name")),
        ("TYPE", lambda r: r.get("type")),
        ("VALUES", lambda r: ", ".join(r.get("values", []))),
        ("OWNER", lambda r: r.get("owner")),
        ("PROVIDER", lambda r: r.get("provider")),
        ("STATE", lambda r: r.get("state")),
        ("MESSAGE", lambda r: r.get("message") or ""),
    ]
    print_list(items, output, columns, empty="No records: set an environment's names (`yunzhou env names`).")


@env_app.command("names")
def env_names(
    ctx: typer.Context,
    address: EnvArg,
    provider: Annotated[str | None, typer.Option("--provider", help="A DNS provider's name.")] = None,
    zone: Annotated[str | None, typer.Option("--zone", help="One of the provider's zones.")] = None,
    rule: Annotated[str | None, typer.Option("--rule", help="Default {app}.{env}.{project}.{zone}.")] = None,
    policy: Annotated[str | None, typer.Option("--policy", help="sync (default) or upsert-only.")] = None,
    ttl: Annotated[int | None, typer.Option("--ttl", help="Seconds (300).")] = None,
    address_: Annotated[
        list[str] | None,
        typer.Option("--address", help="An address the names point to (repeat); local: 127.0.0.1."),
    ] = None,
    cname: Annotated[str | None, typer.Option("--cname", help="A name they point to instead.")] = None,
    off: Annotated[bool, typer.Option("--off", help="Stop naming (records go, by the policy).")] = False,
    version: VersionOption = None,
) -> None:
    """Give the environment's apps DNS names by rule, at a DNS provider."""
    if off:
        names: dict[str, Any] | None = None
    else:
        if provider is None or zone is None:
            raise typer.BadParameter("give --provider and --zone (or --off)")
        given = {"rule": rule, "policy": policy, "ttl": ttl, "addresses": address_, "cname": cname}
        names = {"provider": provider, "zone": zone, **{k: v for k, v in given.items() if v is not None}}
    env = connect(ctx, not_found=env_hint(address)).set_environment_names(
        address.project, address.env, version, names=names
    )
    n = env.get("names")
    if n is None:
        say(f"Environment {address} names nothing")
    else:
        where = f"in {n['zone']} at {n['provider']} ({n['policy']})"
        say(f"Environment {address}: apps are named {n['rule']} {where}")


@env_app.command("tls")
def env_tls(
    ctx: typer.Context,
    address: EnvArg,
    mode: Annotated[str, typer.Argument(help="off, local, acme, issuer:NAME or cluster-issuer:NAME.")],
    version: VersionOption = None,
) -> None:
    """Serve the environment's apps over HTTPS, with certificates from the given issuer."""
    env = connect(ctx, not_found=env_hint(address)).set_environment_names(
        address.project, address.env, version, tls=mode
    )
    say(f"Environment {address}: TLS {env.get('tls')}")


@domains_app.command("list")
def domains_list(ctx: typer.Context, app: AppArg, output: ListOutput = ListFormat.table) -> None:
    """The app's custom domains and their TXT challenges."""
    items = connect(ctx, not_found=app_hint(app)).list_custom_domains(app.project, app.env, app.app)
    columns = [
        ("HOST", lambda d: d.get("host")),
        ("STATE", lambda d: d.get("state")),
        ("TXT NAME", lambda d: d["challenge"]["name"]),
        ("TXT VALUE", lambda d: d["challenge"]["value"]),
        ("MESSAGE", lambda d: d.get("message") or ""),
    ]
    print_list(items, output, columns, empty=f"App {app} has no custom domains.")


@domains_app.command("add")
def domains_add(ctx: typer.Context, app: AppArg, host: str, output: ShowOutput = ShowFormat.text) -> None:
    """Ask for a custom domain; it is served once its TXT record is seen."""
    d = connect(ctx, not_found=app_hint(app)).add_custom_domain(app.project, app.env, app.app, host)
    print_object(d, output, lambda: _challenge(d))


def _challenge(d: dict[str, Any]) -> None:
    c = d["challenge"]
    say(f"Custom domain {d['host']} for {d['app']}: {d['state']}")
    if d["state"] != "verified":
        say(
            f"Create this DNS record, then run `yunzhou custom-domains verify {d['app']} {d['host']} --wait`:"
        )
        say(f'  {c["name"]}  TXT  "{c["value"]}"')
        say(f"and point {d['host']} at the platform (a CNAME to the app's name, or the router's address).")


@domains_app.command("verify")
def domains_verify(
    ctx: typer.Context,
    app: AppArg,
    host: str,
    wait: Annotated[bool, typer.Option("--wait", help="Wait until it is verified (or --timeout).")] = False,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds to wait.")] = 120.0,
) -> None:
    """Look for the TXT record again now."""
    client = connect(ctx, not_found=app_hint(app))
    d = client.verify_custom_domain(app.project, app.env, app.app, host)
    deadline = time.monotonic() + timeout
    while wait and d["state"] != "verified" and time.monotonic() < deadline:
        time.sleep(1.0)
        d = next(
            (x for x in client.list_custom_domains(app.project, app.env, app.app) if x["host"] == host), d
        )
    if d["state"] == "verified":
        say(f"Custom domain {host} is verified: {app} serves it")
        return
    _challenge(d)
    if wait:
        err_console().print(f"Not verified after {timeout:.0f} s: {d.get('message') or 'no answer yet'}")
        raise typer.Exit(1)


@domains_app.command("remove")
def domains_remove(ctx: typer.Context, app: AppArg, host: str) -> None:
    """Stop serving a custom domain."""
    connect(ctx, not_found=app_hint(app)).remove_custom_domain(app.project, app.env, app.app, host)
    say(f"Removed custom domain {host} from {app}")
