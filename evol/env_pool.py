"""The rollout engine's envs: local ones, or `RemoteEnv` sessions on env servers, reused across episodes."""

from __future__ import annotations

import threading
from typing import Any

import envs
from envs.remote import RemoteEnv, RetryPolicy


class EnvPool:
    """Envs for the engine's slots: local, or `RemoteEnv`s spread over server URLs; reused.

    A session is created without waiting on the server: the engine retries the episode.
    Thread-safe: the engine takes envs from several threads."""

    def __init__(
        self,
        urls: list[str] | None = None,
        token: str | None = None,
        env_kwargs: dict | None = None,
        retry: RetryPolicy | None = None,
    ):
        self.urls = urls or None
        self.token = token
        self.env_kwargs = env_kwargs or {}
        self.retry = retry or RetryPolicy()
        self.idle: dict[str, list[Any]] = {}
        self.held = 0  # envs in use or idle, not yet discarded
        self._lock = threading.Lock()

    def take(self, env_id: str) -> Any:
        with self._lock:
            if self.idle.get(env_id):
                return self.idle[env_id].pop()
        kwargs = self.env_kwargs.get(env_id, {})
        if self.urls:
            env = RemoteEnv(env_id, url=self.urls, token=self.token, env_kwargs=kwargs, retries=0)
            env.retry = self.retry
        else:
            env = envs.make(env_id, **kwargs)
        with self._lock:
            self.held += 1
        return env

    def give_back(self, env_id: str, env: Any) -> None:
        with self._lock:
            self.idle.setdefault(env_id, []).append(env)

    def forget(self, env: Any) -> None:
        """Stop counting `env` as held; close it with `close_env`."""
        if env is not None:
            with self._lock:
                self.held -= 1

    @staticmethod
    def close_env(env: Any) -> None:
        try:
            env.close()
        except Exception:
            pass

    def discard(self, env: Any) -> None:
        if env is not None:
            self.forget(env)
            self.close_env(env)

    def release_idle(self, keep: str | None = None) -> list[Any]:
        """Take the idle envs (but those of env id `keep`) out of the pool, no longer held; returns them to close."""
        with self._lock:
            released = [env for env_id, pool in self.idle.items() if env_id != keep for env in pool]
            self.idle = {env_id: pool for env_id, pool in self.idle.items() if env_id == keep}
            self.held -= len(released)
        return released

    def close(self) -> None:
        for env in self.release_idle():
            self.close_env(env)
