"""services/image_signatures.py without a registry: which images a signed-only environment accepts, and
how each refusal names its container (the real registry and signatures: tests/integration/registry/
test_signed_environments.py)."""

from __future__ import annotations

from typing import Any

import pytest

from yunzhou.domain.errors import TemporaryError, UserError
from yunzhou.services.image_signatures import SignedImages

DIGEST = "sha256:" + "b" * 64
SIGNED = {("shop/web", DIGEST)}


def verify(repository: str, digest: str) -> None:
    if (repository, digest) not in SIGNED:
        raise UserError(f"{repository}@{digest} is not signed: no .sig")


def score(**images: str) -> dict[str, Any]:
    return {"metadata": {"name": "web"}, "containers": {n: {"image": i} for n, i in images.items()}}


CHECK = SignedImages(verify, lambda: "10.0.0.5:5000")


def test_a_signed_platform_image_passes_written_relative_or_with_the_registry_address() -> None:
    CHECK.check("shop", "prod", score(web=f"shop/web@{DIGEST}"), None)
    CHECK.check("shop", "prod", score(web=f"10.0.0.5:5000/shop/web@{DIGEST}"), None)
    CHECK.check("shop", "prod", score(web="."), f"shop/web@{DIGEST}")  # a build's release


@pytest.mark.parametrize(
    ("image", "reason"),
    [
        ("nginx:1.25", "not an image of the platform registry pinned by digest"),
        (f"ghcr.io/shop/web@{DIGEST}", "not an image of the platform registry"),
        ("shop/web:1.2", "pinned by digest"),  # pinning resolves tags first; unresolved is refused
        (f"bank/web@{DIGEST}", "not an image of the platform registry"),  # another project's
        (f"shop/api@{DIGEST}", "is not signed"),
        (".", "deploy with --source"),
    ],
)
def test_everything_else_is_refused_naming_the_container(image: str, reason: str) -> None:
    with pytest.raises(UserError) as refused:
        CHECK.check("shop", "prod", score(web=f"shop/web@{DIGEST}", side=image), None)
    assert refused.value.code == "unsigned_image"
    [problem] = refused.value.problems
    assert problem.path == "containers.side.image"
    assert reason in problem.message


def test_a_registry_that_cannot_be_read_is_a_temporary_error() -> None:
    def down(repository: str, digest: str) -> None:
        raise TemporaryError("connection refused")

    with pytest.raises(TemporaryError) as exc:
        SignedImages(down, lambda: None).check("shop", "prod", score(web=f"shop/web@{DIGEST}"), None)
    assert exc.value.problems[0].path == "containers.web.image"
    assert exc.value.retry_after >= 5
