"""Stack detection: table-driven over file listings (no files are written)."""

from __future__ import annotations

from pathlib import Path

import pytest

from yunzhou.build.detect import SUPPORTED_STACKS, Detected, detect, detect_source, list_source
from yunzhou.domain.errors import UserError

DETECTED = [
    (["Dockerfile", "requirements.txt", "app.py"], "dockerfile", "Dockerfile"),
    (["requirements.txt", "app.py"], "python", ""),
    (["pyproject.toml", "src/app/__init__.py"], "python", ""),
    (["setup.py"], "python", ""),
    (["Pipfile", "Pipfile.lock"], "python", ""),
    (["requirements.txt", "public/index.html"], "python", ""),
    (["package.json", "package-lock.json", "server.js"], "node", ""),
    (["package.json", "public/index.html", "index.html"], "node", ""),
    (["app.jar"], "java", "app.jar"),
    (["shop.war", "README.md"], "tomcat", "shop.war"),
    (["index.html", "style.css"], "static", ""),
    (["dist/index.html", "public/index.html"], "static", "dist"),
    (["public/index.html"], "static", "public"),
    (["_site/index.html"], "static", "_site"),
    # a new user's app.py alone: python with nothing to install (before static: an app may serve a page)
    (["app.py"], "python", ""),
    (["app.py", "public/index.html"], "python", ""),
    (["index.html", "tools/build.py"], "static", ""),
]


@pytest.mark.parametrize(("files", "stack", "artifact"), DETECTED)
def test_detects_the_stack_from_file_names(files: list[str], stack: str, artifact: str) -> None:
    found = detect(files)
    assert (found.stack, found.artifact) == (stack, artifact)
    assert found.reason


EXPLICIT = [
    # --stack wins over the annotation, and both win over detection.
    ({"stack": "node", "annotations": {"yunzhou.io/stack": "python"}}, ["requirements.txt"], "node", ""),
    ({"annotations": {"yunzhou.io/stack": "python"}}, ["package.json", "requirements.txt"], "python", ""),
    ({"stack": "python"}, ["Dockerfile", "requirements.txt"], "python", ""),
    ({"stack": "STATIC"}, ["package.json", "build/index.html"], "static", "build"),
    ({"stack": "static"}, ["about.html"], "static", ""),
    ({"stack": "java"}, ["app.jar", "package.json"], "java", "app.jar"),
    ({"stack": "tomcat"}, ["ROOT.war", "app.jar"], "tomcat", "ROOT.war"),
    ({"stack": "dockerfile"}, ["Dockerfile"], "dockerfile", "Dockerfile"),
    ({"stack": ""}, ["app.jar"], "java", "app.jar"),
]


@pytest.mark.parametrize(("choice", "files", "stack", "artifact"), EXPLICIT)
def test_an_explicit_choice_wins(choice: dict, files: list[str], stack: str, artifact: str) -> None:
    found = detect(files, **choice)
    assert (found.stack, found.artifact) == (stack, artifact)


REFUSED = [
    ({}, ["README.md", "notes/index.html"], "unknown_stack", "stack"),
    ({}, [], "unknown_stack", "stack"),
    ({}, ["requirements.txt", "package.json"], "ambiguous_stack", "stack"),
    ({}, ["app.jar", "app.war"], "ambiguous_stack", "stack"),
    ({}, ["a.jar", "b.jar"], "invalid", "stack"),
    ({"stack": "ruby"}, ["Gemfile"], "unknown_stack", "stack"),
    (
        {"annotations": {"yunzhou.io/stack": "php"}},
        ["index.php"],
        "unknown_stack",
        'metadata.annotations["yunzhou.io/stack"]',
    ),
    ({"stack": "java"}, ["requirements.txt"], "invalid", "stack"),
    ({"stack": "dockerfile"}, ["requirements.txt"], "invalid", "stack"),
]


@pytest.mark.parametrize(("choice", "files", "code", "path"), REFUSED)
def test_unknown_or_ambiguous_sources_name_the_stacks_and_how_to_choose(
    choice: dict, files: list[str], code: str, path: str
) -> None:
    with pytest.raises(UserError) as caught:
        detect(files, **choice)
    error = caught.value
    assert error.code == code
    assert error.problems[0].path == path
    if code != "invalid":
        assert all(name in error.message for name in SUPPORTED_STACKS), error.message
    if code == "unknown_stack" and "stack" not in choice and "annotations" not in choice:
        assert "--stack" in error.message
        assert "yunzhou.io/stack" in error.message


def test_listing_skips_dependency_folders_and_stays_shallow(tmp_path: Path) -> None:
    for name in (
        "package.json",
        "public/index.html",
        "node_modules/x/package.json",
        ".git/HEAD",
        "a/b/c/deep.txt",
    ):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    assert list_source(tmp_path) == ["package.json", "public/index.html"]
    assert detect_source(tmp_path) == Detected("node", "package.json at the top of the source")
