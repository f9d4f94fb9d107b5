"""Deploy-time pinning, with the registry replaced by a table (the real registry's side is tested in
tests/integration/registry/test_deploy_pinning.py): which references are resolved, what is stored, and
the errors a deploy gets."""

from __future__ import annotations

from typing import Any

import pytest

from yunzhou.domain.errors import TemporaryError, UserError
from yunzhou.services.image_pinning import ImagePinning

D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64
TAGS = {(None, "shop/web", "1.2"): D1, ("http://10.0.0.7:5000", "tools/cli", "3"): D2}


def resolve(base: str | None, repository: str, tag: str) -> str:
    if base == "http://10.0.0.9:5000":
        raise TemporaryError("connection refused", retry_after=1.0)
    try:
        return TAGS[(base, repository, tag)]
    except KeyError:
        raise UserError(f"registry has no manifest {repository}:{tag}", code="not_found") from None


def pinning(**env: str) -> ImagePinning:
    environ = {"YUNZHOU_IMAGE_REGISTRIES": "http://10.0.0.7:5000, http://10.0.0.9:5000", **env}
    return ImagePinning.from_env(resolve, lambda: "127.0.0.1:5000", environ)


def score(**images: str) -> dict[str, Any]:
    return {"metadata": {"name": "web"}, "containers": {n: {"image": i} for n, i in images.items()}}


def images(doc: dict[str, Any]) -> dict[str, str]:
    return {n: c["image"] for n, c in doc["containers"].items()}


def test_platform_tags_are_stored_registry_relative_and_pinned() -> None:
    doc, warnings = pinning().pin("shop", score(web="shop/web:1.2", again="127.0.0.1:5000/shop/web:1.2"))
    assert images(doc) == {"web": f"shop/web@{D1}", "again": f"shop/web@{D1}"}
    assert warnings == []


def test_listed_external_registries_are_resolved_there_and_keep_their_host() -> None:
    doc, _ = pinning().pin("shop", score(cli="10.0.0.7:5000/tools/cli:3"))
    assert images(doc) == {"cli": f"10.0.0.7:5000/tools/cli@{D2}"}


def test_pinned_and_built_images_are_kept() -> None:
    doc, warnings = pinning().pin("shop", score(a=f"nginx@{D1}", b=".", c=f"shop/web:9@{D2}"))
    assert images(doc) == {"a": f"nginx@{D1}", "b": ".", "c": f"shop/web:9@{D2}"}
    assert warnings == []


def test_other_registries_are_refused_by_default_naming_each_container() -> None:
    # a release never refers to a tag that may move
    with pytest.raises(UserError) as exc:
        pinning().pin("shop", score(web="nginx:1.25", ok="shop/web:1.2"))
    assert [p.path for p in exc.value.problems] == ["containers.web.image"]
    message = exc.value.problems[0].message
    assert message.startswith("not pinned: nginx:1.25 is in Docker Hub")
    assert "pin it as name@sha256:" in message


def test_warn_mode_keeps_other_registries_with_a_warning() -> None:
    doc, warnings = pinning(YUNZHOU_IMAGE_PINNING="warn").pin(
        "shop", score(web="nginx:1.25", cache="registry.test/redis:7")
    )
    assert images(doc) == {"web": "nginx:1.25", "cache": "registry.test/redis:7"}
    assert [w.path for w in warnings] == ["containers.cache.image", "containers.web.image"]
    assert warnings[1].message.startswith("not pinned: nginx:1.25 is in Docker Hub")


def test_for_the_local_target_outside_images_are_left_alone_and_platform_ones_still_pinned() -> None:
    # the local target runs only the platform's images: an outside one is never run there (and a deploy
    # with nothing else to run is refused for that, domain/local_target.py), so it is not resolved
    doc, warnings = pinning().pin(
        "shop", score(web="nginx:1.25", app="shop/web:1.2"), runs_outside_images=False
    )
    assert images(doc) == {"web": "nginx:1.25", "app": f"shop/web@{D1}"}
    assert warnings == []
    with pytest.raises(UserError, match="only its own repositories"):  # still refused, by address
        pinning().pin("shop", score(web="127.0.0.1:5000/bank/ledger:1"), runs_outside_images=False)


def test_an_unknown_tag_is_a_422_naming_the_container_and_why() -> None:
    with pytest.raises(UserError) as exc:
        pinning().pin("shop", score(web="shop/web:nope", api="shop/api:1"))
    problems = {p.path: p.message for p in exc.value.problems}
    assert set(problems) == {"containers.web.image", "containers.api.image"}
    assert (
        "cannot resolve shop/web:nope: registry has no manifest shop/web:nope"
        in problems["containers.web.image"]
    )


def test_an_unreachable_registry_is_a_temporary_error_with_a_retry_after() -> None:
    with pytest.raises(TemporaryError) as exc:
        pinning().pin("shop", score(web="10.0.0.9:5000/tools/cli:3"))
    assert exc.value.retry_after >= 5
    assert exc.value.problems[0].path == "containers.web.image"


def test_another_projects_repository_in_the_platform_registry_is_refused() -> None:
    """The attack: project shop names project bank's image by the registry's address, so the server (which
    pulls with full access) would resolve and run it for shop."""
    with pytest.raises(UserError) as exc:
        pinning().pin("shop", score(web="127.0.0.1:5000/bank/ledger:1"))
    assert exc.value.problems[0].path == "containers.web.image"
    assert "only its own repositories" in exc.value.problems[0].message
    # by digest too (a pinned reference is otherwise kept as written)
    with pytest.raises(UserError) as exc:
        pinning().pin("shop", score(web="127.0.0.1:5000/bank/ledger@sha256:" + "d" * 64))
    assert "only its own repositories" in exc.value.problems[0].message


def test_a_bad_reference_is_a_422_naming_the_container() -> None:
    with pytest.raises(UserError) as exc:
        pinning().pin("shop", score(web="Shop/Web:1"))
    assert exc.value.problems[0].path == "containers.web.image"


@pytest.mark.parametrize(
    "env",
    [{"YUNZHOU_IMAGE_PINNING": "sometimes"}, {"YUNZHOU_IMAGE_REGISTRIES": "10.0.0.7:5000"}],
)
def test_bad_settings_name_the_variable(env: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="YUNZHOU_IMAGE_"):
        ImagePinning.from_env(resolve, lambda: None, env)
