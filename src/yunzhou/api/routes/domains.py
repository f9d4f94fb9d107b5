"""Registered domains the platform watches for registration expiry (RDAP; platform admins)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel, ConfigDict, Field

from yunzhou.api.auth import caller_of, control_plane, operation
from yunzhou.domain.access import Permission
from yunzhou.services import Caller, ControlPlane
from yunzhou.services.watched_domains import DomainWatchService

router = APIRouter()
CP = Annotated[ControlPlane, Depends(control_plane)]
Who = Annotated[Caller, Depends(caller_of)]


class DomainAdd(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(description="A registered domain such as example.com (IDNs in their xn-- form)")


class WatchedDomain(BaseModel):
    name: str
    expires_at: str | None = Field(description="The registration's expiry per RDAP; null until looked up")
    checked_at: str | None = Field(description="The last lookup; null: not looked up yet")
    error: str | None = Field(description="Why the last lookup failed (the expiry before it is kept)")
    created_at: str | None
    created_by: str


class WatchedDomains(BaseModel):
    items: list[WatchedDomain]


@operation(
    router, "GET", "/domains", name="domain.list", permission=Permission.PLATFORM_ADMIN,
    response_model=WatchedDomains,
)  # fmt: skip
def list_domains(cp: CP, caller: Who) -> Any:
    return {"items": DomainWatchService(cp.ctx).list_all(caller)}


@operation(
    router, "POST", "/domains", name="domain.add", permission=Permission.PLATFORM_ADMIN, status_code=201,
    response_model=WatchedDomain,
)  # fmt: skip
def add_domain(body: DomainAdd, cp: CP, caller: Who) -> Any:
    """Watch a domain; the server looks its expiry up by RDAP within seconds, then every few hours."""
    return DomainWatchService(cp.ctx).add(caller, body.name)


@operation(
    router, "DELETE", "/domains/{name}", name="domain.remove", permission=Permission.PLATFORM_ADMIN,
    status_code=204,
)  # fmt: skip
def remove_domain(name: str, cp: CP, caller: Who) -> Response:
    DomainWatchService(cp.ctx).remove(caller, name)
    return Response(status_code=204)
