"""Tables. Desired state, operations, leases and audit — nothing here talks to a runtime."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    event,
    false,
    text,
    true,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend (SQLite has no time zone type)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UtcDateTime(), dict[str, Any]: JSON(), list[Any]: JSON(), float: Float()}


class Token(Base):
    __tablename__ = "tokens"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    principal: Mapped[str] = mapped_column(String(100), index=True)
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[list[Any]]
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(100))
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]
    # the token that created this one: its revocation or expiry ends this one too (None: bootstrap/legacy)
    parent_id: Mapped[str | None] = mapped_column(String(32), index=True)


class Project(Base):
    __tablename__ = "projects"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    display_name: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime]
    version: Mapped[int] = mapped_column(Integer, default=1)
    members: Mapped[list[Member]] = relationship(back_populates="project", cascade="all, delete-orphan")
    __mapper_args__ = {"version_id_col": version}


class Member(Base):
    __tablename__ = "members"
    __table_args__ = (UniqueConstraint("project_id", "principal"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    principal: Mapped[str] = mapped_column(String(100), index=True)
    role: Mapped[str] = mapped_column(String(20))
    project: Mapped[Project] = relationship(back_populates="members")


class Environment(Base):
    __tablename__ = "environments"
    __table_args__ = (
        UniqueConstraint("project_id", "name"),
        # one environment per namespace of a cluster: two would overwrite and prune each other's objects
        Index(
            "uq_environments_cluster_namespace",
            "target",
            "namespace",
            unique=True,
            sqlite_where=text("target LIKE 'cluster:%'"),
            postgresql_where=text("target LIKE 'cluster:%'"),
        ),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="RESTRICT"), index=True)
    name: Mapped[str] = mapped_column(String(63))
    target: Mapped[str] = mapped_column(String(100))
    namespace: Mapped[str | None] = mapped_column(String(63))
    created_at: Mapped[datetime]
    # policies (docs/images.md): only images signed with the platform key are released here; instances
    # may reach the outside (NAT on the local target's bridge)
    # (server defaults only: an insert through the table that names neither works at older revisions too)
    require_signed_images: Mapped[bool] = mapped_column(Boolean, server_default=false())
    egress: Mapped[bool] = mapped_column(Boolean, server_default=true())
    # names (docs/names.md): the DNS naming rule {provider, zone, rule, policy, ttl, target}; None: no records
    names: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    # HTTPS for the environment's routes: None/"off", "local" (the platform's CA), "acme", or on a cluster
    # "issuer:NAME" / "cluster-issuer:NAME" (an existing cert-manager issuer)
    tls: Mapped[str | None] = mapped_column(String(100))
    version: Mapped[int] = mapped_column(Integer, default=1)
    project: Mapped[Project] = relationship()
    __mapper_args__ = {"version_id_col": version}


class App(Base):
    """Desired state (desired_release, replicas) written by services; observed state by reconcilers."""

    __tablename__ = "apps"
    __table_args__ = (UniqueConstraint("environment_id", "name"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    environment_id: Mapped[int] = mapped_column(
        ForeignKey("environments.id", ondelete="RESTRICT"), index=True
    )
    name: Mapped[str] = mapped_column(String(63))
    desired_release: Mapped[int] = mapped_column(Integer)
    replicas: Mapped[int] = mapped_column(Integer)
    removing: Mapped[bool] = mapped_column(Boolean, default=False)
    # Observed state, written by reconcilers only.
    current_release: Mapped[int | None] = mapped_column(Integer)
    ready_replicas: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(20), default="pending")
    conditions: Mapped[list[Any]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    version: Mapped[int] = mapped_column(Integer, default=1)
    environment: Mapped[Environment] = relationship()
    __mapper_args__ = {"version_id_col": version}


class Release(Base):
    """Immutable: inserted once, never updated (an ORM guard below refuses updates)."""

    __tablename__ = "releases"
    __table_args__ = (UniqueConstraint("app_id", "number"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    score: Mapped[dict[str, Any]]
    settings: Mapped[dict[str, Any]]
    artifact: Mapped[str | None] = mapped_column(String(80))
    image: Mapped[str | None] = mapped_column(Text)
    cause: Mapped[str] = mapped_column(String(100))
    changes: Mapped[list[Any]]
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(100))
    # The effective configuration it was built with: {"vars": {name: value}, "secrets": {name:
    # {"scope": "env"|"app", "version": N}}} — referenced keys only, never a secret's value.
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


@event.listens_for(Release, "before_update")
def _releases_are_immutable(_mapper: Any, _conn: Any, target: Release) -> None:
    raise RuntimeError(f"release {target.number} is immutable; create a new release instead")


class ConfigSet(Base):
    """Plain config variables of an environment (app == "") or of one app in it (by name: the app need
    not exist yet). ``version`` moves with every change (optimistic concurrency)."""

    __tablename__ = "config_sets"
    __table_args__ = (UniqueConstraint("environment_id", "app"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    environment_id: Mapped[int] = mapped_column(ForeignKey("environments.id", ondelete="CASCADE"), index=True)
    app: Mapped[str] = mapped_column(String(63), default="")
    vars: Mapped[dict[str, Any]]
    updated_at: Mapped[datetime]
    updated_by: Mapped[str] = mapped_column(String(100))
    version: Mapped[int] = mapped_column(Integer, default=1)
    __mapper_args__ = {"version_id_col": version}


class Secret(Base):
    """A named secret of an environment (app == "") or one app. ``current_version`` None = unset; its
    versions are kept so that a rollback to an old release still finds the value it was built with."""

    __tablename__ = "secrets"
    __table_args__ = (UniqueConstraint("environment_id", "app", "name"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    environment_id: Mapped[int] = mapped_column(ForeignKey("environments.id", ondelete="CASCADE"), index=True)
    app: Mapped[str] = mapped_column(String(63), default="")
    name: Mapped[str] = mapped_column(String(255))
    current_version: Mapped[int | None] = mapped_column(Integer)
    updated_at: Mapped[datetime]
    updated_by: Mapped[str] = mapped_column(String(100))


class SecretVersion(Base):
    """One value of a secret, AES-GCM encrypted under ``key_id`` (a key outside the database)."""

    __tablename__ = "secret_versions"
    __table_args__ = (UniqueConstraint("secret_id", "version"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    secret_id: Mapped[int] = mapped_column(ForeignKey("secrets.id", ondelete="CASCADE"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    key_id: Mapped[str] = mapped_column(String(64), index=True)
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(100))


class Rollout(Base):
    __tablename__ = "rollouts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    from_release: Mapped[int | None] = mapped_column(Integer)
    to_release: Mapped[int] = mapped_column(Integer)
    replicas: Mapped[int] = mapped_column(Integer)
    strategy: Mapped[dict[str, Any]]
    state: Mapped[str] = mapped_column(String(20), index=True)
    message: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(100))
    updated_at: Mapped[datetime]


class WorkItem(Base):
    """A leased unit of reconcile work: (kind, key) is unique; a lease is a token plus an expiry."""

    __tablename__ = "work_items"
    __table_args__ = (UniqueConstraint("kind", "key"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))
    key: Mapped[str] = mapped_column(String(200))
    due_at: Mapped[datetime] = mapped_column(index=True)
    generation: Mapped[int] = mapped_column(Integer, default=1)
    lease_token: Mapped[str | None] = mapped_column(String(64))
    lease_expires_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)


class Artifact(Base):
    __tablename__ = "artifacts"
    digest: Mapped[str] = mapped_column(String(80), primary_key=True)
    size: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(100))


class AuditEvent(Base):
    __tablename__ = "audit_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    time: Mapped[datetime] = mapped_column(index=True)
    actor: Mapped[str] = mapped_column(String(100), index=True)
    token_id: Mapped[str | None] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(60), index=True)
    target: Mapped[str] = mapped_column(String(300))
    project: Mapped[str | None] = mapped_column(String(63), index=True)
    outcome: Mapped[str] = mapped_column(String(20))
    request_id: Mapped[str] = mapped_column(String(64))
    detail: Mapped[dict[str, Any]]


class Instance(Base):
    """Reported state of one running copy, written by reconcilers; never desired state."""

    __tablename__ = "instances"
    __table_args__ = (UniqueConstraint("app_id", "instance_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"), index=True)
    instance_id: Mapped[str] = mapped_column(String(64))
    release: Mapped[int] = mapped_column(Integer)
    pid: Mapped[int | None] = mapped_column(Integer)
    port: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(20))
    ready: Mapped[bool] = mapped_column(Boolean)
    restarts: Mapped[int] = mapped_column(Integer)
    last_exit: Mapped[str | None] = mapped_column(String(100))
    reason: Mapped[str] = mapped_column(Text, default="")
    cpu_seconds: Mapped[float]
    memory_bytes: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime | None]
    observed_at: Mapped[datetime]


class Cluster(Base):
    """A registered Kubernetes API endpoint; its kubeconfig is stored encrypted."""

    __tablename__ = "clusters"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    server: Mapped[str] = mapped_column(String(500))
    server_version: Mapped[str] = mapped_column(String(100))
    context: Mapped[str] = mapped_column(String(200), default="")
    base_domain: Mapped[str] = mapped_column(String(253))
    kubeconfig_ciphertext: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(100))
    version: Mapped[int] = mapped_column(Integer, default=1)
    # host[:port] the cluster's nodes pull images from (None: the platform registry's own address)
    registry_address: Mapped[str | None] = mapped_column(String(261))
    __mapper_args__ = {"version_id_col": version}


class PullCredential(Base):
    """A project's image pull credential for clusters: a pull-only platform token (principal
    ``pull:<project>``), its secret sealed, because every cluster namespace's pull Secret carries it."""

    __tablename__ = "pull_credentials"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), unique=True)
    token_id: Mapped[str] = mapped_column(String(32))
    username: Mapped[str] = mapped_column(String(100))
    secret_ciphertext: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]


