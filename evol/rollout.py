"""The rollout engine: many episodes in flight, one batched agent call per turn.

Each turn the engine gathers every live episode that waits for an action, asks the agent
for all of them at once, steps their envs concurrently, records what happened, and starts the next task in any slot whose
episode just ended. Served envs are stepped, and their next episodes reset, in one
`POST /step` per server.

Faults end one episode, never the run, and are of three kinds (`Trajectory.fault`):
`"infra"` (a server unreachable, at capacity, busy, or the session lost): the episode is
restarted from its reset in a fresh session, up to `retries` times with exponential
backoff that honours the server's Retry-After, then written as a failed attempt;
`"env"` (the env raised, or refused the task); `"agent"` (the agent failed, or its action
was over the env's length limit). A failed attempt is not a finished episode: resuming
runs it again.
"""

from __future__ import annotations

import functools
import heapq
import itertools
import time
import traceback
from collections import deque
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from tqdm import tqdm

import envs
from agents.base import Agent, AgentInput, AgentOutput, SamplingParams, sees_instruction, window
from envs.errors import ParamError
from envs.params import check_params
from envs.remote import RemoteEnv, RemoteEnvError, Reset, RetryPolicy, ServerBusy, batch_reset, batch_step
from envs.wire import encode_image
from evol.env_pool import EnvPool
from evol.trajectory import Trajectory, TrajectoryWriter, episode_key


@dataclass(frozen=True)
class EpisodeSpec:
    """One episode to run: which env, which task (seed + options), which sample."""

    env: str
    seed: int | None
    options: dict[str, Any]
    sample: int = 0

    @property
    def key(self) -> str:
        return episode_key(self.env, self.seed, self.options, self.sample)


def task_specs(
    env_ids: Iterable[str],
    episodes: int,
    split: str | None = None,
    samples: int = 1,
    start: int = 0,
    options: Mapping[str, Any] | None = None,
) -> list[EpisodeSpec]:
    """A fixed, reproducible task set: tasks start..start+episodes-1 of each env (seed = task),
    with the task `options` (e.g. `{"guidance": "answer"}`, see `check_task_options`) in every
    reset."""
    specs = []
    for env_id in env_ids:
        has_split = split is not None and split in envs.env_class(env_id).splits
        for k in range(start, start + episodes):
            task: dict[str, Any] = {"task": k, **(options or {})}
            if has_split:
                task["split"] = split
            specs.extend(EpisodeSpec(env_id, k, task, sample) for sample in range(samples))
    return specs


# Options a command sets itself, and the flag that sets each.
COMMAND_OPTIONS = {
    "task": "--episodes/--start",
    "split": "evol rollout --split; evol eval runs the test split",
}


def check_task_options(env_ids: Iterable[str], options: Mapping[str, Any] | None) -> dict[str, Any]:
    """`options` checked against the reset options every env of `env_ids` declares
    (`option_params`), as a client's would be; a ValueError names the option and the env."""
    if options is None:
        return {}
    if not isinstance(options, Mapping):
        raise ValueError(f"--options must be a JSON object, got {type(options).__name__}")
    for key, flag in COMMAND_OPTIONS.items():
        if key in options:
            raise ValueError(f"--options: options.{key} is set by the command ({flag}), not in --options")
    for env_id in env_ids:
        try:
            check_params(
                envs.env_class(env_id).option_params, options, "option", owner=env_id, from_client=True
            )
        except ParamError as error:
            raise ValueError(f"--options: {error}") from None
    return dict(options)


def user_content(observation: Any) -> Any:
    """An observation as a chat message's content (images as OpenAI content parts; a blank
    image, as text-only modes of multimodal envs send, is left out)."""
    if isinstance(observation, dict):
        if not observation["image"].any():
            return observation.get("text", "")
        return [
            {"type": "text", "text": observation.get("text", "")},
            {"type": "image_url", "image_url": {"url": encode_image(observation["image"])}},
        ]
    return observation


