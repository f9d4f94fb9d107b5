"""Config variables and secrets of an environment (or, with ``?app=``, of one app in it)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query

from yunzhou.api import schemas
from yunzhou.api.auth import caller_of, control_plane, operation
from yunzhou.domain.access import Permission
from yunzhou.domain.config import KEY_RE, KEY_RULE
from yunzhou.services import Caller, ControlPlane

router = APIRouter()
CP = Annotated[ControlPlane, Depends(control_plane)]
Who = Annotated[Caller, Depends(caller_of)]
SecretName = Annotated[str, Path(pattern=KEY_RE.pattern, description=f"A variable's name: {KEY_RULE}")]
AppScope = Annotated[
    schemas.Label | None, Query(description="An app's name: its own config (it wins over the environment's)")
]
ENV = "/projects/{project}/environments/{env}"


@operation(
    router, "GET", ENV + "/config", name="config.get", permission=Permission.CONFIG_READ,
    response_model=schemas.ConfigVars, response_model_exclude_none=True,
)  # fmt: skip
def get_config(project: schemas.Label, env: schemas.Label, cp: CP, app: AppScope = None) -> Any:
    return cp.config.get(project, env, app)


@operation(
    router, "PATCH", ENV + "/config", name="config.update", permission=Permission.CONFIG_WRITE,
    response_model=schemas.ConfigVars, response_model_exclude_none=True,
)  # fmt: skip
def patch_config(
    project: schemas.Label,
    env: schemas.Label,
    body: schemas.ConfigPatch,
    cp: CP,
    caller: Who,
    app: AppScope = None,
) -> Any:
    return cp.config.update(caller, project, env, app, body.set, body.unset, body.version)


@operation(
    router, "GET", ENV + "/secrets", name="secret.list", permission=Permission.CONFIG_READ,
    response_model=schemas.Items[schemas.SecretMeta], response_model_exclude_none=True,
)  # fmt: skip
def list_secrets(project: schemas.Label, env: schemas.Label, cp: CP, app: AppScope = None) -> Any:
    return {"items": cp.config.list_secrets(project, env, app)}


@operation(
    router, "PUT", ENV + "/secrets/{name}", name="secret.set", permission=Permission.CONFIG_WRITE,
    response_model=schemas.SecretMeta, response_model_exclude_none=True,
)  # fmt: skip
def set_secret(
    project: schemas.Label,
    env: schemas.Label,
    name: SecretName,
    body: schemas.SecretSet,
    cp: CP,
    caller: Who,
    app: AppScope = None,
) -> Any:
    return cp.config.set_secret(caller, project, env, app, name, body.value)


@operation(
    router, "DELETE", ENV + "/secrets/{name}", name="secret.unset", permission=Permission.CONFIG_WRITE,
    response_model=schemas.SecretUnset,
)  # fmt: skip
def unset_secret(
    project: schemas.Label, env: schemas.Label, name: SecretName, cp: CP, caller: Who, app: AppScope = None
) -> Any:
    return cp.config.unset_secret(caller, project, env, app, name)


@operation(
    router, "POST", ENV + "/secrets/{name}/reveal", name="secret.reveal", permission=Permission.SECRET_REVEAL,
    response_model=schemas.SecretReveal,
)  # fmt: skip
def reveal_secret(
    project: schemas.Label, env: schemas.Label, name: SecretName, cp: CP, caller: Who, app: AppScope = None
) -> Any:
    return cp.config.reveal_secret(caller, project, env, app, name)


@operation(
    router, "POST", "/secrets/rotate-key", name="secret.rotate_key", permission=Permission.PLATFORM_ADMIN,
    response_model=schemas.KeyRotation,
)  # fmt: skip
def rotate_key(cp: CP, caller: Who) -> Any:
    return cp.config.rotate_key(caller)
