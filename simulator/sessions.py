"""Login sessions and their tokens: lifetime, renewal, and the two-sessions-per-user rule."""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

logger = logging.getLogger(__name__)

ACCESS = "access"
MD = "md"


@dataclass(slots=True, eq=False)
class Session:
    session_id: int
    user_id: int
    created: float
    expires: float
    access_token: str
    md_token: str
    tokens: set[str] = field(default_factory=set)
    revoked: bool = False


@dataclass(slots=True, frozen=True)
class TokenInfo:
    session: Session
    kind: str
    expires: float


class Sessions:
    """Tokens are opaque random strings. A renewed session keeps its old tokens valid until
    their own expiry; a revoked session loses every token at once."""

    def __init__(self, ttl: float, max_sessions: int) -> None:
        self.ttl = ttl
        self.max_sessions = max_sessions
        self._next_id = 0
        self._tokens: dict[str, TokenInfo] = {}
        self._by_user: dict[int, list[Session]] = {}
        self.on_revoke: list[Callable[[Session], None]] = []

    def _token(self, session: Session, kind: str, expires: float) -> str:
        token = secrets.token_urlsafe(48)
        self._tokens[token] = TokenInfo(session, kind, expires)
        session.tokens.add(token)
        return token

    def login(self, user_id: int) -> Session:
        now = time.time()
        self._next_id += 1
        expires = now + self.ttl
        session = Session(self._next_id, user_id, now, expires, "", "")
        session.access_token = self._token(session, ACCESS, expires)
        session.md_token = self._token(session, MD, expires)
        active = self._by_user.setdefault(user_id, [])
        active.append(session)
        while len(active) > self.max_sessions:
            self.revoke(active[0])
        return session

    def renew(self, session: Session) -> Session:
        """New tokens and a later expiry for the same session."""
        expires = time.time() + self.ttl
        session.expires = expires
        session.access_token = self._token(session, ACCESS, expires)
        session.md_token = self._token(session, MD, expires)
        return session

    def lookup(self, token: str | None, kinds: tuple[str, ...] = (ACCESS,)) -> Session | None:
        """The live session for a token of one of `kinds`, or None (unknown, expired, revoked)."""
        if not token:
            return None
        info = self._tokens.get(token)
        if info is None or info.kind not in kinds:
            return None
        if time.time() >= info.expires:
            self._tokens.pop(token, None)
            info.session.tokens.discard(token)
            return None
        return None if info.session.revoked else info.session

    def revoke(self, session: Session) -> None:
        if session.revoked:
            return
        session.revoked = True
        for token in session.tokens:
            self._tokens.pop(token, None)
        session.tokens.clear()
        active = self._by_user.get(session.user_id, [])
        if session in active:
            active.remove(session)
        logger.info("session %d of user %d revoked", session.session_id, session.user_id)
        for callback in list(self.on_revoke):
            callback(session)

    def expire_all(self, user_id: int | None = None) -> int:
        """Make every token (of one user, or of everyone) expire now; sessions stay, so a login
        is needed, not a renewal. Returns the number of tokens expired."""
        count = 0
        for token, info in list(self._tokens.items()):
            if user_id is None or info.session.user_id == user_id:
                self._tokens[token] = TokenInfo(info.session, info.kind, 0.0)
                count += 1
        for owner, sessions in self._by_user.items():
            if user_id is None or owner == user_id:
                for session in sessions:
                    session.expires = 0.0
        return count

    def active(self) -> list[Session]:
        now = time.time()
        return [s for ss in self._by_user.values() for s in ss if s.expires > now]

    def count(self) -> int:
        return len(self.active())
