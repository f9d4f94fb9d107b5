"""Score placeholders: ``${metadata.KEY...}`` and ``${resources.NAME.OUTPUT...}``.

The syntax follows score-go: ``${...}`` runs to the first ``}``; ``$$`` is a literal ``$`` (so ``$${`` is a
literal ``${``); a lone ``$`` stays as it is. The reference is split on ``.``, and ``\\.`` is a dot inside a
key (``${metadata.annotations.example\\.com/team}``). Values that are not strings are written as compact
JSON. Placeholders are expanded in container variables, command, args and file ``content`` (unless
``noExpand``); they are also checked in volume ``source`` and resource ``params``, which the runtimes and
add-on provisioning expand.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace

from yunzhou.domain.errors import FieldProblem, UserError
from yunzhou.domain.score.model import Container, File, FrozenMap, Workload
from yunzhou.domain.score.paths import at

_TOKEN_RE = re.compile(r"\$(?:\$?\{[^}]*\}|\$)")
_ESCAPED_DOT = "\x00"


class PlaceholderError(Exception):
    """Why one placeholder cannot be resolved (internal; surfaced as a FieldProblem)."""


def split_reference(ref: str) -> list[str]:
    """``metadata.annotations.a\\.b`` → ``["metadata", "annotations", "a.b"]``."""
    return [part.replace(_ESCAPED_DOT, ".") for part in ref.replace("\\.", _ESCAPED_DOT).split(".")]


def references_in(text: str) -> Iterator[str]:
    """The reference inside every ``${...}`` of ``text`` that is not escaped."""
    for match in _TOKEN_RE.finditer(text):
        token = match.group(0)
        if not token.startswith("$$"):
            yield token[2:-1]


def escape(text: str) -> str:
    """The Score text that expands to exactly ``text``.

    ``$`` becomes ``$$``, except that ``${...}`` becomes ``$${...}``: an escaped placeholder keeps its
    inside verbatim, as in score-go.
    """
    out: list[str] = []
    i = 0
    while i < len(text):
        end = text.find("}", i + 2) if text.startswith("${", i) else -1
        if end >= 0:
            out.append("$" + text[i : end + 1])
            i = end + 1
        else:
            out.append("$$" if text[i] == "$" else text[i])
            i += 1
    return "".join(out)


def expand(text: str, resolve: Callable[[str], str], problems: list[str]) -> str:
    """Expand ``text``; each placeholder ``resolve`` rejects adds one message to ``problems``."""

    def replacement(match: re.Match[str]) -> str:
        token = match.group(0)
        if token.startswith("$$"):
            return token[1:]
        try:
            return resolve(token[2:-1])
        except PlaceholderError as exc:
            problems.append(f"unknown placeholder {token}: {exc}")
            return token

    return _TOKEN_RE.sub(replacement, text)


def _as_text(value: object) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False, default=_plain)


def _plain(value: object) -> object:
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(type(value).__name__)


def _walk(value: object, keys: list[str], where: str) -> object:
    for key in keys:
        if not isinstance(value, Mapping):
            raise PlaceholderError(f"{where} is not a mapping, so it has no key {key!r}")
        if key not in value:
            raise PlaceholderError(f"{where} has no key {key!r}")
        value = value[key]
        where = f"{where}.{key}"
    return value


class Resolver:
    """Resolves references against a workload's metadata, its declared resources and (optionally) outputs.

    Without ``outputs`` (at parse time) a resource reference is only checked to name a declared resource.
    """

    def __init__(
        self,
        metadata: Mapping[str, object] | None,
        resource_names: set[str],
        outputs: Mapping[str, Mapping[str, object]] | None = None,
    ) -> None:
        self.metadata = metadata
        self.resource_names = resource_names
        self.outputs = outputs

    def __call__(self, ref: str) -> str:
        parts = split_reference(ref)
        root, keys = parts[0], parts[1:]
        if root == "metadata":
            if not keys:
                raise PlaceholderError("name a metadata key, e.g. ${metadata.name}")
            if self.metadata is None:
                return ""
            return _as_text(_walk(self.metadata, keys, "metadata"))
        if root == "resources":
            if not keys:
                raise PlaceholderError("name a resource and an output, e.g. ${resources.db.host}")
            name, output_keys = keys[0], keys[1:]
            if name not in self.resource_names:
                raise PlaceholderError(f"resource {name!r} is not declared in resources")
            if self.outputs is None:
                return ""
            if not output_keys:
                raise PlaceholderError(
                    f"name an output of resource {name!r}, e.g. ${{resources.{name}.host}}"
                )
            if name not in self.outputs:
                raise PlaceholderError(f"resource {name!r} has no outputs yet")
            return _as_text(_walk(self.outputs[name], output_keys, f"resource {name!r}"))
        if _ENV_NAME_RE.fullmatch(ref):
            raise PlaceholderError(_env_hint(ref))
        raise PlaceholderError(
            "placeholders start with 'metadata.' or 'resources.'; write $${ for a literal ${"
        )


_ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _env_hint(name: str) -> str:
    """``${PORT}`` is an environment variable, read when the app runs: only a shell expands it there."""
    return (
        f"Score expands only metadata and resources; {name} is an environment variable of the running app "
        f"(the app's port is in PORT). Read it in the app, or run the command through a shell and write "
        f'${name} without braces, which Score leaves as it is: ["sh", "-c", "exec python3 app.py '
        f'--port ${name}"]. $${{{name}}} gives the literal text ${{{name}}}, which only a shell expands'
    )


def check(text: str, path: str, resolver: Resolver, problems: list[FieldProblem]) -> None:
    """Add a problem at ``path`` for every placeholder in ``text`` that can never resolve."""
    messages: list[str] = []
    expand(text, resolver, messages)
    problems.extend(FieldProblem(path, m) for m in messages)


def strings_in(value: object, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from strings_in(item, at(path, str(key)))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from strings_in(item, at(path, index))


def expandable_strings(workload: Workload) -> Iterator[tuple[str, str]]:
    """(path, text) of every string of ``workload`` in which placeholders are meaningful."""
    for name, container in workload.containers.items():
        base = at("containers", name)
        for var, value in container.variables.items():
            yield at(at(base, "variables"), var), value
        for field_name, items in (("command", container.command), ("args", container.args)):
            for index, item in enumerate(items or ()):
                yield at(at(base, field_name), index), item
        for target, file in container.files.items():
            if file.content is not None and not file.no_expand:
                yield at(at(at(base, "files"), target), "content"), file.content
        for target, volume in container.volumes.items():
            yield at(at(at(base, "volumes"), target), "source"), volume.source
    for name, resource in workload.resources.items():
        yield from strings_in(resource.params, at(at("resources", name), "params"))


def referenced_resources(workload: Workload) -> set[str]:
    """Names of the resources that the workload's placeholders refer to."""
    names: set[str] = set()
    for _, text in expandable_strings(workload):
        for ref in references_in(text):
            parts = split_reference(ref)
            if parts[0] == "resources" and len(parts) > 1:
                names.add(parts[1])
    return names


