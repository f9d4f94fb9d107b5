"""``yunzhou images P/E/A``: an app's images in the registry with size, age, signature, SBOM and the
releases (of any environment of the project) that refer to each — those are never garbage collected."""

from __future__ import annotations

from typing import Any

import typer

from yunzhou.cli.common import PANEL_APPS, AppArg, ListFormat, ListOutput, app_hint, connect, print_list

Json = dict[str, Any]


def human_size(value: object) -> str | None:
    if not isinstance(value, int):
        return None
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return None


def human_age(seconds: object) -> str | None:
    """``42s``, ``5m``, ``3h``, ``12d``."""
    if not isinstance(seconds, int):
        return None
    for unit, length in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= length:
            return f"{seconds // length}{unit}"
    return f"{max(0, seconds)}s"


def referrers(image: Json) -> str | None:
    refs = image.get("releases") or []
    return ", ".join(f"{r.get('env')}#{r.get('release')}" for r in refs) or None


def images(ctx: typer.Context, address: AppArg, output: ListOutput = ListFormat.table) -> None:
    """Images of an app in the registry, newest first."""
    items = connect(ctx, not_found=app_hint(address)).list_images(address.project, address.env, address.app)
    columns = [
        ("DIGEST", lambda r: str(r.get("digest", ""))[:19] + "…"),
        ("SIZE", lambda r: human_size(r.get("size"))),
        ("AGE", lambda r: human_age(r.get("age_seconds"))),
        ("SIGNED", lambda r: "yes" if r.get("signed") else "no"),
        ("SBOM", lambda r: "yes" if r.get("sbom") else "no"),
        ("TAGS", lambda r: ", ".join(r.get("tags") or []) or None),
        ("RELEASES", referrers),
    ]
    print_list(items, output, columns, empty=f"{address} has no images in the registry.")


def register(app: typer.Typer) -> None:
    app.command("images", no_args_is_help=True, rich_help_panel=PANEL_APPS)(images)
