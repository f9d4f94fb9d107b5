"""The demo `yunzhou up` seeds (shop/dev with the apps of ``DEMO_APPS``) and what it prints when it is up.

Each demo app is deployed the way `yunzhou deploy --source` deploys: its folder is uploaded and built into
an image (on a fresh machine the python stack is built from Debian packages first: the long part), with
the builds' progress shown, then released pinned to the image's digest; `up` waits for the rollouts. With
``YUNZHOU_INSTANCE_MODE=process`` (development) the folders are released as they are, without a build.

The demo is deployed only where it is absent: a second `make up` leaves the user's changes to it alone.
"""

from __future__ import annotations

import os
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from yunzhou.client import DEFAULT_URL, TERMINAL_BUILD_STATES, ApiError, YunzhouClient, pack_source
from yunzhou.demo_progress import BuildDisplay

Json = dict[str, Any]
EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "examples"
DEMO_PROJECT, DEMO_ENV = "shop", "dev"
DEMO_APPS = ("inventory", "orders")  # examples/NAME; examples/try/* are for trying by hand (README)
POLL_S = 0.5
ROLLOUT_TIMEOUT_S = 300


def _exists(call: Callable[[], object]) -> bool:
    try:
        call()
    except ApiError as exc:
        if exc.status == 404:
            return False
        raise
    return True


def builds_images(environ: dict[str, str] | None = None) -> bool:
    """Whether the demo is built into images: always, except in development's host-process mode."""
    environ = dict(os.environ) if environ is None else environ
    return environ.get("YUNZHOU_INSTANCE_MODE", "").strip().lower() != "process"


def seed_demo(url: str, token: str, examples: Path = EXAMPLES_DIR, *, build: bool | None = None) -> list[str]:
    """Create shop/dev and deploy each demo app that is not there yet; one line per app."""
    build = builds_images() if build is None else build
    lines: list[str] = []
    with YunzhouClient(url, token) as client:
        if not _exists(lambda: client.get_project(DEMO_PROJECT)):
            client.create_project(DEMO_PROJECT, "Demo shop")
        if not _exists(lambda: client.get_environment(DEMO_PROJECT, DEMO_ENV)):
            client.create_environment(DEMO_PROJECT, DEMO_ENV)
        missing: list[tuple[Path, Json, Json | None]] = []
        for name in DEMO_APPS:
            score_file = examples / name / "score.yaml"
            score = yaml.safe_load(score_file.read_text())
            try:
                app = client.get_app(DEMO_PROJECT, DEMO_ENV, str(score["metadata"]["name"]))
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
            missing.append((score_file, score, settings))
        if build:
            deployments, failed = _build_all(client, missing)
            lines += failed
        else:
            deployments = [
                client.deploy(DEMO_PROJECT, DEMO_ENV, score, settings, client.upload_artifact(f.parent))
                for f, score, settings in missing
            ]
        for result in deployments:  # wait until each is serving before saying where it is
            app = result["app"]
            rollout = result["rollout"]
            if rollout is not None:
                rollout = client.wait_for_rollout(
                    DEMO_PROJECT,
                    DEMO_ENV,
                    app["name"],
                    rollout["id"],
                    timeout=ROLLOUT_TIMEOUT_S,
                    interval=0.2,
                )
            ready = rollout is None or rollout["state"] == "succeeded"
            state = "ready" if ready else f"NOT ready ({rollout['message']})"
            lines.append(f"{app['address']} release {result['release']['number']}, {state}: {app['route']}")
    return sorted(lines)


def _build_all(
    client: YunzhouClient, missing: list[tuple[Path, Json, Json | None]]
) -> tuple[list[Json], list[str]]:
    """Upload and build each app (a build that succeeds releases it); follow them with a progress display.
    Returns the deployments made and a line for each app whose build failed."""
    builds: list[Json] = []
    failed: list[str] = []
    for score_file, score, settings in missing:
        leave_out = [p for p in (score_file, score_file.with_name("yunzhou.yaml")) if p.exists()]
        try:
            artifact = client.upload_source(pack_source(score_file.parent, leave_out=leave_out))
            builds.append(
                client.start_build(DEMO_PROJECT, DEMO_ENV, artifact, score=score, settings=settings)
            )
        except ApiError as exc:  # refused (say a stack the source does not show): the others still go on
            failed.append(f"{DEMO_PROJECT}/{DEMO_ENV}/{score['metadata']['name']} NOT deployed: {exc}")
    deployments: list[Json] = []
    with BuildDisplay() as display:
        pending = {str(b["id"]): b for b in builds}
        while pending:
            for build_id in list(pending):
                build = client.get_build(build_id)
                display.show(build)
                if build.get("state") in TERMINAL_BUILD_STATES:
                    del pending[build_id]
                    if build.get("state") == "succeeded" and build.get("release") is not None:
                        deployments.append(_deployment(client, build))
                    else:
                        failed.append(
                            f"{build.get('address')} NOT deployed: build {build_id} {build.get('state')}: "
                            f"{build.get('error') or 'no reason given'} (`yunzhou build logs {build_id}`)"
                        )
            if pending:
                time.sleep(POLL_S)  # polling the builds' progress; Ctrl-C stops `up` (and the builds)
    return deployments, failed


def _deployment(client: YunzhouClient, build: Json) -> Json:
    """The app, release and rollout a build's success made, as ``client.deploy`` returns them."""
    app, number = str(build["app"]), int(build["release"])
    rollouts = client.list_rollouts(DEMO_PROJECT, DEMO_ENV, app)
    return {
        "app": client.get_app(DEMO_PROJECT, DEMO_ENV, app),
        "release": client.get_release(DEMO_PROJECT, DEMO_ENV, app, number),
        "rollout": next((r for r in rollouts if r.get("to_release") == number), None),
    }


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
