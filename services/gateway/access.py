"""Who is calling: optional API keys (bearer tokens), and short-lived stream tokens.

A key is never stored or logged as such: callers are known by a digest of their key (the
``owner`` recorded on their simulations). Browsers' EventSource cannot send an Authorization
header, so a key holder asks for a *stream token*: signed, scoped to one simulation's events,
valid for minutes; that, not the key, goes in the EventSource URL.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import parse_qs

from pydantic import SecretStr
from starlette.types import ASGIApp, Receive, Scope, Send

from services.gateway.raw_responses import send_problem

__all__ = ["Access", "AccessMiddleware", "StreamToken", "key_owner"]

OPEN_PATHS = frozenset({"/healthz", "/readyz", "/"})
"""Answered without a key: health checks, and the web page, which holds no data itself."""
OPEN_PREFIXES = ("/ui/",)
"""The web page's static files."""
_EVENTS_PATH = re.compile(r"^/v1/simulations/(?P<id>[^/]+)/events$")


def key_owner(key: str, owner_secret: str) -> str:
    """The name a key's simulations are recorded under (in events any subscriber may read):
    an HMAC of the key under the server's owner secret, so it neither reveals the key nor lets
    anyone test a guessed key against it. Replicas with the same secret agree."""
    digest = hmac.new(owner_secret.encode(), key.encode(), hashlib.sha256).hexdigest()
    return "key-" + digest[:20]


@dataclass(frozen=True)
class StreamToken:
    token: str
    expires_at: int


class Access:
    def __init__(
        self,
        keys: Sequence[SecretStr],
        *,
        token_ttl_s: float,
        owner_secret: SecretStr | None = None,
    ) -> None:
        self._keys = sorted(key.get_secret_value() for key in keys)
        self._digests = [hashlib.sha256(key.encode()).digest() for key in self._keys]
        self._owners: list[str] = []
        if owner_secret is not None:
            self.use_owner_secret(owner_secret)
        # Every replica with the same keys derives the same signing key.
        self._signing_key = hashlib.sha256(
            b"convsim stream tokens\0" + b"\0".join(k.encode() for k in self._keys)
        ).digest()
        self._token_ttl_s = token_ttl_s

    def use_owner_secret(self, owner_secret: SecretStr) -> None:
        """Derive the owners under this secret (the configured one, or the one the gateways
        share through the broker: see owner_secret.py). Needed before the first request."""
        secret = owner_secret.get_secret_value()
        self._owners = [key_owner(key, secret) for key in self._keys]

    @property
    def needs_owner_secret(self) -> bool:
        return self.enabled and not self._owners

    @property
    def enabled(self) -> bool:
        return bool(self._digests)

    def owner_of_key(self, presented: str) -> str | None:
        """The owner of a presented key, compared in constant time with every known key."""
        if self.needs_owner_secret:
            raise RuntimeError("the owner secret is not known yet")
        digest = hashlib.sha256(presented.encode()).digest()
        owner = None
        for known, candidate in zip(self._digests, self._owners, strict=True):
            if hmac.compare_digest(digest, known):
                owner = candidate
        return owner

    def owner_of_authorization(self, header: str | None) -> str | None:
        scheme, _, credentials = (header or "").partition(" ")
        if scheme.lower() != "bearer" or not credentials.strip():
            return None
        return self.owner_of_key(credentials.strip())

    def issue_stream_token(self, simulation_id: str, owner: str | None) -> StreamToken:
        expires_at = int(time.time() + self._token_ttl_s)
        claims = json.dumps({"sim": simulation_id, "own": owner, "exp": expires_at}).encode()
        payload = base64.urlsafe_b64encode(claims).rstrip(b"=")
        signature = base64.urlsafe_b64encode(self._sign(payload)).rstrip(b"=")
        return StreamToken((payload + b"." + signature).decode(), expires_at)

    def owner_of_stream_token(self, token: str, simulation_id: str) -> str | None:
        """The owner a valid, unexpired token for this simulation was issued to."""
        payload, _, signature = token.encode().partition(b".")
        try:
            expected = base64.urlsafe_b64encode(self._sign(payload)).rstrip(b"=")
            if not hmac.compare_digest(signature, expected):
                return None
            claims = json.loads(base64.urlsafe_b64decode(payload + b"=" * (-len(payload) % 4)))
        except (ValueError, TypeError):
            return None
        if claims.get("sim") != simulation_id or claims.get("exp", 0) < time.time():
            return None
        owner = claims.get("own")
        return owner if isinstance(owner, str) else None

    def _sign(self, payload: bytes) -> bytes:
        return hmac.new(self._signing_key, payload, hashlib.sha256).digest()


class AccessMiddleware:
    """401 for any route but the open ones without a valid key (or, on an events stream, a
    valid stream token); puts the caller's owner name in ``request.state.owner``."""

    def __init__(self, app: ASGIApp, access: Access) -> None:
        self._app = app
        self._access = access

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self._access.enabled or _is_open(scope["path"]):
            await self._app(scope, receive, send)
            return
        owner = self._access.owner_of_authorization(_header(scope, b"authorization"))
        if owner is None and (match := _EVENTS_PATH.match(scope["path"])):
            token = _query_value(scope, "access_token")
            if token:
                owner = self._access.owner_of_stream_token(token, match["id"])
        if owner is None:
            await _unauthorized(send)
            return
        scope.setdefault("state", {})["owner"] = owner
        await self._app(scope, receive, send)


def _is_open(path: str) -> bool:
    return path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


def _query_value(scope: Scope, name: str) -> str | None:
    values = parse_qs(bytes(scope.get("query_string", b"")).decode("latin-1")).get(name)
    return values[0] if values else None


async def _unauthorized(send: Send) -> None:
    await send_problem(
        send,
        401,
        "missing or invalid API key: send Authorization: Bearer <key>",
        ((b"www-authenticate", b'Bearer realm="convsim"'),),
    )
