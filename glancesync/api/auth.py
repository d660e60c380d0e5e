"""Keystone tokens, validated the way every OpenStack service does it.

The service asks its Keystone (``GET /v3/auth/tokens`` with ``X-Subject-Token``) using its
own credentials, and keeps the answer for a short while (``cache_ttl``, never past the
token's expiry) so that a burst of requests with one token costs one round trip. A token
Keystone rejected stays rejected: tokens never become valid, so that answer is cached too
(it spares Keystone a client retrying a bad token). Revocation is seen after ``cache_ttl``.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

log = logging.getLogger("glancesync.api")

DEFAULT_CACHE_TTL = 300.0
MAX_CACHED = 10000


class AuthError(Exception):
    """The request is refused: ``code`` 401 (no valid token) or 403 (not allowed)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class KeystoneUnavailable(Exception):
    """Keystone could not answer whether a token is valid (503: try again later)."""


@dataclass(frozen=True)
class TokenInfo:
    user_id: str
    user_name: str
    project_id: str | None
    project_name: str | None
    roles: frozenset[str]
    expires_at: datetime | None

    @property
    def requester(self) -> str:
        project = f" project {self.project_name}" if self.project_name else ""
        return f"{self.user_name} ({self.user_id}){project}"


def parse_token(body: dict[str, Any]) -> TokenInfo:
    """TokenInfo of a Keystone v3 token document (``{"token": {...}}``)."""
    token = body["token"]
    user = token.get("user") or {}
    project = token.get("project") or {}
    expires = token.get("expires_at")
    return TokenInfo(
        user_id=user.get("id", ""),
        user_name=user.get("name", ""),
        project_id=project.get("id"),
        project_name=project.get("name"),
        roles=frozenset(r["name"].lower() for r in token.get("roles") or [] if "name" in r),
        expires_at=_parse_time(expires) if expires else None,
    )


def _parse_time(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def authorize(info: TokenInfo, role: str) -> None:
    """AuthError 403 unless the token carries ``role`` (role names compare case-blind)."""
    if role.lower() not in info.roles:
        raise AuthError(
            403, f"the token of user {info.user_name} lacks the role '{role}' this API requires"
        )


Lookup = Callable[[str], TokenInfo | None]  # token -> info, None when Keystone rejects it


class TokenCache:
    """token -> (deadline, TokenInfo or None); bounded, thread-safe; keys are hashes."""

    def __init__(
        self, lookup: Lookup, ttl: float = DEFAULT_CACHE_TTL, clock=time.monotonic
    ) -> None:
        self._lookup = lookup
        self.ttl = ttl
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, TokenInfo | None]] = OrderedDict()
        self._lock = threading.Lock()

    def validate(self, token: str | None) -> TokenInfo:
        """The token's info; AuthError 401 when missing, invalid or expired."""
        if not token:
            raise AuthError(401, "authentication required: send a Keystone token in X-Auth-Token")
        key = hashlib.sha256(token.encode()).hexdigest()  # no token kept in memory as is
        now = self._clock()
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry[0] <= now:
                del self._entries[key]
                entry = None
        if entry is None:
            info = self._lookup(token)  # outside the lock: Keystone may be slow
            deadline = now + self.ttl
            if info is not None and info.expires_at is not None:
                left = (info.expires_at - datetime.now(timezone.utc)).total_seconds()
                deadline = min(deadline, now + max(left, 0.0))
            entry = (deadline, info)
            with self._lock:
                self._entries[key] = entry
                while len(self._entries) > MAX_CACHED:
                    self._entries.popitem(last=False)
        info = entry[1]
        if info is None:
            raise AuthError(401, "the token is invalid or expired: get a new one from Keystone")
        if info.expires_at is not None and info.expires_at <= datetime.now(timezone.utc):
            raise AuthError(401, "the token is expired: get a new one from Keystone")
        return info


class KeystoneLookup:
    """Validates tokens with the service's own keystoneauth1 session."""

    def __init__(self, session: Any, interface: str = "public") -> None:
        self._session = session
        self._interface = interface

    def __call__(self, token: str) -> TokenInfo | None:
        from keystoneauth1 import exceptions as ksa_exc

        try:
            resp = self._session.get(
                "/auth/tokens",
                endpoint_filter={
                    "service_type": "identity",
                    "interface": self._interface,
                    "version": (3, 0),
                },
                headers={"X-Subject-Token": token},
                raise_exc=False,
                authenticated=True,
            )
        except ksa_exc.ClientException as exc:
            log.error(f"cannot validate a token: Keystone unreachable: {exc}")
            raise KeystoneUnavailable(f"Keystone unreachable: {exc}") from None
        if resp.status_code == 200:
            return parse_token(resp.json())
        if resp.status_code in (401, 404):
            # 404: the subject token is unknown or expired. (Our own token is renewed by
            # the session, so a 401 here is about the subject too.)
            return None
        if resp.status_code == 403:
            log.error(
                "Keystone refuses to validate tokens for the service's credentials (403): give "
                "that user the 'service' or 'admin' role"
            )
            raise KeystoneUnavailable("the service's credentials may not validate tokens")
        log.error(f"cannot validate a token: Keystone answered HTTP {resp.status_code}")
        raise KeystoneUnavailable(f"Keystone answered HTTP {resp.status_code}")
