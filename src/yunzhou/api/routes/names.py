"""Names (docs/names.md): DNS providers (admins), an environment's naming rule and TLS mode, the records the
platform owns, and apps' custom domains."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from yunzhou.api import schemas
from yunzhou.api.auth import caller_of, control_plane, operation
from yunzhou.domain.access import Permission
from yunzhou.services import Caller, ControlPlane

router = APIRouter()
CP = Annotated[ControlPlane, Depends(control_plane)]
Who = Annotated[Caller, Depends(caller_of)]
Host = Annotated[str, Field(min_length=1, max_length=253)]


class DnsProviderCreate(schemas.Body):
    name: schemas.Label
    kind: str = Field(description="rfc2136, powerdns or local")
    settings: dict[str, Any] = Field(
        description="zones (required) and per kind: rfc2136 server, port, key_name, key_algorithm; "
        "powerdns api_url, server_id"
    )
    secret: str | None = Field(
        default=None, description="rfc2136: the TSIG key (base64); powerdns: the API key"
    )


class DnsProvider(BaseModel):
    name: str
    kind: str
    settings: dict[str, Any]
    has_secret: bool
    environments: list[str]
    created_at: str
    created_by: str
    version: int


class DnsProviders(BaseModel):
    items: list[DnsProvider]


class DnsZone(BaseModel):
    name: str = Field(description="The provider's name, for an environment's names.provider")
    kind: str
    zones: list[str]


class DnsZones(BaseModel):
    items: list[DnsZone]


class DnsRecord(BaseModel):
    provider: str
    zone: str
    name: str
    type: str
    values: list[str]
    ttl: int
    owner: str = Field(description="project/env/app the record is for (kept after the app is gone)")
    state: str = Field(description="pending, synced, conflict, error or retained")
    message: str | None
    updated_at: str


class DnsRecords(BaseModel):
    items: list[DnsRecord]


class EnvironmentNames(schemas.Body):
    names: dict[str, Any] | None = Field(
        default=None,
        description="provider, zone, rule ({app}.{env}.{project}.{zone}), policy (sync | upsert-only), ttl, "
        "addresses or cname; null: no records",
    )
    tls: str | None = Field(default=None, description="off, local, acme, issuer:NAME or cluster-issuer:NAME")
    version: schemas.Count | None = None


class DomainCreate(schemas.Body):
    host: Host


class Challenge(BaseModel):
    name: str
    type: str
    value: str


class CustomDomain(BaseModel):
    host: str
    app: str
    state: str = Field(description="pending (waiting for its TXT record) or verified (routed)")
    challenge: Challenge
    message: str | None
    created_at: str
    checked_at: str | None
    verified_at: str | None


class CustomDomains(BaseModel):
    items: list[CustomDomain]


@operation(
    router, "GET", "/dns/providers", name="dns.providers", permission=Permission.PLATFORM_ADMIN,
    response_model=DnsProviders,
)  # fmt: skip
def list_providers(cp: CP) -> Any:
    return {"items": cp.names.list_providers()}


@operation(
    router, "GET", "/dns/zones", name="dns.zones", permission=Permission.AUTHENTICATED,
    response_model=DnsZones,
)  # fmt: skip
def list_zones(cp: CP) -> Any:
    return {"items": cp.names.zones()}


@operation(
    router, "POST", "/dns/providers", name="dns.provider.add", permission=Permission.PLATFORM_ADMIN,
    status_code=201, response_model=DnsProvider,
)  # fmt: skip
def add_provider(body: DnsProviderCreate, cp: CP, caller: Who) -> Any:
    return cp.names.add_provider(caller, body.name, body.kind, body.settings, body.secret)


@operation(
    router, "DELETE", "/dns/providers/{name}", name="dns.provider.remove",
    permission=Permission.PLATFORM_ADMIN, status_code=204,
)  # fmt: skip
def remove_provider(name: schemas.Label, cp: CP, caller: Who) -> None:
    cp.names.remove_provider(caller, name)


@operation(
    router, "GET", "/dns/records", name="dns.records", permission=Permission.AUTHENTICATED,
    response_model=DnsRecords,
)  # fmt: skip
def list_records(cp: CP, caller: Who, project: Annotated[schemas.Label | None, Query()] = None) -> Any:
    return {"items": cp.names.records(caller, project)}


@operation(
    router, "PATCH", "/projects/{project}/environments/{env}/names", name="env.names",
    permission=Permission.ENV_WRITE, response_model=schemas.Environment,
)  # fmt: skip
def set_names(project: schemas.Label, env: schemas.Label, body: EnvironmentNames, cp: CP, caller: Who) -> Any:
    given = body.model_fields_set
    return cp.names.set_environment(
        caller, project, env,
        names=body.names if "names" in given else ...,
        tls=body.tls if "tls" in given else ...,
        version=body.version,
    )  # fmt: skip


_APP = "/projects/{project}/environments/{env}/apps/{app}/domains"


@operation(
    router, "GET", _APP, name="custom_domain.list", permission=Permission.APP_READ,
    response_model=CustomDomains,
)  # fmt: skip
def list_domains(project: schemas.Label, env: schemas.Label, app: schemas.Label, cp: CP) -> Any:
    return {"items": cp.custom_domains.list(project, env, app)}


@operation(
    router, "POST", _APP, name="custom_domain.add", permission=Permission.APP_DEPLOY, status_code=201,
    response_model=CustomDomain,
)  # fmt: skip
def add_domain(
    project: schemas.Label, env: schemas.Label, app: schemas.Label, body: DomainCreate, cp: CP, caller: Who
) -> Any:
    return cp.custom_domains.add(caller, project, env, app, body.host)


@operation(
    router, "POST", _APP + "/{host}/verify", name="custom_domain.verify", permission=Permission.APP_DEPLOY,
    response_model=CustomDomain,
)  # fmt: skip
def verify_domain(
    project: schemas.Label, env: schemas.Label, app: schemas.Label, host: Host, cp: CP, caller: Who
) -> Any:
    return cp.custom_domains.verify(caller, project, env, app, host)


@operation(
    router,
    "DELETE",
    _APP + "/{host}",
    name="custom_domain.remove",
    permission=Permission.APP_DEPLOY,
    status_code=204,
)
def remove_domain(
    project: schemas.Label, env: schemas.Label, app: schemas.Label, host: Host, cp: CP, caller: Who
) -> None:
    cp.custom_domains.remove(caller, project, env, app, host)
