"""Every ``yunzhou`` command line in the docs and the README parses as the CLI defines it.

Each shell block (```sh, ```console, ```bash) of ``docs/*.md`` and ``README.md`` is read line by line,
and every line of a ```text block that starts with ``yunzhou`` or ``$ yunzhou``;
every ``yunzhou ...`` invocation in it (also after ``$``, in ``$(...)``, after ``|``, ``&&`` or ``;``)
goes through the real Typer/Click command tree: the command path must exist, every option must be one
the command takes, every value must convert (choices, numbers), required arguments must be there.
Nothing is executed. Synopsis lines (``shop[/dev[/web]]``, ``list|set|delete``) are read with their
optional parts dropped and the first of each set of alternatives.

Semantic checks that need no server ride along: a ``--target`` must be ``local`` or ``cluster:NAME``,
as the API requires.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest
import typer

# Typer (0.29+) carries its own copy of Click; the command tree is made of its classes.
from typer._click import ClickException, Command, Context

from yunzhou.cli.app import app

ROOT = Path(__file__).resolve().parents[3]
PAGES = [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]
SHELL_LANGS = {"sh", "console", "bash", "shell"}
FENCE = re.compile(r"^\s*```(\w*)")
OPTIONAL = re.compile(r"\[[^\[\]]*\]")
ALTERNATIVES = re.compile(r"\b([\w-]+)(?:\|[\w-]+)+\b")
INVOCATION = re.compile(r"(^|\$ |\$\(|\| |&& |; )\s*(\w+=\S+\s+)*yunzhou\s")


@dataclass(frozen=True)
class Example:
    where: str
    line: str

    def __str__(self) -> str:
        return self.where


def _shell_lines(page: Path) -> list[tuple[int, str]]:
    lines: list[tuple[int, str]] = []
    lang: str | None = None
    for number, line in enumerate(page.read_text().splitlines(), 1):
        fence = FENCE.match(line)
        if fence:
            lang = (fence.group(1) or "text") if lang is None else None
            continue
        if lang in SHELL_LANGS or (lang == "text" and line.lstrip().startswith(("yunzhou ", "$ yunzhou "))):
            if lines and lines[-1][1].rstrip().endswith("\\"):  # a command continued on this line
                lines[-1] = (lines[-1][0], lines[-1][1].rstrip()[:-1] + " " + line.strip())
            else:
                lines.append((number, line))
    return lines


def _examples() -> list[Example]:
    found = []
    for page in PAGES:
        for number, line in _shell_lines(page):
            text = line.strip().removeprefix("$ ")
            if INVOCATION.search(line.strip()) or text.startswith("yunzhou "):
                found.append(Example(f"{page.relative_to(ROOT)}:{number}", text))
    return found


def _synopsis_to_example(line: str) -> str:
    while OPTIONAL.search(line):
        line = OPTIONAL.sub("", line)
    return ALTERNATIVES.sub(lambda m: m.group(1), line)


def _invocations(line: str) -> list[list[str]]:
    """The argument lists given to ``yunzhou`` on one shell line."""
    lexer = shlex.shlex(line.replace("$(", " ( "), posix=True, punctuation_chars="|&;()<>")
    lexer.whitespace_split = True
    lexer.commenters = "#"
    tokens = list(lexer)
    calls: list[list[str]] = []
    current: list[str] | None = None
    at_command_start = True
    for token in tokens:
        if token in {"|", "||", "&&", "&", ";", "(", ")"}:  # "&": a command run in the background
            current, at_command_start = None, True
            continue
        if token in {">", ">>", "<"}:
            current, at_command_start = None, False  # the redirect's target is not an argument
            continue
        if current is not None:
            current.append(token)
        elif at_command_start and token == "yunzhou":
            current = []
            calls.append(current)
            at_command_start = False
        elif at_command_start and re.fullmatch(r"\w+=.*", token):
            continue  # VAR=value before the command
        elif at_command_start and token in {"export", "time"}:
            continue
        else:
            at_command_start = False
    return calls


def _check(root: Command, args: list[str]) -> Context:
    """Parse ``args`` down the command tree as Click would, without invoking anything."""
    ctx = root.make_context("yunzhou", list(args), resilient_parsing=False)
    command = root
    while hasattr(command, "resolve_command"):
        rest = [*ctx._protected_args, *ctx.args]
        if not rest:
            raise ClickException(f"{ctx.command_path} needs a subcommand")
        name, sub, sub_args = command.resolve_command(ctx, rest)
        assert sub is not None
        assert name is not None
        ctx = sub.make_context(name, sub_args, parent=ctx)
        command = sub
    return ctx


ROOT_COMMAND = typer.main.get_command(app)
EXAMPLES = _examples()


def test_the_docs_have_many_command_examples() -> None:
    assert len(EXAMPLES) > 100
    assert {e.where.split(":")[0] for e in EXAMPLES} >= {"README.md", "docs/cli.md", "docs/logs.md"}


FILE_ARGUMENT = re.compile(r"^[\w./-]+\.(ya?ml|json|txt|toml|war|jar|tar\.gz|tgz)$")


@pytest.mark.parametrize("example", EXAMPLES, ids=str)
def test_command_example_parses(example: Example, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    line = _synopsis_to_example(example.line)
    calls = _invocations(line)
    assert calls, f"{example.where}: no yunzhou invocation found in {example.line!r}"
    # The files an example names exist where it runs (the reader has them; their content is not checked).
    monkeypatch.chdir(tmp_path)
    for name in (arg for args in calls for arg in args if FILE_ARGUMENT.match(arg)):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).touch()
    for args in calls:
        try:
            ctx = _check(ROOT_COMMAND, args)
        except ClickException as exc:
            pytest.fail(f"{example.where}: `yunzhou {shlex.join(args)}`: {exc.format_message()}")
        target = ctx.params.get("target")
        if ctx.command_path.endswith("env create") and target is not None:
            assert target == "local" or re.fullmatch(r"cluster:[a-z0-9-]+", target), (
                f"{example.where}: --target {target!r} is not local or cluster:NAME"
            )


def test_a_wrong_example_is_caught() -> None:
    """The checker itself: an unknown option, a bad choice and a bad target each fail."""
    with pytest.raises(ClickException, match="No such option"):
        _check(ROOT_COMMAND, ["apps", "shop/dev", "--colour"])
    with pytest.raises(ClickException, match="not one of"):
        _check(ROOT_COMMAND, ["apps", "shop/dev", "-o", "xml"])
    with pytest.raises(ClickException, match="No such command"):
        _check(ROOT_COMMAND, ["project", "rename", "shop"])
    assert _invocations("export T=$(yunzhou token create --name a --scope read) && yunzhou apps x > f") == [
        ["token", "create", "--name", "a", "--scope", "read"],
        ["apps", "x"],
    ]
