"""Use-cases. They validate, write desired state + operation + audit in one transaction, and read status.
They never call a runtime (import-linter enforces it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from yunzhou.services.alerts import AlertService
from yunzhou.services.apps import AppService
from yunzhou.services.artifacts import ArtifactService
from yunzhou.services.audit import AuditService
from yunzhou.services.autoscaling import AutoscalingService
from yunzhou.services.base import ServiceContext
from yunzhou.services.builds import BuildPolicy, BuildService
from yunzhou.services.clusters import ClusterProbe, ClusterService, ProbeResult, Sealer
from yunzhou.services.config import ConfigService
from yunzhou.services.context import SYSTEM, Caller, Clock, utc_now
from yunzhou.services.custom_domains import CustomDomainService
from yunzhou.services.healing import HealingService
from yunzhou.services.names import NamesService
from yunzhou.services.preferences import PreferenceService
from yunzhou.services.projects import ProjectService
from yunzhou.services.registry import RegistryService
from yunzhou.services.tokens import ADMIN_TOKEN_FILE, TokenService
from yunzhou.services.traffic import TrafficService
from yunzhou.store import Database
from yunzhou.store.crypto import LazyKeyProvider, SecretBox, load_key_provider


@dataclass
class ControlPlane:
    """The composition of every use-case over one database and clock."""

    ctx: ServiceContext
    data_dir: Path
    cluster_probe: ClusterProbe | None = None
    kubeconfig_exec: bool = False  # whether uploaded kubeconfigs may name exec credential plugins
    build_policy: BuildPolicy = field(default_factory=BuildPolicy.from_env)  # YUNZHOU_BUILD_*

    @classmethod
    def create(
        cls,
        db: Database,
        data_dir: Path,
        *,
        clock: Clock = utc_now,
        base_domain: str = "localhost",
        router_port: int = 8080,
        secret_box: SecretBox | None = None,
        cluster_probe: ClusterProbe | None = None,
        kubeconfig_exec: bool = False,
    ) -> ControlPlane:
        """``secret_box`` defaults to YUNZHOU_SECRET_KEY, else the keyring file in ``data_dir``."""
        box = secret_box or SecretBox(LazyKeyProvider(lambda: load_key_provider(data_dir)))
        ctx = ServiceContext(db, clock, base_domain, f":{router_port}", secret_box=box)
        return cls(ctx, data_dir, cluster_probe, kubeconfig_exec=kubeconfig_exec)

    @property
    def clusters(self) -> ClusterService:
        # cluster credentials are sealed with the same keyring as secrets (rotated with them)
        return ClusterService(
            self.ctx, self.cluster_probe, self.ctx.secret_box, allow_exec=self.kubeconfig_exec
        )

    @property
    def names(self) -> NamesService:
        # DNS provider secrets are sealed with the same keyring as secrets and kubeconfigs
        return NamesService(self.ctx, self.ctx.secret_box)

    @property
    def custom_domains(self) -> CustomDomainService:
        return CustomDomainService(self.ctx)

    @property
    def projects(self) -> ProjectService:
        return ProjectService(self.ctx)

    @property
    def apps(self) -> AppService:
        return AppService(self.ctx)

    @property
    def tokens(self) -> TokenService:
        return TokenService(self.ctx)

    @property
    def artifacts(self) -> ArtifactService:
        return ArtifactService(self.ctx, self.data_dir)

    @property
    def builds(self) -> BuildService:
        return BuildService(self.ctx, self.data_dir, self.build_policy)

    @property
    def audit(self) -> AuditService:
        return AuditService(self.ctx)

    @property
    def config(self) -> ConfigService:
        return ConfigService(self.ctx)

    @property
    def alerts(self) -> AlertService:
        return AlertService(self.ctx)

    @property
    def healing(self) -> HealingService:
        return HealingService(self.ctx)

    @property
    def autoscaling(self) -> AutoscalingService:
        return AutoscalingService(self.ctx)

    @property
    def traffic(self) -> TrafficService:
        return TrafficService(self.ctx)

    @property
    def preferences(self) -> PreferenceService:
        return PreferenceService(self.ctx)

    @property
    def registry(self) -> RegistryService:
        return RegistryService(self.ctx, self.data_dir)


__all__ = [
    "ADMIN_TOKEN_FILE",
    "SYSTEM",
    "BuildPolicy",
    "Caller",
    "ClusterProbe",
    "ControlPlane",
    "ProbeResult",
    "Sealer",
    "utc_now",
]
