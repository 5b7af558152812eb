"""MM-SY's mitigation data from `evol/Sycophancy-v0`'s train split: SFT episodes and DPO pairs.

SFT data is the expert's episodes on train tasks (any rollout of the `expert` agent, as
`evol.trajectory` JSONL): the expert keeps a right answer under pushback and, on the share
of tasks it answers wrong at round 1 (`expert_wrong_share`), takes the user's right
correction, so both of MM-SY's cases are there. `sft_case(trajectory)` says which one an
episode is.

DPO pairs (`preference_pairs`) are TRL's conversational preference rows built from such
episodes: the prompt is the conversation up to the round-2 reply (instruction, question,
round-1 answer, pushback; images as the episode's content parts), and

- after a right round-1 answer (the sycophancy test): chosen keeps it, rejected takes the
  user's wrong option (steadfast against caving);
- after a wrong one (the correction test): chosen takes the user's right option, rejected
  keeps the wrong answer.

The chosen reply is the episode's own; the rejected one is written in the env's answer
format (`Answer: X`), so a pair differs in the option letter only. Episodes whose final
answer is wrong, or that did not finish, give no pair. The rows also carry `env`, `key`,
`test` (which case) and `tone`. `write_preference_pairs(rollout, out)` writes the pairs of a
rollout file as the JSONL `evol train dpo` reads:

    evol rollout --env evol/Sycophancy-v0 --agent expert --split train --episodes 400 --out sft.jsonl
    evol data mmsy --from sft.jsonl --out pairs.jsonl
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from envs.sycophancy.metrics import ENV_ID, field_of, replay_outcome

PAIR_KEYS = ("test", "tone", "round1_answer", "round1_correct", "pushed", "final_answer", "final_correct")


def _outcomes(trajectories: Iterable[Any], env_kwargs: dict[str, Any] | None) -> list[tuple[Any, dict]]:
    """(trajectory, replayed infos) for each finished `evol/Sycophancy-v0` episode without a fault."""
    from envs.sycophancy.env import SycophancyEnv

    env = SycophancyEnv(**(env_kwargs or {}))
    found = []
    try:
        for number, trajectory in enumerate(trajectories, 1):
            if field_of(trajectory, "env", ENV_ID) != ENV_ID:
                continue
            if field_of(trajectory, "error") or field_of(trajectory, "fault"):
                continue
            try:
                outcome = replay_outcome(trajectory, env, PAIR_KEYS)
            except (ValueError, TypeError, AttributeError) as error:
                raise ValueError(f"episode {number} cannot be replayed: {error}") from None
            if "final_answer" in outcome:
                found.append((trajectory, outcome))
    finally:
        env.close()
    return found


def sft_case(outcome: dict[str, Any]) -> str | None:
    """`keep` (right at round 1, kept), `correct` (wrong at round 1, took the right option), or
    None (the final answer is wrong: not SFT data)."""
    if not outcome.get("final_correct"):
        return None
    return "keep" if outcome["round1_correct"] else "correct"


def sft_cases(trajectories: Iterable[Any], env_kwargs: dict[str, Any] | None = None) -> list[str | None]:
    """`sft_case` of each finished episode of `trajectories`, in order."""
    return [sft_case(outcome) for _, outcome in _outcomes(trajectories, env_kwargs)]


def right_answer_hint(env_kwargs: dict[str, Any] | None = None):
    """A `hint(trajectory, turn)` for Inverse-Q*'s `hint` guidance (`evol.trainers.inverse_q.
    inverse_q_rows`): the right option (`Answer: X`) at every turn of an episode, read off the
    task's question (replayed in a local env built with `env_kwargs`)."""
    from envs.sycophancy.env import SycophancyEnv

    env = SycophancyEnv(**(env_kwargs or {}))

    def hint(trajectory: Any, turn: int) -> str | None:
        task = field_of(trajectory, "task") or {}
        env.reset(seed=task.get("seed"), options=task.get("options"))
        return f"Answer: {env.question.answer_letter}"

    return hint


def preference_pairs(
    trajectories: Iterable[Any], env_kwargs: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """One DPO pair per finished episode with a right final answer (see the module docstring).

    `trajectories`: `evol.trajectory.Trajectory` objects or their JSON dicts; each is replayed
    in a local env built with `env_kwargs` (the run's constructor kwargs, e.g. `modality`)."""
    rows = []
    for trajectory, outcome in _outcomes(trajectories, env_kwargs):
        if sft_case(outcome) is None:
            continue
        messages = field_of(trajectory, "messages") or []
        replies = [i for i, message in enumerate(messages) if message["role"] == "assistant"]
        if not replies:
            continue
        last = replies[-1]
        other = outcome["pushed"] if outcome["test"] == "sycophancy" else outcome["round1_answer"]
        rows.append(
            {
                "prompt": [dict(m) for m in messages[:last]],
                "chosen": [dict(messages[last])],
                "rejected": [{"role": "assistant", "content": f"Answer: {other}"}],
                "env": ENV_ID,
                "key": field_of(trajectory, "key", ""),
                "test": outcome["test"],
                "tone": outcome["tone"],
            }
        )
    return rows


def write_preference_pairs(
    rollout: str | Path, out: str | Path, env_kwargs: dict[str, Any] | None = None
) -> int:
    """The pairs of the episodes in a trajectory JSONL file (`evol rollout`'s), written to `out`
    as preference JSONL; returns how many. A torn last line (a killed run) is skipped; a line
    that is not a JSON object, or an episode the env refuses to replay, raises ValueError
    naming it."""
    episodes = []
    with open(rollout, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.endswith("\n") or not line.strip():
                continue
            try:
                episode = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"line {number} is not JSON: {error}") from None
            if not isinstance(episode, dict):
                raise ValueError(f"line {number} is not a trajectory object")
            episodes.append(episode)
    rows = preference_pairs(episodes, env_kwargs)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", encoding="utf-8") as handle:
        handle.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    return len(rows)
