"""Request and response bodies (they are also the OpenAPI document's shapes)."""

from __future__ import annotations

from typing import Annotated, Any, Generic, Literal, TypeVar

from annotated_types import Ge, Le
from fastapi import Path
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, WithJsonSchema

from yunzhou.domain.names import DNS_LABEL_RE, label_problem

T = TypeVar("T")
# Numbers a client sends (ids, versions): at most 2^53 - 1, the integers JSON and JavaScript hold exactly
# (and far inside the store's 64-bit columns); larger ones are refused with 422 naming the parameter.
INT_MAX = 2**53 - 1
Id = Annotated[int, Ge(1), Le(INT_MAX)]
Count = Annotated[int, Ge(0), Le(INT_MAX)]


def _label(value: str) -> str:
    problem = label_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


# A principal (a member's name): 1-100 characters, none of them white space (as str.isspace says)
Principal = Annotated[
    str,
    Path(pattern=r"^[^\t\n\v\f\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]{1,100}$"),
]
TARGET_PATTERN = "^(local|cluster:" + DNS_LABEL_RE.pattern.strip("^$") + ")$"
# A project, environment, app or cluster name: the domain's rule, checked with its message, published
# as the equivalent pattern.
Label = Annotated[
    str,
    AfterValidator(_label),
    WithJsonSchema({"type": "string", "pattern": DNS_LABEL_RE.pattern, "minLength": 1, "maxLength": 63}),
]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ProjectCreate(Body):
    name: Label = Field(description="DNS label: a-z, 0-9, '-'")
    display_name: str | None = None


class MemberSet(Body):
    role: Literal["owner", "maintainer", "developer", "viewer"]


class ClusterCreate(Body):
    name: Label
    kubeconfig: Any = Field(description="A kubeconfig document (inline credentials; the CLI flattens files)")
    context: str | None = None
    base_domain: str | None = Field(
        default=None, description="Domain for apps' internal names on this cluster"
    )
    registry: str | None = Field(
        default=None,
        description="host[:port] the cluster's nodes pull platform images from (default: the platform "
        "registry's own address)",
    )


class ClusterUpdate(Body):
    registry: str | None = Field(
        description="host[:port] the cluster's nodes pull platform images from; null: the platform "
        "registry's own address"
    )


class ClusterInfo(BaseModel):
    name: str
    server: str
    server_version: str
    context: str
    base_domain: str
    registry: str | None = None
    environments: int
    created_at: str
    created_by: str
    version: int


class EnvironmentCreate(Body):
    name: Label
    target: str = Field(default="local", pattern=TARGET_PATTERN, description="local or cluster:NAME")
    namespace: Label | None = None
    # strict: true/false only (0, 1 or "yes" for a security policy are refused, as the schema says)
    require_signed_images: StrictBool = Field(
        default=False, description="Release only images signed with the platform's key (docs/images.md)"
    )
    egress: StrictBool = Field(
        default=True, description="Instances may reach the outside (local target: NAT)"
    )


class EnvironmentUpdate(Body):
    require_signed_images: StrictBool | None = None
    egress: StrictBool | None = None
    version: Count | None = None


class DeploymentCreate(Body):
    score: Any = Field(description="The Score document (score.dev/v1b1) as a JSON object")
    settings: Any = Field(default=None, description="Platform settings (yunzhou.yaml) as a JSON object")
    artifact: str | None = Field(default=None, description="sha256:… digest returned by POST /artifacts")


class ReplicasSet(Body):
    replicas: int = Field(ge=0, le=1000)
    version: Count | None = None


class SettingsPatch(Body):
    settings: Any
    version: Count | None = None


class RollbackCreate(Body):
    to: Id | None = None


class TokenCreate(Body):
    name: str = Field(min_length=1, max_length=100)
    scopes: list[Literal["read", "write", "admin", "metrics"]] = Field(min_length=1)
    expires_in_seconds: int | None = Field(default=None, ge=60, le=315_360_000)
    principal: str | None = None


class Condition(BaseModel):
    type: str
    status: str
    reason: str = ""
    message: str = ""
    last_transition: str | None = None


class Project(BaseModel):
    name: str
    display_name: str
    created_at: str
    version: int


class Member(BaseModel):
    principal: str
    role: str


class Environment(BaseModel):
    project: str
    name: str
    target: str
    namespace: str | None
    require_signed_images: bool
    egress: bool
    names: dict[str, Any] | None = None
    tls: str = "off"
    created_at: str
    version: int


class Rollout(BaseModel):
    id: int
    app: str
    kind: str
    from_release: int | None
    to_release: int
    replicas: int
    strategy: dict[str, Any]
    state: str
    message: str
    created_at: str
    created_by: str
    updated_at: str


class ProbeReport(BaseModel):
    probe: str = Field(description="readiness or liveness")
    type: str = Field(description="http, tcp or exec")
    target: str = Field(description="what it checks, e.g. GET /healthz")
    ok: bool
    result: str = Field(description="e.g. HTTP 503, connection refused, exit 1")
    since: str | None = Field(description="when this outcome began")


