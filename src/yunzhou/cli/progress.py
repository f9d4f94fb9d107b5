"""Following a rollout until it settles: a spinner on a terminal, one line per change otherwise."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape

from yunzhou.cli.common import CommandFailed, err_console, say
from yunzhou.client import WaitTimeout, YunzhouClient
from yunzhou.domain.names import AppAddress

Json = dict[str, Any]
POLL_INTERVAL = 1.0

WaitOption = Annotated[bool, typer.Option("--wait", help="Follow the rollout until it succeeds or fails.")]
TimeoutOption = Annotated[
    float, typer.Option("--timeout", min=1, help="With --wait: give up after this many seconds (exit 1).")
]


def strategy_text(value: object, detail: bool = True) -> str:
    """A rollout strategy given as a name or as ``{"strategy": "rolling", "maxSurge": 1, …}``."""
    if not isinstance(value, dict):
        return "" if value is None else str(value)
    name = str(value.get("strategy") or value.get("type") or "")
    extras = ", ".join(f"{key}={item}" for key, item in value.items() if key not in ("strategy", "type"))
    return f"{name} ({extras})" if detail and extras else name


def describe(rollout: Json) -> str:
    kind = rollout.get("kind") or "rollout"
    target = rollout.get("to_release")
    release = f" to release {target}" if target is not None else ""
    name = strategy_text(rollout.get("strategy"), detail=False)
    strategy = f" ({name})" if name else ""
    message = f": {rollout['message']}" if rollout.get("message") else ""
    return f"{kind} {rollout.get('id')}{release}{strategy} — {rollout.get('state', '?')}{message}"


def follow_rollout(
    client: YunzhouClient, address: AppAddress, rollout: Json | None, timeout: float
) -> Json | None:
    """Wait for ``rollout``; exit 1 (CommandFailed / WaitTimeout) unless it succeeds."""
    if not rollout or rollout.get("id") is None:
        say(f"Nothing to wait for: {address} has no rollout in progress")
        return None
    console = err_console()
    last_line = ""

    def show(current: Json) -> None:
        nonlocal last_line
        line = describe(current)
        if line == last_line:
            return
        last_line = line
        if status is not None:
            status.update(escape(line))
        else:
            console.print(escape(line), style="dim")

    status = console.status(escape(describe(rollout))) if console.is_terminal else None
    if status is not None:
        status.start()
    try:
        final = client.wait_for_rollout(
            address.project,
            address.env,
            address.app,
            rollout["id"],
            timeout=timeout,
            interval=POLL_INTERVAL,
            on_progress=show,
        )
    except WaitTimeout as exc:
        raise CommandFailed(
            f"rollout {rollout['id']} of {address} is still {exc.rollout.get('state')} after {timeout:g}s; "
            "it goes on on the server",
            hint=f"`yunzhou rollouts {address}` and `yunzhou status {address}` show how it is doing",
        ) from None
    finally:
        if status is not None:
            status.stop()
    state = final.get("state")
    if state == "succeeded":
        say(f"Rollout {final.get('id')} of {address} succeeded")
        return final
    if state == "superseded":
        raise CommandFailed(
            f"rollout {final.get('id')} of {address} was superseded by a newer one",
            hint=f"`yunzhou rollouts {address}` shows what replaced it",
        )
    reason = f": {final['message']}" if final.get("message") else ""
    raise CommandFailed(
        f"rollout {final.get('id')} of {address} failed{reason}",
        hint=f"`yunzhou status {address}` shows its conditions; `yunzhou rollback {address}` restores the "
        "previous release",
    )
