"""Images on a cluster: which image each container runs, the pull Secret of the environment's namespace,
and the containers' security posture. Pure: no I/O.

A platform image is registry-relative and pinned (``project/app@sha256:…``, a build's or a Score image
pinned at deploy); a pod refers to it as ``<the cluster's registry address>/project/app@sha256:…`` and
pulls it with the namespace's Secret ``yunzhou-registry-pull`` (``kubernetes.io/dockerconfigjson``),
which holds the project's pull-only credential. Every other image is used as the Score writes it.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any, Protocol

from yunzhou.domain.errors import FieldProblem, PermanentError
from yunzhou.domain.image_refs import platform_ref

PULL_SECRET = "yunzhou-registry-pull"  # noqa: S105 - a Secret object's name
MASKED = "<redacted>"  # what `yunzhou render` shows for the pull credential, even with --show-secrets
TMP_VOLUME = "yunzhou-tmp"
# the local runtime's runc posture (sandbox.render_config): non-root, read-only root, no capabilities,
# no privilege escalation, the runtime's default seccomp profile; /tmp is the writable place
CONTAINER_SECURITY: dict[str, Any] = {
    "runAsNonRoot": True,
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


@dataclass(frozen=True)
class PullCredential:
    """The project's pull-only credential as a cluster's nodes present it to the registry."""

    username: str
    password: str = field(repr=False)

    @classmethod
    def masked(cls) -> PullCredential:
        return cls(MASKED, MASKED)


def container_image(
    image: str, project: str, registry: str | None, cluster: str, where: str
) -> tuple[str, bool]:
    """(the image a pod refers to, whether it is a platform image pulled with the project's Secret)."""
    ref = platform_ref(image)
    if ref is None or ref.repository.split("/", 1)[0] != project:
        return image, False
    if not registry:
        raise PermanentError(
            f"cluster {cluster} has no registry address for the platform image {image} (the platform "
            f"registry is not running): set the address its nodes pull from with `yunzhou cluster set "
            f"{cluster} --registry HOST[:PORT]`",
            problems=[FieldProblem(where, "a platform image needs the cluster's registry address")],
        )
    return f"{registry}/{image}", True


def pull_secret(namespace: str, project: str, registry: str, credential: PullCredential) -> dict[str, Any]:
    """The namespace's ``kubernetes.io/dockerconfigjson`` Secret for ``registry``; carries no app label,
    so pruning an app never removes it (one environment, so one project, per namespace)."""
    auth = base64.b64encode(f"{credential.username}:{credential.password}".encode()).decode()
    config = {
        "auths": {registry: {"username": credential.username, "password": credential.password, "auth": auth}}
    }
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/dockerconfigjson",
        "metadata": {
            "name": PULL_SECRET,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/managed-by": "yunzhou", "yunzhou.io/project": project},
        },
        "data": {".dockerconfigjson": base64.b64encode(json.dumps(config, sort_keys=True).encode()).decode()},
    }


def harden(containers: list[dict[str, Any]], volumes: list[dict[str, Any]]) -> None:
    """Give every container the security posture and a writable /tmp (an emptyDir), unless a Score
    file or volume already mounts something at /tmp."""
    wanted = False
    for spec in containers:
        spec["securityContext"] = json.loads(json.dumps(CONTAINER_SECURITY))  # a copy per container
        mounts = spec.setdefault("volumeMounts", [])
        if not any(m["mountPath"] == "/tmp" for m in mounts):  # noqa: S108
            mounts.append({"name": TMP_VOLUME, "mountPath": "/tmp"})  # noqa: S108
            wanted = True
    if wanted:
        volumes.append({"name": TMP_VOLUME, "emptyDir": {}})


class ClusterImages(Protocol):
    """What the runtime asks the control plane (the composition root injects it; runtimes read no store)."""

    def registry(self, cluster: str) -> str | None:
        """host[:port] the cluster's nodes pull platform images from; None: the platform runs no registry."""
        ...

    def pull_credential(self, project: str) -> PullCredential:
        """The project's pull-only credential (made on first use)."""
        ...


def pulls_platform_images(manifests: list[dict[str, Any]]) -> bool:
    return any(
        {"name": PULL_SECRET} in (m["spec"]["template"]["spec"].get("imagePullSecrets") or [])
        for m in manifests
        if m["kind"] in ("Deployment", "StatefulSet")
    )
