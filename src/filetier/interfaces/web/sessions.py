"""Browser sessions for the console: who is signed in, and the CSRF token of each.

A session is kept on the server, in this process, keyed by a random id that the browser
holds in an ``HttpOnly``, ``SameSite=Strict`` cookie (``Secure`` over https). The session
remembers the API token it was opened with, not the owner: every request resolves the
token again through the same code the API uses (:meth:`Runtime.owner_for`), so a revoked
token ends its sessions within the API's own token cache window, and an owner is never
decided by the console itself.

Signed cookies were the alternative; they would let a session outlive a revoked token and
need a key shared between hosts. The cost of keeping sessions here is that a restart
signs everyone out and that hosts behind a load balancer need sticky sessions.

Every state-changing request must carry the session's CSRF token (a form field or the
``X-CSRF-Token`` header), compared in constant time. The sign-in form, which has no
session yet, uses a double-submit token: a random value in a short-lived cookie that the
form must repeat.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass, field

SESSION_COOKIE = "filetier_session"
SIGNIN_COOKIE = "filetier_signin"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
IDLE_SECONDS = 8 * 3600  # a console left alone for a working day signs out
LIFETIME_SECONDS = 24 * 3600  # and no session outlives a day, however busy
MAX_SESSIONS = 10_000  # the oldest are dropped past this, so sign-ins cannot fill memory
# ... and one token's oldest past this: signing in again and again with one token drops
# its own sessions, never everyone else's (a tenant could otherwise sign all others out).
MAX_SESSIONS_PER_TOKEN = 50


@dataclass(slots=True)
class Session:
    token: str = field(repr=False)
    csrf: str = field(repr=False)
    created: float
    seen: float
    flash: str | None = None  # one message for the next page ("Deleted report.pdf")

    def take_flash(self) -> str | None:
        message, self.flash = self.flash, None
        return message

    def csrf_matches(self, presented: str | None) -> bool:
        return presented is not None and hmac.compare_digest(presented.encode(), self.csrf.encode())


class Sessions:
    """Open sessions by id, dropped when idle, too old, signed out, or over capacity (in
    all, or for one token)."""

    def __init__(
        self,
        *,
        idle_seconds: float = IDLE_SECONDS,
        lifetime_seconds: float = LIFETIME_SECONDS,
        capacity: int = MAX_SESSIONS,
        per_token: int = MAX_SESSIONS_PER_TOKEN,
    ) -> None:
        self._idle = idle_seconds
        self._lifetime = lifetime_seconds
        self._capacity = capacity
        self._per_token = per_token
        self._open: OrderedDict[str, Session] = OrderedDict()

    def open(self, token: str) -> tuple[str, Session]:
        now = time.monotonic()
        # Least recently used first (get moves a session to the end).
        own = [sid for sid, session in self._open.items() if session.token == token]
        for sid in own[: max(0, len(own) - self._per_token + 1)]:
            del self._open[sid]
        session_id = secrets.token_urlsafe(32)
        session = Session(token=token, csrf=secrets.token_urlsafe(32), created=now, seen=now)
        self._open[session_id] = session
        while len(self._open) > self._capacity:
            self._open.popitem(last=False)
        return session_id, session

    def get(self, session_id: str | None) -> Session | None:
        if not session_id:
            return None
        session = self._open.get(session_id)
        if session is None:
            return None
        now = time.monotonic()
        if now - session.seen > self._idle or now - session.created > self._lifetime:
            del self._open[session_id]
            return None
        session.seen = now
        self._open.move_to_end(session_id)
        return session

    def close(self, session_id: str | None) -> None:
        if session_id:
            self._open.pop(session_id, None)

    def __len__(self) -> int:
        return len(self._open)


def same_secret(a: str | None, b: str | None) -> bool:
    """Double-submit check of the sign-in form: both present and equal."""
    return bool(a) and bool(b) and hmac.compare_digest(str(a).encode(), str(b).encode())


def new_secret() -> str:
    return secrets.token_urlsafe(32)
