"""Render a release for the local target: Score + settings → the ProcessSpec of one instance. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from yunzhou.domain.errors import FieldProblem, PermanentError, UserError
from yunzhou.domain.masking import NO_MASK, SecretMask
from yunzhou.domain.score import Container, Workload, parse_score, substitute
from yunzhou.domain.score import Probe as ScoreProbe
from yunzhou.runtimes.local.spec import Probe, ProcessSpec
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

    def spec(
        self,
        instance_id: str,
        app: str,
        release: int,
        cwd: Path,
        port: int,
        extra_env: Mapping[str, str] | None = None,
    ) -> ProcessSpec:
        return ProcessSpec(
            instance_id=instance_id,
            app=app,
            release=release,
            argv=self.argv,
            cwd=cwd,
            env={**self.env, **(extra_env or {}), "PORT": str(port)},
            port=port,
            readiness=self.readiness,
            liveness=self.liveness,
            memory_limit_bytes=self.memory_limit_bytes,
            cpu_limit_millis=self.cpu_limit_millis,
            log_mask=self.log_mask,
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


def render(intent: AppIntent, base_env: Mapping[str, str]) -> Rendered:
    """Raises PermanentError when this release cannot run locally; the reason names the field."""
    try:
        workload = substitute(parse_score(dict(intent.score)), intent.resource_outputs)
    except UserError as exc:
        raise PermanentError(
            f"cannot render release {intent.release}: {exc.message}", problems=exc.problems
        ) from exc
    name, container = _container(workload)
    if not container.command:
        raise PermanentError(
            f"containers.{name}.command: the local target runs processes, not images; "
            "give a command such as [python3, app.py]",
            problems=[FieldProblem(f"containers.{name}.command", "required on the local target")],
        )
    warnings = []
    if container.files or container.volumes:
        warnings.append(f"containers.{name}: files and volumes are not mounted on the local target")
    limits = container.resources.limits
    env = {**base_env, **intent.variables, **container.variables}
    return Rendered(
        argv=tuple(container.command) + tuple(container.args or ()),
        env=env,
        readiness=_probe(container.readiness_probe, liveness=False),
        liveness=_probe(container.liveness_probe, liveness=True),
        memory_limit_bytes=limits.memory_bytes if limits else None,
        cpu_limit_millis=limits.millicores if limits else None,
        warnings=tuple(warnings),
        log_mask=SecretMask.of(intent.secret_values()),
    )
