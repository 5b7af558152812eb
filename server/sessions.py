"""Sessions: which worker holds each live env session, with a capacity and an idle reaper."""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from server.errors import ApiError
from server.workers import Worker

LOST_REMEMBERED = 10_000  # ids of lost sessions kept to answer 410 rather than 404


@dataclass(eq=False)
class Session:
    sid: str
    env_id: str
    worker: Worker | None = None
    last_used: float = field(default_factory=time.monotonic)
    calls: int = 0  # calls in flight; a session in use is never reaped

    def touch(self) -> None:
        self.last_used = time.monotonic()


class SessionStore:
    """Live sessions, at most `capacity`; sessions idle for `ttl` seconds are reaped.

    `closer(session)` ends a removed session in its worker (it runs in a thread of its own).
    """

    def __init__(
        self,
        capacity: int = 256,
        ttl: float | None = 600.0,
        closer: Callable[[Session], None] | None = None,
        retry_after: int = 1,
    ):
        self.capacity = capacity
        self.ttl = ttl
        self.retry_after = retry_after
        self.closer = closer or (lambda session: None)
        self._sessions: dict[str, Session] = {}
        self._lost: OrderedDict[str, str] = OrderedDict()
        self._reserved = 0
        self._lock = threading.Lock()
        self._reaper: threading.Thread | None = None
        self._stop = threading.Event()

    def __len__(self) -> int:
        return len(self._sessions)

    def reserve(self, env_id: str) -> Session:
        """A new session id counted against the capacity; 429 when the server is full."""
        with self._lock:
            if len(self._sessions) + self._reserved >= self.capacity:
                raise ApiError(
                    429,
                    "at_capacity",
                    f"the server holds its maximum of {self.capacity} sessions; retry later",
                    headers={"Retry-After": str(self.retry_after)},
                )
            self._reserved += 1
        return Session(sid=secrets.token_hex(12), env_id=env_id)

    def admit(self, session: Session | None) -> None:
        """End a reservation: `session` joins the live ones (None: building it failed)."""
        with self._lock:
            self._reserved -= 1
            if session is not None:
                self._sessions[session.sid] = session

    def get(self, sid: str) -> Session:
        session = self._sessions.get(sid)
        if session is None:
            reason = self._lost.get(sid)
            if reason is not None:
                raise ApiError(410, "session_lost", f"session {sid!r} was lost: {reason}; start a new one")
            raise ApiError(404, "unknown_session", f"no session {sid!r} (never created, deleted or expired)")
        session.touch()
        return session

    def remove(self, sid: str) -> Session | None:
        with self._lock:
            session = self._sessions.pop(sid, None)
        if session is not None:
            threading.Thread(target=self.closer, args=(session,), daemon=True).start()
        return session

    def mark_lost(self, sids: set[str], reason: str) -> None:
        """Sessions whose worker died: later calls on them answer 410 `session_lost`."""
        with self._lock:
            for sid in sids:
                if self._sessions.pop(sid, None) is not None:
                    self._lost[sid] = reason
            while len(self._lost) > LOST_REMEMBERED:
                self._lost.popitem(last=False)

    def reap(self) -> int:
        """Remove sessions idle for longer than the TTL; returns how many."""
        if self.ttl is None:
            return 0
        now = time.monotonic()
        expired = [
            s.sid for s in list(self._sessions.values()) if now - s.last_used > self.ttl and not s.calls
        ]
        return sum(self.remove(sid) is not None for sid in expired)

    def start_reaper(self) -> None:
        if self.ttl is None or self._reaper is not None:
            return
        interval = max(0.05, min(self.ttl / 4, 30.0))

        def loop() -> None:
            while not self._stop.wait(interval):
                self.reap()

        self._reaper = threading.Thread(target=loop, name="session-reaper", daemon=True)
        self._reaper.start()

    def close_all(self) -> None:
        self._stop.set()
        for sid in list(self._sessions):
            self.remove(sid)
