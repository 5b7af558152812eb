"""EvolGym envs as TRL `GRPOTrainer` environments: a `rollout_func` that plays multi-turn episodes.

    rollout = EnvRollout(["evol/BabyAI-v0"], urls=["http://127.0.0.1:8000"], max_turns=8)
    trainer = GRPOTrainer(model=..., args=GRPOConfig(num_generations=4, ...),
                          train_dataset=rollout.dataset(tasks=64),
                          reward_funcs=rollout.reward_func, rollout_func=rollout)

Why `rollout_func` and not `environment_factory`: in TRL 1.16 an `environment_factory` env
is driven through tool calls (its methods become tools the model must call, and only a
tool-calling chat template is accepted); EvolGym actions are plain text replies (`Action:
...`, parsed by `agents.base.parse_action` as every agent does). `rollout_func(prompts,
trainer)` receives the batch's prompts (each already repeated `num_generations` times by
TRL's sampler) and returns, per episode, `prompt_ids`, `completion_ids`, `logprobs` and an
`env_mask` (1: a token the model generated, 0: a token the env wrote — observations between
turns, chat-template glue), the last of which TRL uses as its tool mask so only the model's
tokens are trained.

An episode: the prompt is the env's instruction (system message) and its first observation
(user message), rendered by the model's chat template; each turn the trainer's own model
samples a reply (its token ids and their log-probabilities are kept as sampled, never
re-tokenised), the env steps on the parsed action, and the next observation is appended as a
user turn; the episode ends when the env ends it, after `max_turns` turns, or when the
episode's tokens pass `max_episode_tokens` (then the reward so far counts: the env's own,
truncated). The reward is the sum of the env's step rewards.

Failures: a reset or step that raises (env error, dead server, lost session) ends that
episode only. It is counted (`stats`), logged (a warning, and one line in `failure_log` when
given), and its reward is `None`, never 0: TRL marks the completion unscorable, leaves it out
of its group's mean and std (the baseline is computed over the episodes that finished) and
gives it advantage 0, so it adds no gradient. The group is **dropped-from**, not refilled: a
group keeps the G − f episodes that finished; a group where every episode failed teaches
nothing that step. The env that failed is discarded (a remote one's session is closed),
never reused.

Each dataset row's prompt is found by resetting the env once for its task; the rollout maps a
prompt back to its (env, task) by its text, so two tasks with the same opening prompt share
one entry (their first observation — all the model sees — is the same).
"""

from __future__ import annotations

import json
import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agents.base import parse_action
from envs.remote import RetryPolicy
from evol.env_pool import EnvPool
from evol.rollout import EpisodeSpec, describe, fault_of, task_specs

logger = logging.getLogger(__name__)


@dataclass
class RolloutStats:
    """What the rollouts did so far: episodes, failures (by fault kind), env-step time."""

    episodes: int = 0
    finished: int = 0
    failed: int = 0
    successes: int = 0
    turns: int = 0
    truncated: int = 0  # episodes ended by max_turns or max_episode_tokens
    faults: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    env_seconds: float = 0.0
    generate_seconds: float = 0.0
    model_tokens: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "faults": dict(self.faults)}


@dataclass
class Episode:
    """One episode of a rollout batch, as it is played."""

    spec: EpisodeSpec
    prompt_ids: list[int] = field(default_factory=list)
    completion_ids: list[int] = field(default_factory=list)
    logprobs: list[float | None] = field(default_factory=list)
    env_mask: list[int] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)
    replies: list[list[int]] = field(default_factory=list)  # the model's sampled ids, per turn
    actions: list[str] = field(default_factory=list)
    reward: float = 0.0
    success: bool = False
    done: bool = False
    error: str | None = None
    env: Any = None


def prompt_key(prompt: Any) -> str:
    return json.dumps(prompt, sort_keys=True, ensure_ascii=False)


def observation_text(observation: Any) -> str:
    """The text of an observation (a multimodal one's text part: the adapter is text-only)."""
    if isinstance(observation, dict):
        return str(observation.get("text", ""))
    return str(observation)


