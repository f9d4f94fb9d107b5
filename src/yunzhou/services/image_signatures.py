"""An environment that requires signed images (``require_signed_images``) releases only images of the
platform registry that carry a valid signature by the platform's key (``registry/signing.py``; builds
sign what they push). Checked when a release chooses its image — a deploy, a build's release, a
rollback — before the release is written: verifying reads the registry, so it happens before the
transaction, like deploy-time pinning (``image_pinning.py``). A refusal is a 422 naming
``containers.<name>.image`` with the reason; nothing is written and the running release stays.

Releases that keep the image already running (a settings or config change, a healing restart) are not
checked again: the policy decides which images enter the environment, not whether one that entered
before the policy was switched on keeps running.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from yunzhou.domain.errors import FieldProblem, NotFound, TemporaryError, UserError
from yunzhou.domain.image_refs import BUILT, container_images, is_platform_reference, parse_reference

# (repository, manifest digest) → None when one of the image's signatures is the platform's; a UserError
# saying why not (registry.signing.UnverifiedImage), TemporaryError when the registry cannot be read
Verify = Callable[[str, str], None]


@dataclass(frozen=True)
class SignedImages:
    verify: Verify
    platform_registry: Callable[[], str | None]  # host[:port] of the platform registry (None: none)

    def check(self, project: str, env: str, score: Mapping[str, Any], built: str | None) -> None:
        """Every image the release would run is a signed platform image; otherwise a UserError naming
        each container that is not (all at once). ``built``: the release's pinned image (a build's)."""
        containers = score.get("containers") or {}
        images = {str(n): str((c or {}).get("image", "")) for n, c in containers.items()}
        problems: list[FieldProblem] = []
        platform = self.platform_registry()
        for name, image in sorted(container_images(images, built).items()):
            where = f"containers.{name}.image"
            reason = self._problem(project, platform, image, where)
            if reason:
                problems.append(FieldProblem(where, reason))
        if problems:
            raise UserError(
                f"environment {project}/{env} requires images signed by the platform: nothing was changed",
                problems=problems,
                code="unsigned_image",
            )

    def _problem(self, project: str, platform: str | None, image: str, where: str) -> str:
        """Why ``image`` may not run here ("" when it may)."""
        if image == BUILT:
            return (
                "the image built from the source: deploy with --source, so the platform builds and signs it"
            )
        try:
            ref = parse_reference(image, where)
        except UserError as exc:
            return exc.message
        if ref.digest is None or not is_platform_reference(ref, project, platform):
            return (
                f"{image} is not an image of the platform registry pinned by digest; only images the "
                "platform signed run in this environment"
            )
        try:
            self.verify(ref.repository, ref.digest)
        except TemporaryError as exc:
            raise TemporaryError(
                f"{where}: cannot verify the signature of {image}: the registry is unreachable "
                f"({exc.message}); nothing was changed, retry later",
                problems=[FieldProblem(where, "registry unreachable")],
                retry_after=max(exc.retry_after, 5.0),
            ) from exc
        except (UserError, NotFound) as exc:
            return exc.message
        return ""


def required_but_unchecked(project: str, env: str) -> TemporaryError:
    """The policy was switched on between the check and the transaction: the caller retries."""
    return TemporaryError(
        f"environment {project}/{env} started requiring signed images during this request; nothing was "
        "changed, retry",
        retry_after=1.0,
    )


def no_verifier(project: str, env: str) -> TemporaryError:
    return TemporaryError(
        f"environment {project}/{env} requires signed images, but this server cannot verify signatures "
        "(no registry access); nothing was changed"
    )
