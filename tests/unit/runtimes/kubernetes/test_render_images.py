"""Images on a cluster, rendered: platform images are prefixed with the cluster's registry address and
pulled with the namespace's pull Secret; other images are left as written; every container gets the
local runtime's security posture and a writable /tmp."""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from typing import Any

import pytest

from tests.unit.runtimes.kubernetes.test_render import TARGET, intent, one, web
from yunzhou.domain.errors import PermanentError
from yunzhou.runtimes.kubernetes.images import (
    CONTAINER_SECURITY,
    PULL_SECRET,
    PullCredential,
    pull_secret,
    pulls_platform_images,
)
from yunzhou.runtimes.kubernetes.render import Target, render

DIGEST = "sha256:" + "ab" * 32
BUILT = f"shop/orders@{DIGEST}"
CLUSTER = replace(TARGET, cluster="kwok", registry="10.0.0.5:5000")


def pod(objs: list[dict[str, Any]]) -> dict[str, Any]:
    spec: dict[str, Any] = one(objs, "Deployment")["spec"]["template"]["spec"]
    return spec


def test_a_built_image_is_pulled_from_the_clusters_registry_with_the_pull_secret() -> None:
    objs = render(replace(intent(web()), image=BUILT), CLUSTER)
    spec = pod(objs)
    assert spec["containers"][0]["image"] == f"10.0.0.5:5000/shop/orders@{DIGEST}"
    assert spec["imagePullSecrets"] == [{"name": PULL_SECRET}]
    assert pulls_platform_images(objs)


def test_a_score_image_pinned_in_the_platform_registry_is_prefixed_too() -> None:
    objs = render(intent(web(image=f"shop/api@{DIGEST}")), CLUSTER)
    assert pod(objs)["containers"][0]["image"] == f"10.0.0.5:5000/shop/api@{DIGEST}"


def test_only_the_dot_container_runs_the_built_image_beside_a_sidecar() -> None:
    doc = web(image=".")
    doc["containers"]["cache"] = {"image": "registry.test/redis:7"}
    images = {
        c["name"]: c["image"] for c in pod(render(replace(intent(doc), image=BUILT), CLUSTER))["containers"]
    }
    assert images == {"web": f"10.0.0.5:5000/{BUILT}", "cache": "registry.test/redis:7"}


@pytest.mark.parametrize("image", ["registry.test/orders:1.0", f"other/orders@{DIGEST}", "nginx:1.25"])
def test_other_images_are_used_as_written_with_no_pull_secret(image: str) -> None:
    objs = render(intent(web(image=image)), CLUSTER)
    assert pod(objs)["containers"][0]["image"] == image
    assert "imagePullSecrets" not in pod(objs)
    assert not pulls_platform_images(objs)


def test_a_platform_image_without_a_registry_address_is_a_permanent_error_naming_the_field() -> None:
    with pytest.raises(PermanentError, match="registry address") as exc:
        render(replace(intent(web()), image=BUILT), Target(namespace="shop-dev", cluster="kwok"))
    assert exc.value.problems[0].path == "containers.web.image"


def test_every_container_runs_non_root_read_only_without_capabilities_and_with_a_writable_tmp() -> None:
    spec = pod(render(intent(web()), CLUSTER))
    (container,) = spec["containers"]
    assert container["securityContext"] == CONTAINER_SECURITY
    assert container["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert container["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert {"name": "yunzhou-tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    assert {"name": "yunzhou-tmp", "emptyDir": {}} in spec["volumes"]
    assert container["env"] == [{"name": "PORT", "value": "8080"}]


def test_the_pull_secret_is_a_dockerconfigjson_for_the_registry_and_carries_no_app_label() -> None:
    secret = pull_secret("shop-dev", "shop", "10.0.0.5:5000", PullCredential("pull-shop", "yzt_s3cret"))
    assert secret["type"] == "kubernetes.io/dockerconfigjson"
    assert "yunzhou.io/app" not in secret["metadata"]["labels"]
    config = json.loads(base64.b64decode(secret["data"][".dockerconfigjson"]))
    entry = config["auths"]["10.0.0.5:5000"]
    assert base64.b64decode(entry["auth"]).decode() == "pull-shop:yzt_s3cret"


def test_a_pull_credential_never_shows_its_password_in_a_repr() -> None:
    assert "yzt_s3cret" not in repr(PullCredential("pull-shop", "yzt_s3cret"))
