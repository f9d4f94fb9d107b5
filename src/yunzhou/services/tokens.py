"""API tokens: stored hashed, scoped, expiring, revocable; and the bootstrap admin token.

A token created with a token is its child (``parent_id``): it gets at most its creator's scopes and
expires no later; revoking a token revokes its descendants, and a token works only while every token
above it is neither revoked nor expired (checked at authentication, so expiry needs no event)."""

from __future__ import annotations

import hashlib
import os
import secrets
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Select, bindparam, literal, select, update
from sqlalchemy.orm import Session

from yunzhou.domain.access import Role, Scope, parse_scopes, scope_allows
from yunzhou.domain.errors import FieldProblem, Forbidden, NotFound, Unauthenticated, invalid
from yunzhou.services.base import ServiceContext
from yunzhou.services.context import Caller, record_audit
from yunzhou.services.views import token_view
from yunzhou.store.models import Member, Token

TOKEN_PREFIX = "yzt_"  # noqa: S105 - a prefix, not a secret
ADMIN_PRINCIPAL = "admin"
ADMIN_TOKEN_FILE = "admin-token"  # noqa: S105 - a file name
_MAX_EXPIRY = timedelta(days=3650)
_LAST_USED_GRANULARITY = timedelta(minutes=1)
_MIN_EXPIRY_SECONDS = 60
_MAX_CHAIN = 100  # tokens in a chain, its creator's creators included: deeper ones are never created


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
            if token.last_used_at is None or now - token.last_used_at > _LAST_USED_GRANULARITY:
                token.last_used_at = now
            return _caller_of(s, token, now, request_id)

    def caller_by_id(self, token_id: str, request_id: str) -> Caller:
        """Who ``token_id`` is now (its scopes, its principal's roles today) — for work done later on a
        caller's behalf, such as a build's release; Unauthenticated once it is revoked or expired."""
        with self.ctx.db.transaction() as s:
            token = s.get(Token, token_id)
            if token is None:
                raise Unauthenticated(f"token {token_id} no longer exists")
            return _caller_of(s, token, self.ctx.clock(), request_id)

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
        _check_scopes(caller.scopes, wanted)
        if expires_in_seconds is not None and not (
            _MIN_EXPIRY_SECONDS <= expires_in_seconds <= _MAX_EXPIRY.total_seconds()
        ):
            raise invalid(
                "expires_in_seconds", "must be between 60 and 315360000 (10 years), or null for never"
            )
        now = self.ctx.clock()
        token_id, secret = _new_token()
        with self.ctx.db.transaction() as s:
            if caller.token_id is not None:
                chain = _ancestors(s, caller.token_id)
                _check_depth(chain)
                _check_expiry(chain, now, expires_in_seconds)
            token = Token(
                id=token_id,
                name=name,
                principal=target,
                secret_hash=hash_secret(secret),
                scopes=sorted(s.value for s in wanted),
                created_at=now,
                created_by=caller.principal,
                expires_at=now + timedelta(seconds=expires_in_seconds) if expires_in_seconds else None,
                parent_id=caller.token_id,
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
            descendants = _descendants(s, token_id)
            if descendants:  # authentication refuses them anyway; this keeps `token list` true
                s.execute(
                    update(Token)
                    .where(Token.id.in_(descendants), Token.revoked_at.is_(None))
                    .values(revoked_at=now)
                )
            detail = {"with_descendants": sorted(descendants)} if descendants else None
            record_audit(s, caller, now, action="token.revoke", target=token_id, project=None, detail=detail)

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


def _caller_of(s: Session, token: Token, now: datetime, request_id: str) -> Caller:
    _check_lineage(token, _ancestors(s, token.parent_id), now)
    roles = {
        m.project.name: m.role for m in s.scalars(select(Member).where(Member.principal == token.principal))
    }
    return Caller(
        principal=token.principal,
        token_id=token.id,
        scopes=parse_scopes(token.scopes),
        request_id=request_id,
        roles={k: Role(v) for k, v in roles.items()},
    )


def _check_lineage(token: Token, ancestors: list[Token], now: datetime) -> None:
    """Refuse ``token`` when it or any token above it is revoked or expired; the topmost reason wins
    (revoking a parent also marks its children revoked, and the message should name the parent)."""
    for t in [*reversed(ancestors), token]:
        via = "" if t is token else f" with {t.id}, the token it was created with (directly or not)"
        if t.revoked_at is not None:
            raise Unauthenticated(f"token {token.id} was revoked{via}")
        if t.expires_at is not None and t.expires_at <= now:
            raise Unauthenticated(f"token {token.id} expired at {t.expires_at.isoformat()}{via}")


def _check_scopes(have: frozenset[Scope], wanted: frozenset[Scope]) -> None:
    """A token grants at most what its creator has (admin implies write implies read)."""
    extra = sorted(w.value for w in wanted if not scope_allows(have, w))
    if extra:
        allowed = sorted(s.value for s in Scope if scope_allows(have, s))
        message = (
            f"a token cannot grant more than the token creating it has; not yours: {', '.join(extra)}"
            f" (allowed: {', '.join(allowed)})"
        )
        raise Forbidden(message, problems=[FieldProblem("scopes", message)])


def _check_depth(chain: list[Token]) -> None:
    """Authentication and revocation walk at most _MAX_CHAIN tokens: a token further down would outlive
    the revocation of the tokens above it, so it is never created."""
    if len(chain) >= _MAX_CHAIN:
        raise Forbidden(
            f"this token is the last of a chain of {_MAX_CHAIN} tokens, each created with the one above;"
            " it cannot create more: create the token with one nearer the top (e.g. from `yunzhou login`)"
        )


def _check_expiry(chain: list[Token], now: datetime, expires_in_seconds: int | None) -> None:
    """A token expires no later than the token creating it (and every token above that)."""
    limits = [t.expires_at for t in chain if t.expires_at is not None]
    if not limits:
        return
    limit = min(limits)
    seconds = int((limit - now).total_seconds())
    if expires_in_seconds is not None and expires_in_seconds <= seconds:
        return
    if seconds < _MIN_EXPIRY_SECONDS:
        raise invalid(
            "expires_in_seconds",
            f"the token creating it expires at {limit.isoformat()}, in under a minute, and a token "
            "cannot outlive its creator; create it with a longer-lived token",
        )
    raise invalid(
        "expires_in_seconds",
        f"must be at most {seconds} seconds (the token creating it expires at {limit.isoformat()} and a"
        " token cannot outlive its creator); null (never) needs a creator that never expires",
    )


def _ancestors_query() -> Select[Token]:
    chain = (
        select(Token.id, Token.parent_id, literal(0).label("depth"))
        .where(Token.id == bindparam("token_id"))
        .cte("chain", recursive=True)
    )
    chain = chain.union_all(
        select(Token.id, Token.parent_id, chain.c.depth + 1).where(
            Token.id == chain.c.parent_id, chain.c.depth < _MAX_CHAIN
        )
    )
    return select(Token).join(chain, Token.id == chain.c.id).order_by(chain.c.depth)


def _descendants_query() -> Select[tuple[str]]:
    below = (
        select(Token.id, literal(1).label("depth"))
        .where(Token.parent_id == bindparam("token_id"))
        .cte("below", recursive=True)
    )
    below = below.union_all(
        select(Token.id, below.c.depth + 1).where(Token.parent_id == below.c.id, below.c.depth < _MAX_CHAIN)
    )
    return select(below.c.id)


# built once: authentication runs the first on every request of a token that has a parent
_ANCESTORS = _ancestors_query()
_DESCENDANTS = _descendants_query()


def _ancestors(s: Session, token_id: str | None) -> list[Token]:
    """``token_id``'s token and every token above it, nearest first (one recursive query)."""
    return [] if token_id is None else list(s.scalars(_ANCESTORS, {"token_id": token_id}))


def _descendants(s: Session, token_id: str) -> list[str]:
    """The ids of every token created, directly or not, with ``token_id``."""
    return list(s.scalars(_DESCENDANTS, {"token_id": token_id}))
