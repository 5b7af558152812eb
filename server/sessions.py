"""Sessions: one live env per session id, with a lock, a capacity and an idle reaper."""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from server.errors import ApiError


@dataclass
class Session:
    sid: str
    env_id: str
    env: Any
    lock: threading.Lock = field(default_factory=threading.Lock)
    last_used: float = field(default_factory=time.monotonic)

    def touch(self) -> None:
        self.last_used = time.monotonic()


class SessionStore:
    """Live sessions, at most `capacity` of them; sessions idle for `ttl` seconds are reaped."""

    def __init__(self, capacity: int = 256, ttl: float | None = 600.0, retry_after: int = 1):
        self.capacity = capacity
        self.ttl = ttl
        self.retry_after = retry_after
        self._sessions: dict[str, Session] = {}
        self._reserved = 0
        self._lock = threading.Lock()
        self._reaper: threading.Thread | None = None
        self._stop = threading.Event()

    def __len__(self) -> int:
        return len(self._sessions)

    def create(self, env_id: str, factory) -> Session:
        """Build an env with `factory()` in a new session; 429 when at capacity."""
        with self._lock:
            if len(self._sessions) + self._reserved >= self.capacity:
                raise ApiError(
                    429,
                    "at_capacity",
                    f"the server holds its maximum of {self.capacity} sessions; retry later",
                    headers={"Retry-After": str(self.retry_after)},
                )
            self._reserved += 1
        try:
            env = factory()
        finally:
            with self._lock:
                self._reserved -= 1
        session = Session(sid=secrets.token_hex(12), env_id=env_id, env=env)
        with self._lock:
            self._sessions[session.sid] = session
        return session

    def get(self, sid: str) -> Session:
        session = self._sessions.get(sid)
        if session is None:
            raise ApiError(404, "unknown_session", f"no session {sid!r} (never created, deleted or expired)")
        session.touch()
        return session

    def remove(self, sid: str) -> Session | None:
        with self._lock:
            session = self._sessions.pop(sid, None)
        if session is not None:
            threading.Thread(target=self._close_when_free, args=(session,), daemon=True).start()
        return session

    def reap(self) -> int:
        """Remove sessions idle for longer than the TTL; returns how many."""
        if self.ttl is None:
            return 0
        now = time.monotonic()
        expired = [
            s.sid
            for s in list(self._sessions.values())
            if now - s.last_used > self.ttl and not s.lock.locked()
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

    @staticmethod
    def _close_when_free(session: Session) -> None:
        # A step may still be running (e.g. one that timed out): close after it finishes.
        with session.lock:
            try:
                session.env.close()
            except Exception:
                pass
