"""The dependency step of a build, as data: which tool runs, what it reads, what it leaves, its cache key.

Pure: it gets the source's file names, a reader of their content and the stack's layout (where the
venv or node_modules live) and returns a ``DependencyStep`` (or ``None`` when the stack has no
dependency layer: java, tomcat, static). ``builder`` runs the step's script in a sandbox container on
the stack's build image with the source read-only at ``SOURCE_MOUNT``, a writable folder mounted on
``output``'s parent (``/opt`` for ``/opt/venv``) whose ``output`` folder becomes the layer, and a
writable scratch folder at ``SCRATCH_MOUNT`` (home, temporary files, the generated requirements file).

Python: ``requirements.txt`` wins; else ``[project].dependencies`` of ``pyproject.toml``; else the
``default`` packages of ``Pipfile.lock`` (or ``[packages]`` of a ``Pipfile``); else (``setup.py``, a
pyproject without a ``[project]`` table) ``pip install`` of a copy of the source. The project itself is
never installed into the venv when its dependencies can be listed, so the cached layer never holds a
stale copy of the app's own code (the app runs from ``/app``).

Node: ``npm ci --omit=dev`` with a ``package-lock.json`` (or ``npm-shrinkwrap.json``), else
``npm install --omit=dev`` (the log says a lockfile makes builds reproducible).

The cache key is sha256 over the stack's digest, the step's script and every input's name and content,
so a changed lockfile, stack or recipe gives a new key and the unchanged ones reuse the layer.
"""

from __future__ import annotations

import hashlib
import json
import shlex
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

SOURCE_MOUNT = "/mnt"  # the source, read-only (a folder every Debian image has, so no mount point is made)
# the build container's own scratch folder is bound here (not the host's /var/tmp): HOME, TMPDIR, caches
SCRATCH_MOUNT = "/var/tmp"  # noqa: S108
DEFAULT_VENV = "/opt/venv"
DEFAULT_NODE_MODULES = "/app/node_modules"
GENERATED_REQUIREMENTS = f"{SCRATCH_MOUNT}/yunzhou-requirements.txt"
PIP_FLAGS = "--no-cache-dir --no-compile --no-input --disable-pip-version-check"
NPM_FLAGS = "--omit=dev --no-audit --no-fund --no-update-notifier"
LOCKFILE_HINT = (
    "no package-lock.json: dependencies were resolved afresh with `npm install`; commit a lockfile "
    "(`npm install --package-lock-only`) to make builds reproducible and cacheable"
)

Reader = Callable[[str], bytes | None]  # a source file's content by relative name, None when missing
TreeDigest = Callable[[], str]  # a digest of the whole source tree (for `pip install .`)


@dataclass(frozen=True)
class DependencyStep:
    """One dependency install: ``script`` (POSIX sh) runs with ``cwd``; the folder ``output`` is the layer.

    ``inputs`` are (name, content) pairs that decide the result (the cache key covers them);
    ``generated`` are files the builder writes into the scratch folder before the run.
    """

    tool: str  # "pip" or "npm": the name the log and the cache index use
    script: str
    output: str  # an absolute folder in the image: the venv or node_modules
    inputs: tuple[tuple[str, bytes], ...]
    generated: tuple[tuple[str, bytes], ...] = ()
    cwd: str = "/app"
    notes: tuple[str, ...] = ()

    def cache_key(self, stack_digest: str) -> str:
        h = hashlib.sha256()
        for part in (b"yunzhou-deps-v1", stack_digest.encode(), self.tool.encode(), self.script.encode()):
            h.update(len(part).to_bytes(8, "big") + part)
        for name, content in sorted(self.inputs):
            for part in (name.encode(), content):
                h.update(len(part).to_bytes(8, "big") + part)
        return "sha256:" + h.hexdigest()


def plan_dependencies(
    stack: str,
    files: Iterable[str],
    read: Reader,
    tree_digest: TreeDigest,
    layout: Mapping[str, str] | None = None,
) -> DependencyStep | None:
    """The dependency step for ``stack`` over the source (``files`` = its relative names).

    ``layout`` is the stack's (``venv`` for python, ``node_modules`` for node).
    """
    names = frozenset(files)
    layout = layout or {}
    if stack == "python":
        return _python(names, read, tree_digest, layout.get("venv", DEFAULT_VENV))
    if stack == "node":
        return _node(names, read, layout.get("node_modules", DEFAULT_NODE_MODULES))
    return None


def _script(*lines: str) -> str:
    return "set -eu\n" + "\n".join(lines) + "\n"


