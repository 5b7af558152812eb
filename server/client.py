"""`RemoteEnv`: a `gymnasium.Env` whose episodes run on an EvolGym env server.

Gymnasium code (`check_env`, vector envs, wrappers) runs on it as on a local env.
Connections are pooled per server; sessions spread round-robin over several URLs;
idempotent calls are retried on connection errors; server errors come back as
`RemoteEnvError` carrying the server's error type and message (409s also subclass the
local `ResetNeeded` / `EpisodeOver`, so the same `except` works on both).
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import requests
from gymnasium import spaces
from requests.adapters import HTTPAdapter

from envs.core import TextSpace, image_space
from envs.errors import EpisodeOver, ResetNeeded
from server.wire import observation_from_wire


class RemoteEnvError(RuntimeError):
    """An error answered by the server (or the lack of one)."""

    def __init__(self, status: int | None, type_: str, message: str, url: str = ""):
        super().__init__(f"[{status or 'no answer'} {type_}] {message}" + (f" ({url})" if url else ""))
        self.status = status
        self.type = type_
        self.message = message
        self.url = url


class ServerUnavailable(RemoteEnvError):
    """The server could not be reached (not started, killed, or the network failed)."""


class RemoteResetNeeded(RemoteEnvError, ResetNeeded):
    pass


class RemoteEpisodeOver(RemoteEnvError, EpisodeOver):
    pass


_ERROR_CLASSES = {"reset_needed": RemoteResetNeeded, "episode_over": RemoteEpisodeOver}


class ServerConnection:
    """One pooled HTTP connection set to one server URL, shared by all its sessions."""

    _instances: dict[tuple[str, str | None], ServerConnection] = {}
    _lock = threading.Lock()

    def __init__(self, url: str, token: str | None, timeout: float, retries: int):
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.retries = retries
        self.http = requests.Session()
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=128)
        self.http.mount("http://", adapter)
        self.http.mount("https://", adapter)
        if token:
            self.http.headers["Authorization"] = f"Bearer {token}"
        self._specs: dict[str, dict] | None = None

    @classmethod
    def get(
        cls, url: str, token: str | None = None, timeout: float = 60.0, retries: int = 3
    ) -> ServerConnection:
        key = (url.rstrip("/"), token)
        with cls._lock:
            if key not in cls._instances:
                cls._instances[key] = cls(url, token, timeout, retries)
            return cls._instances[key]

    def call(
        self, method: str, path: str, body: Any = None, idempotent: bool = False, timeout: float | None = None
    ) -> Any:
        attempts = 1 + (self.retries if idempotent else 0)
        for attempt in range(attempts):
            try:
                response = self.http.request(
                    method, self.url + path, json=body, timeout=timeout or self.timeout
                )
                break
            except (requests.ConnectionError, requests.Timeout) as error:
                if attempt + 1 == attempts:
                    raise ServerUnavailable(
                        None, "unreachable", f"cannot reach the env server: {error}", self.url
                    ) from None
                time.sleep(0.1 * 2**attempt)
        if response.status_code >= 400:
            try:
                error = response.json()["error"]
                type_, message = error["type"], error["message"]
            except (ValueError, KeyError, TypeError):
                type_, message = "http_error", response.text[:500]
            raise _ERROR_CLASSES.get(type_, RemoteEnvError)(response.status_code, type_, message, self.url)
        return response.json() if response.content else None

    def specs(self) -> dict[str, dict]:
        if self._specs is None:
            self._specs = {spec["id"]: spec for spec in self.call("GET", "/envs", idempotent=True)}
        return self._specs


_round_robin: dict[tuple[str, ...], itertools.count] = {}


def _pick_url(urls: Sequence[str]) -> str:
    key = tuple(urls)
    counter = _round_robin.setdefault(key, itertools.count())
    return urls[next(counter) % len(urls)]


class RemoteEnv(gym.Env):
    """An env served by `evol serve`: `RemoteEnv("evol/BabyAI-v0", url="http://127.0.0.1:8000")`.

    `url` may be a list of servers: each new RemoteEnv takes the next one in turn.
    `close()` deletes the server-side session.
    """

    metadata = {"render_modes": ["ansi"]}

    def __init__(
        self,
        env_id: str,
        url: str | Sequence[str],
        token: str | None = None,
        env_kwargs: dict[str, Any] | None = None,
        timeout: float = 60.0,
        retries: int = 3,
        render_mode: str | None = None,
    ):
        urls = [url] if isinstance(url, str) else list(url)
        if not urls:
            raise ValueError("RemoteEnv needs at least one server URL")
        self.env_id = env_id
        self.connection = ServerConnection.get(_pick_url(urls), token, timeout, retries)
        specs = self.connection.specs()
        if env_id not in specs:
            raise RemoteEnvError(
                400,
                "unknown_env",
                f"{env_id!r} is not served here; served: {', '.join(specs)}",
                self.connection.url,
            )
        self.env_spec = specs[env_id]
        self.max_turns = self.env_spec["max_turns"]
        self.max_action_length = self.env_spec["max_action_length"]
        self.reward_range = tuple(self.env_spec["reward_range"])
        text = TextSpace(1 << 20)
        if self.env_spec["multimodal"]:
            self.observation_space = spaces.Dict(
                {"text": text, "image": image_space(*self.env_spec["image_shape"])}
            )
        else:
            self.observation_space = text
        self.action_space = TextSpace(self.max_action_length, min_length=1)
        self.render_mode = render_mode
        self._last_observation: Any = None
        self.session: str | None = None
        answer = self.connection.call("POST", "/sessions", {"env": env_id, "kwargs": env_kwargs or {}})
        self.session = answer["session"]

    @property
    def url(self) -> str:
        return self.connection.url

    def _path(self, route: str = "") -> str:
        if self.session is None:
            raise RemoteEnvError(None, "closed", "this RemoteEnv is closed")
        return f"/sessions/{self.session}{route}"

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        body: dict[str, Any] = {}
        if seed is not None:
            body["seed"] = int(seed)
        if options is not None:
            body["options"] = options
        answer = self.connection.call("POST", self._path("/reset"), body, idempotent=True)
        self._last_observation = observation_from_wire(answer["observation"])
        return self._last_observation, answer["info"]

    def step(self, action: str):
        answer = self.connection.call("POST", self._path("/step"), {"action": action})
        return self._unpack_step(answer)

    def _unpack_step(self, answer: dict[str, Any]):
        self._last_observation = observation_from_wire(answer["observation"])
        return (
            self._last_observation,
            float(answer["reward"]),
            bool(answer["terminated"]),
            bool(answer["truncated"]),
            answer["info"],
        )

    def expert_action(self) -> str:
        return self.connection.call("POST", self._path("/expert"))["action"]

    def render(self) -> str | None:
        if self.render_mode == "ansi":
            obs = self._last_observation
            return obs["text"] if isinstance(obs, dict) else (obs or "")
        return None

    def close(self) -> None:
        if self.session is None:
            return
        sid, self.session = self.session, None
        try:
            self.connection.call("DELETE", f"/sessions/{sid}", idempotent=True, timeout=5.0)
        except RemoteEnvError:
            pass  # the server is gone or already reaped the session: nothing left to free

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


def batch_step(remote_envs: Sequence[RemoteEnv], actions: Sequence[str]) -> list[tuple | RemoteEnvError]:
    """Step many remote envs, one `POST /step` per server; each result is a step tuple or an error."""
    if len(remote_envs) != len(actions):
        raise ValueError("batch_step needs one action per env")
    by_server: dict[ServerConnection, list[int]] = {}
    for i, env in enumerate(remote_envs):
        by_server.setdefault(env.connection, []).append(i)
    results: list[Any] = [None] * len(remote_envs)
    for connection, indices in by_server.items():
        steps = [
            {"session": remote_envs[i]._path()[len("/sessions/") :], "action": actions[i]} for i in indices
        ]
        answer = connection.call("POST", "/step", {"steps": steps})
        for i, item in zip(indices, answer["results"]):
            if item["status"] == 200:
                results[i] = remote_envs[i]._unpack_step(item)
            else:
                error = item["error"]
                results[i] = _ERROR_CLASSES.get(error["type"], RemoteEnvError)(
                    item["status"], error["type"], error["message"], connection.url
                )
    return results
