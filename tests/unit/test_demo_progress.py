"""What `yunzhou up` shows while the demo builds (issue 15): the build's step in words — the stack built from
Debian packages on a fresh machine is named with how long it takes — as a progress bar on a terminal and
one line per new step in a log."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from yunzhou import demo
from yunzhou.client import ApiError
from yunzhou.demo import DEMO_APPS, EXAMPLES_DIR, builds_images
from yunzhou.demo_progress import BuildDisplay, step_text


def build(state: str = "running", step: str | None = None, fraction: float = 0.0, **more: object) -> dict:
    return {"id": "b1", "address": "shop/dev/orders", "app": "orders", "stack": "python", "state": state,
            "progress": {"step": step, "fraction": fraction}, **more}  # fmt: skip


def test_a_stack_built_from_debian_packages_is_said_with_its_first_time_cost() -> None:
    text = step_text(build(step="stack: Retrieving Packages", fraction=0.1))
    assert text == (
        "building the python stack from Debian packages (first time only, ~1–2 min): Retrieving Packages"
    )


def test_the_other_steps_in_words() -> None:
    assert step_text(build("queued")) == "queued (builds run one at a time)"
    assert step_text(build(step="stack: ready")) == "stack image ready"
    assert step_text(build(step="dependencies")) == "installing dependencies"
    assert step_text(build(step="pushing the image")) == "pushing the image"
    assert step_text(build("failed", error="SyntaxError: bad")) == "build failed: SyntaxError: bad"


def test_without_a_terminal_each_new_step_is_one_line() -> None:
    out = io.StringIO()
    with BuildDisplay(Console(file=out, width=200)) as display:
        for b in (build("queued"), build("queued"), build(step="stack: Debian packages"), build("succeeded")):
            display.show(b)
    assert out.getvalue().splitlines() == [
        "shop/dev/orders: queued (builds run one at a time)",
        "shop/dev/orders: building the python stack from Debian packages (first time only, ~1–2 min): "
        "Debian packages",
        "shop/dev/orders: build succeeded",
    ]


def test_on_a_terminal_a_progress_bar_shows_the_step_and_fraction() -> None:
    out = io.StringIO()
    console = Console(file=out, width=200, force_terminal=True, color_system=None)
    with BuildDisplay(console) as display:
        display.show(build(step="dependencies", fraction=0.4))
    assert "shop/dev/orders" in out.getvalue()
    assert "40%" in out.getvalue()
    assert "installing dependencies" in out.getvalue()


def test_the_demo_apps_are_built_unless_instances_are_host_processes() -> None:
    assert builds_images({}) is True
    assert builds_images({"YUNZHOU_INSTANCE_MODE": "container"}) is True
    assert builds_images({"YUNZHOU_INSTANCE_MODE": "process"}) is False
    assert all((EXAMPLES_DIR / name / "score.yaml").is_file() for name in DEMO_APPS)


class FakeClient:
    """The calls seed_demo makes: inventory builds, orders' build fails."""

    def __init__(self, *_: object) -> None:
        self.polls = 0

    def __enter__(self) -> FakeClient:
        return self

    def __exit__(self, *_: object) -> None:
        return None

    def get_project(self, *names: str) -> dict:
        return {"name": "/".join(names)}

    get_environment = get_project

    def get_app(self, project: str, env: str, name: str) -> dict:
        if self.polls == 0:
            raise ApiError(404, "not_found", f"no app {name}")
        return {
            "name": name,
            "address": f"{project}/{env}/{name}",
            "route": f"http://{name}.dev.shop.localhost",
        }

    def upload_source(self, archive: object) -> str:
        return "sha256:" + "0" * 64

    def start_build(self, project: str, env: str, artifact: str, **body: dict) -> dict:
        name = body["score"]["metadata"]["name"]
        return {"id": name, "address": f"{project}/{env}/{name}", "state": "queued"}

    def get_build(self, build_id: str) -> dict:
        self.polls += 1
        if build_id == "orders":
            return {"id": build_id, "address": "shop/dev/orders", "state": "failed", "error": "pip said no"}
        return {"id": build_id, "address": "shop/dev/inventory", "app": "inventory", "state": "succeeded",
                "release": 1, "stack": "python"}  # fmt: skip

    def list_rollouts(self, *_: object) -> list[dict]:
        return [{"id": 7, "to_release": 1}]

    def get_release(self, *_: object) -> dict:
        return {"number": 1}

    def wait_for_rollout(self, *_: object, **__: object) -> dict:
        return {"state": "succeeded"}


def test_the_demo_is_built_and_a_failed_build_is_named_with_its_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(demo, "YunzhouClient", FakeClient)
    lines = demo.seed_demo("http://api", "token", build=True)
    assert lines == [
        "shop/dev/inventory release 1, ready: http://inventory.dev.shop.localhost",
        "shop/dev/orders NOT deployed: build orders failed: pip said no (`yunzhou build logs orders`)",
    ]
