"""Who is asking the dashboard: the gRPC service's tokens and owners, a login cookie, CSRF tokens.

The rules are service/auth.py's, used as they are: with tokens configured, every page and API
call needs one, as `authorization: Bearer <token>` (checked by `TokenInterceptor.owner_of`) or
through the login form, which checks the token the same way and sets an HttpOnly, SameSite=Strict
session cookie (the token itself is never stored in the browser); the caller then sees only its
owner's jobs and datasets. Without tokens the server listens on loopback only (`check_bind`) and
everyone sees everything, as over gRPC.

Requests that change state (POST) must carry `X-CSRF-Token`: an HMAC of the session under a
per-process secret, which only a page of this origin can read (GET /api/session). A caller that
sends the bearer header itself needs none: browsers never add that header on their own.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
from dataclasses import dataclass
from typing import Optional

from ..auth import TokenInterceptor

COOKIE = "fusetrain_session"
CSRF_HEADER = "X-CSRF-Token"
MAX_SESSIONS = 10_000


@dataclass
class Caller:
    owner: Optional[str]        # None: authentication is off, every job is visible
    session: str                # the session id ('' for a bearer header or without tokens)
    bearer: bool


class Sessions:
    """The dashboard's view of the tokens: callers of requests, logins, CSRF tokens."""

    def __init__(self, tokens: dict):
        self.enabled = bool(tokens)
        self._interceptor = TokenInterceptor(tokens) if tokens else None
        self._secret = secrets.token_bytes(32)
        self._owners: dict[str, str] = {}
        self._lock = threading.Lock()

    def caller(self, headers, cookies) -> Optional[Caller]:
        """The caller of a request; None when tokens are configured and it presents none that is valid."""
        if not self.enabled:
            return Caller(None, "", False)
        header = headers.get("Authorization", "")
        if header:
            owner = self._interceptor.owner_of(header)
            return Caller(owner, "", True) if owner is not None else None
        session = cookies.get(COOKIE, "")
        with self._lock:
            owner = self._owners.get(session) if session else None
        return Caller(owner, session, False) if owner is not None else None

    def login(self, token: str) -> Optional[str]:
        """A new session id for a valid token; None for a wrong one."""
        if not self.enabled:
            return None
        owner = self._interceptor.owner_of(f"Bearer {token}")
        if owner is None:
            return None
        session = secrets.token_urlsafe(32)
        with self._lock:
            if len(self._owners) >= MAX_SESSIONS:
                self._owners.pop(next(iter(self._owners)))      # the oldest login goes
            self._owners[session] = owner
        return session

    def logout(self, session: str) -> None:
        with self._lock:
            self._owners.pop(session, None)

    def csrf(self, caller: Caller) -> str:
        return hmac.new(self._secret, f"csrf:{caller.session}".encode(), hashlib.sha256).hexdigest()

    def csrf_ok(self, caller: Caller, sent: str) -> bool:
        return caller.bearer or hmac.compare_digest(self.csrf(caller), sent or "")
