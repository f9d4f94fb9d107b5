"""How traffic policy and caller identity reach the router snapshot on the local target (pure but the key).

- Each app's effective ``traffic`` settings go to ``policies.<app>.traffic`` as data (the canonical
  document the release stores; the router parses it with the same domain parser), with the split of
  traffic between its stable and canary releases.
- Each app gets a caller token, ``HMAC-SHA256(key, address)``, in its instances' environment
  (``YUNZHOU_CALLER_TOKEN``); an instance sends it as ``x-yunzhou-caller-token`` when it calls another app
  through the router (``YUNZHOU_ROUTER``). The snapshot holds only the tokens' sha256, so reading the
  router's config never yields a usable token. The key lives in the data dir (mode 0600), so tokens
  survive a control-plane restart.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

CALLER_TOKEN_ENV = "YUNZHOU_CALLER_TOKEN"  # noqa: S105 -- a variable name, not a secret


def load_token_key(data_dir: Path) -> bytes:
    """The HMAC key for caller tokens, created on first use."""
    path = data_dir / "caller-token.key"
    try:
        return bytes.fromhex(path.read_text(encoding="ascii").strip())
    except (FileNotFoundError, ValueError):
        pass
    data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(32)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(key.hex())
    tmp.replace(path)
    return key


def caller_token(key: bytes, address: str) -> str:
    return hmac.new(key, address.encode("utf-8"), hashlib.sha256).hexdigest()


def callers_table(key: bytes, addresses: Iterable[str]) -> dict[str, str]:
    """sha256(token) → app address, for every app that has instances or routes."""
    return {
        hashlib.sha256(caller_token(key, a).encode("ascii")).hexdigest(): a for a in sorted(set(addresses))
    }


def router_policies(
    traffic: Mapping[str, Mapping[str, Any]],
    splits: Mapping[str, int] | None = None,
    preview_hosts: Mapping[str, list[str]] | None = None,
) -> dict[str, Any]:
    """``policies`` for the snapshot: apps with a traffic policy or a canary split (canary weight %)."""
    splits = splits or {}
    preview_hosts = preview_hosts or {}
    out: dict[str, Any] = {}
    for app in sorted(set(traffic) | set(splits)):
        doc = traffic.get(app) or {}
        canary = splits.get(app, 0)
        if not doc and app not in splits:
            continue
        entry: dict[str, Any] = {
            "traffic": dict(doc),
            "split": {"stable": 100 - canary, "canary": canary} if canary else {"stable": 100},
        }
        if preview_hosts.get(app):
            entry["preview_hosts"] = list(preview_hosts[app])
        out[app] = entry
    return out


def route_rank(position: int, app_id: int) -> tuple[int, int, int]:
    """Order of an app's route in the snapshot: every app's default route (its first) before any extra
    route, then older apps first — of two routes for one host and path the router keeps the one listed
    first (unless it already serves the other), so a default host or an older claim is never displaced."""
    return (0 if position == 0 else 1, app_id, position)


def not_routed_by_app(routes: list[dict[str, Any]], dropped: object) -> dict[str, tuple[str, ...]]:
    """The routes the router left out (``dropped`` of its ``PUT /config`` answer), one message each, by app.

    A route left out because another app has its host and path names that app only when it is of the same
    project: an app's conditions are read by its developers, who may not know other projects' apps.
    """
    if not isinstance(dropped, list):
        return {}
    indexes = {d.get("index") for d in dropped if isinstance(d, dict)}
    out: dict[str, list[str]] = {}
    for d in dropped:
        index = d.get("index") if isinstance(d, dict) else None
        if not isinstance(index, int) or not 0 <= index < len(routes):
            continue
        mine = routes[index]
        key = (mine["host"], mine["path_prefix"].rstrip("/") or "/")
        holder = next(
            (
                r["app"]
                for j, r in enumerate(routes)
                if j not in indexes and (r["host"], r["path_prefix"].rstrip("/") or "/") == key
            ),
            None,
        )
        where = f"route {mine['host']}{mine['path_prefix']} is not served"
        if holder is None:
            message = f"{where}: {d.get('reason')}"
        elif holder.split("/")[0] == mine["app"].split("/")[0]:
            message = f"{where}: app {holder} has this host and path"
        else:
            message = f"{where}: an app of another project has this host and path"
        out.setdefault(mine["app"], []).append(message)
    return {app: tuple(messages) for app, messages in out.items()}
