"""Config variables and secrets per environment (``PROJECT/ENV``) and per app (``PROJECT/ENV/APP``).

Each change, in one transaction: the new values (a secret as a new encrypted version), a new release +
rollout + work item for every app whose effective config it changes, and the audit rows. Secret values
are accepted here, encrypted at once and never returned, logged or audited.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from yunzhou.domain.config import (
    MAX_SECRET_BYTES,
    changed_names,
    check_vars,
    config_cause,
    key_problem,
)
from yunzhou.domain.errors import Conflict, FieldProblem, NotFound, TemporaryError, UserError, invalid
from yunzhou.domain.names import check_label
from yunzhou.domain.score import parse_score
from yunzhou.services.apps import AppService, _release
from yunzhou.services.base import ServiceContext, get_environment
from yunzhou.services.context import Caller, iso, record_audit
from yunzhou.services.effective import refreshed_config
from yunzhou.store.crypto import SecretBox
from yunzhou.store.models import (
    App,
    Cluster,
    ConfigSet,
    DnsProviderRow,
    Environment,
    PullCredential,
    Secret,
    SecretVersion,
)

# Other tables holding SecretBox.seal() strings register (model, column) here so rotate-key re-seals them.
SEALED_COLUMNS: list[tuple[type[Any], str]] = [
    (Cluster, "kubeconfig_ciphertext"),
    (DnsProviderRow, "secret_ciphertext"),
    (PullCredential, "secret_ciphertext"),  # a cluster's image pulls log in with it
]


def secret_aad(secret_id: int, version: int) -> bytes:
    """Binds a ciphertext to its row: moved to another secret or version, it no longer decrypts.
    (reconcile.config builds the same bytes to decrypt.)"""
    return f"secret:{secret_id}:{version}".encode()


def secret_view(row: Secret, versions: int) -> dict[str, Any]:
    return {
        "name": row.name,
        "scope": "app" if row.app else "env",
        "app": row.app or None,
        "version": row.current_version,
        "versions": versions,
        "updated_at": iso(row.updated_at),
        "updated_by": row.updated_by,
    }


class ConfigService:
    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx

    @property
    def box(self) -> SecretBox:
        box: SecretBox | None = self.ctx.secret_box
        if box is None:
            raise TemporaryError("this server has no secret key configured (see docs/config.md)")
        return box

    # ---- variables
    def get(self, project: str, env: str, app: str | None) -> dict[str, Any]:
        scope = _scope(app)
        with self.ctx.db.transaction() as s:
            _, e = get_environment(s, project, env)
            own = _config_set(s, e, scope)
            out: dict[str, Any] = {
                "vars": dict(sorted((own.vars if own else {}).items())),
                "version": own.version if own else 0,
            }
            if scope:
                base = _config_set(s, e, "")
                out["inherited"] = {
                    k: v for k, v in sorted((base.vars if base else {}).items()) if k not in out["vars"]
                }
            return out

    def update(
        self,
        caller: Caller,
        project: str,
        env: str,
        app: str | None,
        set_: object,
        unset: object,
        version: int | None,
    ) -> dict[str, Any]:
        scope = _scope(app)
        to_set = check_vars(set_ or {}, "set")
        if not isinstance(unset, list) or not all(isinstance(k, str) for k in unset):
            raise invalid("unset", "must be a list of variable names")
        problems = [FieldProblem(f"unset.{i}", p) for i, k in enumerate(unset) if (p := key_problem(k))]
        problems += [FieldProblem(f"unset.{i}", "is also in set") for i, k in enumerate(unset) if k in to_set]
        if problems:
            raise UserError("config change is invalid: nothing was changed", problems=problems)
        if not to_set and not unset:
            raise invalid("set", "give at least one variable to set or unset")
        now = self.ctx.clock()
        with self.ctx.db.transaction() as s:
            _, e = get_environment(s, project, env)
            row = _config_set(s, e, scope)
            if version is not None and version != (row.version if row else 0):
                raise Conflict(
                    f"config of {_address(project, env, scope)} is at version {row.version if row else 0}, "
                    f"not {version}; reload and retry"
                )
            before = dict(row.vars) if row else {}
            after = {k: v for k, v in {**before, **to_set}.items() if k not in unset}
            if row is None:
                row = ConfigSet(
                    environment_id=e.id, app=scope, vars=after, updated_at=now, updated_by=caller.principal
                )
                s.add(row)
            elif after != before:
                row.vars = after
                row.updated_at = now
                row.updated_by = caller.principal
            s.flush()
            releases = self._rerelease(s, caller, project, e, scope, {"vars": set(to_set) | set(unset)})
            record_audit(
                s, caller, now, action="config.update", target=_address(project, env, scope), project=project,
                detail={"set": sorted(to_set), "unset": sorted(unset), "releases": releases},
            )  # fmt: skip
            s.flush()
            return {"vars": dict(sorted(after.items())), "version": row.version, "releases": releases}

    # ---- secrets
    def list_secrets(self, project: str, env: str, app: str | None) -> list[dict[str, Any]]:
        scope = _scope(app)
        with self.ctx.db.transaction() as s:
            _, e = get_environment(s, project, env)
            scopes = ["", scope] if scope else [""]
            rows = s.execute(
                select(Secret, func.count(SecretVersion.id))
                .join(SecretVersion, SecretVersion.secret_id == Secret.id)
                .where(
                    Secret.environment_id == e.id, Secret.app.in_(scopes), Secret.current_version.is_not(None)
                )
                .group_by(Secret.id)
                .order_by(Secret.name, Secret.app)
            ).all()
            return [secret_view(r, n) for r, n in rows]

    def set_secret(
        self, caller: Caller, project: str, env: str, app: str | None, name: str, value: object
    ) -> dict[str, Any]:
        scope = _scope(app)
        if (p := key_problem(name)) is not None:
            raise invalid("name", p)
        if not isinstance(value, str) or not value:
            raise invalid("value", "must be a non-empty string")
        if len(value.encode()) > MAX_SECRET_BYTES:
            raise invalid("value", f"must be at most {MAX_SECRET_BYTES} bytes")
        box = self.box
        now = self.ctx.clock()
        with self.ctx.db.transaction() as s:
            _, e = get_environment(s, project, env)
            row = _secret(s, e, scope, name)
            if row is None:
                row = Secret(
                    environment_id=e.id, app=scope, name=name, updated_at=now, updated_by=caller.principal
                )
                s.add(row)
                s.flush()
            elif row.current_version is not None and self._value(s, row, row.current_version) == value:
                return {**secret_view(row, _versions(s, row)), "changed": False, "releases": {}}
            number = (
                s.scalar(select(func.max(SecretVersion.version)).where(SecretVersion.secret_id == row.id))
                or 0
            ) + 1
            key_id, blob = box.encrypt(value.encode(), secret_aad(row.id, number))
            s.add(SecretVersion(secret_id=row.id, version=number, key_id=key_id, ciphertext=blob,
                                created_at=now, created_by=caller.principal))  # fmt: skip
            row.current_version = number
            row.updated_at = now
            row.updated_by = caller.principal
            s.flush()
            releases = self._rerelease(s, caller, project, e, scope, {"secrets": {name}})
            record_audit(
                s, caller, now, action="secret.set", target=_address(project, env, scope) + f":{name}",
                project=project, detail={"name": name, "version": number, "key": key_id,
                        "releases": releases},
            )  # fmt: skip
            s.flush()
            return {**secret_view(row, number), "changed": True, "releases": releases}

    def unset_secret(
        self, caller: Caller, project: str, env: str, app: str | None, name: str
    ) -> dict[str, Any]:
        scope = _scope(app)
        now = self.ctx.clock()
        with self.ctx.db.transaction() as s:
            _, e = get_environment(s, project, env)
            row = _secret(s, e, scope, name)
            if row is None or row.current_version is None:
                raise NotFound(f"secret {name} is not set in {_address(project, env, scope)}")
            previous = row.current_version
            row.current_version = None  # its versions stay: older releases may still use them
            row.updated_at = now
            row.updated_by = caller.principal
            s.flush()
            releases = self._rerelease(s, caller, project, e, scope, {"secrets": {name}})
            record_audit(
                s, caller, now, action="secret.unset", target=_address(project, env, scope) + f":{name}",
                project=project, detail={"name": name, "version": previous, "releases": releases},
            )  # fmt: skip
            return {"name": name, "releases": releases}

    def reveal_secret(
        self, caller: Caller, project: str, env: str, app: str | None, name: str
    ) -> dict[str, Any]:
        """The current value of one secret (this level only), for a caller allowed to see it. The audit
        row names the secret and version — never the value."""
        scope = _scope(app)
        now = self.ctx.clock()
        with self.ctx.db.transaction() as s:
            _, e = get_environment(s, project, env)
            row = _secret(s, e, scope, name)
            if row is None or row.current_version is None:
                raise NotFound(f"secret {name} is not set in {_address(project, env, scope)}")
            version = row.current_version
            value = self._value(s, row, version)
            record_audit(
                s, caller, now, action="secret.reveal", target=_address(project, env, scope) + f":{name}",
                project=project, detail={"name": name, "version": version},
            )  # fmt: skip
            return {"name": name, "version": version, "value": value}

    def rotate_key(self, caller: Caller) -> dict[str, Any]:
        """New current key; every secret version (and sealed column) re-encrypted in one transaction;
        then the old keys leave the keyring. Readers accept both keys until the last step."""
        box = self.box
        new_key = box.keys.begin_rotation()
        now = self.ctx.clock()
        count = 0
        with self.ctx.db.transaction() as s:
            for v in s.scalars(select(SecretVersion).order_by(SecretVersion.id)):
                if v.key_id == new_key:
                    continue
                aad = secret_aad(v.secret_id, v.version)
                v.key_id, v.ciphertext = box.encrypt(box.decrypt(v.key_id, v.ciphertext, aad), aad)
                count += 1
            for model, column in SEALED_COLUMNS:
                for obj in s.scalars(select(model)):
                    sealed = getattr(obj, column)
                    if sealed and SecretBox.sealed_key_id(sealed) != new_key:
                        setattr(obj, column, box.seal(box.open(sealed)))
                        count += 1
            s.flush()
            record_audit(s, caller, now, action="secret.rotate-key", target="secret-keys", project=None,
                         detail={"key": new_key, "reencrypted": count})  # fmt: skip
        retired = box.keys.retire({new_key})
        return {"key": new_key, "reencrypted": count, "retired": retired}

    # ---- shared
    def _value(self, s: Session, row: Secret, version: int) -> str:
        v = s.scalar(
            select(SecretVersion).where(SecretVersion.secret_id == row.id, SecretVersion.version == version)
        )
        assert v is not None
        return self.box.decrypt(v.key_id, v.ciphertext, secret_aad(row.id, version)).decode()

    def _rerelease(
        self,
        s: Session,
        caller: Caller,
        project: str,
        e: Environment,
        scope: str,
        changed: dict[str, set[str]],
    ) -> dict[str, int]:
        """A new release for every app of ``e`` (or only ``scope``) whose effective config changed."""
        query = select(App).where(App.environment_id == e.id, App.removing.is_(False))
        if scope:
            query = query.where(App.name == scope)
        apps = AppService(self.ctx)
        made: dict[str, int] = {}
        missing: list[FieldProblem] = []
        for a in s.scalars(query.order_by(App.name)).all():
            current = _release(s, a, a.desired_release)
            try:
                config = refreshed_config(
                    s, e, project, a.name, parse_score(current.score), current.config or {}, changed
                )
            except UserError as exc:
                missing += [FieldProblem(f"{a.name}.{p.path}", p.message) for p in exc.problems]
                continue
            if config == {"vars": {}, "secrets": {}, **(current.config or {})}:
                continue
            names = changed_names(current.config or {}, config)
            result = apps._new_release(
                s, caller, project, e, a, a.name, score=current.score, settings=current.settings,
                artifact=current.artifact, image=current.image, cause=config_cause(names),
                action="app.config", replicas=None, config=config,
            )  # fmt: skip
            made[a.name] = int(result["release"]["number"])
        if missing:
            raise Conflict(
                "this change would leave deployed apps without configuration they use; nothing was changed",
                problems=missing,
            )
        return made


def _scope(app: str | None) -> str:
    return check_label(app, "app") if app else ""


def _address(project: str, env: str, scope: str) -> str:
    return f"{project}/{env}/{scope}" if scope else f"{project}/{env}"


def _config_set(s: Session, e: Environment, scope: str) -> ConfigSet | None:
    return s.scalar(select(ConfigSet).where(ConfigSet.environment_id == e.id, ConfigSet.app == scope))


def _secret(s: Session, e: Environment, scope: str, name: str) -> Secret | None:
    return s.scalar(
        select(Secret).where(Secret.environment_id == e.id, Secret.app == scope, Secret.name == name)
    )


def _versions(s: Session, row: Secret) -> int:
    return int(s.scalar(select(func.count(SecretVersion.id)).where(SecretVersion.secret_id == row.id)) or 0)
