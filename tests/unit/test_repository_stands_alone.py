"""The repository stands alone: a clone with no sibling folders must build, test and benchmark.

Scans every tracked text file that runs (code, build files, CI) for a path that climbs out of the
repository to a sibling folder, e.g. the team's shared folder of data next to the clone, which the tests
once read.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RUNNABLE = re.compile(r"(\.(py|sh|toml|cfg|ini|mk|mjs|js|json|yaml|yml)|Makefile|/run)$")
# "../<name>" or parents[...] / ".." / "<name>" reaching above the repository root.
# The sibling's name is spelt in two pieces so that this file does not match itself.
SIBLING = "sha" + "red"
CLIMB_OUT = re.compile(rf"""\.\./{SIBLING}|["']\.\.["']\s*/\s*["']{SIBLING}["']|/work/{SIBLING}""")


def _tracked_files() -> list[Path]:
    out = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    ).stdout
    return [ROOT / name for name in out.decode().split("\0") if name and RUNNABLE.search(name)]


def test_nothing_that_runs_reads_outside_the_repository() -> None:
    offenders = []
    for path in _tracked_files():
        if not path.is_file():
            continue
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if CLIMB_OUT.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert offenders == []


def test_vendored_test_and_bench_data_are_present() -> None:
    for name in (
        "score-v1b1.json",
        "score-full.yaml",
        "score-deprecated-files-and-volumes.yaml",
        "README.md",
    ):
        assert (ROOT / "tests" / "data" / "score" / name).is_file(), name
    for name in ("nasa-http-1995-per-second.tbz2", "twitter-stream-2021-08-per-second.tbz2", "README.md"):
        assert (ROOT / "bench" / "data" / "traces" / name).is_file(), name
