"""Which stack builds a source tree: pure rules over a listing of the tree's file names.

Order (the first that decides wins):

1. ``--stack NAME`` (the build request), then the Score annotation ``yunzhou.io/stack``.
2. A ``Dockerfile`` at the top → ``dockerfile`` (built with buildah, ``FROM`` one of our stacks).
3. Language markers at the top: ``requirements.txt``/``pyproject.toml``/``setup.py``/``Pipfile`` → python,
   ``package.json`` → node, exactly one ``*.war`` → tomcat, exactly one ``*.jar`` → java. Markers of two
   stacks are ambiguous (an error that says how to choose).
4. Otherwise Python files (``*.py``) at the top → python with nothing to install (the log says so): a
   new user's ``app.py`` alone builds, and a ``requirements.txt`` is only needed for dependencies.
5. Otherwise an ``index.html`` at the top, or else in the first of ``dist/``, ``build/``, ``public/``,
   ``_site/``, ``site/`` → static (that folder is served). Static comes last because a Node or Python
   project often carries a ``public/index.html`` of its own.

Only names are read (``list_source`` does the one bit of I/O); the content is never looked at here.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from yunzhou.domain.errors import FieldProblem, UserError

STACK_ANNOTATION = "yunzhou.io/stack"
DOCKERFILE = "dockerfile"
SUPPORTED_STACKS = ("python", "node", "java", "tomcat", "static", DOCKERFILE)
PYTHON_MARKERS = ("requirements.txt", "pyproject.toml", "setup.py", "Pipfile")
NODE_MARKERS = ("package.json",)
STATIC_FOLDERS = ("", "dist", "build", "public", "_site", "site")
# Folders never looked into: they are dependencies, caches or version control, not the app.
_SKIPPED_DIRS = frozenset({".git", ".hg", ".svn", "node_modules", ".venv", "venv", "__pycache__"})
_ANNOTATION_PATH = 'metadata.annotations["yunzhou.io/stack"]'


@dataclass(frozen=True)
class Detected:
    """The chosen stack, why (one line for the build log), and the file or folder it builds from.

    ``artifact`` is the jar (java), the war (tomcat), the served folder (static, ``""`` = the top) or
    ``"Dockerfile"``; empty for python and node, which build the whole tree.
    """

    stack: str
    reason: str
    artifact: str = ""


def how_to_choose() -> str:
    return (
        f"choose one with `--stack NAME` or the Score annotation "
        f"`metadata.annotations: {{{STACK_ANNOTATION}: NAME}}`; supported: {', '.join(SUPPORTED_STACKS)}"
    )


def list_source(source_dir: Path, *, max_depth: int = 2) -> list[str]:
    """The relative POSIX names of files under ``source_dir`` down to ``max_depth`` folders (sorted).

    Detection needs the top and one level below (``public/index.html``); dependency and VCS folders are
    not entered, so a checked-in ``node_modules`` costs nothing.
    """
    names: list[str] = []
    root_depth = len(source_dir.parts)
    for dirpath, dirnames, filenames in os.walk(source_dir):
        here = Path(dirpath)
        depth = len(here.parts) - root_depth
        dirnames[:] = [d for d in dirnames if d not in _SKIPPED_DIRS and depth < max_depth]
        rel = here.relative_to(source_dir).as_posix()
        names.extend(f if rel == "." else f"{rel}/{f}" for f in filenames)
    return sorted(names)


def detect(
    files: Iterable[str],
    *,
    stack: str | None = None,
    annotations: Mapping[str, str] | None = None,
) -> Detected:
    """Decide the stack from ``files`` (relative POSIX names), an explicit ``stack`` and Score annotations."""
    listing = _Listing(files)
    explicit = _explicit(stack, annotations)
    if explicit is not None:
        name, how = explicit
        return listing.resolve(name, f"{how} chose the {name} stack")
    if "Dockerfile" in listing.top:
        return Detected(DOCKERFILE, "a Dockerfile is at the top of the source", "Dockerfile")
    found = [d for d in (listing.python(), listing.node(), listing.tomcat(), listing.java()) if d]
    if len(found) > 1:
        reasons = "; ".join(f"{d.stack} ({d.reason})" for d in found)
        raise UserError(
            f"the source looks like more than one stack: {reasons}; {how_to_choose()}",
            code="ambiguous_stack",
            problems=[FieldProblem("stack", "ambiguous: " + ", ".join(d.stack for d in found))],
        )
    if found:
        return found[0]
    scripts = listing.python_files()
    if scripts is not None:
        return scripts
    static = listing.static()
    if static is not None:
        return static
    raise UserError(
        "no stack recognised in the source (looked for a Dockerfile, "
        f"{', '.join(PYTHON_MARKERS)}, package.json, one *.war, one *.jar, *.py, index.html); "
        f"{how_to_choose()}",
        code="unknown_stack",
        problems=[FieldProblem("stack", "not recognised")],
    )


def detect_source(
    source_dir: Path, *, stack: str | None = None, annotations: Mapping[str, str] | None = None
) -> Detected:
    """``detect`` over the listing of ``source_dir``."""
    return detect(list_source(source_dir), stack=stack, annotations=annotations)


def _explicit(stack: str | None, annotations: Mapping[str, str] | None) -> tuple[str, str] | None:
    choices = (("stack", stack, "--stack"), (_ANNOTATION_PATH, (annotations or {}).get(STACK_ANNOTATION), ""))
    for path, value, flag in choices:
        if value is None or value == "":
            continue
        name = value.strip().lower()
        if name not in SUPPORTED_STACKS:
            message = f"unknown stack {value!r}; supported: {', '.join(SUPPORTED_STACKS)}"
            raise UserError(
                f"{path}: {message}", code="unknown_stack", problems=[FieldProblem(path, message)]
            )
        return name, (f"{flag} {name}" if flag else f"the Score annotation {STACK_ANNOTATION}={name}")
    return None


class _Listing:
    def __init__(self, files: Iterable[str]) -> None:
        self.files = frozenset(PurePosixPath(f).as_posix() for f in files)
        self.top = frozenset(f for f in self.files if "/" not in f)

    def _suffixed(self, suffix: str) -> list[str]:
        return sorted(f for f in self.top if f.lower().endswith(suffix))

    def python(self) -> Detected | None:
        found = [m for m in PYTHON_MARKERS if m in self.top]
        return Detected("python", f"{', '.join(found)} at the top of the source") if found else None

    def python_files(self) -> Detected | None:
        found = self._suffixed(".py")
        if not found:
            return None
        shown = ", ".join(found[:3]) + (", …" if len(found) > 3 else "")
        return Detected(
            "python",
            f"Python files at the top of the source ({shown}); no requirements.txt, so nothing is installed",
        )

    def node(self) -> Detected | None:
        return (
            Detected("node", "package.json at the top of the source") if "package.json" in self.top else None
        )

    def _archive(self, stack: str, suffix: str) -> Detected | None:
        found = self._suffixed(suffix)
        if len(found) == 1:
            return Detected(stack, f"one {suffix} at the top of the source ({found[0]})", found[0])
        if len(found) > 1:
            raise UserError(
                f"the {stack} stack runs one {suffix} file, found {len(found)} at the top of the source "
                f"({', '.join(found)}); leave only the one to run",
                code="invalid",
                problems=[FieldProblem("stack", f"{len(found)} {suffix} files")],
            )
        return None

    def tomcat(self) -> Detected | None:
        return self._archive("tomcat", ".war")

    def java(self) -> Detected | None:
        return self._archive("java", ".jar")

    def static(self) -> Detected | None:
        for folder in STATIC_FOLDERS:
            if (f"{folder}/index.html" if folder else "index.html") in self.files:
                where = f"{folder}/" if folder else "the top of the source"
                return Detected("static", f"index.html in {where}", folder)
        return None

    def resolve(self, name: str, reason: str) -> Detected:
        """The artifact for an explicitly chosen stack (an error when the source cannot give one)."""
        if name == DOCKERFILE:
            if "Dockerfile" not in self.top:
                raise _missing(name, "a Dockerfile at the top of the source")
            return Detected(name, reason, "Dockerfile")
        if name in ("java", "tomcat"):
            suffix = ".jar" if name == "java" else ".war"
            found = self._archive(name, suffix)
            if found is None:
                raise _missing(name, f"one {suffix} file at the top of the source")
            return Detected(name, reason, found.artifact)
        if name == "static":
            found_static = self.static()
            return Detected(name, reason, found_static.artifact if found_static else "")
        return Detected(name, reason)


def _missing(stack: str, what: str) -> UserError:
    return UserError(
        f"the {stack} stack needs {what}; none found", code="invalid", problems=[FieldProblem("stack", what)]
    )
