"""Every example in docs/score.md does what the page says it does.

- a ```yaml block loads, unless it follows ``<!-- invalid -->``: then the next ```text block is the error;
- after ``<!-- outputs: JSON -->``, the next ```text block lists the first container's variables once
  expanded with those outputs.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from yunzhou.domain.errors import UserError
from yunzhou.domain.score import load_score, substitute

DOC = (Path(__file__).resolve().parents[3] / "docs" / "score.md").read_text()
BLOCK_RE = re.compile(r"(?:<!-- (?P<marker>[^\n]*?) -->\n)?```(?P<lang>\w+)\n(?P<body>.*?)```", re.DOTALL)
BLOCKS = [(m["marker"] or "", m["lang"], m["body"]) for m in BLOCK_RE.finditer(DOC)]
EXAMPLES = [(i, marker, body) for i, (marker, lang, body) in enumerate(BLOCKS) if lang == "yaml"]


def _text_after(index: int) -> str:
    _, lang, body = BLOCKS[index + 1]
    assert lang == "text", "a marked example must be followed by a ```text block"
    return body.rstrip("\n")


def test_the_page_has_examples_of_each_kind() -> None:
    markers = [marker.split(":")[0] for _, marker, _ in EXAMPLES]
    assert markers.count("") >= 3
    assert "invalid" in markers
    assert "outputs" in markers


@pytest.mark.parametrize(("index", "marker", "body"), EXAMPLES)
def test_example(index: int, marker: str, body: str) -> None:
    if marker == "invalid":
        with pytest.raises(UserError) as caught:
            load_score(body)
        assert str(caught.value) == _text_after(index)
        return
    workload = load_score(body)
    assert load_score(json.dumps(workload.to_dict())) == workload
    if marker.startswith("outputs:"):
        outputs = json.loads(marker.removeprefix("outputs:"))
        container = next(iter(substitute(workload, outputs).containers.values()))
        assert "\n".join(f"{k}={v}" for k, v in container.variables.items()) == _text_after(index)


def test_the_two_forms_of_files_and_volumes_describe_the_same_workload() -> None:
    list_form, map_form = (body for _, marker, body in EXAMPLES if "name: list-form" in body)
    assert load_score(list_form) == load_score(map_form)
