"""What the local target can run, said at deploy time instead of as a failed rollout later.

The local target runs one process per instance from the uploaded source (an empty folder without one):
no ``command`` cannot start, several containers cannot run, and a command that runs a file of the app's
own source (``python3 app.py``) fails without ``--source``. A command on PATH (``python3 -m
http.server``) or an absolute path needs no source.

A release with an image of the platform's registry (built from the source, or a Score image pinned to
``project/app@sha256:…``) runs that image as a container (docs/local-runtime.md). A server that runs
containers (the default) refuses a release without one (``missing_image``); only a server started with
``YUNZHOU_INSTANCE_MODE=process`` (development) runs it as a host process, which the deploy says.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from yunzhou.domain.errors import FieldProblem
from yunzhou.domain.image_refs import platform_ref
from yunzhou.domain.score.model import Workload

# interpreters whose first non-option argument is a script file
_INTERPRETER_RE = re.compile(r"(python[0-9.]*|node|nodejs|ruby|perl|php|bash|sh|dash|deno|bun|java)")
_SCRIPT_RE = re.compile(r"[^\s=]+\.(py|pyz|js|mjs|cjs|ts|rb|pl|php|sh|jar)")
_CODE_FLAGS = frozenset({"-m", "-c", "-e", "--eval", "-p", "--print", "-"})  # code or a module, not a file


def source_file(argv: Sequence[str]) -> str | None:
    """The file of the app's own source that ``argv`` runs (a relative path), or None."""
    if not argv:
        return None
    first = argv[0]
    if first.startswith(("./", "../")):
        return first
    if "/" in first and not first.startswith("/"):
        return first
    if not _INTERPRETER_RE.fullmatch(first.rsplit("/", 1)[-1]):
        return None
    for arg in argv[1:]:
        if arg in _CODE_FLAGS:
            return None
        if arg.startswith("-"):
            continue
        if arg.startswith("/") or not _SCRIPT_RE.fullmatch(arg):
            return None
        return arg
    return None


NO_IMAGE = "this release has no image: it runs as a host process (development mode)"


def local_image(images: Mapping[str, str], built: str | None, project: str) -> str | None:
    """The image a release runs locally: the built one, else the only container's Score image when it is
    a pinned image of ``project``'s own repositories in the platform's registry; None: the release runs as
    a host process. Another project's image is never run: the server pulls with full access, so naming
    ``other/app@sha256:…`` must not hand one project another's code."""
    if built:
        return built
    if len(images) == 1:
        image = next(iter(images.values()))
        ref = platform_ref(image)
        if ref is not None and ref.repository.split("/", 1)[0] == project:
            return image
    return None


def local_run_warnings(
    workload: Workload, has_source: bool, *, project: str, image: str | None = None
) -> list[FieldProblem]:
    """Why this workload will not start on the local target, each naming the field and the fix.

    ``image``: the release's built image (``local_image`` decides whether it runs one)."""
    if len(workload.containers) != 1:
        names = ", ".join(workload.containers)
        return [
            FieldProblem(
                "containers",
                f"the local target runs one process per instance, so {len(workload.containers)} containers "
                f"({names}) will not start: deploy each as its own app, or use a Kubernetes environment",
            )
        ]
    name, container = next(iter(workload.containers.items()))
    if local_image({name: container.image}, image, project) is not None:
        return []  # a container of its image: no command or source needed
    path = f"containers.{name}.command"
    if not container.command:
        return [
            FieldProblem(
                path,
                "the local target runs processes, not images: without a command this release will not "
                'start; give one, e.g. ["python3", "app.py"] with --source (the folder holding app.py)',
            )
        ]
    script = source_file(tuple(container.command) + tuple(container.args or ()))
    if script is not None and not has_source:
        return [
            FieldProblem(
                path,
                f"runs {script} from the app's source, but no source was uploaded, so it will not be "
                f"found: deploy with --source DIR (the folder holding {script})",
            )
        ]
    return []


def missing_image(
    workload: Workload, image: str | None, project: str, *, containers: bool
) -> list[FieldProblem]:
    """A one-container release without an image to run locally. ``containers``: the server runs instances
    as containers (the default), so the release cannot run at all — an error; else it runs as a host
    process (development mode) — a warning."""
    if len(workload.containers) != 1:
        return []
    name, container = next(iter(workload.containers.items()))
    if local_image({name: container.image}, image, project) is not None:
        return []
    path = f"containers.{name}.image"
    return [FieldProblem(path, no_image_refusal(container.image, project) if containers else NO_IMAGE)]


def no_image_refusal(written: str | None, project: str) -> str:
    """Why a container-mode local target cannot run a release, and the three ways out."""
    which = (
        f"{written!r} is not an image of project {project!r} in the platform's registry"
        if written and written != "."
        else "none was built or named"
    )
    return (
        f"this server runs every instance as a container of its release's image, and this release has no "
        f"image it can run ({which}): deploy with --source DIR to build one, set the image to one of "
        f"{project}'s repositories ({project}/APP:TAG or @sha256:…), or start the server with "
        "YUNZHOU_INSTANCE_MODE=process (development only: instances then run as host processes)"
    )
