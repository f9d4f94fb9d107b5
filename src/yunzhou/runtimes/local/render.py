"""Render a release for the local target: Score + settings (+ its image's config) → the ProcessSpec of
one instance. Pure: the caller reads the image's config from the image store and passes it in.

A release with an image runs as a container (``ContainerPlan``): the image's entrypoint/cmd/env/workdir,
overridden by Score ``command`` (replaces the entrypoint, and the cmd with it), ``args`` (replaces the cmd)
and variables; Score ``files`` inline (``content``/``binaryContent``) and ``volumes`` of ``type: volume``
resources are mounted. Without an image (or with ``YUNZHOU_INSTANCE_MODE=process``) Score ``command`` runs
as a host process.
"""

from __future__ import annotations

import base64
import binascii
import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from yunzhou.domain.errors import FieldProblem, PermanentError, UserError
from yunzhou.domain.local_target import local_image
from yunzhou.domain.masking import NO_MASK, SecretMask
from yunzhou.domain.score import Container, Workload, parse_score, substitute
from yunzhou.domain.score import Probe as ScoreProbe
from yunzhou.domain.score.paths import at
from yunzhou.runtimes.local.spec import ContainerPlan, FileMount, Probe, ProcessSpec, VolumeMount
from yunzhou.runtimes.protocol import AppIntent


@dataclass(frozen=True)
class Rendered:
    """Everything about an instance except its id and port."""

    argv: tuple[str, ...]
    env: Mapping[str, str] = field(repr=False)  # may hold secret values
    readiness: Probe | None
    liveness: Probe | None
    memory_limit_bytes: int | None
    cpu_limit_millis: int | None
    warnings: tuple[str, ...]
    log_mask: SecretMask = field(default=NO_MASK, repr=False)
    container: ContainerPlan | None = None

    def spec(
        self,
        instance_id: str,
        app: str,
        release: int,
        cwd: Path,
        port: int,
        extra_env: Mapping[str, str] | None = None,
        *,
        host: str = "127.0.0.1",
        user: int | None = None,
    ) -> ProcessSpec:
        """``host``/``user``: a container's address and uid (a host process gets its user later)."""
        return ProcessSpec(
            instance_id=instance_id,
            app=app,
            release=release,
            argv=self.argv,
            cwd=cwd,
            env={**self.env, **(extra_env or {}), "PORT": str(port)},
            port=port,
            host=host,
            user=user,
            readiness=self.readiness,
            liveness=self.liveness,
            memory_limit_bytes=self.memory_limit_bytes,
            cpu_limit_millis=self.cpu_limit_millis,
            log_mask=self.log_mask,
            container=self.container,
        )


def _probe(probe: ScoreProbe | None, *, liveness: bool) -> Probe | None:
    if probe is None:
        return None
    if probe.exec is not None:  # Score: prefer exec when both are given
        return Probe("exec", argv=probe.exec.command, failure_threshold=3)
    assert probe.http_get is not None
    # One port per process locally: the probe's container port is the instance's PORT.
    headers = tuple((h.name, h.value) for h in probe.http_get.headers)
    return Probe("http", path=probe.http_get.path or "/", port=None, headers=headers,
                 failure_threshold=3, initial_delay=1.0 if liveness else 0.0)  # fmt: skip


def _container(workload: Workload) -> tuple[str, Container]:
    names = list(workload.containers)
    if len(names) != 1:
        raise PermanentError(
            f"the local target runs one process per instance; this workload has {len(names)} containers "
            f"({', '.join(names)}): deploy each as its own app, or use a Kubernetes environment",
            problems=[FieldProblem("containers", "must have exactly one container on the local target")],
        )
    return names[0], workload.containers[names[0]]


def render(
    intent: AppIntent, base_env: Mapping[str, str], image_config: Mapping[str, Any] | None = None
) -> Rendered:
    """Raises PermanentError when this release cannot run locally; the reason names the field.

    ``image_config``: the OCI image config document of ``release_image(intent)`` → a container; None → a
    host process running Score ``command``."""
    try:
        workload = substitute(parse_score(dict(intent.score)), intent.resource_outputs)
    except UserError as exc:
        raise PermanentError(
            f"cannot render release {intent.release}: {exc.message}", problems=exc.problems
        ) from exc
    name, container = _container(workload)
    image = release_image(intent)
    if image_config is not None and image:
        argv, env, plan = _container_process(image, intent, workload, name, container, base_env, image_config)
        return _rendered(intent, container, argv, env, (), plan)
    if not container.command:
        raise PermanentError(
            f"containers.{name}.command: the local target runs processes, not images; "
            "give a command such as [python3, app.py]",
            problems=[FieldProblem(f"containers.{name}.command", "required on the local target")],
        )
    warnings = []
    if container.files or container.volumes:
        warnings.append(f"containers.{name}: files and volumes are not mounted on the local target")
    argv = tuple(container.command) + tuple(container.args or ())
    env = {**base_env, **intent.variables, **container.variables}
    return _rendered(intent, container, argv, env, tuple(warnings), None)


def _rendered(
    intent: AppIntent,
    container: Container,
    argv: tuple[str, ...],
    env: dict[str, str],
    warnings: tuple[str, ...],
    plan: ContainerPlan | None,
) -> Rendered:
    limits = container.resources.limits
    return Rendered(
        argv=argv,
        env=env,
        readiness=_probe(container.readiness_probe, liveness=False),
        liveness=_probe(container.liveness_probe, liveness=True),
        memory_limit_bytes=limits.memory_bytes if limits else None,
        cpu_limit_millis=limits.millicores if limits else None,
        warnings=warnings,
        log_mask=SecretMask.of(intent.secret_values()),
        container=plan,
    )


