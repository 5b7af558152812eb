"""`explore: critique_refine`: critique-in-the-loop self-improvement (MathCritique, Xi et al. 2024).

Per iteration, `samples_per_task` solutions per training question (default 8) with the
current policy; a wrong one is critiqued step by step — by the oracle step checker or a
critic model (`critic: oracle | SPEC`) — and the policy refines it, up to `refine_rounds`
times (default 1): one `evol/MathCritique-v0` critique-then-refine episode per sample, on
local envs that hold the critic. Kept: every correct original and every correct
refinement, except refinements with fewer than `min_number_ratio` of the reference's
numbers (they copy the answer). A kept refinement is trained as the answer to the plain
question, without the critique. The learn step fine-tunes from the base model
(`learn_from: base`, `keep_per_task: all`).

Files: `iter_N/episodes.jsonl` (the critique-refine episodes, resumable),
`iter_N/explore.jsonl` (the kept samples), `iter_N/explore_summary.json` and
`correct_counts.png`; metrics.jsonl gets the summary (originals and refinements kept,
refinements rejected as copies, coverage, diversity, kept per 1,000 generated tokens) and,
after each evaluation, accuracy by difficulty held-out and held-in.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import envs
from evol.trainers.explore.math_common import (
    MathExplorer,
    TaskBook,
    attempts,
    explore_summary,
    finished_episodes,
    keep_correct,
    kept_sample,
    record_summary,
    write_samples,
)
from evol.trajectory import Trajectory

MODEL_CRITICS = ("hf", "vllm", "openai")


def check_critic(spec: str) -> None:
    """Refuse a `critic` that is neither the oracle nor a model agent spec."""
    kind, _, target = spec.partition(":")
    if spec == "oracle":
        return
    if kind not in MODEL_CRITICS or not target:
        raise ValueError(
            f"critic: {spec!r} is neither 'oracle' nor a model agent spec (hf:PATH, vllm:PATH, openai:URL#MODEL)"
        )
    if kind in ("hf", "vllm") and not Path(target).is_dir():
        raise ValueError(f"critic: {target} is not a model directory")


def load_critic(config: Any) -> tuple[Any, Any]:
    """(the env's `critic` kwarg, the agent behind it to close, or None)."""
    if config.critic == "oracle":
        return "oracle", None
    from agents import load_agent
    from envs.math.critics import ModelCritic

    kind = config.critic.partition(":")[0]
    kwargs = {"device": config.device} if kind == "hf" else {}
    agent = load_agent(config.critic, **kwargs)
    return ModelCritic(agent, max_new_tokens=config.critic_max_new_tokens), agent


def select(
    episodes: list[Trajectory], book: TaskBook, min_ratio: float
) -> tuple[list[Trajectory], list[str]]:
    """The kept samples of critique-refine episodes, and what each episode gave (`keep_correct`'s kind)."""
    samples, kinds = [], []
    for episode in episodes:
        solution, kind = keep_correct(episode, book, min_ratio)
        kinds.append(kind)
        if solution is not None:
            samples.append(kept_sample(episode, book, solution, episode.sample, kind))
    return samples, kinds


class CritiqueRefineExplorer(MathExplorer):
    """N samples per question; wrong ones critiqued and refined; correct ones kept."""

    name = "critique_refine"

    def check(self, config: Any) -> None:
        super().check(config)
        check_critic(config.critic)

    def env_kwargs(self, config: Any, critic: Any) -> dict[str, dict[str, Any]]:
        """The local envs' kwargs: the run's, with the critic and its rounds (and turns for them)."""
        kwargs = {}
        for env_id in config.envs:
            own = dict(config.env_kwargs.get(env_id, {}))
            own.update(critic=critic, refine_rounds=config.refine_rounds, critique_when="wrong")
            if (own.get("max_turns") or envs.env_class(env_id).max_turns) < config.refine_rounds + 1:
                own["max_turns"] = config.refine_rounds + 1
            kwargs[env_id] = own
        return kwargs

    def explore(self, loop: Any, policy_dir: Path, iteration_dir: Path) -> None:
        config = loop.config
        specs = loop.specs("explore_tasks", samples=config.samples_per_task)
        path = iteration_dir / "episodes.jsonl"
        episodes = finished_episodes(path, {spec.key for spec in specs})
        if sum(t.completed for t in episodes) < len(specs):  # else a rerun found them all
            critic, critic_agent = load_critic(config)
            try:
                env_kwargs = self.env_kwargs(config, critic)
                loop.rollout(loop.policy(policy_dir), specs, path, config.explore_temperature, env_kwargs)
            finally:
                if critic_agent is not None:
                    critic_agent.close()
            episodes = finished_episodes(path, {spec.key for spec in specs})
        book = TaskBook(config.env_kwargs)
        try:
            samples, kinds = select(episodes, book, config.min_number_ratio)
            questions = book.labels(specs)
        finally:
            book.close()
        write_samples(iteration_dir / "explore.jsonl", samples)
        summary = explore_summary(questions, samples, episodes)
        for env_id, row in summary.items():
            tally = Counter(kind for episode, kind in zip(episodes, kinds) if episode.env == env_id)
            row.update(
                originals_kept=tally["original"],
                refinements_kept=tally["refinement"],
                refinements_rejected_as_copies=tally["copy"],
                refined=sum(len(attempts(t)) > 1 for t in episodes if t.env == env_id),
                critic=config.critic,
            )
        record_summary(loop, iteration_dir, self.name, {"envs": summary})
        tally = Counter(kinds)
        loop.log(
            f"[{loop.tag}] {iteration_dir.name}: kept {tally['original']} correct originals and "
            f"{tally['refinement']} correct refinements of {len(episodes)} episodes "
            f"({tally['copy']} refinements rejected as copies)"
        )
