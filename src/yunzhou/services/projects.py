"""Projects, their members, and their environments."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from yunzhou.domain.access import Role, parse_role
from yunzhou.domain.errors import Conflict, FieldProblem, NotFound, invalid
from yunzhou.domain.names import check_label
from yunzhou.services.base import ServiceContext, check_version, get_environment, get_project
from yunzhou.services.context import Caller, record_audit
from yunzhou.services.views import environment_view, project_view
from yunzhou.store.models import App, Cluster, Environment, Member, Project

TARGET_LOCAL = "local"
_PRINCIPAL_MAX = 100


class ProjectService:
    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx

    def create(self, caller: Caller, name: str, display_name: str | None = None) -> dict[str, Any]:
        check_label(name, "name")
        if display_name is not None and len(display_name) > 200:
            raise invalid("display_name", "must be at most 200 characters")
        now = self.ctx.clock()
        with self.ctx.db.transaction() as s:
            if s.scalar(select(Project.id).where(Project.name == name)) is not None:
                raise Conflict(f"project {name!r} already exists")
            project = Project(name=name, display_name=display_name or name, created_at=now)
            project.members.append(Member(principal=caller.principal, role=Role.OWNER.value))
            s.add(project)
            try:
                s.flush()
            except IntegrityError as exc:  # lost a race with a concurrent create of the same name
                raise Conflict(f"project {name!r} already exists") from exc
            record_audit(s, caller, now, action="project.create", target=name, project=name)
            return project_view(project)

    def list_visible(self, caller: Caller) -> list[dict[str, Any]]:
        with self.ctx.db.transaction() as s:
            q = select(Project).order_by(Project.name)
            if not caller.is_admin:
                q = q.join(Member).where(Member.principal == caller.principal)
            return [project_view(p) for p in s.scalars(q)]

    def get(self, name: str) -> dict[str, Any]:
        with self.ctx.db.transaction() as s:
            return project_view(get_project(s, name))

    def delete(self, caller: Caller, name: str, version: int | None) -> None:
        now = self.ctx.clock()
        with self.ctx.db.transaction() as s:
            project = get_project(s, name)
            check_version(version, project.version, f"project {name!r}")
            envs = s.scalar(
                select(func.count()).select_from(Environment).where(Environment.project_id == project.id)
            )
            if envs:
                raise Conflict(f"project {name!r} still has {envs} environment(s); delete them first")
            s.delete(project)
            record_audit(s, caller, now, action="project.delete", target=name, project=name)

    # members
    def members(self, name: str) -> list[dict[str, Any]]:
        with self.ctx.db.transaction() as s:
            project = get_project(s, name)
            rows = s.scalars(select(Member).where(Member.project_id == project.id).order_by(Member.principal))
            return [{"principal": m.principal, "role": m.role} for m in rows]

    def set_member(self, caller: Caller, name: str, principal: str, role: str) -> dict[str, Any]:
        parsed = parse_role(role)
        if not principal or len(principal) > _PRINCIPAL_MAX or any(c.isspace() for c in principal):
            raise invalid("principal", f"must be 1-{_PRINCIPAL_MAX} characters without spaces")
        now = self.ctx.clock()
        with self.ctx.db.transaction() as s:
            project = get_project(s, name)
            member = s.scalar(
                select(Member).where(Member.project_id == project.id, Member.principal == principal)
            )
            before = member.role if member else None
            if member is None:
                s.add(Member(project_id=project.id, principal=principal, role=parsed.value))
            else:
                member.role = parsed.value
            s.flush()
            self._keep_an_owner(s, project.id, name)
            record_audit(
                s,
                caller,
                now,
                action="member.set",
                target=f"{name}:{principal}",
                project=name,
                detail={"role": parsed.value, "previous": before},
            )
            return {"principal": principal, "role": parsed.value}

    def remove_member(self, caller: Caller, name: str, principal: str) -> None:
        now = self.ctx.clock()
        with self.ctx.db.transaction() as s:
            project = get_project(s, name)
            member = s.scalar(
                select(Member).where(Member.project_id == project.id, Member.principal == principal)
            )
            if member is None:
                raise NotFound(f"{principal!r} is not a member of project {name!r}")
            s.delete(member)
            s.flush()
            self._keep_an_owner(s, project.id, name)
            record_audit(s, caller, now, action="member.remove", target=f"{name}:{principal}", project=name)

    @staticmethod
    def _keep_an_owner(s: Session, project_id: int, name: str) -> None:
        owners = s.scalar(
            select(func.count())
            .select_from(Member)
            .where(Member.project_id == project_id, Member.role == "owner")
        )
        if not owners:
            raise Conflict(f"project {name!r} must keep at least one owner")

    # environments
    def create_environment(
        self,
        caller: Caller,
        project: str,
        name: str,
        target: str,
        namespace: str | None,
        *,
        require_signed_images: bool = False,
        egress: bool = True,
    ) -> dict[str, Any]:
        """``require_signed_images``: only images signed with the platform key are released here;
        ``egress``: its instances may reach the outside (docs/images.md#policies-per-environment)."""
        check_label(name, "name")
        cluster = target.removeprefix("cluster:") if target.startswith("cluster:") else None
        if target != TARGET_LOCAL and cluster is None:
            raise invalid("target", f"{target!r} is not a target; allowed: local, cluster:NAME")
        defaulted = namespace is None and cluster is not None
        if namespace is not None:
            check_label(namespace, "namespace")
        elif cluster is not None:
            namespace = default_namespace(project, name)
        if cluster is not None and namespace is not None:
            _check_namespace_owned(caller, project, namespace, defaulted)
        now = self.ctx.clock()
        with self.ctx.db.transaction() as s:
            if cluster is not None and s.scalar(select(Cluster.id).where(Cluster.name == cluster)) is None:
                raise invalid("target", f"cluster {cluster!r} is not registered; see `yunzhou cluster list`")
            p = get_project(s, project)
            exists = s.scalar(
                select(Environment.id).where(Environment.project_id == p.id, Environment.name == name)
            )
            if exists is not None:
                raise Conflict(f"environment {project}/{name} already exists")
            if cluster is not None and namespace is not None:
                _check_namespace_free(s, caller, cluster, namespace, defaulted)
            env = Environment(
                project_id=p.id, name=name, target=target, namespace=namespace, created_at=now,
                require_signed_images=require_signed_images, egress=egress,
            )  # fmt: skip
            s.add(env)
            try:
                s.flush()
            except IntegrityError as exc:  # lost a race with a concurrent create (name or namespace)
                if cluster is not None and _is_namespace_clash(exc):
                    raise _namespace_taken(cluster, namespace or "", None, defaulted) from exc
                raise Conflict(f"environment {project}/{name} already exists") from exc
            record_audit(
                s,
                caller,
                now,
                action="env.create",
                target=f"{project}/{name}",
                project=project,
                detail={"target": target, "require_signed_images": require_signed_images, "egress": egress},
            )
            return environment_view(env, project)

    def list_environments(self, project: str) -> list[dict[str, Any]]:
        with self.ctx.db.transaction() as s:
            p = get_project(s, project)
            rows = s.scalars(
                select(Environment).where(Environment.project_id == p.id).order_by(Environment.name)
            )
            return [environment_view(e, project) for e in rows]

    def get_environment(self, project: str, env: str) -> dict[str, Any]:
        with self.ctx.db.transaction() as s:
            _, e = get_environment(s, project, env)
            return environment_view(e, project)

    def update_environment(
        self,
        caller: Caller,
        project: str,
        env: str,
        *,
        require_signed_images: bool | None = None,
        egress: bool | None = None,
        version: int | None = None,
    ) -> dict[str, Any]:
        """Change an environment's policies (None: unchanged). Signed images are checked at each release
        made after the change; egress applies to instances started after it (the next rollout)."""
        if require_signed_images is None and egress is None:
            raise invalid("require_signed_images", "give require_signed_images and/or egress to change")
        now = self.ctx.clock()
        with self.ctx.db.transaction() as s:
            _, e = get_environment(s, project, env)
            check_version(version, e.version, f"environment {project}/{env}")
            changed = {}
            if require_signed_images is not None and require_signed_images != e.require_signed_images:
                e.require_signed_images = changed["require_signed_images"] = require_signed_images
            if egress is not None and egress != e.egress:
                e.egress = changed["egress"] = egress
            if changed:
                record_audit(
                    s, caller, now, action="env.update", target=f"{project}/{env}", project=project,
                    detail=changed,
                )  # fmt: skip
                s.flush()
            return environment_view(e, project)

    def delete_environment(self, caller: Caller, project: str, env: str, version: int | None) -> None:
        now = self.ctx.clock()
        with self.ctx.db.transaction() as s:
            _, e = get_environment(s, project, env)
            check_version(version, e.version, f"environment {project}/{env}")
            apps = s.scalar(select(func.count()).select_from(App).where(App.environment_id == e.id))
            if apps:
                raise Conflict(f"environment {project}/{env} still has {apps} app(s); remove them first")
            s.delete(e)
            record_audit(s, caller, now, action="env.delete", target=f"{project}/{env}", project=project)


def default_namespace(project: str, env: str) -> str:
    """``{project}-{env}``, cut to a DNS label. Not one-to-one (shop/prod-eu and shop-prod/eu give the
    same): a collision is refused at creation, naming the namespace, and --namespace chooses another."""
    return f"{project}-{env}"[:63].rstrip("-")


def _check_namespace_owned(caller: Caller, project: str, namespace: str, defaulted: bool) -> None:
    """A project's namespaces are ``{project}`` and ``{project}-…``; one elsewhere (another team's, an
    ingress controller's whose pods other apps' NetworkPolicies admit, ``default``) only by a platform
    admin. ``kube-*`` are the cluster's own, never an environment's (project ``kube``, env ``system``
    would default to ``kube-system``)."""
    how = "the default, {project}-{env}" if defaulted else "--namespace"
    if namespace.startswith("kube-"):
        message = (
            f"namespace {namespace!r} ({how}) is one of the cluster's own (kube-*), never an environment's;"
            f" choose another namespace (--namespace), e.g. {project}"
        )
        raise invalid("namespace", message)
    if caller.is_admin or namespace == project or namespace.startswith(f"{project}-"):
        return
    message = (
        f"namespace {namespace!r} ({how}) is not one of project {project!r}'s: they are {project!r} and"
        f" {project}-…; a namespace outside them may hold others' workloads (another team's, an ingress"
        " controller's that other apps admit), so only a platform admin may place an environment there"
    )
    raise invalid("namespace", message)


def _check_namespace_free(s: Session, caller: Caller, cluster: str, namespace: str, defaulted: bool) -> None:
    row = s.execute(
        select(Project.name, Environment.name)
        .join(Project, Project.id == Environment.project_id)
        .where(Environment.target == f"cluster:{cluster}", Environment.namespace == namespace)
    ).first()
    if row is None:
        return
    other_project, other_env = row
    # non-members of that project learn only that the namespace is taken, not by whom
    visible = caller.is_admin or other_project in caller.roles
    suggestion = _free_namespace(s, cluster, namespace)
    raise _namespace_taken(
        cluster, namespace, f"{other_project}/{other_env}" if visible else None, defaulted, suggestion
    )


def _free_namespace(s: Session, cluster: str, namespace: str) -> str | None:
    used = set(
        s.scalars(
            select(Environment.namespace).where(
                Environment.target == f"cluster:{cluster}", Environment.namespace.like(f"{namespace[:58]}%")
            )
        )
    )
    for n in range(2, 100):
        candidate = f"{namespace[: 62 - len(str(n))].rstrip('-')}-{n}"
        if candidate not in used:
            return candidate
    return None


def _is_namespace_clash(exc: IntegrityError) -> bool:
    text = str(exc.orig)  # PostgreSQL names the index; SQLite names its columns
    return (
        "uq_environments_cluster_namespace" in text or "environments.target, environments.namespace" in text
    )


def _namespace_taken(
    cluster: str, namespace: str, owner: str | None, defaulted: bool, suggestion: str | None = None
) -> Conflict:
    by = f"environment {owner}" if owner else "another project"
    default = " (the default, {project}-{env})" if defaulted else ""
    instead = f", e.g. {suggestion}" if suggestion else ""
    message = (
        f"namespace {namespace!r}{default} on cluster {cluster!r} is already used by {by}; two environments"
        f" in one namespace would overwrite and prune each other's objects: choose another namespace"
        f" (--namespace){instead}"
    )
    return Conflict(message, problems=[FieldProblem("namespace", message)])
