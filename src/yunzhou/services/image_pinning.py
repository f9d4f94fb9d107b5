"""Deploy-time pinning of Score images: ``image: REF`` with a tag is resolved to the digest the tag names
now, and the release stores ``REF@sha256:…``, so a release never runs what a moved tag points to later.

Which references are resolved (``domain/image_refs.py`` says which registry a reference names):
- the platform registry's (``shop/web:1.2`` in project shop, or written with its address): always; the
  release stores the registry-relative form ``shop/web@sha256:…`` (each target prefixes its address);
- an external registry the operator lists in ``YUNZHOU_IMAGE_REGISTRIES`` (``http://10.0.0.7:5000,
  https://ghcr.io``): resolved there, anonymously, kept with its host;
- any other (Docker Hub's ``nginx:1.25``, a registry the platform is not told it can reach): refused
  (``YUNZHOU_IMAGE_PINNING=strict``, the default: a release never refers to a moving tag); with
  ``YUNZHOU_IMAGE_PINNING=warn`` kept as written, with a warning ``not pinned: …``. Only where the
  target runs the Score's images (a cluster): the local target runs nothing but the platform's own
  images (an outside reference is refused there for having no image to run, ``domain/local_target.py``),
  so an outside reference is left as written for it, neither resolved nor refused.
A reference already pinned by digest, and ``.`` (the image the platform builds), are kept as they are.
Unknown tags and refusals are a 422 naming ``containers.<name>.image``; an unreachable registry is a
503 with Retry-After. Resolving is network I/O: it happens before the deploy's transaction.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from yunzhou.domain.errors import FieldProblem, TemporaryError, UserError
from yunzhou.domain.image_refs import BUILT, is_platform_reference, parse_reference

# (registry base URL, or None for the platform registry; repository; tag) → the manifest digest
Resolve = Callable[[str | None, str, str], str]
MODES = ("strict", "warn")


@dataclass(frozen=True)
class ImagePinning:
    resolve: Resolve
    platform_registry: Callable[[], str | None]  # host[:port] of the platform registry (None: none)
    external: Mapping[str, str] = field(default_factory=dict)  # host[:port] → base URL the platform reaches
    strict: bool = True

    @classmethod
    def from_env(
        cls,
        resolve: Resolve,
        platform_registry: Callable[[], str | None],
        env: Mapping[str, str] | None = None,
    ) -> ImagePinning:
        environ = os.environ if env is None else env
        mode = environ.get("YUNZHOU_IMAGE_PINNING", "strict").strip() or "strict"
        if mode not in MODES:
            raise ValueError(f"YUNZHOU_IMAGE_PINNING={mode!r}: must be strict (the default) or warn")
        external: dict[str, str] = {}
        for raw in filter(None, (x.strip() for x in environ.get("YUNZHOU_IMAGE_REGISTRIES", "").split(","))):
            scheme, sep, host = raw.rstrip("/").partition("://")
            if not sep or scheme not in ("http", "https") or "/" in host or not host:
                raise ValueError(
                    f"YUNZHOU_IMAGE_REGISTRIES: {raw!r} must be http(s)://host[:port] (comma-separated)"
                )
            external[host] = f"{scheme}://{host}"
        return cls(resolve, platform_registry, external, strict=mode == "strict")

    def pin(
        self, project: str, score: dict[str, Any], *, runs_outside_images: bool = True
    ) -> tuple[dict[str, Any], list[FieldProblem]]:
        """``score`` with its container images pinned (a copy), and warnings for those left as written.
        ``runs_outside_images``: the target runs images from other registries (a cluster); False (the
        local target) leaves references outside the platform's registry as written."""
        containers = dict(score.get("containers") or {})
        warnings: list[FieldProblem] = []
        problems: list[FieldProblem] = []
        platform = self.platform_registry()
        for name, container in sorted(containers.items()):
            image = str(container.get("image", ""))
            where = f"containers.{name}.image"
            if not runs_outside_images and not self._platforms(project, platform, image):
                pinned = image  # never run here: refused at deploy for having no image, if it matters
            else:
                pinned = self._pin(project, platform, image, where, problems, warnings)
            containers[name] = {**container, "image": pinned}
        if problems:
            raise UserError("deployment is invalid: nothing was changed", problems=problems)
        return {**score, "containers": containers}, warnings

    @staticmethod
    def _platforms(project: str, platform: str | None, image: str) -> bool:
        """Whether ``image`` names the platform registry (or cannot be parsed: ``_pin`` says why)."""
        try:
            ref = parse_reference(image, "image")
        except UserError:
            return True
        return image == BUILT or is_platform_reference(ref, project, platform)

    def _pin(
        self,
        project: str,
        platform: str | None,
        image: str,
        where: str,
        problems: list[FieldProblem],
        warnings: list[FieldProblem],
    ) -> str:
        """The image as the release stores it; problems (refused) and warnings (kept) are appended."""
        if image == BUILT:
            return image
        try:
            ref = parse_reference(image, where)
        except UserError as exc:
            problems += exc.problems
            return image
        if (
            ref.registry is not None
            and ref.registry == platform
            and not ref.repository.startswith(f"{project}/")
        ):  # by tag or by digest: another project's images are not this project's to run
            problems.append(
                FieldProblem(where, f"{image}: a project deploys only its own repositories ({project}/…)")
            )
            return image
        if ref.pinned:
            return image
        tag = ref.tag or "latest"
        if is_platform_reference(ref, project, platform):  # stored registry-relative
            return f"{ref.repository}@{self._resolve(None, ref.repository, tag, image, where, problems)}"
        if ref.registry is not None and ref.registry in self.external:
            base = self.external[ref.registry]
            return str(ref.with_digest(self._resolve(base, ref.repository, tag, image, where, problems)))
        why = (
            f"not pinned: {image} is in {ref.registry or 'Docker Hub'}, which the platform does not resolve "
            "(YUNZHOU_IMAGE_REGISTRIES lists those it does), and a release never refers to a tag that may "
            "move: pin it as name@sha256:…, or list its registry"
        )
        (problems if self.strict else warnings).append(FieldProblem(where, why))
        return image

    def _resolve(
        self,
        base: str | None,
        repository: str,
        tag: str,
        image: str,
        where: str,
        problems: list[FieldProblem],
    ) -> str:
        try:
            return self.resolve(base, repository, tag)
        except TemporaryError as exc:
            raise TemporaryError(
                f"{where}: cannot resolve {image}: the registry is unreachable ({exc.message}); nothing was "
                "changed, retry later",
                problems=[FieldProblem(where, "registry unreachable")],
                retry_after=max(exc.retry_after, 5.0),
            ) from exc
        except UserError as exc:  # not found, refused: said per container, every one at once
            problems.append(FieldProblem(where, f"cannot resolve {image}: {exc.message}"))
            return ""
