"""API-key authentication: ``Authorization: Bearer <key>`` -> a role and a workspace.

The workspace a request acts for (and is rate limited as) comes only from the key that authenticated
it — never from a header or a body field the client chose. Keys are compared in constant time: each
presented token is hashed and compared with every configured key's hash with ``hmac.compare_digest``,
all of them, so neither the position of a match nor a common prefix shows in the timing.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Literal

from starlette.types import ASGIApp, Receive, Scope, Send

from service.config import ApiKey
from service.errors import Problem, problem_response

Role = Literal["admin", "dev"]

_CHALLENGE = 'Bearer realm="relay"'


@dataclass(frozen=True)
class Principal:
    role: Role
    workspace: str
    key_id: str  # a short fingerprint, safe to log; never the key

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def fingerprint(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:12]


class KeyRing:
    def __init__(self, keys: list[ApiKey]) -> None:
        self._entries = [
            (
                hashlib.sha256(k.key.get_secret_value().encode("utf-8")).digest(),
                Principal(role=k.role, workspace=k.workspace, key_id=fingerprint(k.key.get_secret_value())),
            )
            for k in keys
        ]

    def __len__(self) -> int:
        return len(self._entries)

    def lookup(self, token: str) -> Principal | None:
        presented = hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()
        found: Principal | None = None
        for digest, principal in self._entries:
            if hmac.compare_digest(presented, digest) and found is None:
                found = principal
        return found

    def authenticate(self, authorization: str | None) -> Principal:
        """The principal for an Authorization header value, or a 401 Problem."""
        if not authorization:
            raise Problem(
                401,
                "missing credentials: send Authorization: Bearer <API key>",
                headers={"WWW-Authenticate": _CHALLENGE},
            )
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Problem(
                401,
                "malformed Authorization header: expected 'Bearer <API key>'",
                headers={"WWW-Authenticate": f'{_CHALLENGE}, error="invalid_request"'},
            )
        principal = self.lookup(token)
        if principal is None:
            raise Problem(
                401,
                "unknown API key",
                headers={"WWW-Authenticate": f'{_CHALLENGE}, error="invalid_token"'},
            )
        return principal


class AuthBeforeBodyMiddleware:
    """Authenticate requests to the body-bearing routes before anything reads their body.

    FastAPI parses and validates a JSON body before it resolves the route's dependencies, so without
    this an unauthenticated client would get 422s describing the request schema instead of a 401.
    """

    def __init__(self, app: ASGIApp, keyring: KeyRing, paths: frozenset[str]) -> None:
        self.app = app
        self.keyring = keyring
        self.paths = paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] in self.paths and scope["method"] == "POST":
            authorization = None
            for name, value in scope.get("headers", ()):
                if name == b"authorization":
                    authorization = value.decode("latin-1")
                    break
            try:
                self.keyring.authenticate(authorization)
            except Problem as exc:
                response = problem_response(exc.status, exc.detail, headers=exc.headers)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
