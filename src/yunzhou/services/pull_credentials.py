"""Each project's image pull credential for clusters: what the ``yunzhou-registry-pull`` Secret in its
namespaces carries, so a cluster's nodes can pull the project's images and nothing else.

It is a platform API token with the ``pull`` scope only, for the principal ``system:pull:<project>``,
which is a ``viewer`` member of the project. The pull scope opens one operation, the registry's token
endpoint (``Permission.REGISTRY_TOKEN``); there the viewer role gets ``pull`` on the project's
repositories and nothing on another project's (``registry/tokens.py``). The token's secret is kept sealed
because every apply of the Secret needs it. Revoking the token (``yunzhou token revoke``) rotates it: the
next apply makes a new one and updates the Secrets.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from yunzhou.domain.access import Role, Scope
from yunzhou.services.base import ServiceContext, get_project
from yunzhou.services.clusters import Sealer
from yunzhou.services.context import SYSTEM, record_audit
from yunzhou.services.tokens import _new_token, hash_secret
from yunzhou.store.models import Member, PullCredential, Token

PRINCIPAL = "system:pull:{project}"


@dataclass(frozen=True)
class PullLogin:
    username: str
    password: str


def pull_principal(project: str) -> str:
    return PRINCIPAL.format(project=project)


class PullCredentialService:
    def __init__(self, ctx: ServiceContext, sealer: Sealer) -> None:
        self.ctx = ctx
        self.sealer = sealer
        self._lock = threading.Lock()  # one creation at a time in this process; the unique key across them

    def ensure(self, project: str) -> PullLogin:
        """The project's working pull credential, made (or remade, after a revocation) when needed."""
        found = self._working(project)
        if found is not None:
            return found
        with self._lock:
            found = self._working(project)
            if found is not None:
                return found
            try:
                return self._create(project)
            except IntegrityError:  # another process made it at the same moment: use theirs
                found = self._working(project)
                if found is None:
                    raise
                return found

    def _working(self, project: str) -> PullLogin | None:
        with self.ctx.db.transaction() as s:
            p = get_project(s, project)
            row = s.scalar(select(PullCredential).where(PullCredential.project_id == p.id))
            if row is None:
                return None
            token = s.get(Token, row.token_id)
            if token is None or token.revoked_at is not None:  # revoked: make a new one
                return None
            _ensure_member(s, p.id, token.principal)  # an owner removed it: cluster pulls need it
            return PullLogin(row.username, self.sealer.open(row.secret_ciphertext).decode())

    def _create(self, project: str) -> PullLogin:
        now = self.ctx.clock()
        token_id, secret = _new_token()
        principal = pull_principal(project)
        # a docker config's "auth" is username:password, so the username has no ':'
        username = f"pull-{project}"
        with self.ctx.db.transaction() as s:
            p = get_project(s, project)
            s.add(
                Token(
                    id=token_id,
                    name=f"image pulls of project {project} on clusters",
                    principal=principal,
                    secret_hash=hash_secret(secret),
                    scopes=[Scope.PULL.value],
                    created_at=now,
                    created_by=SYSTEM.principal,
                    expires_at=None,
                )
            )
            _ensure_member(s, p.id, principal)
            row = s.scalar(select(PullCredential).where(PullCredential.project_id == p.id))
            sealed = self.sealer.seal(secret.encode())
            if row is None:
                row = PullCredential(project_id=p.id)
                s.add(row)
            row.token_id, row.username = token_id, username  # a first one, or the revoked one's successor
            row.secret_ciphertext, row.created_at = sealed, now
            record_audit(
                s, SYSTEM, now, action="pull-credential.create", target=token_id, project=project,
                detail={"principal": principal, "scopes": [Scope.PULL.value]},
            )  # fmt: skip
        return PullLogin(username, secret)


def _ensure_member(s: Session, project_id: int, principal: str) -> None:
    member = s.scalar(select(Member).where(Member.project_id == project_id, Member.principal == principal))
    if member is None:
        s.add(Member(project_id=project_id, principal=principal, role=Role.VIEWER.value))
    elif member.role != Role.VIEWER.value:  # pull needs viewer; more would not be used, but is not kept
        member.role = Role.VIEWER.value
