"""Who may do what: token scopes, project roles and the permission each use-case needs."""

from __future__ import annotations

from enum import Enum, StrEnum

from yunzhou.domain.errors import invalid


class Scope(StrEnum):
    READ = "read"
    WRITE = "write"
    ADMIN = "admin"
    # read-only and only for raw PromQL and /metrics: what a Prometheus scraping Yunzhou holds
    METRICS = "metrics"
    # only for the registry's token endpoint, and there pull at most: what a cluster's image pull secret
    # carries (the platform makes these itself; they cannot be asked for through the API)
    PULL = "pull"


class Role(StrEnum):
    VIEWER = "viewer"
    DEVELOPER = "developer"
    MAINTAINER = "maintainer"
    OWNER = "owner"

    @property
    def rank(self) -> int:
        return _ROLE_ORDER.index(self)

    def includes(self, other: Role) -> bool:
        return self.rank >= other.rank


_ROLE_ORDER = [Role.VIEWER, Role.DEVELOPER, Role.MAINTAINER, Role.OWNER]


def parse_role(value: object, path: str = "role") -> Role:
    try:
        return Role(str(value))
    except ValueError:
        allowed = ", ".join(r.value for r in _ROLE_ORDER)
        raise invalid(path, f"{value!r} is not a role; allowed: {allowed}") from None


def parse_scopes(values: object, path: str = "scopes") -> frozenset[Scope]:
    if not isinstance(values, list | tuple | set | frozenset) or not values:
        raise invalid(path, "must be a non-empty list of: read, write, admin, metrics")
    scopes: set[Scope] = set()
    for i, v in enumerate(values):
        try:
            scopes.add(Scope(str(v)))
        except ValueError:
            allowed = ", ".join(s.value for s in Scope)
            raise invalid(f"{path}.{i}", f"{v!r} is not a scope; allowed: {allowed}") from None
    return frozenset(scopes)


class Permission(Enum):
    """A permission = its name, the scope a token needs, and the least project role (None: not
    project-scoped). The name keeps values distinct: equal values would make members aliases."""

    AUTHENTICATED = ("authenticated", Scope.READ, None)
    PROJECT_CREATE = ("project.create", Scope.WRITE, None)
    PROJECT_READ = ("project.read", Scope.READ, Role.VIEWER)
    PROJECT_DELETE = ("project.delete", Scope.WRITE, Role.OWNER)
    MEMBER_READ = ("member.read", Scope.READ, Role.VIEWER)
    MEMBER_WRITE = ("member.write", Scope.WRITE, Role.OWNER)
    ENV_READ = ("env.read", Scope.READ, Role.VIEWER)
    ENV_WRITE = ("env.write", Scope.WRITE, Role.MAINTAINER)
    APP_READ = ("app.read", Scope.READ, Role.VIEWER)
    APP_DEPLOY = ("app.deploy", Scope.WRITE, Role.DEVELOPER)
    APP_DELETE = ("app.delete", Scope.WRITE, Role.MAINTAINER)
    CONFIG_READ = ("config.read", Scope.READ, Role.VIEWER)  # variables and secret metadata, never values
    CONFIG_WRITE = ("config.write", Scope.WRITE, Role.DEVELOPER)
    # a secret's value, audited: write scope so read-only tokens (dashboards, CI) never exfiltrate one
    SECRET_REVEAL = ("secret.reveal", Scope.WRITE, Role.MAINTAINER)
    ALERT_READ = ("alert.read", Scope.READ, Role.VIEWER)
    ALERT_SILENCE = ("alert.silence", Scope.WRITE, Role.DEVELOPER)
    # rules and receivers can roll back, scale and page people: maintainers
    ALERT_WRITE = ("alert.write", Scope.WRITE, Role.MAINTAINER)
    ARTIFACT_UPLOAD = ("artifact.upload", Scope.WRITE, None)
    # a build by id: the service checks the caller's role in the build's project (viewer reads,
    # developer cancels) and answers 404 to everyone else
    BUILD_READ = ("build.read", Scope.READ, None)
    BUILD_CANCEL = ("build.cancel", Scope.WRITE, None)
    AUDIT_READ = ("audit.read", Scope.READ, None)
    TOKEN_SELF = ("token.self", Scope.READ, None)  # list and revoke one's own tokens
    # a new credential is a change: read-only tokens (dashboards, CI) cannot mint tokens
    TOKEN_CREATE = ("token.create", Scope.WRITE, None)
    PLATFORM_ADMIN = ("platform.admin", Scope.ADMIN, None)
    # raw PromQL and /metrics see every project's series: admin tokens, or read-only `metrics` tokens
    METRICS_READ = ("metrics.read", Scope.METRICS, None)
    # the registry's token endpoint: what it grants is decided per repository from the caller's role
    # (registry/tokens.py); a read or pull token gets pull at most
    REGISTRY_TOKEN = ("registry.token", Scope.PULL, None)

    @property
    def scope(self) -> Scope:
        return self.value[1]  # type: ignore[no-any-return]

    @property
    def role(self) -> Role | None:
        return self.value[2]  # type: ignore[no-any-return]


def scope_allows(scopes: frozenset[Scope], needed: Scope) -> bool:
    """admin implies write implies read implies pull; ``metrics`` stands alone (admin implies it too)."""
    if Scope.ADMIN in scopes:
        return True
    if needed is Scope.READ:
        return bool(scopes & {Scope.READ, Scope.WRITE})
    if needed is Scope.PULL:  # read implies pull; pull implies nothing else
        return bool(scopes & {Scope.PULL, Scope.READ, Scope.WRITE})
    return needed in scopes


def may(scopes: frozenset[Scope], role: Role | None, permission: Permission) -> bool:
    """The whole rule, in one place: what the authorization matrix tests check."""
    if not scope_allows(scopes, permission.scope):
        return False
    if Scope.ADMIN in scopes or permission.role is None:
        return True
    return role is not None and role.includes(permission.role)
