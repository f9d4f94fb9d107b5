"""API tokens: stored hashed, scoped, expiring, revocable; and the bootstrap admin token."""

from __future__ import annotations

import hashlib
import os
import secrets
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from yunzhou.domain.access import Role, Scope, parse_scopes
from yunzhou.domain.errors import Forbidden, NotFound, Unauthenticated, invalid
from yunzhou.services.base import ServiceContext
from yunzhou.services.context import Caller, record_audit
from yunzhou.services.views import token_view
from yunzhou.store.models import Member, Token

TOKEN_PREFIX = "yzt_"  # noqa: S105 - a prefix, not a secret
ADMIN_PRINCIPAL = "admin"
ADMIN_TOKEN_FILE = "admin-token"  # noqa: S105 - a file name
_MAX_EXPIRY = timedelta(days=3650)
_LAST_USED_GRANULARITY = timedelta(minutes=1)


def hash_secret(token: str) -> str:
    # Tokens carry 256 random bits, so a fast hash is enough: there is nothing to brute-force.
    return hashlib.sha256(token.encode()).hexdigest()


def _new_token() -> tuple[str, str]:
    token_id = "tok_" + secrets.token_hex(6)
    return token_id, TOKEN_PREFIX + secrets.token_urlsafe(32)


class TokenService:
    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx

    def authenticate(self, secret: str, request_id: str) -> Caller:
        if not secret.startswith(TOKEN_PREFIX):
            raise Unauthenticated("the token is not a Yunzhou token (it should start with yzt_)")
        now = self.ctx.clock()
        with self.ctx.db.transaction() as s:
            token = s.scalar(select(Token).where(Token.secret_hash == hash_secret(secret)))
            if token is None:
                raise Unauthenticated("unknown token")
            if token.revoked_at is not None:
                raise Unauthenticated(f"token {token.id} was revoked")
            if token.expires_at is not None and token.expires_at <= now:
                raise Unauthenticated(f"token {token.id} expired at {token.expires_at.isoformat()}")
            if token.last_used_at is None or now - token.last_used_at > _LAST_USED_GRANULARITY:
                token.last_used_at = now
            roles = {
                m.project.name: m.role
                for m in s.scalars(select(Member).where(Member.principal == token.principal))
            }
            return Caller(
                principal=token.principal,
                token_id=token.id,
                scopes=parse_scopes(token.scopes),
                request_id=request_id,
                roles={k: Role(v) for k, v in roles.items()},
            )

    def create(
        self,
        caller: Caller,
        name: str,
        scopes: object,
        expires_in_seconds: int | None,
        principal: str | None = None,
    ) -> dict[str, Any]:
        if not name or len(name) > 100:
            raise invalid("name", "must be 1-100 characters")
        wanted = parse_scopes(scopes)
        target = principal or caller.principal
        if target != caller.principal and not caller.is_admin:
            raise Forbidden("only an admin may create tokens for another principal")
        if not caller.is_admin and not wanted <= caller.scopes | _implied(caller.scopes):
            extra = ", ".join(sorted(s.value for s in wanted - caller.scopes))
            raise Forbidden(f"a token cannot grant more than its creator has; not yours: {extra}")
        if expires_in_seconds is not None and not 60 <= expires_in_seconds <= _MAX_EXPIRY.total_seconds():
            raise invalid(
                "expires_in_seconds", "must be between 60 and 315360000 (10 years), or null for never"
            )
        now = self.ctx.clock()
        token_id, secret = _new_token()
        with self.ctx.db.transaction() as s:
            token = Token(
                id=token_id,
                name=name,
                principal=target,
                secret_hash=hash_secret(secret),
                scopes=sorted(s.value for s in wanted),
                created_at=now,
                created_by=caller.principal,
                expires_at=now + timedelta(seconds=expires_in_seconds) if expires_in_seconds else None,
            )
            s.add(token)
            record_audit(
                s,
                caller,
                now,
                action="token.create",
                target=token_id,
                project=None,
                detail={"principal": target, "scopes": token.scopes, "name": name},
            )
            return token_view(token) | {"token": secret}

    def list_tokens(self, caller: Caller) -> list[dict[str, Any]]:
        with self.ctx.db.transaction() as s:
            q = select(Token).order_by(Token.created_at)
            if not caller.is_admin:
                q = q.where(Token.principal == caller.principal)
            return [token_view(t) for t in s.scalars(q)]

    def revoke(self, caller: Caller, token_id: str) -> None:
        now = self.ctx.clock()
        with self.ctx.db.transaction() as s:
            token = s.get(Token, token_id)
            if token is None or (token.principal != caller.principal and not caller.is_admin):
                raise NotFound(f"token {token_id} not found")
            if token.revoked_at is None:
                token.revoked_at = now
            record_audit(s, caller, now, action="token.revoke", target=token_id, project=None)

    def ensure_admin_token(self, data_dir: Path) -> Path:
        """On first start: create the admin token and write it 0600 to the data dir. Never logged.
        A file whose token no longer works (e.g. a new database) is replaced."""
        path = data_dir / ADMIN_TOKEN_FILE
        if path.exists():
            existing = path.read_text().strip()
            with self.ctx.db.transaction() as s:
                ok = s.scalar(
                    select(Token.id).where(
                        Token.secret_hash == hash_secret(existing), Token.revoked_at.is_(None)
                    )
                )
            if ok:
                os.chmod(path, 0o600)
                return path
        now = self.ctx.clock()
        token_id, secret = _new_token()
        with self.ctx.db.transaction() as s:
            s.add(
                Token(
                    id=token_id,
                    name="bootstrap admin",
                    principal=ADMIN_PRINCIPAL,
                    secret_hash=hash_secret(secret),
                    scopes=[Scope.ADMIN.value, Scope.READ.value, Scope.WRITE.value],
                    created_at=now,
                    created_by="system",
                    expires_at=None,
                )
            )
            tmp = path.with_suffix(".tmp")
            tmp.unlink(missing_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(secret + "\n")
            os.replace(tmp, path)
        return path


def _implied(scopes: frozenset[Scope]) -> frozenset[Scope]:
    return frozenset({Scope.READ}) if Scope.WRITE in scopes else frozenset()