FAULTS = ("infra", "env", "agent")


def fault_of(error: BaseException, phase: str) -> str:
    """The kind of fault `error` is, raised while an episode was in `phase` ("start", "agent", "step")."""
    if isinstance(error, RemoteEnvError):
        if error.infra:
            return "infra"
        if phase == "step" and error.status == 413:
            return "agent"  # the action was over the env's length limit
        return "env"
    return "agent" if phase == "agent" else "env"


def describe(error: BaseException) -> str:
    return "".join(traceback.format_exception_only(type(error), error)).strip()


@dataclass
class LiveEpisode:
    spec: EpisodeSpec
    env: Any
    trajectory: Trajectory
    info: dict[str, Any] = field(default_factory=dict)
    max_turns: int = 0
    started: float = field(default_factory=time.perf_counter)


@dataclass
class RolloutStats:
    """What a run did. `episodes` counts written trajectories, failed attempts included;
    `faults` counts the failed attempts by kind; `restarts` the episodes started again after
    an infrastructure fault."""

    episodes: int = 0
    successes: int = 0
    steps: int = 0
    faults: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FAULTS, 0))
    restarts: int = 0
    agent_s: float = 0.0
    env_s: float = 0.0
    wall_s: float = 0.0

    @property
    def errors(self) -> int:
        """Episodes that could not be completed (failed attempts of every kind)."""
        return sum(self.faults.values())

    @property
    def success_rate(self) -> float:
        return self.successes / self.episodes if self.episodes else 0.0

    def fault_summary(self) -> str:
        """`"2 infra, 1 env, 0 agent"`."""
        return ", ".join(f"{self.faults[kind]} {kind}" for kind in FAULTS)


@dataclass
class _RunState:
    """The bookkeeping of one `RolloutEngine.run`."""

    writer: TrajectoryWriter | None
    bar: Any  # the run's tqdm progress bar
    started: float  # perf_counter at the start of the run
    waiting: list[tuple[float, int, EpisodeSpec]] = field(
        default_factory=list
    )  # to restart: (when, order, spec)
    order: Iterator[int] = field(default_factory=itertools.count)
    infra_faults: dict[str, int] = field(default_factory=dict)  # infra faults so far, by episode key
    finished: list[Trajectory] = field(default_factory=list)