# --- alerts and self-healing ---
class AlertRuleRow(Base):
    """An alert rule (kind "rule": a whole Prometheus rule document) or a tuning of a default rule (kind
    "override") at global (project == ""), environment (app == "") or app scope."""

    __tablename__ = "alert_rules"
    __table_args__ = (UniqueConstraint("project", "env", "app", "name"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project: Mapped[str] = mapped_column(String(63), default="", index=True)
    env: Mapped[str] = mapped_column(String(63), default="")
    app: Mapped[str] = mapped_column(String(63), default="")
    name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(20))
    spec: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(100))
    updated_at: Mapped[datetime]
    version: Mapped[int] = mapped_column(Integer, default=1)
    __mapper_args__ = {"version_id_col": version}


class ActiveAlert(Base):
    """A pending or firing alert as the evaluator last left it (its state machine's memory)."""

    __tablename__ = "active_alerts"
    __table_args__ = (UniqueConstraint("rule_key", "fingerprint"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    rule_key: Mapped[str] = mapped_column(String(300), index=True)
    fingerprint: Mapped[str] = mapped_column(String(32))
    alertname: Mapped[str] = mapped_column(String(100))
    state: Mapped[str] = mapped_column(String(20))
    project: Mapped[str] = mapped_column(String(63), default="", index=True)
    env: Mapped[str] = mapped_column(String(63), default="")
    app: Mapped[str] = mapped_column(String(63), default="")
    data: Mapped[dict[str, Any]]
    updated_at: Mapped[datetime]


class AlertEvent(Base):
    """History and the app timeline: alert transitions (kind "alert") and healing actions (kind "action")."""

    __tablename__ = "alert_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    time: Mapped[datetime] = mapped_column(index=True)
    kind: Mapped[str] = mapped_column(String(20))
    project: Mapped[str] = mapped_column(String(63), default="", index=True)
    env: Mapped[str] = mapped_column(String(63), default="")
    app: Mapped[str] = mapped_column(String(63), default="")
    rule_key: Mapped[str] = mapped_column(String(300), index=True)
    alertname: Mapped[str] = mapped_column(String(100))
    state: Mapped[str] = mapped_column(String(20))  # pending|firing|resolved, or an action's outcome
    fingerprint: Mapped[str] = mapped_column(String(32), default="")
    release: Mapped[int | None] = mapped_column(Integer)
    detail: Mapped[dict[str, Any]]


class AlertReceiver(Base):
    """Where notifications go (webhook or email) and which alerts, grouped how, at project or global scope."""

    __tablename__ = "alert_receivers"
    __table_args__ = (UniqueConstraint("project", "name"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project: Mapped[str] = mapped_column(String(63), default="", index=True)
    name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(20))
    config: Mapped[dict[str, Any]]
    route: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(100))
    version: Mapped[int] = mapped_column(Integer, default=1)
    __mapper_args__ = {"version_id_col": version}


class AlertDelivery(Base):
    """How notifications to one receiver went (kept apart from the receiver so its version is the user's):
    attempts, consecutive failures, the last error and when the notifier tries again."""

    __tablename__ = "alert_deliveries"
    receiver_id: Mapped[int] = mapped_column(
        ForeignKey("alert_receivers.id", ondelete="CASCADE"), primary_key=True
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str] = mapped_column(Text, default="")
    last_attempt_at: Mapped[datetime | None]
    last_success_at: Mapped[datetime | None]
    next_retry_at: Mapped[datetime | None]


class AlertSilence(Base):
    __tablename__ = "alert_silences"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project: Mapped[str] = mapped_column(String(63), default="", index=True)
    matchers: Mapped[list[Any]]
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime] = mapped_column(index=True)
    comment: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(100))


