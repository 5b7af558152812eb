"""`RemoteEnv`: a `gymnasium.Env` whose episodes run on an EvolGym env server (`python -m server`).

Gymnasium code (`check_env`, vector envs, wrappers) runs on it as on a local env.
Connections are pooled per server; sessions spread round-robin over several URLs.
Server errors come back as `RemoteEnvError` carrying the server's error type and message
(409s also subclass the local `ResetNeeded` / `EpisodeOver`, so the same `except` works on both).

Infrastructure faults (`InfrastructureError`: the server unreachable, at capacity, busy,
or the session lost to a restart, a timeout or a dead worker) are told apart from the env's
own errors. A call that the server did not carry out is retried in place (`RetryPolicy`:
exponential backoff with jitter, never sooner than the server's Retry-After); a reset whose
session is gone starts a fresh session; a step whose session is gone raises `SessionLost`,
since that episode cannot go on. `batch_step` / `batch_reset` / `batch_call` send many
sessions' steps and resets in one `POST /step` per server.
"""

from __future__ import annotations

import itertools
import random
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

import gymnasium as gym
import requests
from gymnasium import spaces
from requests.adapters import HTTPAdapter

from envs.core import TextSpace, image_space
from envs.errors import EpisodeOver, ResetNeeded
from envs.wire import decode_image, encode_image, observation_from_wire, to_wire


class RemoteEnvError(RuntimeError):
    """An error answered by the server (or the lack of one).

    `infra` says whether the serving infrastructure failed (retry, in a fresh session if
    need be) rather than the env or the request; `retry_after` is the server's Retry-After
    in seconds, where it sent one."""

    infra = False

    def __init__(
        self, status: int | None, type_: str, message: str, url: str = "", retry_after: float | None = None
    ):
        super().__init__(f"[{status or 'no answer'} {type_}] {message}" + (f" ({url})" if url else ""))
        self.status = status
        self.type = type_
        self.message = message
        self.url = url
        self.retry_after = retry_after


class InfrastructureError(RemoteEnvError):
    """The serving infrastructure failed, not the env or the request: worth retrying."""

    infra = True


class ServerUnavailable(InfrastructureError):
    """The server could not be reached (not started, killed, the network failed) or has no live worker."""


class ServerBusy(InfrastructureError):
    """429 at capacity or 503 worker busy: the server did nothing; retry after `retry_after`."""


class SessionLost(InfrastructureError):
    """The session is gone (server restarted, session expired, its worker died or a call timed
    out): the episode in it cannot go on. `RemoteEnv.reset` starts a fresh session."""


class EnvFailed(RemoteEnvError):
    """The env raised on a request that passed validation (500 env_error)."""


class RemoteResetNeeded(RemoteEnvError, ResetNeeded):
    pass


class RemoteEpisodeOver(RemoteEnvError, EpisodeOver):
    pass


def error_from_answer(
    status: int, type_: str, message: str, url: str = "", retry_after: float | None = None
) -> RemoteEnvError:
    """The exception for one error answer of the server's error contract."""
    if type_ == "reset_needed":
        cls: type[RemoteEnvError] = RemoteResetNeeded
    elif type_ == "episode_over":
        cls = RemoteEpisodeOver
    elif status in (410, 504) or type_ in ("session_lost", "step_timeout"):
        cls = SessionLost
    elif status == 429 or type_ in ("at_capacity", "worker_busy"):
        cls = ServerBusy
    elif status == 503:
        cls = ServerUnavailable
    elif status == 500 and type_ == "env_error":
        cls = EnvFailed
    else:
        cls = RemoteEnvError
    return cls(status, type_, message, url, retry_after)