class Diagnosis(BaseModel):
    """Why an app's instances do not serve: the most telling failing instance."""

    reason: str = Field(
        description="CrashLoopBackOff, Failed, LivenessProbeFailing, ReadinessProbeFailing, Restarted"
    )
    message: str
    instance: str
    release: int
    state: str
    restarts: int
    last_exit: str | None
    stderr: list[str] = Field(description="its last stderr lines (at most 10 / 2 KiB), secrets masked")
    probe: ProbeReport | None = Field(description="its last probe result (a failing one first)")


class App(BaseModel):
    project: str
    env: str
    name: str
    address: str
    current_release: int | None
    desired_release: int
    replicas: int
    ready_replicas: int
    status: str
    route: str
    conditions: list[dict[str, Any]]
    diagnosis: Diagnosis | None = None
    rollout: Rollout | None
    created_at: str
    updated_at: str
    version: int


class Release(BaseModel):
    number: int
    app: str
    created_at: str
    created_by: str
    cause: str
    artifact: str | None
    image: str | None
    changes: list[str]
    score: dict[str, Any] | None = None
    settings: dict[str, Any] | None = None
    config: dict[str, Any] | None = Field(
        default=None, description="Variables (values) and secrets (scope + version only) it was built with"
    )


class InstanceReport(BaseModel):
    id: str
    release: int
    pid: int | None
    port: int
    state: str
    ready: bool
    restarts: int
    last_exit: str | None
    reason: str
    cpu_seconds: float
    memory_bytes: int
    observed_at: str


class DeployWarning(BaseModel):
    path: str = Field(description="The field, e.g. containers.web.command")
    message: str = Field(description="What will go wrong and how to fix it")


class Deployment(BaseModel):
    app: App
    release: Release
    rollout: Rollout
    warnings: list[DeployWarning] = Field(
        default_factory=list, description="Why this release will not start on its target (docs/cli.md)"
    )


class AppSettings(BaseModel):
    settings: dict[str, Any]
    version: int


class AuditEvent(BaseModel):
    id: int
    time: str
    actor: str
    token_id: str | None
    action: str
    target: str
    project: str | None
    outcome: str
    request_id: str
    detail: dict[str, Any]


class AuditPage(BaseModel):
    items: list[AuditEvent] = Field(description="Newest first")
    next_before_id: int | None = Field(
        description="Pass as before_id for the next (older) page; null when this page is the last"
    )


class Token(BaseModel):
    id: str
    name: str
    principal: str
    scopes: list[str]
    created_at: str
    created_by: str
    expires_at: str | None
    revoked: bool
    last_used_at: str | None
    parent_id: str | None = Field(
        default=None, description="The token it was created with: its revocation or expiry ends this one"
    )


class NewToken(Token):
    token: str = Field(description="The secret. Shown only in this response.")


class ArtifactUploaded(BaseModel):
    digest: str
    size: int


class WhoAmI(BaseModel):
    principal: str
    token_id: str | None
    scopes: list[str]
    admin: bool
    roles: dict[str, str]


class Health(BaseModel):
    status: str
    version: str


class Items(BaseModel, Generic[T]):
    items: list[T]


class LogRecord(BaseModel):
    id: int = Field(description="Increases with every record stored; a cursor for after_id")
    time: str = Field(description="When the line was written (RFC 3339, UTC)")
    project: str
    env: str
    app: str
    instance: str | None = Field(description="Instance id (for access records: the backend that served)")
    release: int | None
    stream: str = Field(description="stdout | stderr | access")
    line: str
    fields: dict[str, Any] = Field(description="The keys of a JSON-object line (access: the whole record)")


class LogPage(BaseModel):
    items: list[LogRecord] = Field(description="Oldest first")
    next_after_id: int = Field(description="Pass as after_id to get the records that come after these")


class ConfigPatch(Body):
    set: dict[str, Any] = Field(default_factory=dict, description="Variables to set (name → string)")
    unset: list[str] = Field(default_factory=list, description="Variable names to remove")
    version: Count | None = Field(default=None, description="Expected config version (409 when stale)")


class ConfigVars(BaseModel):
    vars: dict[str, str]
    version: int
    inherited: dict[str, str] | None = Field(
        default=None, description="App level only: environment-level variables it does not override"
    )
    releases: dict[str, int] | None = Field(
        default=None, description="After a change: app → the new release the change created"
    )


class SecretSet(Body):
    value: str = Field(
        min_length=1, description="The secret value. Encrypted at once; never returned by any call."
    )


class SecretMeta(BaseModel):
    name: str
    scope: str = Field(description="env | app")
    app: str | None = None
    version: int | None
    versions: int
    updated_at: str | None
    updated_by: str
    changed: bool | None = None
    releases: dict[str, int] | None = None


class SecretReveal(BaseModel):
    name: str
    version: int
    value: str = Field(description="The current value; the reveal is audited (name and version only)")


class SecretUnset(BaseModel):
    name: str
    releases: dict[str, int]


class KeyRotation(BaseModel):
    key: str = Field(description="The id of the key that now encrypts every secret")
    reencrypted: int
    retired: list[str] = Field(description="Key ids no longer in the keyring")