class AlertRuleHealth(Base):
    """How a rule's last evaluation went (written when it changes): "ok", or "err" and why."""

    __tablename__ = "alert_rule_health"
    rule_key: Mapped[str] = mapped_column(String(300), primary_key=True)
    health: Mapped[str] = mapped_column(String(10))
    last_error: Mapped[str] = mapped_column(Text, default="")
    changed_at: Mapped[datetime]


# --- autoscaling ---
class AutoscaleDecision(Base):
    """One autoscaler cycle that changed the count, or whose mode or reason changed (not every cycle)."""

    __tablename__ = "autoscale_decisions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"), index=True)
    time: Mapped[datetime] = mapped_column(index=True)
    current: Mapped[int] = mapped_column(Integer)
    desired: Mapped[int] = mapped_column(Integer)
    applied: Mapped[bool] = mapped_column(Boolean)
    mode: Mapped[str] = mapped_column(String(80))
    reason: Mapped[str] = mapped_column(Text)
    inputs: Mapped[dict[str, Any]]


class ScaleHook(Base):
    """A secret URL that scales one app (up/down by ``step``, or to ``replicas``); only the hash is kept."""

    __tablename__ = "scale_hooks"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"), index=True)
    action: Mapped[str] = mapped_column(String(10))
    step: Mapped[int] = mapped_column(Integer, default=1)
    replicas: Mapped[int | None] = mapped_column(Integer)
    min_interval_seconds: Mapped[int] = mapped_column(Integer, default=10)
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(100))
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


