"""What the local target cannot run is said at deploy time (issue 14, first hour 6); commands on PATH and
absolute paths need no source, so valid deploys are not flagged."""

from __future__ import annotations

from typing import Any

import pytest

from yunzhou.domain.local_target import (
    NO_IMAGE,
    local_image,
    local_run_warnings,
    missing_image,
    source_file,
)
from yunzhou.domain.score import parse_score


@pytest.mark.parametrize(
    ("argv", "script"),
    [
        (["python3", "app.py"], "app.py"),
        (["python", "-u", "src/server.py", "--port", "8080"], "src/server.py"),
        (["/usr/bin/node", "index.js"], "index.js"),
        (["java", "-jar", "app.jar"], "app.jar"),
        (["./run.sh"], "./run.sh"),
        (["bin/serve"], "bin/serve"),
        (["python3", "-m", "http.server"], None),
        (["python3", "-c", "print(1)"], None),
        (["sh", "-c", "exec python3 app.py --port $PORT"], None),
        (["python3", "/opt/app/app.py"], None),
        (
            ["python3", "-W", "ignore", "app.py"],
            None,
        ),  # an option's value first: not flagged rather than guessed
        (["gunicorn", "app:app"], None),
        (["/usr/bin/env"], None),
        ([], None),
    ],
)
def test_source_file(argv: list[str], script: str | None) -> None:
    assert source_file(argv) == script


def workload(containers: dict[str, Any]) -> Any:
    return parse_score(
        {"apiVersion": "score.dev/v1b1", "metadata": {"name": "orders"}, "containers": containers}
    )


def test_what_will_not_start_names_the_field_and_the_fix() -> None:
    [no_command] = local_run_warnings(
        workload({"web": {"image": "python:3.11"}}), has_source=True, project="shop"
    )
    assert no_command.path == "containers.web.command"
    assert "runs processes, not images" in no_command.message
    [two] = local_run_warnings(
        workload({"web": {"image": "x"}, "sidecar": {"image": "y"}}), has_source=True, project="shop"
    )
    assert two.path == "containers"
    assert "deploy each as its own app" in two.message
    [no_source] = local_run_warnings(
        workload({"web": {"image": "x", "command": ["python3", "app.py"]}}), False, project="shop"
    )
    assert no_source.path == "containers.web.command"
    assert "deploy with --source DIR (the folder holding app.py)" in no_source.message


def test_what_will_start_is_not_flagged() -> None:
    with_source = workload({"web": {"image": "x", "command": ["python3", "app.py"]}})
    assert local_run_warnings(with_source, has_source=True, project="shop") == []
    on_path = workload({"web": {"image": "x", "command": ["python3", "-m", "http.server"]}})
    assert local_run_warnings(on_path, has_source=False, project="shop") == []


PINNED = "shop/orders@sha256:" + "b" * 64


def test_a_release_with_an_image_runs_it_and_needs_no_command_or_source() -> None:
    built = workload({"web": {"image": "."}})
    assert local_run_warnings(built, has_source=False, project="shop", image=PINNED) == []
    assert missing_image(built, PINNED, "shop", containers=True) == []
    pinned = workload({"web": {"image": PINNED}})
    assert local_image({"web": PINNED}, None, "shop") == PINNED
    assert local_run_warnings(pinned, has_source=False, project="shop") == []
    assert missing_image(pinned, None, "shop", containers=True) == []


def test_another_projects_pinned_image_is_never_run_locally() -> None:
    # the server pulls with full access: naming bank's image must not run bank's code in shop
    foreign = "bank/ledger@sha256:" + "c" * 64
    assert local_image({"web": foreign}, None, "shop") is None
    assert local_image({"web": foreign}, None, "bank") == foreign
    [problem] = missing_image(
        workload({"web": {"image": foreign, "command": ["x"]}}), None, "shop", containers=True
    )
    assert problem.path == "containers.web.image"
    assert f"{foreign!r} is not an image of project 'shop'" in problem.message


def test_a_release_without_an_image_runs_as_a_host_process_only_on_a_development_server() -> None:
    plain = workload({"web": {"image": "python:3.11", "command": ["python3", "-m", "http.server"]}})
    assert local_image({"web": "python:3.11"}, None, "shop") is None
    [warning] = missing_image(plain, None, "shop", containers=False)  # YUNZHOU_INSTANCE_MODE=process
    assert warning.path == "containers.web.image"
    assert warning.message == NO_IMAGE
    [refusal] = missing_image(plain, None, "shop", containers=True)  # the server's default
    assert refusal.path == "containers.web.image"
    for fix in ("--source DIR", "shop/APP:TAG", "YUNZHOU_INSTANCE_MODE=process"):
        assert fix in refusal.message
    [built] = missing_image(workload({"web": {"image": "."}}), None, "shop", containers=True)
    assert "none was built or named" in built.message
