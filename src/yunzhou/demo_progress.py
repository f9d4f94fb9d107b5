"""How `yunzhou up` shows the demo's builds: a Rich progress bar per app on a terminal (the build's step and
fraction), one line per new step otherwise (a log file, CI). Building a stack from Debian packages, which
only a fresh machine does, is said in words with how long it takes, because it is the long wait."""

from __future__ import annotations

from types import TracebackType
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskID, TaskProgressColumn, TextColumn, TimeElapsedColumn

Json = dict[str, Any]
STACK_STEP = "stack: "  # the builder's steps while it gets (or builds) the stack image
STACK_READY = "stack: ready"
# a cold build on the 2-core development machine (docs/images.md#stacks), said while one runs
FIRST_BUILD_TIME = {"python": "~1–2 min", "static": "~1 min", "tomcat": "~3 min", "java": "~4 min"}


def step_text(build: Json) -> str:
    """What a build is doing, in words: ``building the python stack from Debian packages (first time only,
    ~1–2 min): Retrieving Packages``, ``installing dependencies``, ``queued``…"""
    state = build.get("state")
    if state == "queued":
        return "queued (builds run one at a time)"
    if state in ("succeeded", "failed", "cancelled"):
        return f"build {state}" + (f": {build['error']}" if build.get("error") else "")
    step = str((build.get("progress") or {}).get("step") or "starting")
    if step.startswith(STACK_STEP) and step != STACK_READY:
        stack = str(build.get("stack") or "")
        took = FIRST_BUILD_TIME.get(stack, "a few minutes")
        detail = step.removeprefix(STACK_STEP)
        return f"building the {stack} stack from Debian packages (first time only, {took}): {detail}"
    return {"stack": "getting the stack image", STACK_READY: "stack image ready",
            "dependencies": "installing dependencies", "check": "checking the source",
            "app": "adding the app's files", "sbom": "writing the SBOM"}.get(step, step)  # fmt: skip


class BuildDisplay:
    """``show(build)`` for every poll of every build; a context manager around the polling."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console()
        self._progress: Progress | None = None
        self._tasks: dict[str, TaskID] = {}
        self._said: dict[str, str] = {}

    def __enter__(self) -> BuildDisplay:
        if self.console.is_terminal:
            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(bar_width=24),
                TaskProgressColumn(),
                TimeElapsedColumn(),
                TextColumn("{task.fields[step]}"),
                console=self.console,
            )
            self._progress.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._progress is not None:
            self._progress.stop()

    def show(self, build: Json) -> None:
        address, text = str(build.get("address") or build.get("app")), step_text(build)
        fraction = float((build.get("progress") or {}).get("fraction") or 0.0)
        if build.get("state") == "succeeded":
            fraction = 1.0
        if self._progress is None:
            if self._said.get(address) != text:
                self._said[address] = text
                self.console.print(f"{address}: {escape(text)}", highlight=False, soft_wrap=True)
            return
        if address not in self._tasks:
            self._tasks[address] = self._progress.add_task(address, total=1.0, step="")
        self._progress.update(self._tasks[address], completed=fraction, step=escape(text))
