"""The rollout engine: many episodes in flight, one batched agent call per turn.

Each turn the engine gathers every live episode that waits for an action, asks the agent
for all of them at once, steps their envs concurrently (through `POST /step` for served
envs), records what happened, and starts the next task in any slot whose episode just
ended. A failure of one env or one agent reply ends that episode with its `error` set;
the run goes on.
"""

from __future__ import annotations

import time
import traceback
from collections import deque
from collections.abc import Callable, Collection, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from tqdm import tqdm

import envs
from agents.base import Agent, AgentInput, AgentOutput, SamplingParams, sees_instruction, window
from evol.trajectory import Trajectory, TrajectoryWriter, episode_key
from server.client import RemoteEnv, batch_step
from server.wire import encode_image


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
    env_ids: Iterable[str], episodes: int, split: str | None = None, samples: int = 1, start: int = 0
) -> list[EpisodeSpec]:
    """A fixed, reproducible task set: tasks start..start+episodes-1 of each env (seed = task)."""
    specs = []
    for env_id in env_ids:
        has_split = split is not None and split in envs.env_class(env_id).splits
        for k in range(start, start + episodes):
            options: dict[str, Any] = {"task": k}
            if has_split:
                options["split"] = split
            specs.extend(EpisodeSpec(env_id, k, options, sample) for sample in range(samples))
    return specs


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


class EnvPool:
    """Envs for the engine's slots: local, or `RemoteEnv`s spread over server URLs; reused."""

    def __init__(
        self, urls: list[str] | None = None, token: str | None = None, env_kwargs: dict | None = None
    ):
        self.urls = urls or None
        self.token = token
        self.env_kwargs = env_kwargs or {}
        self.idle: dict[str, list[Any]] = {}

    def take(self, env_id: str) -> Any:
        if self.idle.get(env_id):
            return self.idle[env_id].pop()
        kwargs = self.env_kwargs.get(env_id, {})
        if self.urls:
            return RemoteEnv(env_id, url=self.urls, token=self.token, env_kwargs=kwargs)
        return envs.make(env_id, **kwargs)

    def give_back(self, env_id: str, env: Any) -> None:
        self.idle.setdefault(env_id, []).append(env)

    def discard(self, env: Any) -> None:
        try:
            env.close()
        except Exception:
            pass

    def close(self) -> None:
        for pool in self.idle.values():
            for env in pool:
                self.discard(env)
        self.idle.clear()


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
    episodes: int = 0
    successes: int = 0
    steps: int = 0
    errors: int = 0
    agent_s: float = 0.0
    env_s: float = 0.0
    wall_s: float = 0.0

    @property
    def success_rate(self) -> float:
        return self.successes / self.episodes if self.episodes else 0.0