def substitute(workload: Workload, resource_outputs: Mapping[str, Mapping[str, object]]) -> Workload:
    """A copy of ``workload`` with placeholders expanded in variables, command, args and file content.

    ``resource_outputs`` maps a resource name to its outputs (nested mappings are walked by the
    remaining keys). Every placeholder that cannot be resolved is reported, with its field path.
    """
    resolver = Resolver(workload.metadata.to_dict(), set(workload.resources), resource_outputs)
    problems: list[FieldProblem] = []

    def run(text: str, path: str) -> str:
        messages: list[str] = []
        result = expand(text, resolver, messages)
        problems.extend(FieldProblem(path, m) for m in messages)
        return result

    containers: dict[str, Container] = {}
    for name, c in workload.containers.items():
        base = at("containers", name)
        files = {
            target: f
            if f.content is None or f.no_expand
            else replace(f, content=run(f.content, at(at(at(base, "files"), target), "content")))
            for target, f in c.files.items()
        }
        containers[name] = replace(
            c,
            variables=FrozenMap((k, run(v, at(at(base, "variables"), k))) for k, v in c.variables.items()),
            command=_run_all(run, c.command, at(base, "command")),
            args=_run_all(run, c.args, at(base, "args")),
            files=FrozenMap[str, File](files),
        )
    if problems:
        raise UserError("Score placeholders could not be resolved", problems=problems)
    return replace(workload, containers=FrozenMap(containers))


def _run_all(
    run: Callable[[str, str], str], items: tuple[str, ...] | None, path: str
) -> tuple[str, ...] | None:
    return None if items is None else tuple(run(item, at(path, i)) for i, item in enumerate(items))


def resource_references(workload: Workload) -> Iterator[tuple[str, str, list[str]]]:
    """(field path, resource name, output keys) of every ``${resources.NAME...}`` placeholder."""
    for path, text in expandable_strings(workload):
        for ref in references_in(text):
            parts = split_reference(ref)
            if parts[0] == "resources" and len(parts) > 1:
                yield path, parts[1], parts[2:]