def release_image(intent: AppIntent) -> str | None:
    """The image the release runs locally (``domain.local_target.local_image``), None: a host process."""
    containers = intent.score.get("containers")
    images = {
        str(n): c["image"]
        for n, c in (containers.items() if isinstance(containers, Mapping) else ())
        if isinstance(c, Mapping) and isinstance(c.get("image"), str)
    }
    return local_image(images, intent.image, intent.address.split("/", 1)[0])


def _container_process(
    image: str,
    intent: AppIntent,
    workload: Workload,
    name: str,
    container: Container,
    base_env: Mapping[str, str],
    image_config: Mapping[str, Any],
) -> tuple[tuple[str, ...], dict[str, str], ContainerPlan]:
    """A container of ``image``: its config under the Score's overrides (Kubernetes' rules)."""
    raw = image_config.get("config")
    config: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
    entrypoint = _strings(config.get("Entrypoint"))
    cmd = _strings(config.get("Cmd"))
    if container.command is not None:  # command replaces the entrypoint, and the image's cmd with it
        argv = tuple(container.command) + tuple(container.args or ())
    else:
        argv = entrypoint + (tuple(container.args) if container.args is not None else cmd)
    base = f"containers.{name}"
    if not argv:
        raise PermanentError(
            f"{base}.command: image {image} has no entrypoint or cmd; give a command",
            problems=[FieldProblem(f"{base}.command", "required: the image says nothing to run")],
        )
    image_env = dict(item.split("=", 1) for item in _strings(config.get("Env")) if "=" in item)
    # the app's uid has no passwd entry and / is read-only: HOME is the writable /tmp unless set
    env = {"HOME": "/tmp", **image_env, **base_env, **intent.variables, **container.variables}  # noqa: S108
    workdir = config.get("WorkingDir")
    plan = ContainerPlan(
        image=image,
        cwd=workdir if isinstance(workdir, str) and workdir.startswith("/") else "/",
        files=_files(container, base),
        volumes=_volumes(workload, container, base),
        egress=intent.egress,
    )
    return argv, env, plan


def _strings(value: object) -> tuple[str, ...]:
    return tuple(str(v) for v in value) if isinstance(value, list | tuple) else ()


def _mount_target(target: str, path: str) -> str:
    if not target.startswith("/") or posixpath.normpath(target) != target or target == "/":
        raise PermanentError(
            f"{path}: {target!r} is not an absolute, normalised path inside the container",
            problems=[FieldProblem(path, "an absolute path such as /etc/app/config.yaml")],
        )
    return target


def _files(container: Container, base: str) -> tuple[FileMount, ...]:
    out = []
    for target, f in sorted(container.files.items()):
        path = at(at(base, "files"), target)
        _mount_target(target, path)
        if f.content is not None:
            content = f.content.encode()
        elif f.binary_content is not None:
            try:
                content = base64.b64decode(f.binary_content, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise PermanentError(
                    f"{path}.binaryContent: not base64",
                    problems=[FieldProblem(f"{path}.binaryContent", "base64 data")],
                ) from exc
        else:
            raise PermanentError(
                f"{path}.source: a file taken from the source tree cannot be mounted from an image; "
                "put it into the image (the source) or inline it with `content`",
                problems=[FieldProblem(f"{path}.source", "not supported on the local target's containers")],
            )
        out.append(FileMount(target, content, int(f.mode, 8) if f.mode else 0o444))
    return tuple(out)


_RESOURCE_REF = re.compile(r"\$\{resources\.([A-Za-z0-9_-]+)\}")


def _volumes(workload: Workload, container: Container, base: str) -> tuple[VolumeMount, ...]:
    declared = {n for n, r in workload.resources.items() if r.type == "volume"}
    out = []
    for target, v in sorted(container.volumes.items()):
        path = at(at(base, "volumes"), target)
        _mount_target(target, path)
        ref = _RESOURCE_REF.fullmatch(v.source)
        source = ref.group(1) if ref else v.source
        if source not in declared:
            raise PermanentError(
                f"{path}.source: {v.source!r} is not a resource of type volume",
                problems=[
                    FieldProblem(f"{path}.source", f"declare {source} under resources with type: volume")
                ],
            )
        sub = posixpath.normpath(v.path.strip("/")) if v.path and v.path.strip("/") else ""
        if sub.startswith("..") or sub.startswith("/"):
            raise PermanentError(
                f"{path}.path: {v.path!r} leaves the volume",
                problems=[FieldProblem(f"{path}.path", "a path inside the volume, without ..")],
            )
        out.append(VolumeMount(target, source, "" if sub == "." else sub, bool(v.read_only)))
    return tuple(out)


def container_view(r: Rendered) -> dict[str, Any]:
    """What `yunzhou render` shows of a container: its image and what is mounted where."""
    if r.container is None:
        return {}
    plan = r.container
    return {
        "image": plan.image,
        "workdir": plan.cwd,
        "files": [{"path": f.target, "mode": f"{f.mode:04o}"} for f in plan.files],
        "volumes": [
            {"path": v.target, "source": v.source, "subPath": v.sub_path, "readOnly": v.read_only}
            for v in plan.volumes
        ],
    }