class RolloutEngine:
    """Runs `EpisodeSpec`s with up to `concurrency` episodes in flight.

    `max_turns` caps every episode (below the env's own limit); `max_tokens` caps the
    tokens an agent may generate in one episode; `history_turns` bounds what the agent
    sees of the conversation (`agents.base.window`, with or without the instruction;
    the trajectory keeps all of it). Finished trajectories go to `writer`
    (and are returned); specs whose key the writer already holds are skipped.
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
    ):
        if concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        self.agent = agent
        self.agent_name = agent_name or getattr(agent, "name", "agent")
        self.concurrency = concurrency
        self.sampling = sampling or SamplingParams()
        self.pool = EnvPool(urls, token, env_kwargs)
        self.max_turns = max_turns
        self.max_tokens = max_tokens
        self.progress = progress
        self.history_turns = history_turns
        self.instruction_in_context = instruction_in_context
        self.executor = ThreadPoolExecutor(max_workers=step_threads, thread_name_prefix="rollout")
        self.stats = RolloutStats()

    # ---- the loop ---------------------------------------------------------------------
    def run(self, specs: Iterable[EpisodeSpec], writer: TrajectoryWriter | None = None) -> list[Trajectory]:
        done_keys = writer.done if writer else set()
        pending = deque(spec for spec in specs if spec.key not in done_keys)
        finished: list[Trajectory] = []
        live: list[LiveEpisode] = []
        bar = tqdm(total=len(pending), desc="rollout", unit="ep", disable=not self.progress, mininterval=0.5)
        started = time.perf_counter()

        def finish(episode: LiveEpisode, error: str | None = None, truncated: bool = False) -> None:
            trajectory = episode.trajectory
            trajectory.error = error
            trajectory.truncated = trajectory.truncated or truncated
            trajectory.reward = float(sum(trajectory.rewards))
            trajectory.timing["wall_s"] = time.perf_counter() - episode.started
            if writer:
                writer.write(trajectory)
            finished.append(trajectory)
            self.stats.episodes += 1
            self.stats.successes += int(trajectory.success)
            self.stats.errors += int(error is not None)
            bar.update(1)
            elapsed = time.perf_counter() - started
            bar.set_postfix(
                success=f"{self.stats.success_rate:.0%}",
                steps_s=f"{self.stats.steps / max(elapsed, 1e-9):.0f}",
                refresh=False,
            )
            if error is None:
                self.pool.give_back(episode.spec.env, episode.env)
            else:
                self.pool.discard(episode.env)

        try:
            while pending or live:
                # Fill free slots with new episodes (resets run concurrently).
                starting = []
                while pending and len(live) + len(starting) < self.concurrency:
                    starting.append(pending.popleft())
                live.extend(
                    e
                    for e in self.executor.map(self._start, starting)
                    if e is not None and self._alive(e, finish)
                )
                if not live:
                    continue
                # One batched agent call for every live episode.
                outputs = self._act(live)
                # Step every env whose agent replied.
                to_step = [
                    (episode, output) for episode, output in zip(live, outputs) if not isinstance(output, str)
                ]
                for episode, output in zip(live, outputs):
                    if isinstance(output, str):
                        finish(episode, error=f"agent failed: {output}")
                results = self._step_all(to_step)
                still_live = []
                for (episode, output), result in zip(to_step, results):
                    if self._record(episode, output, result, finish):
                        still_live.append(episode)
                live = still_live
        finally:
            self.stats.wall_s += time.perf_counter() - started
            bar.close()
        return finished

    def _alive(self, episode: LiveEpisode, finish: Callable) -> bool:
        if episode.trajectory.error is not None:
            finish(episode, error=episode.trajectory.error)
            return False
        return True

    def _start(self, spec: EpisodeSpec) -> LiveEpisode | None:
        trajectory = Trajectory(
            env=spec.env,
            task={"seed": spec.seed, "options": spec.options},
            agent=self.agent_name,
            sample=spec.sample,
            key=spec.key,
            timing={"agent_s": 0.0, "env_s": 0.0},
        )
        env = None
        try:
            env = self.pool.take(spec.env)
            observation, info = env.reset(seed=spec.seed, options=spec.options)
        except Exception as error:
            episode = LiveEpisode(spec, env, trajectory)
            trajectory.error = f"reset failed: {type(error).__name__}: {error}"
            return episode
        trajectory.messages = [
            {"role": "system", "content": info["instruction"]},
            {"role": "user", "content": user_content(observation)},
        ]
        env_max = getattr(env, "max_turns", None) or info.get("max_turns") or 10**9
        return LiveEpisode(
            spec, env, trajectory, info=info, max_turns=min(env_max, self.max_turns or env_max)
        )

    def _act(self, live: list[LiveEpisode]) -> list[AgentOutput | str]:
        """Agent outputs for all live episodes; an episode whose reply failed gets the error text."""
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
            outputs: list[AgentOutput | str] = list(self.agent.act(inputs, self.sampling))
        except Exception:
            # Find which episodes the failure belongs to: ask for each alone.
            outputs = []
            for item in inputs:
                try:
                    outputs.append(self.agent.act([item], self.sampling)[0])
                except Exception as error:
                    outputs.append(f"{type(error).__name__}: {error}")
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
            detail = "".join(traceback.format_exception_only(type(result), result)).strip()
            finish(episode, error=f"env failed: {detail}")
            return False
        observation, reward, terminated, truncated, info = result
        self.stats.steps += 1
        trajectory.rewards.append(float(reward))
        trajectory.turns += 1
        episode.info = info
        if terminated or truncated:
            trajectory.success = bool(info.get("success", False))
            trajectory.truncated = bool(truncated)
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
