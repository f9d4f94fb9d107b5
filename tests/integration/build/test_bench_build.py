"""bench/build.py runs end to end with tiny counts and prints its one JSON document (shape and positive
numbers only: how fast is the benchmark's business, not the test's)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[3]
pytestmark = pytest.mark.slow


def positive_stats(doc: dict[str, Any], runs: int) -> None:
    assert len(doc["runs"]) == runs
    assert all(isinstance(x, float | int) and x > 0 for x in doc["runs"])
    for key in ("p50", "p90", "max"):
        assert doc[key] > 0, key


@pytest.mark.timeout(2400)
def test_bench_build_prints_one_json_document_with_every_part() -> None:
    done = subprocess.run(
        [sys.executable, "bench/build.py", "--build-runs", "1", "--starts", "2", "--wakes", "1"],
        cwd=ROOT, capture_output=True, text=True, timeout=2300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    check_document(json.loads(done.stdout), builds=1, starts=2, wakes=1)


def check_document(result: dict[str, Any], *, builds: int, starts: int, wakes: int) -> None:
    assert result["benchmark"] == "build"
    for key in ("load_average_start", "load_average_end"):
        assert len(result[key]) == 3
        assert all(x >= 0 for x in result[key])
    build = result["build"]
    for key in ("ours_cold", "ours_warm", "buildah_cold", "buildah_warm"):
        positive_stats(build["seconds"][key], builds)
    assert build["stack"]["digest"].startswith("sha256:")
    assert build["warm_reused_dependency_layer"]["ours"] is True  # the must-show property, not a speed
    assert isinstance(build["warm_reused_dependency_layer"]["buildah"], bool)
    for builder in ("yunzhou", "buildah"):
        sizes = build["image"][builder]
        assert sizes["size_bytes"] > sizes["added_bytes"] > 0

    start = result["start"]
    positive_stats(start["host_process_ms"], starts)
    positive_stats(start["container_ms"], starts)
    assert isinstance(start["overhead_p50_ms"], float | int)

    wake = result["wake"]
    positive_stats(wake["container_s"], wakes)
    positive_stats(wake["host_process_s"], wakes)
    assert wake["image"].startswith("bench/built@sha256:")
    assert wake["ran"]["container"] == {"release_image": wake["image"], "ports": [8080]}
    assert "@sha256:" not in str(wake["ran"]["host_process"]["release_image"])  # no image: a process
    assert wake["ran"]["host_process"]["ports"] != [8080]
    for kind in ("container", "host_process"):  # the wake decision split the cold start in two
        stages = wake["stages_p50_s"][kind]
        assert 0 <= stages["to_decision"] < wake[f"{kind}_s"]["p50"], stages
        assert stages["decision_to_answer"] > 0, stages

    assert set(result["targets"]) == {"warm_rebuild_s", "container_start_overhead_ms", "cold_start_p50_s"}
    assert set(result["met"]) == set(result["targets"])
    assert all(isinstance(v, bool) for v in result["met"].values())
