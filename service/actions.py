"""The action catalogue, the request models, and the exact bytes an execute delivers.

An action request names one action of the catalogue and its parameters (validated strictly, unknown
fields refused), and optionally a destination URL that must be on the webhook host allowlist. The
delivered body is a canonical JSON serialisation of (action, params, workspace): deterministic, so
``/actions/preview`` can show the very bytes ``/actions/execute`` will sign and send.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Slug = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$")]


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


class NotifyParams(_Params):
    channel: Slug = Field(description="Channel to notify, e.g. 'ops-alerts'.")
    message: str = Field(min_length=1, max_length=2000)
    severity: Literal["info", "warning", "critical"] = "info"


class TicketParams(_Params):
    title: str = Field(min_length=1, max_length=200)
    priority: Literal["low", "normal", "high"] = "normal"
    labels: list[Slug] = Field(default_factory=list, max_length=10)


class DeployParams(_Params):
    service: Slug
    version: str = Field(pattern=r"^v?\d{1,4}\.\d{1,4}\.\d{1,6}(-[0-9A-Za-z.-]{1,40})?$")
    environment: Literal["staging", "production"] = "staging"


Destination = Annotated[
    str,
    Field(
        max_length=2048,
        description="Deliver here instead of WEBHOOK_URL; its host must be in WEBHOOK_ALLOWED_HOSTS.",
    ),
]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")
    destination: Destination | None = None


class NotifyRequest(_Request):
    action: Literal["notify.send"]
    params: NotifyParams


class TicketRequest(_Request):
    action: Literal["ticket.create"]
    params: TicketParams


class DeployRequest(_Request):
    action: Literal["deploy.promote"]
    params: DeployParams


ActionRequest = Annotated[NotifyRequest | TicketRequest | DeployRequest, Field(discriminator="action")]


class PreviewRef(BaseModel):
    """Execute exactly what an earlier preview showed."""

    model_config = ConfigDict(extra="forbid")
    preview_id: str = Field(min_length=16, max_length=8192)


@dataclass(frozen=True)
class ActionSpec:
    id: str
    description: str
    params: type[_Params]

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "description": self.description, "parameters": _schema(self.params)}


@functools.cache
def _schema(model: type[_Params]) -> dict[str, Any]:
    # generating a JSON schema is costly; the catalogue is fixed for the life of the process
    return model.model_json_schema()


CATALOG: dict[str, ActionSpec] = {
    spec.id: spec
    for spec in (
        ActionSpec("notify.send", "Send a notification to a channel.", NotifyParams),
        ActionSpec("ticket.create", "Open a ticket in the tracker.", TicketParams),
        ActionSpec("deploy.promote", "Promote a service version to an environment.", DeployParams),
    )
}


@dataclass(frozen=True)
class ResolvedAction:
    """An action request bound to the workspace it runs for, and the URL it goes to."""

    action: str
    params: dict[str, Any]
    workspace: str
    destination: str

    def body(self) -> bytes:
        """The exact bytes execute delivers (and signs)."""
        doc = {"action": self.action, "params": self.params, "workspace": self.workspace}
        return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