class RolloutEngine:
    """Runs `EpisodeSpec`s with up to `concurrency` episodes in flight.

    `max_turns` caps every episode (below the env's own limit); `max_tokens` caps the
    tokens an agent may generate in one episode; `history_turns` bounds what the agent
    sees of the conversation (`agents.base.window`, with or without the instruction;
    the trajectory keeps all of it). Finished trajectories go to `writer`
    (and are returned); specs whose key the writer holds as done are skipped.
    Infrastructure faults are retried `retries` times per episode, the k-th after about
    `backoff * 2**k` seconds (or the server's Retry-After, if longer).
    """

    def __init__(
        self,
        agent: Agent,
        agent_name: str = "",
        concurrency: int = 32,
        sampling: SamplingParams | None = None,
        urls: list[str] | None = None,
        token: str | None = None,
        env_kwargs: dict | None = None,
        max_turns: int | None = None,
        max_tokens: int | None = None,
        progress: bool = True,
        step_threads: int = 8,
        history_turns: int | None = None,
        instruction_in_context: bool | Collection[str] = True,
        retries: int = 5,
        backoff: float = 1.0,
    ):
        if concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        if retries < 0 or backoff < 0:
            raise ValueError("retries and backoff must be >= 0")
        self.agent = agent
        self.agent_name = agent_name or getattr(agent, "name", "agent")
        self.concurrency = concurrency
        self.sampling = sampling or SamplingParams()
        self.retry = RetryPolicy(retries=retries, backoff=backoff)
        self.pool = EnvPool(urls, token, env_kwargs, self.retry)
        self.max_turns = max_turns
        self.max_tokens = max_tokens
        self.progress = progress
        self.history_turns = history_turns
        self.instruction_in_context = instruction_in_context
        self.executor = ThreadPoolExecutor(max_workers=step_threads, thread_name_prefix="rollout")
        self.stats = RolloutStats()
        self.slots = concurrency  # lowered when a server is at capacity with this engine's sessions

    # ---- the loop ---------------------------------------------------------------------
    def run(self, specs: Iterable[EpisodeSpec], writer: TrajectoryWriter | None = None) -> list[Trajectory]:
        done_keys = writer.done if writer else set()
        pending = deque(spec for spec in specs if spec.key not in done_keys)
        live: list[LiveEpisode] = []
        bar = tqdm(total=len(pending), desc="rollout", unit="ep", disable=not self.progress, mininterval=0.5)
        state = _RunState(writer=writer, bar=bar, started=time.perf_counter())
        finish = functools.partial(self._finish, state)
        waiting = state.waiting
        try:
            while pending or live or waiting:
                while waiting and waiting[0][0] <= time.monotonic():
                    pending.appendleft(heapq.heappop(waiting)[2])
                # Fill free slots with new episodes (served envs' resets go in one request per server).
                starting = []
                while pending and len(live) + len(starting) < min(self.concurrency, self.slots):
                    starting.append(pending.popleft())
                if starting:
                    live.extend(self._start(starting, finish, pending, running=len(live)))
                if not live:
                    if waiting and not pending:
                        time.sleep(max(0.0, waiting[0][0] - time.monotonic()))
                    continue
                live = self._turn(live, finish)
        finally:
            self.stats.wall_s += time.perf_counter() - state.started
            bar.close()
        return state.finished

    def _turn(self, live: list[LiveEpisode], finish: Callable) -> list[LiveEpisode]:
        """One batched agent call for every live episode, then one step of each env whose agent
        replied; the episodes still live afterwards."""
        outputs = self._act(live)
        to_step = []
        for episode, output in zip(live, outputs):
            if isinstance(output, BaseException):
                kind = fault_of(output, "agent")
                where = "agent failed" if kind == "agent" else "env failed while the agent read it"
                finish(episode, kind, f"{where}: {describe(output)}", retry_after=_retry_after(output))
            else:
                to_step.append((episode, output))
        results = self._step_all(to_step)
        still_live = []
        for (episode, output), result in zip(to_step, results):
            if self._record(episode, output, result, finish):
                still_live.append(episode)
        return still_live

    def _finish(
        self,
        state: _RunState,
        episode: LiveEpisode,
        fault: str | None = None,
        error: str | None = None,
        truncated: bool = False,
        retry_after: float | None = None,
    ) -> None:
        """End `episode`: schedule its restart (an infra fault with retries left), or write its
        trajectory, count it, and return its env to the pool (or discard it after a fault)."""
        trajectory = episode.trajectory
        if fault == "infra":
            key = episode.spec.key
            faults = state.infra_faults[key] = state.infra_faults.get(key, 0) + 1
            if faults <= self.retry.retries:
                self.stats.restarts += 1
                self._discard(episode.env)
                when = time.monotonic() + self.retry.wait(faults - 1, retry_after)
                heapq.heappush(state.waiting, (when, next(state.order), episode.spec))
                return
            error = f"{error} (gave up after {faults} attempts)"
        trajectory.fault = fault
        trajectory.error = error
        trajectory.truncated = trajectory.truncated or truncated
        trajectory.reward = float(sum(trajectory.rewards))
        trajectory.timing["wall_s"] = time.perf_counter() - episode.started
        if state.writer:
            state.writer.write(trajectory)
        state.finished.append(trajectory)
        self.stats.episodes += 1
        self.stats.successes += int(trajectory.success)
        if fault is not None:
            self.stats.faults[fault] += 1
        state.bar.update(1)
        elapsed = time.perf_counter() - state.started
        state.bar.set_postfix(
            success=f"{self.stats.success_rate:.0%}",
            steps_s=f"{self.stats.steps / max(elapsed, 1e-9):.0f}",
            faults=self.stats.errors,
            refresh=False,
        )
        if fault is None:
            self.pool.give_back(episode.spec.env, episode.env)
        else:
            self._discard(episode.env)

    def _discard(self, env: Any) -> None:
        """Close an env off the loop's thread (a server that stopped answering must not stall the run)."""
        if env is not None:
            self.pool.forget(env)
            self.executor.submit(self.pool.close_env, env)

    def _take(self, spec: EpisodeSpec) -> Any:
        try:
            return self.pool.take(spec.env)
        except Exception as error:
            return error

    def _start(
        self, specs: list[EpisodeSpec], finish: Callable, pending: deque, running: int
    ) -> list[LiveEpisode]:
        """Take an env for each spec and reset it; returns the episodes that started.

        A server at capacity while this engine has `running` episodes (or others starting)
        lowers `slots` to those: the spec waits for one of them to end, no attempt counted."""
        episodes = [LiveEpisode(spec, None, self._trajectory(spec)) for spec in specs]
        taken = list(self.executor.map(self._take, specs)) if len(specs) > 1 else [self._take(specs[0])]
        remote, local = [], []
        for episode, env in zip(episodes, taken):
            if not isinstance(env, BaseException):
                episode.env = env
                (remote if isinstance(env, RemoteEnv) else local).append(episode)
            elif isinstance(env, ServerBusy) and env.type == "at_capacity":
                for idle in self.pool.release_idle(keep=episode.spec.env):
                    self.executor.submit(self.pool.close_env, idle)  # free the server for this env id
                in_use = running + sum(not isinstance(other, BaseException) for other in taken)
                if in_use:
                    self.slots = in_use
                    pending.appendleft(episode.spec)
                else:
                    finish(episode, "infra", f"reset failed: {describe(env)}", retry_after=env.retry_after)
            else:
                finish(
                    episode,
                    fault_of(env, "start"),
                    f"reset failed: {describe(env)}",
                    retry_after=_retry_after(env),
                )
        started = []
        for episode, result in zip(remote + local, self._reset_all(remote, local)):
            if isinstance(result, BaseException):
                kind = fault_of(result, "start")
                finish(episode, kind, f"reset failed: {describe(result)}", retry_after=_retry_after(result))
                continue
            observation, info = result
            episode.trajectory.messages = [
                {"role": "system", "content": info["instruction"]},
                {"role": "user", "content": user_content(observation)},
            ]
            episode.info = info
            env_max = getattr(episode.env, "max_turns", None) or info.get("max_turns") or 10**9
            episode.max_turns = min(env_max, self.max_turns or env_max)
            episode.started = time.perf_counter()
            started.append(episode)
        return started

    def _reset_all(self, remote: list[LiveEpisode], local: list[LiveEpisode]) -> list[Any]:
        """`(observation, info)` or the exception, for `remote + local`: served envs in one
        request per server, local ones in threads."""
        answers: list[Any] = []
        if remote:
            try:
                answers = batch_reset(
                    [e.env for e in remote], [Reset(e.spec.seed, e.spec.options) for e in remote]
                )
            except Exception as error:
                answers = [error] * len(remote)

        def reset_one(episode: LiveEpisode) -> Any:
            try:
                return episode.env.reset(seed=episode.spec.seed, options=episode.spec.options)
            except Exception as error:
                return error

        return answers + list(
            self.executor.map(reset_one, local) if len(local) > 1 else map(reset_one, local)
        )

    def _trajectory(self, spec: EpisodeSpec) -> Trajectory:
        return Trajectory(
            env=spec.env,
            task={"seed": spec.seed, "options": spec.options},
            agent=self.agent_name,
            sample=spec.sample,
            key=spec.key,
            timing={"agent_s": 0.0, "env_s": 0.0},
        )

    def _act(self, live: list[LiveEpisode]) -> list[AgentOutput | BaseException]:
        """Agent outputs for all live episodes; an episode whose reply failed gets the exception."""
        inputs = [
            AgentInput(
                messages=window(
                    e.trajectory.messages,
                    self.history_turns,
                    sees_instruction(self.instruction_in_context, e.trajectory.env),
                ),
                info=e.info,
                env=e.env,
            )
            for e in live
        ]
        started = time.perf_counter()
        try:
            outputs: list[AgentOutput | BaseException] = list(self.agent.act(inputs, self.sampling))
        except Exception:
            # Find which episodes the failure belongs to: ask for each alone.
            outputs = []
            for item in inputs:
                try:
                    outputs.append(self.agent.act([item], self.sampling)[0])
                except Exception as error:
                    outputs.append(error)
        elapsed = time.perf_counter() - started
        self.stats.agent_s += elapsed
        for episode in live:
            episode.trajectory.timing["agent_s"] += elapsed
        return outputs

    def _step_all(self, to_step: list[tuple[LiveEpisode, AgentOutput]]) -> list[Any]:
        """Step results (tuples) or exceptions, in order; served envs go through batch steps."""
        started = time.perf_counter()
        results: list[Any] = [None] * len(to_step)
        remote = [i for i, (episode, _) in enumerate(to_step) if isinstance(episode.env, RemoteEnv)]
        local = [i for i, (episode, _) in enumerate(to_step) if not isinstance(episode.env, RemoteEnv)]
        if remote:
            try:
                answers = batch_step(
                    [to_step[i][0].env for i in remote], [to_step[i][1].action for i in remote]
                )
            except Exception as error:
                answers = [error] * len(remote)
            for i, answer in zip(remote, answers):
                results[i] = answer

        def step_one(i: int) -> Any:
            episode, output = to_step[i]
            try:
                return episode.env.step(output.action)
            except Exception as error:
                return error

        for i, answer in zip(
            local, self.executor.map(step_one, local) if len(local) > 1 else map(step_one, local)
        ):
            results[i] = answer
        elapsed = time.perf_counter() - started
        self.stats.env_s += elapsed
        for episode, _ in to_step:
            episode.trajectory.timing["env_s"] += elapsed
        return results

    def _record(self, episode: LiveEpisode, output: AgentOutput, result: Any, finish: Callable) -> bool:
        """Add one step to the trajectory; returns whether the episode goes on."""
        trajectory = episode.trajectory
        trajectory.messages.append({"role": "assistant", "content": output.text})
        trajectory.actions.append(output.action)
        trajectory.tokens += output.tokens
        if isinstance(result, BaseException):
            kind = fault_of(result, "step")
            where = "agent's action refused" if kind == "agent" else "env failed"
            finish(episode, kind, f"{where}: {describe(result)}", retry_after=_retry_after(result))
            return False
        observation, reward, terminated, truncated, info = result
        self.stats.steps += 1
        trajectory.rewards.append(float(reward))
        trajectory.turns += 1
        episode.info = info
        if terminated or truncated:
            trajectory.success = bool(info.get("success", False))
            trajectory.truncated = bool(truncated)
            trajectory.outcome = dict(info.get("outcome") or {})
            finish(episode)
            return False
        trajectory.messages.append({"role": "user", "content": user_content(observation)})
        if trajectory.turns >= episode.max_turns:
            finish(episode, truncated=True)  # the engine's turn cap: the env episode is abandoned
            return False
        if self.max_tokens is not None and trajectory.tokens >= self.max_tokens:
            finish(episode, truncated=True)
            return False
        return True

    def close(self) -> None:
        self.pool.close()
        self.executor.shutdown(wait=False)
        self.agent.close()


def _retry_after(error: BaseException) -> float | None:
    return getattr(error, "retry_after", None)