# --- preferences ---
class UserPreference(Base):
    """A principal's console preferences (one row per principal; a NULL field means "not chosen")."""

    __tablename__ = "user_preferences"
    principal: Mapped[str] = mapped_column(String(100), primary_key=True)
    language: Mapped[str | None] = mapped_column(String(10))
    updated_at: Mapped[datetime]


# --- route ownership ---
class RouteClaim(Base):
    """A host and path one app routes (its extra routes and canary preview host; default hosts are owned
    by their shape). One app per host and path, one project per host; replaced with each desired release
    in the release's transaction (services/routes.py), gone with the app."""

    __tablename__ = "route_claims"
    __table_args__ = (UniqueConstraint("host", "path"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    host: Mapped[str] = mapped_column(String(253))
    path: Mapped[str] = mapped_column(String(2048))  # normalised: no trailing '/', '/' for the root
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"), index=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)


# --- names (docs/names.md) ---
class DnsProviderRow(Base):
    """A DNS server the platform writes records to; its secret (TSIG key, API key) is sealed."""

    __tablename__ = "dns_providers"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    kind: Mapped[str] = mapped_column(String(20))  # rfc2136 | powerdns | local
    settings: Mapped[dict[str, Any]] = mapped_column(JSON)  # everything but the secret
    secret_ciphertext: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(100))
    version: Mapped[int] = mapped_column(Integer, default=1)
    __mapper_args__ = {"version_id_col": version}


class DnsRecordRow(Base):
    """A record set the platform owns at a provider (ownership lives here, not in TXT records). It stays
    after its app is gone until the names reconciler removed it from the provider (policy ``sync``)."""

    __tablename__ = "dns_records"
    __table_args__ = (UniqueConstraint("provider", "zone", "name", "type"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    provider: Mapped[str] = mapped_column(String(63))
    zone: Mapped[str] = mapped_column(String(253))
    name: Mapped[str] = mapped_column(String(253))
    type: Mapped[str] = mapped_column(String(10))
    values: Mapped[list[str]] = mapped_column(JSON)
    ttl: Mapped[int] = mapped_column(Integer)
    owner: Mapped[str] = mapped_column(String(200))  # project/env/app, kept when the app goes
    app_id: Mapped[int | None] = mapped_column(ForeignKey("apps.id", ondelete="SET NULL"), index=True)
    environment_id: Mapped[int | None] = mapped_column(ForeignKey("environments.id", ondelete="SET NULL"))
    state: Mapped[str] = mapped_column(String(20))  # pending | synced | conflict | error | retained
    message: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime]
    # when the platform last wrote it at the provider; None: never (so it is not the platform's record yet)
    written_at: Mapped[datetime | None]


class CustomDomain(Base):
    """A host of the user's own that an app asks to serve; routed only once its TXT challenge is seen."""

    __tablename__ = "custom_domains"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    host: Mapped[str] = mapped_column(String(253), unique=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"), index=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    token: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(20))  # pending | verified | failed
    message: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    checked_at: Mapped[datetime | None]
    verified_at: Mapped[datetime | None]


class WatchedDomain(Base):
    """A registered domain whose registration expiry the platform looks up by RDAP (docs/dns.md)."""

    __tablename__ = "watched_domains"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(253), unique=True)
    expires_at: Mapped[datetime | None]  # the RDAP "expiration" event; None until a lookup found it
    checked_at: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(Text)  # why the last lookup failed (None: it worked)
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(100))


# --- builds ---
class Build(Base):
    """A build job: a source artifact built into an OCI image, then (when ``deploy`` is set) released
    through the deploy use-case pinned to the image digest. Leased by the build worker like work items
    (token + expiry); the log is a file under ``<data dir>/builds/<id>.log``."""

    __tablename__ = "builds"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    environment_id: Mapped[int] = mapped_column(ForeignKey("environments.id", ondelete="CASCADE"), index=True)
    app: Mapped[str] = mapped_column(String(63))
    state: Mapped[str] = mapped_column(String(20), index=True)  # queued|running|succeeded|failed|cancelled
    stack: Mapped[str | None] = mapped_column(String(40))  # decided when queued (detected or requested)
    requested_stack: Mapped[str | None] = mapped_column(String(40))  # --stack; None: not asked (0016)
    stack_version: Mapped[str | None] = mapped_column(String(40))
    stack_digest: Mapped[str | None] = mapped_column(String(80))
    artifact: Mapped[str] = mapped_column(String(80))
    image_digest: Mapped[str | None] = mapped_column(String(80))
    image_size: Mapped[int | None] = mapped_column(BigInteger)
    deps_cached: Mapped[bool | None] = mapped_column(Boolean)
    pushed: Mapped[bool] = mapped_column(Boolean, default=False)
    error: Mapped[str] = mapped_column(Text, default="")
    progress_step: Mapped[str] = mapped_column(String(200), default="")
    progress_fraction: Mapped[float] = mapped_column(Float, default=0.0)
    # {"score": {...}, "settings": {...}} to deploy on success; None for a build-only job
    deploy: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    release: Mapped[int | None] = mapped_column(Integer)
    time_limit_seconds: Mapped[int] = mapped_column(Integer)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    lease_token: Mapped[str | None] = mapped_column(String(64))
    lease_expires_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    log_path: Mapped[str] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(100))
    # the token that started it: the release is made as its caller, only while it is valid (0014)
    token_id: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(index=True)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    project: Mapped[Project] = relationship()
    environment: Mapped[Environment] = relationship()
