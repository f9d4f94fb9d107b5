"""The demo `yunzhou up` seeds (shop/dev with every examples/*/score.yaml) and what it prints when it is up.

The demo is deployed only where it is absent: a second `make up` leaves the user's changes to it alone.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Callable
from pathlib import Path

import yaml

from yunzhou.client import DEFAULT_URL, ApiError, YunzhouClient

EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "examples"
DEMO_PROJECT, DEMO_ENV = "shop", "dev"


def _exists(call: Callable[[], object]) -> bool:
    try:
        call()
    except ApiError as exc:
        if exc.status == 404:
            return False
        raise
    return True


def seed_demo(url: str, token: str, examples: Path = EXAMPLES_DIR) -> list[str]:
    """Create shop/dev and deploy each example app that is not there yet; one line per app."""
    lines: list[str] = []
    with YunzhouClient(url, token) as client:
        if not _exists(lambda: client.get_project(DEMO_PROJECT)):
            client.create_project(DEMO_PROJECT, "Demo shop")
        if not _exists(lambda: client.get_environment(DEMO_PROJECT, DEMO_ENV)):
            client.create_environment(DEMO_PROJECT, DEMO_ENV)
        started = []
        for score_file in sorted(examples.glob("*/score.yaml")):
            score = yaml.safe_load(score_file.read_text())
            name = str(score["metadata"]["name"])
            try:
                app = client.get_app(DEMO_PROJECT, DEMO_ENV, name)
            except ApiError as exc:
                if exc.status != 404:
                    raise
            else:
                lines.append(
                    f"{app['address']} release {app['desired_release']}, {app['status']} "
                    f"(already there: left as it is): {app['route']}"
                )
                continue
            settings_file = score_file.with_name("yunzhou.yaml")
            settings = yaml.safe_load(settings_file.read_text()) if settings_file.exists() else None
            artifact = client.upload_artifact(score_file.parent)
            started.append(client.deploy(DEMO_PROJECT, DEMO_ENV, score, settings, artifact))
        for result in started:  # wait until each is serving before saying where it is
            app = result["app"]
            rollout = client.wait_for_rollout(
                DEMO_PROJECT, DEMO_ENV, app["name"], result["rollout"]["id"], timeout=120, interval=0.2
            )
            state = "ready" if rollout["state"] == "succeeded" else f"NOT ready ({rollout['message']})"
            lines.append(f"{app['address']} release {result['release']['number']}, {state}: {app['route']}")
    return sorted(lines)


def cli_setup_lines(url: str) -> list[str]:
    """The shell lines that put this `yunzhou` on PATH and point it at this server, to paste elsewhere."""
    bin_dir = Path(sys.executable).parent
    if sys.prefix != sys.base_prefix and (Path(sys.prefix) / "bin" / "activate").exists():
        lines = [f"source {shlex.quote(str(Path(sys.prefix) / 'bin' / 'activate'))}"]
    else:
        lines = [f'export PATH={shlex.quote(str(bin_dir))}:"$PATH"']
    if url != DEFAULT_URL:  # the CLI's default; any other URL must be named
        lines.append(f"export YUNZHOU_URL={url}")
    return lines


def banner(url: str, apps: list[str], token_file: Path) -> str:
    out = ["", "Yunzhou is up.", "", f"  API + console   {url}/  (OpenAPI: {url}/openapi.json)"]
    out += [f"  app             {line}" for line in apps]
    out += [f"  admin token     {token_file}  (the console's sign-in asks for it)", ""]
    out.append("In another terminal, paste these lines; `yunzhou` then finds this server and its token:")
    out += [f"  {line}" for line in cli_setup_lines(url)]
    out += [f"  yunzhou apps {DEMO_PROJECT}/{DEMO_ENV}", "", "Press Ctrl-C to stop everything."]
    return "\n".join(out)
