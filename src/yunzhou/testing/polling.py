"""Waiting for a condition in tests: poll it until it holds or a deadline passes (never a bare sleep)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def wait_until(what: str, check: Callable[[], Any], timeout: float = 30.0, interval: float = 0.1) -> Any:
    """Return ``check()``'s first truthy result; fail naming ``what`` and the last result at the deadline."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)  # polling interval, bounded by the deadline
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")
