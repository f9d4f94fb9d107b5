"""The caller's own preferences: ``GET/PUT /whoami/preferences`` (any signed-in caller, for itself)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends
from pydantic import BaseModel, ConfigDict, Field

from yunzhou.api.auth import caller_of, control_plane, operation
from yunzhou.domain.access import Permission
from yunzhou.services import Caller, ControlPlane

router = APIRouter()
CP = Annotated[ControlPlane, Depends(control_plane)]
Who = Annotated[Caller, Depends(caller_of)]


class Preferences(BaseModel):
    language: str | None = Field(description="en | zh-CN; null when never chosen")


class PreferencesSet(BaseModel):
    model_config = ConfigDict(extra="forbid")
    language: Literal["en", "zh-CN"] | None = Field(default=None, description="null: forget the choice")


@operation(
    router,
    "GET",
    "/whoami/preferences",
    name="preferences.get",
    permission=Permission.AUTHENTICATED,
    response_model=Preferences,
)
def get_preferences(cp: CP, caller: Who) -> Any:
    return cp.preferences.get(caller)


@operation(
    router,
    "PUT",
    "/whoami/preferences",
    name="preferences.update",
    permission=Permission.AUTHENTICATED,
    response_model=Preferences,
)
def put_preferences(
    cp: CP,
    caller: Who,
    body: Annotated[
        PreferencesSet,
        Body(description='Fields to set, e.g. {"language": "zh-CN"}; a field left out keeps its value'),
    ],
) -> Any:
    return cp.preferences.update(caller, body.model_dump(exclude_unset=True))
