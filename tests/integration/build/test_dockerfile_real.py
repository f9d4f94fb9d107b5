"""Dockerfile sources built with Debian's buildah on the real python stack."""

from __future__ import annotations

from pathlib import Path

import pytest

from yunzhou.build.builder import BuildFailed

from .conftest import Builder

pytestmark = pytest.mark.slow

DOCKERFILE = """FROM stacks/python:3.11
COPY app.py /app/app.py
USER root
RUN python3 -c "print('made by RUN')" > /app/made.txt
USER 10001:10001
CMD ["python3", "/app/app.py"]
"""


def test_a_dockerfile_on_a_stack_builds_reproducibly_sharing_the_stacks_layers(
    builder: Builder, tmp_path: Path
) -> None:
    (tmp_path / "Dockerfile").write_text(DOCKERFILE)
    (tmp_path / "app.py").write_text("print('hi')\n")
    first = builder.build(tmp_path)
    assert first.stack == "dockerfile"
    assert first.stack_version == "python:3.11"
    stack = builder.store.image(first.stack_digest)
    image = builder.store.image(first.digest)
    assert image.layers[: len(stack.layers)] == stack.layers
    assert len(image.layers) == len(stack.layers) + 1
    config = builder.store.config(first.digest)["config"]
    assert config["Cmd"] == ["python3", "/app/app.py"]
    assert config["User"] == "10001:10001"
    assert builder.build(tmp_path).digest == first.digest


def test_an_external_base_image_is_refused_before_buildah_runs(builder: Builder, tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM python:3.11-slim\nCOPY . /app\n")
    with pytest.raises(BuildFailed, match=r"Dockerfile line 1: FROM python:3.11-slim is not available"):
        builder.build(tmp_path)
    assert not any("STEP" in line for line in builder.lines)


def test_a_failing_run_step_fails_with_its_own_output(builder: Builder, tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM stacks/python:3.11\nRUN python3 -c 'import nothing_here'\n")
    with pytest.raises(BuildFailed) as caught:
        builder.build(tmp_path)
    assert "ModuleNotFoundError: No module named 'nothing_here'" in caught.value.message
