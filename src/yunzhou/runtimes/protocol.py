"""The Runtime protocol every target implements, and the plain data that crosses it.

A reconciler hands a runtime an ``AppIntent`` (everything needed, already loaded from the store) and gets
an ``AppObservation`` back. ``apply`` is idempotent: with nothing changed it performs no action
(``actions == 0``). How a runtime converges (instance by instance locally, a Deployment on Kubernetes)
is its own business.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from yunzhou.runtimes.base import InstanceStatus


@dataclass(frozen=True)
class RouteSpec:
    host: str
    path: str = "/"


@dataclass(frozen=True)
class AppIntent:
    app_id: int
    address: str  # project/env/app
    release: int
    score: Mapping[str, Any]
    settings: Mapping[str, Any]
    artifact: Path | None  # the uploaded source archive, when there is one
    artifact_digest: str | None
    replicas: int
    removing: bool
    routes: tuple[RouteSpec, ...]
    target: str = "local"  # "local" or "cluster:NAME"
    namespace: str | None = None  # the environment's namespace on a cluster target
    variables: Mapping[str, str] = field(default_factory=dict)  # platform-provided, e.g. config (later)
    # instances (ids) the rollout in progress asks to be replaced by fresh ones of the same release: a
    # restart of those instances only (an alert's healing action); ids no longer running are ignored
    replace_instances: tuple[str, ...] = ()
    # Score resource outputs: ``environment`` resources → config variables, ``secret`` resources →
    # decrypted secret values. Never in a repr (so never in a log line or an error message).
    resource_outputs: Mapping[str, Mapping[str, str]] = field(default_factory=dict, repr=False)
    # the release a canary/blue-green rollout in progress replaces (from the store, so a runtime that did
    # not apply it itself — a restarted control plane — can still run the rollout against it)
    previous: AppIntent | None = field(default=None, repr=False)
    # the image the release runs, pinned and registry-relative (``project/app@sha256:…``, from a build);
    # None: each container runs its Score ``image``
    image: str | None = None
    # the environment's egress policy: instances may reach the outside (the local target's NAT)
    egress: bool = True
    # the environment's HTTPS setting (Environment.tls; domain/tls_mode.py): None/"off", "local", "acme",
    # "issuer:NAME", "cluster-issuer:NAME"
    tls: str | None = None

    def secret_values(self) -> frozenset[str]:
        """The decrypted values of the intent's ``secret`` resources (for redaction)."""
        kinds = {n: r.get("type") for n, r in (self.score.get("resources") or {}).items()}
        return frozenset(
            v
            for n, out in self.resource_outputs.items()
            if kinds.get(n) == "secret"
            for v in out.values()
            if v
        )


@dataclass(frozen=True)
class AppObservation:
    instances: tuple[InstanceStatus, ...]
    ready: int  # ready instances of any release
    ready_current: int  # ready instances of the intent's release
    converged: bool  # every instance runs the intent's release, all ready, count == replicas
    gone: bool  # for a removal: nothing is left
    actions: int  # how many start/stop/route changes this pass made (0 = a no-op pass)
    waiting_for: str = ""
    failure: str = ""  # non-empty when the release cannot run (bad spec, crash loop): the reason
    # objects the release asks for that the target cannot serve, each "Kind not rendered: why"
    not_rendered: tuple[str, ...] = ()
    # routes of the app the target's router left out (host taken, invalid), each "route … is not served: why"
    not_routed: tuple[str, ...] = ()
    # hosts of the app not (yet) served over HTTPS with the certificate its environment asks for: "host: why"
    not_secured: tuple[str, ...] = ()


class Runtime(Protocol):
    def apply(self, intent: AppIntent) -> AppObservation: ...

    def render(self, intent: AppIntent) -> list[dict[str, Any]]:
        """What ``apply`` would ask the target for, as data (for review, GitOps, `yunzhou render`)."""
        ...

    def forget(self, app_id: int) -> int:
        """Stop everything of an app whose record is gone; returns the number of actions."""
        ...
