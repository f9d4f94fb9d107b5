"""YUNZHOU_INSTANCE_MODE and pinned image references of the local runtime's containers."""

from __future__ import annotations

import pytest

from yunzhou.domain.errors import PermanentError
from yunzhou.runtimes.local.containers import MODE_VARIABLE, image_digest, instance_mode

DIGEST = "sha256:" + "c" * 64


def test_containers_are_the_default_and_process_mode_is_an_explicit_opt_in() -> None:
    assert instance_mode({}) == "container"
    assert instance_mode({MODE_VARIABLE: ""}) == "container"
    assert instance_mode({MODE_VARIABLE: " Process "}) == "process"
    with pytest.raises(ValueError, match="YUNZHOU_INSTANCE_MODE='vm': use container"):
        instance_mode({MODE_VARIABLE: "vm"})


def test_only_a_pinned_image_runs() -> None:
    assert image_digest(f"shop/web@{DIGEST}") == DIGEST
    with pytest.raises(PermanentError, match="not pinned"):
        image_digest("shop/web:latest")