def parse_retry_after(value: str | None) -> float | None:
    """A Retry-After header (seconds or an HTTP date) in seconds from now."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class RetryPolicy:
    """How infrastructure faults are retried: up to `retries` times, the k-th retry after
    `backoff * 2**k` seconds (at most `max_wait`) with ±25% jitter, and never sooner than
    the server's Retry-After."""

    retries: int = 4
    backoff: float = 0.5
    max_wait: float = 30.0

    def wait(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number `attempt` (0-based)."""
        delay = min(self.max_wait, self.backoff * 2**attempt) * random.uniform(0.75, 1.25)
        if retry_after is not None:
            # A little over the server's wish, so clients told the same time do not return at once.
            delay = max(delay, retry_after * random.uniform(1.0, 1.2))
        return delay


NO_RETRY = RetryPolicy(retries=0)


def _retryable_in_place(error: RemoteEnvError, idempotent: bool) -> bool:
    """Whether repeating the same request is safe and may help."""
    if isinstance(error, ServerBusy):
        return True  # the server did nothing
    if isinstance(error, ServerUnavailable):
        # A session's step cannot outlive its server: only calls that may be repeated wait for it.
        return idempotent or error.status == 503
    return False


class ServerConnection:
    """One pooled HTTP connection set to one server URL, shared by all its sessions."""

    _instances: dict[tuple[str, str | None], ServerConnection] = {}
    _lock = threading.Lock()

    def __init__(self, url: str, token: str | None, timeout: float):
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.http = requests.Session()
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=128)
        self.http.mount("http://", adapter)
        self.http.mount("https://", adapter)
        if token:
            self.http.headers["Authorization"] = f"Bearer {token}"
        self._specs: dict[str, dict] | None = None
        self.batch_resets = True  # False once the server turned down a reset in POST /step (older servers)

    @classmethod
    def get(cls, url: str, token: str | None = None, timeout: float = 60.0) -> ServerConnection:
        key = (url.rstrip("/"), token)
        with cls._lock:
            if key not in cls._instances:
                cls._instances[key] = cls(url, token, timeout)
            return cls._instances[key]

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        idempotent: bool = False,
        timeout: float | None = None,
        retry: RetryPolicy = NO_RETRY,
    ) -> Any:
        """One request; infrastructure faults the server did not act on (and, for `idempotent`
        requests, any connection failure) are retried as `retry` says."""
        for attempt in itertools.count():
            try:
                return self._call_once(method, path, body, timeout)
            except InfrastructureError as error:
                if attempt >= retry.retries or not _retryable_in_place(error, idempotent):
                    raise
                time.sleep(retry.wait(attempt, error.retry_after))
        raise AssertionError("unreachable")

    def _call_once(self, method: str, path: str, body: Any, timeout: float | None) -> Any:
        try:
            response = self.http.request(method, self.url + path, json=body, timeout=timeout or self.timeout)
        except requests.ConnectionError as error:
            raise ServerUnavailable(
                None, "unreachable", f"cannot reach the env server: {error}", self.url
            ) from None
        except requests.Timeout:
            raise ServerUnavailable(
                None,
                "no_answer",
                f"the env server did not answer within {timeout or self.timeout}s",
                self.url,
            ) from None
        if response.status_code >= 400:
            try:
                error = response.json()["error"]
                type_, message = error["type"], error["message"]
            except (ValueError, KeyError, TypeError):
                type_, message = "http_error", response.text[:500]
            raise error_from_answer(
                response.status_code,
                type_,
                message,
                self.url,
                parse_retry_after(response.headers.get("Retry-After")),
            )
        return response.json() if response.content else None

    def specs(self, retry: RetryPolicy = NO_RETRY, refresh: bool = False) -> dict[str, dict]:
        """The served envs' specs, cached; `refresh` asks again (the server may have been
        restarted with other envs on the same address)."""
        if self._specs is None or refresh:
            answer = self.call("GET", "/envs", idempotent=True, retry=retry)
            self._specs = {spec["id"]: spec for spec in answer}
        return self._specs


_round_robin: dict[tuple[str, ...], itertools.count] = {}


def _pick_url(urls: Sequence[str]) -> str:
    key = tuple(urls)
    counter = _round_robin.setdefault(key, itertools.count())
    return urls[next(counter) % len(urls)]


class RemoteEnv(gym.Env):
    """An env served by `python -m server` (or `evol serve`):
    `RemoteEnv("evol/BabyAI-v0", url="http://127.0.0.1:8000")`.

    `url` may be a list of servers: each new RemoteEnv takes the next one in turn.
    Infrastructure faults are retried up to `retries` times (waits from `backoff` seconds,
    doubling, at most `max_wait`, never under the server's Retry-After). When the session is
    lost (server restarted, session expired, its worker died), `reset` opens a fresh one on
    the same server; `step` raises `SessionLost`. `close()` deletes the server-side session.
    """

    metadata = {"render_modes": ["ansi"]}

    def __init__(
        self,
        env_id: str,
        url: str | Sequence[str],
        token: str | None = None,
        env_kwargs: dict[str, Any] | None = None,
        timeout: float = 60.0,
        retries: int = 4,
        render_mode: str | None = None,
        backoff: float = 0.5,
        max_wait: float = 30.0,
    ):
        urls = [url] if isinstance(url, str) else list(url)
        if not urls:
            raise ValueError("RemoteEnv needs at least one server URL")
        self.env_id = env_id
        self.env_kwargs = dict(env_kwargs or {})
        self.retry = RetryPolicy(retries=retries, backoff=backoff, max_wait=max_wait)
        self.session: str | None = None
        self._closed = False
        self.connection = ServerConnection.get(_pick_url(urls), token, timeout)
        specs = self.connection.specs(self.retry)
        if env_id not in specs:
            specs = self.connection.specs(self.retry, refresh=True)
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
        self.open_session()

    @property
    def url(self) -> str:
        return self.connection.url

    def open_session(self) -> None:
        """Start a fresh server-side session (the old one, if any, is given up)."""
        self._forget_session()
        # Retrying a create whose answer was lost may leave one session behind: the server reaps it.
        answer = self.connection.call(
            "POST",
            "/sessions",
            {"env": self.env_id, "kwargs": self.env_kwargs},
            idempotent=True,
            retry=self.retry,
        )
        self.session = answer["session"]

    def _forget_session(self) -> None:
        if self.session is not None:
            sid, self.session = self.session, None
            try:  # free it if the server still holds it; never wait long for that
                self.connection.call("DELETE", f"/sessions/{sid}", timeout=5.0)
            except RemoteEnvError:
                pass

    def _path(self, route: str = "") -> str:
        if self._closed:
            raise RemoteEnvError(None, "closed", "this RemoteEnv is closed")
        if self.session is None:
            raise SessionLost(
                None, "session_lost", "this env's session was lost; reset to start a new episode", self.url
            )
        return f"/sessions/{self.session}{route}"

    def lost(self, error: RemoteEnvError) -> RemoteEnvError:
        """`error` as this session sees it: an unknown session is one the server lost. A lost
        session is dropped (the next reset opens a fresh one)."""
        if error.type == "unknown_session":
            error = SessionLost(
                error.status,
                "session_lost",
                f"the server no longer knows this session (restarted or expired): {error.message}",
                error.url,
            )
        if isinstance(error, SessionLost):
            self.session = None
        return error

    def _session_call(self, route: str, body: Any = None, idempotent: bool = False) -> Any:
        try:
            return self.connection.call(
                "POST", self._path(route), body, idempotent=idempotent, retry=self.retry
            )
        except RemoteEnvError as error:
            raise self.lost(error) from None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        body = reset_body(seed, options)
        for attempt in itertools.count():
            if self.session is None and not self._closed:
                self.open_session()
            try:
                answer = self._session_call("/reset", body, idempotent=True)
                break
            except SessionLost:
                if attempt >= self.retry.retries:
                    raise
        return self.unpack_reset(answer)

    def unpack_reset(self, answer: dict[str, Any]):
        self._last_observation = observation_from_wire(answer["observation"])
        return self._last_observation, answer["info"]

    def step(self, action: str):
        return self.unpack_step(self._session_call("/step", {"action": action}))

    def unpack_step(self, answer: dict[str, Any]):
        self._last_observation = observation_from_wire(answer["observation"])
        return (
            self._last_observation,
            float(answer["reward"]),
            bool(answer["terminated"]),
            bool(answer["truncated"]),
            answer["info"],
        )

    def expert_action(self) -> str:
        return self._session_call("/expert")["action"]

    def render(self) -> str | None:
        if self.render_mode == "ansi":
            obs = self._last_observation
            return obs["text"] if isinstance(obs, dict) else (obs or "")
        return None

    def close(self) -> None:
        self._forget_session()
        self._closed = True

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


def reset_body(seed: int | None = None, options: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if seed is not None:
        body["seed"] = int(seed)
    if options is not None:
        body["options"] = options
    return body


@dataclass(frozen=True)
class Reset:
    """A reset in a batch call (`batch_call`): start a new episode with this seed and options."""

    seed: int | None = None
    options: dict[str, Any] | None = None


def batch_step(remote_envs: Sequence[RemoteEnv], actions: Sequence[str]) -> list[tuple | RemoteEnvError]:
    """Step many remote envs, one `POST /step` per server; each result is a step tuple or an error."""
    if len(remote_envs) != len(actions):
        raise ValueError("batch_step needs one action per env")
    return batch_call(remote_envs, actions)


def batch_reset(remote_envs: Sequence[RemoteEnv], resets: Sequence[Reset]) -> list[tuple | RemoteEnvError]:
    """Reset many remote envs, one `POST /step` per server; each result is `(observation, info)` or an error.
    Sessions that were lost are replaced by fresh ones, as `RemoteEnv.reset` does."""
    if len(remote_envs) != len(resets):
        raise ValueError("batch_reset needs one Reset per env")
    return batch_call(remote_envs, resets)


def batch_call(
    remote_envs: Sequence[RemoteEnv], calls: Sequence[str | Reset]
) -> list[tuple | RemoteEnvError]:
    """Steps (an action string) and resets (`Reset`) of many remote envs in one `POST /step`
    per server, the servers in parallel. Each result is a step tuple, a reset's
    `(observation, info)`, or the error for that env (a step's error only ends its episode).

    Entries the server did not act on (busy) are sent again, as each env's `RetryPolicy`
    says; a reset whose session was lost is sent again in a fresh session."""
    if len(remote_envs) != len(calls):
        raise ValueError("batch_call needs one call per env")
    by_server: dict[ServerConnection, list[int]] = {}
    for i, env in enumerate(remote_envs):
        by_server.setdefault(env.connection, []).append(i)
    results: list[Any] = [None] * len(remote_envs)

    def run(connection: ServerConnection, indices: list[int]) -> None:
        for i, result in zip(
            indices, _server_batch(connection, [remote_envs[i] for i in indices], [calls[i] for i in indices])
        ):
            results[i] = result

    if len(by_server) == 1:
        run(*next(iter(by_server.items())))
    else:
        with ThreadPoolExecutor(len(by_server), thread_name_prefix="batch-call") as pool:
            list(pool.map(lambda item: run(*item), by_server.items()))
    return results


def _server_batch(
    connection: ServerConnection, remote_envs: list[RemoteEnv], calls: list[str | Reset]
) -> list[Any]:
    """`batch_call` for envs on one server."""
    results: list[Any] = [None] * len(remote_envs)
    todo = list(range(len(remote_envs)))
    retry = max((env.retry for env in remote_envs), key=lambda policy: policy.retries)
    for attempt in itertools.count():
        batched, alone = [], []
        for i in todo:
            env, call = remote_envs[i], calls[i]
            if isinstance(call, Reset) and not connection.batch_resets:
                alone.append(i)
                continue
            try:
                if isinstance(call, Reset) and env.session is None and not env._closed:
                    env.open_session()
                entry = {"session": env._path()[len("/sessions/") :]}
                if isinstance(call, Reset):
                    entry["reset"] = reset_body(call.seed, call.options)
                else:
                    entry["action"] = call
                batched.append((i, entry))
            except RemoteEnvError as error:
                results[i] = env.lost(error)
        for i in alone:
            try:
                results[i] = remote_envs[i].reset(seed=calls[i].seed, options=calls[i].options)
            except RemoteEnvError as error:
                results[i] = error
        if not batched:
            break
        only_resets = all("reset" in entry for _, entry in batched)
        try:
            answer = connection.call(
                "POST",
                "/step",
                {"steps": [entry for _, entry in batched]},
                idempotent=only_resets,
                retry=retry,
            )
            items = answer["results"]
        except RemoteEnvError as error:
            for i, _ in batched:
                results[i] = remote_envs[i].lost(error)
            items = []
        todo, waits = [], []
        for (i, entry), item in zip(batched, items):
            env = remote_envs[i]
            if item.get("status") == 200:
                results[i] = env.unpack_reset(item) if "reset" in entry else env.unpack_step(item)
                continue
            error = item.get("error") or {}
            failure = env.lost(
                error_from_answer(
                    item.get("status", 500),
                    error.get("type", "http_error"),
                    error.get("message", ""),
                    connection.url,
                    item.get("retry_after", error.get("retry_after")),
                )
            )
            results[i] = failure
            if "reset" in entry and _older_server_refused_reset(failure):
                connection.batch_resets = False
                todo.append(i)
            elif attempt < retry.retries and (
                isinstance(failure, ServerBusy) or ("reset" in entry and isinstance(failure, SessionLost))
            ):
                todo.append(i)
                waits.append(
                    retry.wait(attempt, failure.retry_after) if isinstance(failure, ServerBusy) else 0.0
                )
        if not todo:
            break
        if waits:
            time.sleep(max(waits))
    return results


def _older_server_refused_reset(error: RemoteEnvError) -> bool:
    """A server from before resets in `POST /step` answers them as a step without an action."""
    return error.status == 400 and "action must be a string" in error.message


__all__ = [
    "NO_RETRY",
    "EnvFailed",
    "InfrastructureError",
    "RemoteEnv",
    "RemoteEnvError",
    "RemoteEpisodeOver",
    "RemoteResetNeeded",
    "Reset",
    "RetryPolicy",
    "ServerBusy",
    "ServerConnection",
    "ServerUnavailable",
    "SessionLost",
    "batch_call",
    "batch_reset",
    "batch_step",
    "decode_image",
    "encode_image",
    "error_from_answer",
    "observation_from_wire",
    "parse_retry_after",
    "reset_body",
    "to_wire",
]
