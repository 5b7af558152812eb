"""`explore: guided`: Guided Self-Improvement on the hard tail (GSI, Ding et al. 2024).

Per iteration, `samples_per_task` solutions per training question (default 8; round 0,
unguided). A question with fewer than `resample_threshold` kept samples (default 4) is
sampled again, `samples_per_task` episodes a round, for up to `resample_rounds` rounds
(default 8), until it reaches the threshold. How (`resample`): `guided` with Socratic
guidance (`guidance`, an `evol/MathCritique-v0` task option: `answer` gives the gold
answer, `rationale` the gold solution to rewrite, `state_reset` pre-fills the first k gold
lines with k = 1, 2, ... cycling over the solution's lines round by round, `interactive`
has a teacher name the first wrong step and the student revise); `brute_force` unguided,
with the same budget; `none` not at all (vanilla self-improvement). Kept: the correct
samples (a guided one only with at least `min_number_ratio` of the reference's numbers),
each trained on the original question WITHOUT its hint — the prompt is rewritten to the
plain one — and, under state reset, with the gold prefix and the model's continuation
together as the target.

Files: `iter_N/round_R.jsonl` (each round's episodes, resumable), `iter_N/explore.jsonl`
(the kept samples), `iter_N/explore_summary.json` and `iter_N/correct_counts.png` (kept
samples per question, before resampling and after: the long tail); metrics.jsonl gets
coverage before and after, the distribution of correct counts, sampling cost (episodes
and generated tokens, per round) and, after each evaluation, accuracy by difficulty.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evol.rollout import EpisodeSpec
from evol.trainers.explore.math_common import (
    MathExplorer,
    SharedAgent,
    TaskBook,
    count_histogram,
    explore_summary,
    finished_episodes,
    keep_correct,
    kept_sample,
    question_key,
    record_summary,
    write_samples,
)
from evol.trajectory import Trajectory


def round_options(config: Any, options: dict[str, Any], lines: int, round_: int) -> dict[str, Any]:
    """The task options of a question in resampling round `round_` (round 0: unguided).
    `lines`: the reference solution's lines, over which state reset's k cycles."""
    if round_ == 0 or config.resample != "guided":
        return dict(options)
    guided = {**options, "guidance": config.guidance}
    if config.guidance == "state_reset":
        guided["prefix_steps"] = 1 + (round_ - 1) % max(1, lines - 1)
    return guided


@dataclass
class Rounds:
    """What the rounds of one iteration gave: the kept samples, every episode with its round,
    the questions each round sampled, and the kept samples per question after round 0."""

    samples: list[Trajectory] = field(default_factory=list)
    ran: list[tuple[int, Trajectory]] = field(default_factory=list)
    pending: list[list[EpisodeSpec]] = field(default_factory=list)
    before: dict[str, int] = field(default_factory=dict)

    def cost(self, env_id: str, n: int) -> list[dict[str, Any]]:
        """Per round: questions sampled, episodes, generated tokens and samples kept (sample
        index = round * n + the episode's sample)."""
        kept: dict[int, int] = defaultdict(int)
        for sample in self.samples:
            if sample.env == env_id:
                kept[sample.sample // n] += 1
        rows = []
        for round_, pending in enumerate(self.pending):
            episodes = [e for r, e in self.ran if r == round_ and e.env == env_id]
            rows.append(
                {"round": round_, "questions": sum(q.env == env_id for q in pending), "episodes": len(episodes),
                 "generated_tokens": sum(e.tokens for e in episodes), "kept": kept[round_]}
            )  # fmt: skip
        return rows


class GuidedExplorer(MathExplorer):
    """N samples per question; the questions under the threshold resampled with guidance."""

    name = "guided"

    def check(self, config: Any) -> None:
        super().check(config)
        if config.resample == "guided" and config.guidance == "none":
            raise ValueError(
                "guidance: resample=guided needs a guidance (answer, rationale, state_reset, interactive); "
                "unguided resampling is resample=brute_force"
            )

    def explore(self, loop: Any, policy_dir: Path, iteration_dir: Path) -> None:
        config = loop.config
        questions = loop.specs("explore_tasks")
        book = TaskBook(config.env_kwargs)
        try:
            rounds = self._sample(loop, policy_dir, iteration_dir, questions, book)
            labels = book.labels(questions)
        finally:
            book.close()
        write_samples(iteration_dir / "explore.jsonl", rounds.samples)
        summary = explore_summary(labels, rounds.samples, [episode for _, episode in rounds.ran])
        for env_id, row in summary.items():
            mine = [key for key, (env, _) in labels.items() if env == env_id]
            row.update(
                guidance=config.guidance if config.resample == "guided" else "none",
                resample=config.resample,
                coverage_before_resampling=sum(rounds.before[key] > 0 for key in mine) / len(mine),
                correct_counts_before=count_histogram(rounds.before[key] for key in mine),
                rounds=rounds.cost(env_id, config.samples_per_task),
            )
        record_summary(loop, iteration_dir, self.name, {"envs": summary})
        loop.log(
            f"[{loop.tag}] {iteration_dir.name}: {len(rounds.pending) - 1} resampling rounds, "
            f"{len(rounds.ran)} episodes, kept {len(rounds.samples)} samples; coverage "
            + ", ".join(
                f"{e} {r['coverage_before_resampling']:.0%} -> {r['coverage']:.0%}"
                for e, r in summary.items()
            )
        )

    def _sample(
        self, loop: Any, policy_dir: Path, iteration_dir: Path, questions: list[EpisodeSpec], book: TaskBook
    ) -> Rounds:
        """Round 0 on every question, then the rounds on those under the threshold (each round's
        file resumes; the policy is loaded only when a round has episodes left to run)."""
        config = loop.config
        n = config.samples_per_task
        rounds = Rounds()
        kept = {question_key(q.env, q.seed, q.options): 0 for q in questions}
        agent: SharedAgent | None = None
        try:
            for round_ in range(config.resample_rounds + 1):
                pending = [
                    q
                    for q in questions
                    if round_ == 0 or kept[question_key(q.env, q.seed, q.options)] < config.resample_threshold
                ]
                if round_ > 0 and (config.resample == "none" or not pending):
                    break
                specs = [
                    EpisodeSpec(q.env, q.seed, self._options(config, book, q, round_), sample)
                    for q in pending
                    for sample in range(n)
                ]
                path = iteration_dir / f"round_{round_}.jsonl"
                episodes = finished_episodes(path, {s.key for s in specs})
                if sum(t.completed for t in episodes) < len(specs):
                    agent = agent or SharedAgent(loop.policy(policy_dir))
                    loop.rollout(agent, specs, path, config.explore_temperature)
                    episodes = finished_episodes(path, {s.key for s in specs})
                for episode in episodes:
                    solution, kind = keep_correct(episode, book, config.min_number_ratio)
                    if solution is not None:
                        sample = round_ * n + episode.sample
                        rounds.samples.append(kept_sample(episode, book, solution, sample, kind))
                        kept[question_key(episode.env, episode.task["seed"], episode.task["options"])] += 1
                rounds.ran.extend((round_, episode) for episode in episodes)
                rounds.pending.append(pending)
                if round_ == 0:
                    rounds.before = dict(kept)
        finally:
            if agent is not None:
                agent.release()
        return rounds

    @staticmethod
    def _options(config: Any, book: TaskBook, question: EpisodeSpec, round_: int) -> dict[str, Any]:
        lines = 0
        if round_ > 0 and config.resample == "guided" and config.guidance == "state_reset":
            lines = len(book.facts(question.env, question.seed, question.options).lines)
        return round_options(config, question.options, lines, round_)
