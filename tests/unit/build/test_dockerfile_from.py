"""Dockerfile FROM lines: only our stacks, scratch or an earlier stage (no external registry is reachable)."""

from __future__ import annotations

from yunzhou.build.dockerfile import check_from_lines, parse_from_lines

SUPPORTED = ("python", "node", "java", "tomcat", "static")


def test_stacks_scratch_and_earlier_stages_are_buildable() -> None:
    text = "FROM stacks/python:3.11 AS deps\nRUN true\nFROM --platform=linux/amd64 \\\n  deps\nFROM scratch\n"
    lines = parse_from_lines(text)
    assert [(f.image, f.stage, f.stack, f.version) for f in lines] == [
        ("stacks/python:3.11", "deps", "python", "3.11"),
        ("deps", "", None, None),
        ("scratch", "", None, None),
    ]
    assert check_from_lines(lines, SUPPORTED) == []
    assert check_from_lines(parse_from_lines("from stacks/node\n"), SUPPORTED) == []


def test_an_external_image_is_refused_naming_the_line_and_what_is_allowed() -> None:
    problems = check_from_lines(parse_from_lines("# app\nFROM python:3.11-slim\n"), SUPPORTED)
    assert len(problems) == 1
    assert problems[0].startswith("Dockerfile line 2: FROM python:3.11-slim is not available")
    assert "stacks/NAME[:VERSION] (python, node, java, tomcat, static)" in problems[0]
    assert "scratch" in problems[0]


def test_unknown_stacks_arguments_and_missing_from_are_refused() -> None:
    assert check_from_lines(parse_from_lines("FROM stacks/ruby:3\n"), SUPPORTED)
    assert check_from_lines(parse_from_lines("ARG B=stacks/python\nFROM ${B}\n"), SUPPORTED)
    assert "no FROM line" in check_from_lines(parse_from_lines("RUN true\n"), SUPPORTED)[0]
