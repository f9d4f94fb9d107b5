"""Following a rollout until it settles: a spinner on a terminal, one line per change otherwise."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape

from yunzhou.cli.common import CommandFailed, err_console, say, short_time
from yunzhou.client import ClientError, WaitTimeout, YunzhouClient
from yunzhou.domain.names import AppAddress
from yunzhou.domain.settings import DEFAULT_PROGRESS_DEADLINE_S, progress_deadline

Json = dict[str, Any]
POLL_INTERVAL = 1.0
#: Without --timeout, --wait gives up only when the rollout showed no change for its progress deadline
#: plus this: by then the server has failed it (ProgressDeadlineExceeded) unless something is wrong there.
WAIT_MARGIN = 60.0

WaitOption = Annotated[bool, typer.Option("--wait", help="Follow the rollout until it succeeds or fails.")]
TimeoutOption = Annotated[
    float | None,
    typer.Option(
        "--timeout",
        min=1,
        help="With --wait: give up after this many seconds (exit 1). Default: wait for the rollout's own "
        "outcome; give up only if it shows no change for its progress deadline "
        f"(rollout.progressDeadlineSeconds, default {DEFAULT_PROGRESS_DEADLINE_S}) plus a minute.",
    ),
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


def diagnosis_lines(diagnosis: Json | None) -> list[str]:
    """An app's diagnosis (why its instances do not serve) as lines: the instance, its last probe result
    and its last stderr lines."""
    if not diagnosis:
        return []
    d = diagnosis
    last_exit = f", last exit: {d['last_exit']}" if d.get("last_exit") else ""
    lines = [
        f"instance {d.get('instance')} (release {d.get('release')}): {d.get('reason')} ({d.get('state')})"
        f"{last_exit}, {d.get('restarts', 0)} restarts"
    ]
    probe = d.get("probe")
    if probe:
        outcome = "ok" if probe.get("ok") else "failing"
        since = f" ({outcome} since {short_time(probe['since'])})" if probe.get("since") else ""
        lines.append(f"last probe: {probe.get('probe')} {probe.get('target')} → {probe.get('result')}{since}")
    stderr = d.get("stderr") or []
    if stderr:
        lines.append("last stderr lines:")
        lines += [f"  {line}" + (f" (×{count})" if count > 1 else "") for line, count in _folded(stderr)]
    return lines


def _folded(lines: list[str]) -> list[tuple[str, int]]:
    """Consecutive repeats as one line and a count (a crash loop prints the same last words each run)."""
    out: list[tuple[str, int]] = []
    for line in lines:
        if out and out[-1][0] == line:
            out[-1] = (line, out[-1][1] + 1)
        else:
            out.append((line, 1))
    return out


def _diagnosis_of(client: YunzhouClient, address: AppAddress) -> list[str]:
    try:
        app = client.get_app(address.project, address.env, address.app)
    except ClientError:  # the failure itself is reported either way
        return []
    return diagnosis_lines(app.get("diagnosis"))


def _idle_limit(client: YunzhouClient, address: AppAddress) -> float:
    """How long --wait without --timeout accepts a rollout showing no change: its progress deadline
    (from the app's settings) plus a margin."""
    try:
        settings = client.get_settings(address.project, address.env, address.app).get("settings") or {}
    except ClientError:  # the deadline is a courtesy: the default one will do
        settings = {}
    return progress_deadline(settings) + WAIT_MARGIN


def follow_rollout(
    client: YunzhouClient, address: AppAddress, rollout: Json | None, timeout: float | None
) -> Json | None:
    """Wait for ``rollout``; exit 1 (CommandFailed / WaitTimeout) unless it succeeds. With ``timeout``
    None, wait for its outcome (see ``_idle_limit``)."""
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

    idle = _idle_limit(client, address) if timeout is None else None
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
            idle_timeout=idle,
        )
    except WaitTimeout as exc:
        after = (
            f"after {timeout:g}s"
            if timeout is not None
            else f"and unchanged for {exc.idle_for or 0:.0f}s (its progress deadline plus {WAIT_MARGIN:g}s)"
        )
        raise CommandFailed(
            f"rollout {rollout['id']} of {address} is still {exc.rollout.get('state')} {after}; "
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
    details = "".join(f"\n  {line}" for line in _diagnosis_of(client, address))
    raise CommandFailed(
        f"rollout {final.get('id')} of {address} failed{reason}{details}",
        hint=f"`yunzhou status {address}` shows its conditions; `yunzhou rollback {address}` restores the "
        "previous release",
    )