def _python(names: frozenset[str], read: Reader, tree_digest: TreeDigest, venv: str) -> DependencyStep | None:
    make = f"python3 -m venv {shlex.quote(venv)}"
    pip = f"{shlex.quote(venv)}/bin/pip install {PIP_FLAGS}"
    if "requirements.txt" in names:
        inputs = _with_included(read, "requirements.txt")
        if not any(_requirement_lines(content) for _, content in inputs):
            return None  # only comments and blank lines: no venv to make, nothing for pip to do
        script = _script(f"cd {SOURCE_MOUNT}", make, f"{pip} -r {SOURCE_MOUNT}/requirements.txt")
        return DependencyStep("pip", script, venv, inputs)
    listed = _listed_requirements(names, read)
    if listed is not None:
        source, requirements = listed
        content = "".join(f"{r}\n" for r in requirements).encode()
        script = _script(make, f"{pip} -r {GENERATED_REQUIREMENTS}" if requirements else ":")
        generated = ((GENERATED_REQUIREMENTS, content),)
        note = f"dependencies from {source}: {len(requirements)} (the project itself runs from /app)"
        return DependencyStep("pip", script, venv, ((source, content),), generated, notes=(note,))
    if "setup.py" in names or "pyproject.toml" in names:
        copy = f"{SCRATCH_MOUNT}/src"
        script = _script(f"cp -R {SOURCE_MOUNT} {copy}", make, f"{pip} {copy}")
        note = "no dependency list to read: the project is installed with `pip install .` (cached per source)"
        return DependencyStep("pip", script, venv, (("source-tree", tree_digest().encode()),), notes=(note,))
    return None


def _requirement_lines(content: bytes) -> list[str]:
    """The lines of a requirements file that ask pip for something (comments and blanks dropped)."""
    lines = (line.split("#", 1)[0].strip() for line in content.decode(errors="replace").splitlines())
    return [line for line in lines if line]


def _with_included(read: Reader, name: str, depth: int = 0) -> tuple[tuple[str, bytes], ...]:
    """``name`` and the files it names with ``-r``/``-c`` (relative to the source), recursively."""
    content = read(name)
    if content is None:
        return ()
    found: list[tuple[str, bytes]] = [(name, content)]
    if depth >= 5:
        return tuple(found)
    base = name.rsplit("/", 1)[0] + "/" if "/" in name else ""
    for line in content.decode(errors="replace").splitlines():
        words = line.split("#", 1)[0].split()
        for i, word in enumerate(words):
            included = None
            if word in ("-r", "-c", "--requirement", "--constraint") and i + 1 < len(words):
                included = words[i + 1]
            elif word.startswith(("--requirement=", "--constraint=")):
                included = word.split("=", 1)[1]
            if included and not included.startswith("/") and "://" not in included:
                found.extend(_with_included(read, base + included, depth + 1))
    return tuple(found)


def _listed_requirements(names: frozenset[str], read: Reader) -> tuple[str, list[str]] | None:
    """Requirements written in pyproject.toml's [project] or a Pipfile(.lock); None when none is there."""
    if "pyproject.toml" in names:
        doc = _toml(read("pyproject.toml"))
        project = doc.get("project") if doc else None
        if isinstance(project, dict):
            deps = project.get("dependencies") or []
            return "pyproject.toml", sorted(str(d) for d in deps if isinstance(d, str))
    if "Pipfile.lock" in names:
        try:
            lock = json.loads(read("Pipfile.lock") or b"{}")
        except ValueError:
            lock = None
        if isinstance(lock, dict) and isinstance(lock.get("default"), dict):
            pins = [
                f"{name}{spec.get('version', '')}" if isinstance(spec, dict) else name
                for name, spec in lock["default"].items()
            ]
            return "Pipfile.lock", sorted(pins)
    if "Pipfile" in names:
        doc = _toml(read("Pipfile"))
        packages = doc.get("packages") if doc else None
        if isinstance(packages, dict):
            return "Pipfile", sorted(_pipfile_requirement(n, s) for n, s in packages.items())
    return None


def _pipfile_requirement(name: str, spec: object) -> str:
    if isinstance(spec, dict):
        spec = spec.get("version", "*")
    return name if spec in ("*", "", None) else f"{name}{spec}"


def _toml(content: bytes | None) -> dict[str, object] | None:
    if content is None:
        return None
    try:
        return tomllib.loads(content.decode())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError):
        return None  # pip will report the broken file in its own words


def _node(names: frozenset[str], read: Reader, node_modules: str) -> DependencyStep | None:
    if "package.json" not in names:
        return None
    lock = next((n for n in ("package-lock.json", "npm-shrinkwrap.json") if n in names), None)
    manifests = ["package.json"] + ([lock] if lock else [])
    inputs = tuple((n, read(n) or b"") for n in manifests)
    project = node_modules.rsplit("/", 1)[0] or "/"
    copy = " ".join(shlex.quote(f"{SOURCE_MOUNT}/{n}") for n in manifests)
    install = f"npm ci {NPM_FLAGS}" if lock else f"npm install {NPM_FLAGS}"
    # npm install writes a lockfile of its own: the manifests are the app layer's, not this one's
    script = _script(f"cp {copy} .", install, "rm -f package.json package-lock.json npm-shrinkwrap.json")
    notes = () if lock else (LOCKFILE_HINT,)
    return DependencyStep("npm", script, node_modules, inputs, cwd=project, notes=notes)
