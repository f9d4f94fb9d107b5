"""Every test gets a started supervisor with millisecond backoffs; teardown closes it even on failure and
proves that no process it ever reported is still alive."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.runtimes.local.harness import Harness, LogCollector
from yunzhou.runtimes.local import LocalSupervisor


@pytest.fixture
def logs() -> LogCollector:
    return LogCollector()


@pytest.fixture
def harness(tmp_path: Path, logs: LogCollector) -> Iterator[Harness]:
    supervisor = LocalSupervisor(
        tmp_path / "state", log_sink=logs, backoff_base=0.05, backoff_cap=0.4, backoff_reset=30.0
    )
    supervisor.start()
    h = Harness(supervisor)
    try:
        yield h
    finally:
        supervisor.close()
        assert h.survivors() == [], "instance processes outlived the supervisor"
