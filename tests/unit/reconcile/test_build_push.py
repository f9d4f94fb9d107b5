"""The build worker's push (reconcile/build_image.py): a registry that is briefly not writable —
restarting, or read-only while garbage is collected (405 UNSUPPORTED, a TemporaryError) — is retried,
not a failed build."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pytest

from yunzhou.build.oci import ImageStore
from yunzhou.domain.errors import TemporaryError
from yunzhou.reconcile.build_image import PUSH_ATTEMPTS, registry_pusher
from yunzhou.reconcile.builds import BuiltImage
from yunzhou.registry.client import RegistryClient

DIGEST = "sha256:" + "a" * 64


@dataclass
class Pushed:
    uploaded: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


class FlakyRegistry:
    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.pushes = 0

    def __enter__(self) -> FlakyRegistry:
        return self

    def __exit__(self, *_: object) -> None:
        return None

    def push(self, store: Any, repo: str, digest: str) -> Pushed:
        self.pushes += 1
        if self.pushes <= self.failures:
            raise TemporaryError("registry is read-only for maintenance (405 UNSUPPORTED)", retry_after=5.0)
        return Pushed(uploaded=["x"])


def client_of(registry: FlakyRegistry) -> Callable[[], RegistryClient]:
    return lambda: cast(RegistryClient, registry)


def test_a_read_only_registry_is_retried_until_it_takes_the_push(tmp_path: Path) -> None:
    registry, slept, lines = FlakyRegistry(failures=2), list[float](), list[str]()
    push = registry_pusher(ImageStore(tmp_path), client_of(registry), sleep=slept.append)
    push("shop", "web", BuiltImage(digest=DIGEST, stack="python"), lines.append)
    assert (registry.pushes, slept) == (3, [5.0, 5.0])
    assert any("retrying" in line for line in lines)


def test_a_registry_that_stays_unwritable_fails_the_push(tmp_path: Path) -> None:
    registry = FlakyRegistry(failures=99)
    push = registry_pusher(ImageStore(tmp_path), client_of(registry), sleep=lambda _: None)
    with pytest.raises(TemporaryError):
        push("shop", "web", BuiltImage(digest=DIGEST, stack="python"), lambda _: None)
    assert registry.pushes == PUSH_ATTEMPTS
