"""Build every stack into the shared cache before the suite runs (``make stacks``, called by ``.ci/run``).

Tests and ``yunzhou server`` build a missing stack on first use, but a cold node or tomcat stack takes
minutes on a busy 2-core machine: inside a test that is a timeout, and which test pays depends on the
order. Building them first, like the Kubernetes binaries (``make k8s-build``), makes every later build
warm and keeps the suite's timing independent of the cache. Already-built stacks cost a cache lookup.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from yunzhou.build.oci import ImageStore
from yunzhou.build.stacks import STACKS, StackCatalog, default_cache_dir


class _Reporter:
    """Prints a stack's progress once per step (mmdebstrap's steps, compressing, …)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.step = ""

    def __call__(self, step: str, fraction: float) -> None:
        if step != self.step:
            self.step = step
            print(f"  {self.name}: {fraction:4.0%} {step}", flush=True)


def build_all() -> int:
    cache = default_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    # the catalog publishes into a store; a scratch one beside the cache (hard links, same file system)
    with tempfile.TemporaryDirectory(dir=cache, prefix="prebuild-") as scratch:
        catalog = StackCatalog(cache, ImageStore(Path(scratch)))
        for name in sorted(STACKS):
            started = time.monotonic()
            ref = catalog.build(name, progress=_Reporter(name))
            print(f"{name}: {ref.digest} ({time.monotonic() - started:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    if sys.argv[1:] not in ([], ["build"]):
        sys.exit("usage: python -m yunzhou.testing.stacks [build]")
    sys.exit(build_all())