class EnvRollout:
    """A TRL `rollout_func` (call it as `rollout(prompts, trainer)`) over EvolGym envs.

    `env_ids`: registered env ids; `urls`: env servers to spread sessions over (none: local
    envs); `max_turns`: turns per episode at most (the env's own limit applies too);
    `max_new_tokens`: tokens per reply; `temperature`: used when the trainer has none (the
    trainer's own is used, so recorded log-probs are of the distribution TRL scores); `retry`: how infrastructure faults are
    retried before an episode counts as failed; `failure_log`: a JSONL file, one line per
    failed episode; `instruction_in_context`: the env's instruction as the system message
    (true), never (false), or for these env ids only (as the self-improvement loop's field)."""

    def __init__(
        self,
        env_ids: list[str],
        urls: list[str] | None = None,
        token: str | None = None,
        env_kwargs: dict[str, dict] | None = None,
        max_turns: int = 8,
        max_new_tokens: int = 32,
        temperature: float = 1.0,
        top_p: float = 1.0,
        max_episode_tokens: int = 2048,
        retry: RetryPolicy | None = None,
        failure_log: str | Path | None = None,
        instruction_in_context: bool | list[str] = True,
    ):
        if not env_ids:
            raise ValueError("env_ids: give at least one env id")
        self.env_ids = list(env_ids)
        self.pool = EnvPool(urls=urls, token=token, env_kwargs=env_kwargs, retry=retry or RetryPolicy())
        self.max_turns = max_turns
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self.top_p = top_p
        self.max_episode_tokens = max_episode_tokens
        self.failure_log = Path(failure_log) if failure_log else None
        self.instruction_in_context = instruction_in_context
        self.stats = RolloutStats()
        self.specs: dict[str, list[EpisodeSpec]] = {}
        self.last_batch: list[Episode] = []
        self.__name__ = "evol_env_rollout"

    # -- the dataset: one row per task, its prompt the env's instruction + first observation

    def dataset(
        self, tasks: int, start: int = 0, split: str | None = "train", specs: list[EpisodeSpec] | None = None
    ) -> Any:
        """A `datasets.Dataset` of `{"prompt": messages, "env": id, "task": k}` rows: tasks
        `start..start+tasks-1` of every env (its `split` where it has one), or exactly `specs`."""
        from datasets import Dataset

        rows = []
        if specs is None:
            specs = task_specs(self.env_ids, tasks, split=split, start=start)
        for spec in specs:
            env = self.pool.take(spec.env)
            try:
                observation, info = env.reset(seed=spec.seed, options=spec.options)
            except Exception:
                self.pool.discard(env)
                raise
            self.pool.give_back(spec.env, env)
            prompt = self.first_messages(spec.env, info, observation)
            self.specs.setdefault(prompt_key(prompt), []).append(spec)
            rows.append({"prompt": prompt, "env": spec.env, "task": spec.seed})
        return Dataset.from_list(rows)

    def first_messages(self, env_id: str, info: dict, observation: Any) -> list[dict]:
        """The episode's opening: the instruction (where in context) and the first observation."""
        shown = self.instruction_in_context
        system = shown if isinstance(shown, bool) else env_id in shown
        user = {"role": "user", "content": observation_text(observation)}
        return ([{"role": "system", "content": str(info["instruction"])}] if system else []) + [user]

    def reward_func(self, prompts: list, completions: list, env_reward: list, **kwargs: Any) -> list:
        """TRL reward function: the env's episode reward (`None` for a failed episode)."""
        return list(env_reward)

    # -- the rollout

    def __call__(self, prompts: list, trainer: Any) -> dict[str, list]:
        tokenizer = trainer.processing_class
        model = trainer.accelerator.unwrap_model(trainer.model)
        # sample at the trainer's temperature: its log-probs are of logits / temperature
        self.temperature = float(getattr(trainer, "temperature", self.temperature) or self.temperature)
        taken: dict[str, int] = defaultdict(int)
        episodes = []
        for prompt in prompts:
            key = prompt_key(prompt)
            if key not in self.specs:
                raise ValueError("rollout: a prompt that is not from this adapter's dataset()")
            options = self.specs[key]
            spec = options[taken[key] % len(options)]
            taken[key] += 1
            episodes.append(self._start(spec, tokenizer))
        turn = 0
        while turn < self.max_turns:
            live = [e for e in episodes if not e.done]
            if not live:
                break
            self._generate(live, model, tokenizer)
            self._step(live, tokenizer, last_turn=turn == self.max_turns - 1)
            turn += 1
        for episode in episodes:
            self._finish(episode, tokenizer)
        self.last_batch = episodes
        failed = sum(e.error is not None for e in episodes)
        metrics = getattr(trainer, "_metrics", None)
        if isinstance(metrics, dict):
            mode = "train" if model.training else "eval"
            metrics[mode]["env/failed_episodes"].append(float(failed))
            metrics[mode]["env/success_rate"].append(
                sum(e.success for e in episodes) / max(1, len(episodes) - failed)
            )
        return {
            "prompt_ids": [e.prompt_ids for e in episodes],
            "completion_ids": [e.completion_ids for e in episodes],
            "logprobs": [e.logprobs for e in episodes],
            "env_mask": [e.env_mask for e in episodes],
            "env_reward": [None if e.error is not None else e.reward for e in episodes],
            "env_success": [e.success for e in episodes],
        }

    def _start(self, spec: EpisodeSpec, tokenizer: Any) -> Episode:
        episode = Episode(spec)
        self.stats.episodes += 1
        began = time.perf_counter()
        try:
            episode.env = self.pool.take(spec.env)
            observation, info = episode.env.reset(seed=spec.seed, options=spec.options)
        except Exception as error:
            self.stats.env_seconds += time.perf_counter() - began
            self._fail(episode, error, "start")
            episode.prompt_ids = [tokenizer.eos_token_id]
            return episode
        self.stats.env_seconds += time.perf_counter() - began
        episode.messages = self.first_messages(spec.env, info, observation)
        episode.prompt_ids = list(
            tokenizer.apply_chat_template(
                episode.messages, add_generation_prompt=True, tokenize=True, return_dict=False
            )
        )
        return episode

    def _generate(self, live: list[Episode], model: Any, tokenizer: Any) -> None:
        """One reply per live episode from the trainer's model, batched (left-padded); the sampled
        ids and their log-probabilities (of the sampling distribution: logits / temperature) kept."""
        import torch

        began = time.perf_counter()
        sequences = [e.prompt_ids + e.completion_ids for e in live]
        width = max(len(s) for s in sequences)
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        device = next(model.parameters()).device
        input_ids = torch.tensor([[pad] * (width - len(s)) + s for s in sequences], device=device)
        attention = torch.tensor([[0] * (width - len(s)) + [1] * len(s) for s in sequences], device=device)
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                out = model.generate(
                    input_ids=input_ids,
                    attention_mask=attention,
                    max_new_tokens=self.max_new_tokens,
                    do_sample=True,
                    temperature=self.temperature,
                    top_p=self.top_p,
                    top_k=0,
                    pad_token_id=pad,
                    eos_token_id=tokenizer.eos_token_id,
                    output_logits=True,
                    return_dict_in_generate=True,
                )
        finally:
            model.train(was_training)
        new = out.sequences[:, width:]
        logps = torch.stack(out.logits, dim=1).float().div(self.temperature).log_softmax(-1)
        token_logps = logps.gather(-1, new.unsqueeze(-1)).squeeze(-1)
        for row, episode in enumerate(live):
            ids = new[row].tolist()
            if tokenizer.eos_token_id in ids:
                ids = ids[: ids.index(tokenizer.eos_token_id) + 1]
            episode.replies.append(ids)
            episode.completion_ids += ids
            episode.logprobs += token_logps[row, : len(ids)].tolist()
            episode.env_mask += [1] * len(ids)
            self.stats.model_tokens += len(ids)
        self.stats.generate_seconds += time.perf_counter() - began

    def _step(self, live: list[Episode], tokenizer: Any, last_turn: bool) -> None:
        for episode in live:
            ids = episode.replies[-1]
            ended_by_eos = bool(ids) and ids[-1] == tokenizer.eos_token_id
            reply = tokenizer.decode(ids[:-1] if ended_by_eos else ids, skip_special_tokens=True)
            action = parse_action(reply) or reply
            episode.actions.append(action)
            began = time.perf_counter()
            try:
                observation, reward, terminated, truncated, info = episode.env.step(action)
            except Exception as error:
                self.stats.env_seconds += time.perf_counter() - began
                self._fail(episode, error, "step")
                continue
            self.stats.env_seconds += time.perf_counter() - began
            self.stats.turns += 1
            episode.reward += float(reward)
            episode.success = bool(info.get("success", False)) if isinstance(info, dict) else False
            assistant = {"role": "assistant", "content": reply}
            if terminated or truncated or last_turn:
                episode.done = True
                self.stats.truncated += int(not terminated)
                self._close_turn(episode, assistant, ended_by_eos, None, tokenizer)
                continue
            user = {"role": "user", "content": observation_text(observation)}
            self._close_turn(episode, assistant, ended_by_eos, user, tokenizer)
            if len(episode.prompt_ids) + len(episode.completion_ids) >= self.max_episode_tokens:
                episode.done = True
                self.stats.truncated += 1

    def _close_turn(
        self, episode: Episode, assistant: dict, ended_by_eos: bool, user: dict | None, tokenizer: Any
    ) -> None:
        """Append the env's tokens after a reply that the episode goes on from (mask 0): the chat
        template's end of the assistant turn (less the EOS the model sampled), the observation as
        a user turn and the next assistant header (nothing after the last reply). Only text the env or the template wrote is
        tokenised; the model's ids stay as sampled."""
        before = episode.messages
        episode.messages = before + [assistant] + ([user] if user else [])
        if user is None:  # the episode is over: the completion ends with the model's last token
            return
        rendered_reply = tokenizer.apply_chat_template(before + [assistant], tokenize=False)
        opened = tokenizer.apply_chat_template(before, tokenize=False, add_generation_prompt=True)
        closing = rendered_reply[len(opened) :]
        if rendered_reply.startswith(opened) and closing.startswith(assistant["content"]):
            closing = closing[len(assistant["content"]) :]
        else:  # a template that rewrites replies: close with EOS only
            closing = tokenizer.eos_token
        if ended_by_eos and closing.startswith(tokenizer.eos_token):
            closing = closing[len(tokenizer.eos_token) :]
        full = tokenizer.apply_chat_template(episode.messages, tokenize=False, add_generation_prompt=True)
        text = closing + (full[len(rendered_reply) :] if full.startswith(rendered_reply) else "")
        ids = tokenizer(text, add_special_tokens=False)["input_ids"] if text else []
        episode.completion_ids += ids
        episode.logprobs += [None] * len(ids)
        episode.env_mask += [0] * len(ids)

    def _fail(self, episode: Episode, error: BaseException, phase: str) -> None:
        fault = fault_of(error, phase)
        episode.error = f"{fault}: {describe(error)}"
        episode.done = True
        self.stats.failed += 1
        self.stats.faults[fault] += 1
        logger.warning(
            "episode %s task %s failed at %s (%s); its reward is None, left out of its group",
            episode.spec.env,
            episode.spec.seed,
            phase,
            episode.error,
        )
        if self.failure_log is not None:
            self.failure_log.parent.mkdir(parents=True, exist_ok=True)
            with self.failure_log.open("a") as log:
                line = {
                    "env": episode.spec.env,
                    "task": episode.spec.seed,
                    "phase": phase,
                    "error": episode.error,
                }
                log.write(json.dumps(line) + "\n")
        self.pool.discard(episode.env)
        episode.env = None

    def _finish(self, episode: Episode, tokenizer: Any) -> None:
        if not episode.completion_ids:  # failed before the model wrote anything: one EOS, advantage 0
            episode.completion_ids = [tokenizer.eos_token_id]
            episode.logprobs = [None]
            episode.env_mask = [1]
        if episode.error is None:
            self.stats.finished += 1
            self.stats.successes += int(episode.success)
            self.pool.give_back(episode.spec.env, episode.env)
            episode.env = None

    def close(self) -> None:
        self.pool.close()
