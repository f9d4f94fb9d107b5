"""``yunzhou cluster …``: register Kubernetes clusters as deployment targets."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from yunzhou.cli.common import (
    CommandFailed,
    ListFormat,
    ListOutput,
    connect,
    print_list,
    say,
    short_time,
)

cluster_app = typer.Typer(help="Register, list and remove Kubernetes clusters.", no_args_is_help=True)

# kubeconfig keys that name a file, and the inline key that replaces each
_FILE_KEYS = {
    "certificate-authority": "certificate-authority-data",
    "client-certificate": "client-certificate-data",
    "client-key": "client-key-data",
}


def _named(items: object, name: str, what: str, source: Path) -> dict[str, Any]:
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict) and item.get("name") == name:
            return item
    raise CommandFailed(f"{source}: no {what} named {name!r}")


def _inline(section: dict[str, Any], base: Path) -> dict[str, Any]:
    out = dict(section)
    for key, data_key in _FILE_KEYS.items():
        if key in out:
            path = (base / str(out.pop(key))).expanduser()
            try:
                out[data_key] = base64.b64encode(path.read_bytes()).decode()
            except OSError as exc:
                raise CommandFailed(f"cannot read {key} {path}: {exc.strerror}") from exc
    if "tokenFile" in out:
        out["token"] = (base / str(out.pop("tokenFile"))).read_text().strip()
    return out


def flatten_kubeconfig(path: Path, context: str | None) -> tuple[dict[str, Any], str]:
    """One context with its cluster and user, file references inlined — what `kubectl config view
    --flatten --minify` prints. Nothing local is left for the server to read."""
    try:
        doc = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise CommandFailed(f"cannot read kubeconfig {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise CommandFailed(f"{path} is not valid YAML: {exc}") from exc
    if not isinstance(doc, dict):
        raise CommandFailed(f"{path} is not a kubeconfig")
    name = context or doc.get("current-context")
    if not name:
        raise CommandFailed(f"{path} has no current-context; pass --context")
    ctx = _named(doc.get("contexts"), str(name), "context", path)
    spec = ctx.get("context") or {}
    cluster = _named(doc.get("clusters"), str(spec.get("cluster")), "cluster", path)
    user = _named(doc.get("users"), str(spec.get("user")), "user", path)
    base = path.resolve().parent
    flat = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": ctx["name"],
        "contexts": [ctx],
        "clusters": [{"name": cluster["name"], "cluster": _inline(cluster.get("cluster") or {}, base)}],
        "users": [{"name": user["name"], "user": _inline(user.get("user") or {}, base)}],
    }
    return flat, str(name)


REGISTRY_HELP = "host[:port] its nodes pull platform images from (default: the platform registry's address)."


@cluster_app.command("add")
def add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="A DNS label naming the cluster, e.g. prod-eu.")],
    kubeconfig: Annotated[Path, typer.Option("--kubeconfig", help="kubeconfig file with credentials.")],
    context: Annotated[
        str | None, typer.Option("--context", help="Context to use (default: current).")
    ] = None,
    base_domain: Annotated[
        str | None, typer.Option("--base-domain", help="Domain for apps' names (default NAME.localhost).")
    ] = None,
    registry: Annotated[str | None, typer.Option("--registry", help=REGISTRY_HELP)] = None,
) -> None:
    """Register a cluster: its API server is contacted first, and its credentials are stored encrypted."""
    flat, context_name = flatten_kubeconfig(kubeconfig, context)
    cluster = connect(ctx).add_cluster(name, flat, context_name, base_domain, registry)
    say(f"Registered cluster {cluster['name']}: {cluster['server']} (Kubernetes {cluster['server_version']})")


@cluster_app.command("set")
def set_cluster(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Cluster name.")],
    registry: Annotated[str, typer.Option("--registry", help=REGISTRY_HELP + " Empty: that default.")],
) -> None:
    """Change where a cluster's nodes pull platform images from."""
    cluster = connect(ctx).set_cluster_registry(name, registry or None)
    where = cluster["registry"] or "the platform registry's own address"
    say(f"Cluster {cluster['name']} pulls platform images from {where}")


@cluster_app.command("list")
def list_clusters(ctx: typer.Context, output: ListOutput = ListFormat.table) -> None:
    """Registered clusters."""
    items = connect(ctx).list_clusters()
    columns = [
        ("NAME", lambda c: c.get("name")),
        ("SERVER", lambda c: c.get("server")),
        ("VERSION", lambda c: c.get("server_version")),
        ("BASE DOMAIN", lambda c: c.get("base_domain")),
        ("REGISTRY", lambda c: c.get("registry") or "(platform)"),
        ("ENVIRONMENTS", lambda c: c.get("environments")),
        ("ADDED", lambda c: short_time(c.get("created_at"))),
    ]
    print_list(items, output, columns, empty="No clusters yet: `yunzhou cluster add NAME --kubeconfig FILE`.")


@cluster_app.command("remove")
def remove(ctx: typer.Context, name: Annotated[str, typer.Argument(help="Cluster name.")]) -> None:
    """Forget a cluster (refused while environments target it)."""
    connect(ctx).remove_cluster(name)
    say(f"Removed cluster {name}")


@cluster_app.command("node-events")
def node_events(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Cluster name.")],
    limit: Annotated[int, typer.Option("--limit", help="How many, newest first.")] = 50,
    output: ListOutput = ListFormat.table,
) -> None:
    """What node autoscaling did on the cluster: nodes added, removed, or not added and why."""
    items = connect(ctx).node_events(name, limit)
    columns = [
        ("TIME", lambda e: short_time(e.get("time"))),
        ("ACTION", lambda e: e.get("action")),
        ("NODE", lambda e: e.get("node") or "-"),
        ("REASON", lambda e: e.get("reason")),
    ]
    print_list(items, output, columns, empty=f"No node events on {name} (see YUNZHOU_NODE_AUTOSCALING).")
