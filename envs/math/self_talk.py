"""Self-talk (MathCritique's last step): solutions that check themselves and correct themselves inline.

## The format

A self-talk reply to an `evol/MathCritique-v0` problem is a solution, one step a line, with
one self-check line, then the final answer line. A solution whose steps are right:

    Emma starts with 3 baskets of 12 apples: 3 * 12 = 36 apples.
    Apples in each basket: 36 / 6 = 6 apples.
    Check: all steps are correct.
    The answer is 6.

A solution with a mistake: its steps up to and including the first wrong one, the check that
names that step and says why (with the right computation), then the corrected steps from
there and the final answer:

    50% of the candles: 68 * 50 / 100 = 34 candles.
    The rest of the candles: 68 - 34 = 43 candles.
    Check: step 2 is wrong: 68 - 34 = 34, not 43. The right computation: 68 - 34 = 34.
    The rest of the candles: 68 - 34 = 34 candles.
    After 28 candles are gone: 34 - 28 = 6 candles.
    After getting 16 more candles: 6 + 16 = 22 candles.
    The answer is 22.

A solution whose steps are right but whose answer is not (it stops early, or answers
another question) states that answer, then `Check: the final answer is wrong: <why>`, the
missing steps and the final answer. Check lines are one line each; "step K" is the K-th
line of the reply.

## Scoring

The math envs read a self-talk reply by its final answer (`envs.math.answers.extract_answer`):
a check line that flags a mistake (`Check: step K is wrong`, `Check: the final answer is
wrong`) retracts what comes before it, so the answer is the last one stated after the last
such line, and a reply that flags a mistake and states no answer after it has none (the
env calls it invalid). `read_self_talk(reply)` splits a reply into steps, checks and the
final answer; `self_talk_report(trajectories)` scores an eval run's replies: accuracy of
the final answers, how often the model checked, passed or flagged its solution, how often a
flag was right (the oracle critic finds a mistake before it) and how often the answer was
right after a pass or after a flag.

## Records

`self_talk_reply(original, critique, refinement)` builds the reply from one critique-refine
step: an original solution, the critique of it (`envs.math.critique.Critique`: its first
wrong step and that step's explanation) and the refinement written after it (its steps
after those it shares with the original's kept steps are the correction).
`generate_self_talk(n, settings)` makes records offline (`evol data self-talk --n N`): tasks
`start`, `start + 1`, ... of a split, a `correct_share` of them the reference solution, the
others the reference with a mistake inserted (`envs.math.flaws`, from a file
`envs.math.reference_flaws`), critiqued by the oracle critic and refined from the reference.
`self_talk_from_rollouts(paths)` makes them from the episodes of `evol rollout` on
`evol/MathCritique-v0` with a critic (`evol data self-talk --from ROLLOUT`): an episode right
at its first attempt gives a correct record (when the oracle critic finds every step right),
one right after critiques a corrected record from its last wrong attempt, the critique that
followed (as the episode's transcript shows it) and the right attempt. A record is an
EvolGym trajectory line (`env`, `task`, `messages` = the env's instruction and problem
without a critic, then the reply; `success` true) that `evol train bc --data FILE` learns
from, plus `self_talk` labels.
"""

from __future__ import annotations

import json
import os
import random
import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from envs.jsonfiles import read_json_records
from envs.math.answers import SELF_CHECK_FLAG, answers_match, extract_answer
from envs.math.critics import OracleCritic
from envs.math.critique import Critique, CritiqueFormatError, parse_critique, solution_steps
from envs.math.critique_data import ProblemSource
from envs.math.flaws import ERROR_KINDS, make_flawed
from envs.math.problems import DIFFICULTIES, SPLITS, Problem
from envs.math.reference_flaws import flaw_reference

ENV_ID = "evol/MathCritique-v0"
CHECK_PASSED = "Check: all steps are correct."
MAX_EXPLANATION = 400  # characters of a critique's explanation a check line keeps
_CHECK_LINE = re.compile(r"^[ \t>*_#-]*check[ \t*_]*:", re.IGNORECASE)
_FLAGGED_STEP = re.compile(r"step[ \t]*(\d{1,9})", re.IGNORECASE)
_CRITIQUE_OBSERVATION = re.compile(
    r"^Critique of your solution:\n\n(?P<text>.*)\n\nRevise your solution:", re.S
)


# ---- the format ---------------------------------------------------------------------------
def wrong_step_check(step: int, explanation: str = "") -> str:
    """`Check: step K is wrong: <explanation>` (one line)."""
    why = _one_line(explanation)
    return f"Check: step {step} is wrong: {why}" if why else f"Check: step {step} is wrong."


def wrong_answer_check(explanation: str = "") -> str:
    """`Check: the final answer is wrong: <explanation>` (one line)."""
    why = _one_line(explanation)
    return f"Check: the final answer is wrong: {why}" if why else "Check: the final answer is wrong."


def _one_line(text: str) -> str:
    text = " ".join(str(text or "").split())
    return text if len(text) <= MAX_EXPLANATION else text[: MAX_EXPLANATION - 3].rstrip() + "..."


def self_talk_reply(original: str, critique: Critique, refinement: str | None = None) -> str | None:
    """The self-talk reply of one critique-refine step (see the module docstring), or None when
    the step cannot make one: a critique that says nothing or accepts the answer of a solution
    it finds a wrong step in, a flagged step beyond the solution, a refinement without a final
    answer or that adds no step to what it keeps. The critique is trusted: the callers check
    the reply's final answer against the gold one."""
    steps = solution_steps(original)
    if not steps or critique.unparsable:
        return None
    if critique.verdict is True:
        answer = extract_answer(original, fallback_last_number=False)
        if answer is None or critique.first_wrong_step is not None:
            return None
        return "\n".join([*steps, CHECK_PASSED, f"The answer is {answer}."])
    if critique.verdict is not False or refinement is None:
        return None
    fixed = solution_steps(refinement)
    answer = extract_answer(refinement, fallback_last_number=False)
    if answer is None:
        return None
    k = critique.first_wrong_step
    if k is not None:
        if k > len(steps):
            return None
        explanation = next((s.explanation for s in critique.steps if s.index == k), "")
        kept, shown, check = steps[: k - 1], steps[:k], wrong_step_check(k, explanation)
    else:
        stated = extract_answer(original, fallback_last_number=False)
        kept, shown = steps, [*steps, *([f"The answer is {stated}."] if stated is not None else [])]
        check = wrong_answer_check(critique.answer_explanation)
    shared = 0
    while shared < min(len(fixed), len(kept)) and fixed[shared] == kept[shared]:
        shared += 1
    continuation = fixed[shared:]
    if not continuation:
        return None
    return "\n".join([*shown, check, *continuation, f"The answer is {answer}."])


def reference_refinement(problem: Problem, solution: str) -> str:
    """The refinement a perfect student writes: `solution`'s steps as long as they are the
    reference's, then the reference's steps and answer."""
    steps, shared = solution_steps(solution), 0
    while shared < min(len(steps), len(problem.lines)) and steps[shared] == problem.lines[shared]:
        shared += 1
    return "\n".join([*steps[:shared], *problem.lines[shared:], f"The answer is {problem.answer}."])


@dataclass
class SelfTalk:
    """A reply read as self-talk: its lines, which of them are checks, and its final answer."""

    lines: list[str]
    checks: list[int]  # indices of check lines
    flags: list[int]  # indices of check lines that flag a mistake
    answer: str | None  # the final answer (after the last flag)

    @property
    def checked(self) -> bool:
        return bool(self.checks)

    @property
    def flagged(self) -> bool:
        return bool(self.flags)

    @property
    def passed(self) -> bool:
        return bool(self.checks) and not self.flags

    @property
    def flagged_step(self) -> int | None:
        """The step the first flag names (None: it flags the final answer, or there is none)."""
        if not self.flags:
            return None
        match = _FLAGGED_STEP.search(self.lines[self.flags[0]].split(":", 1)[-1][:40])
        return int(match.group(1)) if match else None

    @property
    def before_flag(self) -> str:
        """The text before the first flag: the solution the model judged wrong."""
        return "\n".join(self.lines[: self.flags[0]] if self.flags else self.lines)


def read_self_talk(reply: str) -> SelfTalk:
    """`reply` split into its lines, check lines (`Check: ...`) and flags, and its final answer."""
    lines = [line for line in str(reply or "").splitlines() if line.strip()]
    checks = [i for i, line in enumerate(lines) if _CHECK_LINE.match(line)]
    flags = [i for i in checks if SELF_CHECK_FLAG.match(lines[i])]
    return SelfTalk(lines, checks, flags, extract_answer(reply or "", fallback_last_number=False))


# ---- records --------------------------------------------------------------------------------
class SelfTalkError(ValueError):
    """Bad settings or a bad rollout file: the message names the setting, or the file and line."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


@dataclass
class SelfTalkReport:
    """What a builder did: records written by kind, episodes or tasks skipped by reason."""

    by_kind: Counter = field(default_factory=Counter)  # "correct", "corrected"
    skipped: Counter = field(default_factory=Counter)
    fallbacks: int = 0  # tasks planned for a mistake that got the correct solution (none fitted)

    @property
    def written(self) -> int:
        return sum(self.by_kind.values())

    def summary(self) -> str:
        parts = [", ".join(f"{kind} {count}" for kind, count in sorted(self.by_kind.items())) or "none"]
        if self.skipped:
            parts.append(
                "skipped: " + ", ".join(f"{why} {count}" for why, count in sorted(self.skipped.items()))
            )
        if self.fallbacks:
            parts.append(f"{self.fallbacks} tasks without a mistake that fits got the correct solution")
        return f"{self.written} self-talk records ({'; '.join(parts)})"


def self_talk_record(
    prompt: list[dict[str, str]],
    reply: str,
    task: dict[str, Any],
    labels: dict[str, Any],
    sample: int = 0,
) -> dict[str, Any]:
    """One training record: a successful one-turn `evol/MathCritique-v0` trajectory whose reply is
    `reply`, with its `self_talk` labels."""
    options = task.get("options", {})
    return {
        "env": ENV_ID,
        "task": task,
        "messages": [*prompt, {"role": "assistant", "content": reply}],
        "actions": [reply],
        "rewards": [1.0],
        "reward": 1.0,
        "success": True,
        "turns": 1,
        "agent": "self-talk",
        "sample": sample,
        "key": f"{ENV_ID}|{task.get('seed')}|{json.dumps(options, sort_keys=True)}|{sample}",
        "self_talk": labels,
    }


@dataclass
class SelfTalkSettings:
    """How `generate_self_talk` makes records (each field is a flag of `evol data self-talk --n`)."""

    seed: int = 0  # draws the inserted mistakes
    split: str = "train"
    start: int = 0  # the first task
    difficulty: str = "mixed"  # generated problems: a level, or "mixed" (level task mod 3)
    data: str | os.PathLike | None = None  # a GSM8K- or MATH-style problem file instead
    correct_share: float = 0.5  # share of the records whose solution is right

    def __post_init__(self) -> None:
        if self.split not in SPLITS:
            raise SelfTalkError(f"must be one of {list(SPLITS)}, got {self.split!r}", "split")
        if self.difficulty not in DIFFICULTIES:
            raise SelfTalkError(f"must be one of {list(DIFFICULTIES)}, got {self.difficulty!r}", "difficulty")
        if self.data is not None and self.difficulty != "mixed":
            raise SelfTalkError("applies to generated problems, not to a data file", "difficulty")
        if not 0 <= self.correct_share <= 1:
            raise SelfTalkError(f"must be in [0, 1], got {self.correct_share}", "correct_share")
        if self.start < 0:
            raise SelfTalkError(f"must be >= 0, got {self.start}", "start")


def generate_self_talk(
    n: int, settings: SelfTalkSettings | None = None, progress: bool = False
) -> tuple[list[dict[str, Any]], SelfTalkReport]:
    """`n` records made offline (see the module docstring), fewer if the split runs out of tasks."""
    settings = settings or SelfTalkSettings()
    if n < 1:
        raise SelfTalkError(f"must be >= 1, got {n}", "n")
    try:
        source = ProblemSource(settings.split, settings.difficulty, settings.data)
    except ValueError as error:
        raise SelfTalkError(str(error), "data") from None
    report, records = SelfTalkReport(), []
    share = settings.correct_share
    from tqdm import tqdm

    for i in tqdm(range(n), desc="self-talk records", unit="record", disable=not progress):
        task = settings.start + i
        if task >= source.size:
            report.skipped["past the split's last task"] += n - i
            break
        problem = source.problem(task)
        prompt, _, _ = source.actor_prompt(task)
        flawed = None
        if int((i + 1) * share) == int(i * share):  # correct records spread evenly at `share`
            flawed = _inserted(problem, task, settings)
            report.fallbacks += int(flawed is None)
        oracle = OracleCritic(problem)
        original = flawed.text if flawed is not None else problem.solution
        critique = oracle.critique(problem.question, original)
        reply = self_talk_reply(original, critique, reference_refinement(problem, original))
        if reply is None or not answers_match(extract_answer(reply, False), problem.answer):
            report.skipped["no reply"] += 1
            continue
        kind = "corrected" if flawed is not None else "correct"
        labels = _labels(kind, problem, original, critique, "generated")
        labels["error_kind"] = flawed.kind if flawed is not None else "none"
        options = source.options(task)
        records.append(self_talk_record(prompt, reply, {"seed": task, "options": options}, labels))
        report.by_kind[kind] += 1
    return records, report


def _inserted(problem: Problem, task: int, settings: SelfTalkSettings):
    """The reference with an inserted mistake (error kinds take turns by task), or None if none fits."""
    rng = random.Random(f"evol-math-self-talk|{settings.seed}|{settings.split}|{task}")
    flaw = make_flawed if problem.derivation is not None else flaw_reference
    k = task % len(ERROR_KINDS)
    for kind in ERROR_KINDS[k:] + ERROR_KINDS[:k]:
        flawed = flaw(problem, kind, rng)
        if flawed is not None:
            return flawed
    return None


def _labels(kind: str, problem: Problem, original: str, critique: Critique, source: str) -> dict[str, Any]:
    return {
        "kind": kind,
        "source": source,
        "first_wrong_step": critique.first_wrong_step,
        "original": original,
        "answer": problem.answer,
        "difficulty": problem.difficulty,
    }


# ---- records from critique-refine episodes ---------------------------------------------------
def self_talk_from_rollouts(
    paths: Iterable[str | os.PathLike], data: str | os.PathLike | None = None, progress: bool = False
) -> tuple[list[dict[str, Any]], SelfTalkReport]:
    """Records from `evol rollout` files of `evol/MathCritique-v0` (see the module docstring);
    `data`: the problem file the run used, if any. A line that is not a trajectory of that env,
    or whose problem is not the one its task gives here, is a `SelfTalkError` naming it."""
    from envs.math.critique_env import MathCritiqueEnv

    entries = [entry for path in paths for entry in _rollout_lines(Path(path))]
    try:
        env = MathCritiqueEnv(data=data)
    except (ValueError, OSError) as error:
        raise SelfTalkError(str(error), "data") from None
    report, records = SelfTalkReport(), []
    from tqdm import tqdm

    for where, item in tqdm(entries, desc="self-talk episodes", unit="episode", disable=not progress):
        if item.get("error") is not None or item.get("fault") is not None:
            report.skipped["failed episode"] += 1
            continue
        options = dict(item["task"].get("options") or {})
        if options.get("guidance", "none") != "none":
            report.skipped["guided episode"] += 1
            continue
        try:
            observation, info = env.reset(seed=item["task"].get("seed"), options=dict(options))
        except (ValueError, TypeError) as error:
            raise SelfTalkError(f"{where}: its task cannot be replayed: {error}") from None
        users = [m["content"] for m in item["messages"] if m["role"] == "user"]
        if users and users[0] != observation:
            raise SelfTalkError(
                f"{where}: its problem is not the one its task gives here (a run on a problem file needs --data)"
            )
        prompt = [
            {"role": "system", "content": info["instruction"]},
            {"role": "user", "content": observation},
        ]
        made = _episode_reply(item, env.problem)
        if isinstance(made, str):
            report.skipped[made] += 1
            continue
        kind, reply, labels = made
        task = {"seed": item["task"].get("seed"), "options": options}
        records.append(self_talk_record(prompt, reply, task, labels, int(item.get("sample") or 0)))
        report.by_kind[kind] += 1
    env.close()
    return records, report


def _episode_reply(item: dict[str, Any], problem: Problem) -> tuple[str, str, dict[str, Any]] | str:
    """(kind, reply, labels) of one episode, or why it gives none."""
    actions = item["actions"]
    assistant = [i for i, m in enumerate(item["messages"]) if m["role"] == "assistant"]
    if len(assistant) != len(actions):
        actions = [item["messages"][i]["content"] for i in assistant]
    observations = [
        item["messages"][i + 1]["content"] if i + 1 < len(item["messages"]) else None for i in assistant
    ]
    attempts = [i for i, action in enumerate(actions) if extract_answer(action, False) is not None]
    right = [answers_match(extract_answer(actions[i], False), problem.answer) for i in attempts]
    if not attempts or not any(right):
        return "never right"
    oracle = OracleCritic(problem)
    if right[0]:
        original = actions[attempts[0]]
        critique = oracle.critique(problem.question, original)
        if critique.first_wrong_step is not None:
            return "right answer with a wrong step"
        reply = self_talk_reply(original, critique)
        if reply is None:
            return "no reply"
        return "correct", reply, _labels("correct", problem, original, critique, "rollout")
    j = right.index(True)
    wrong, fixed = attempts[j - 1], attempts[j]
    match = _CRITIQUE_OBSERVATION.match(observations[wrong] or "")
    if match is None:
        return "no critique"
    try:
        critique = parse_critique(match.group("text"))  # `.*` is greedy: up to the last "Revise"
    except CritiqueFormatError:
        return "unreadable critique"
    reply = self_talk_reply(actions[wrong], critique, actions[fixed])
    if reply is None:
        return "no reply"
    labels = _labels("corrected", problem, actions[wrong], critique, "rollout")
    labels["refinement"] = actions[fixed]
    return "corrected", reply, labels


def _rollout_lines(path: Path) -> list[tuple[str, dict[str, Any]]]:
    """(`FILE line N`, trajectory) of every line; a torn last line (a killed run) is skipped."""
    entries = [
        (where, _checked_trajectory(where, item))
        for where, item in read_json_records(path, "rollout file", SelfTalkError, skip_torn_tail=True)
    ]
    if not entries:
        raise SelfTalkError(f"{path}: no episodes")
    return entries


def _checked_trajectory(where: str, item: Any) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise SelfTalkError(f"{where}: a trajectory must be a JSON object, got {type(item).__name__}")
    if item.get("env") != ENV_ID:
        raise SelfTalkError(
            f"{where}: `env` must be {ENV_ID} (critique-refine episodes), got {item.get('env')!r}"
        )
    task = item.get("task")
    if not isinstance(task, dict) or not isinstance(task.get("options", {}), dict):
        raise SelfTalkError(f"{where}: `task` must be an object {{seed, options}}")
    messages = item.get("messages")
    if not isinstance(messages, list) or not all(
        isinstance(m, dict)
        and m.get("role") in ("system", "user", "assistant")
        and isinstance(m.get("content"), str)
        for m in messages
    ):
        raise SelfTalkError(f"{where}: `messages` must be a list of {{role, content}} chat messages")
    actions = item.get("actions", [])
    if not isinstance(actions, list) or not all(isinstance(a, str) for a in actions):
        raise SelfTalkError(f"{where}: `actions` must be a list of strings")
    return item


def write_self_talk(records: list[dict[str, Any]], out: str | os.PathLike) -> int:
    """Write `records` as JSONL (one trajectory a line); returns how many."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    return len(records)


# ---- scoring an eval run -----------------------------------------------------------------------
def self_talk_report(trajectories: Iterable[Any], env_kwargs: dict[str, Any] | None = None) -> dict[str, Any]:
    """How an eval run's `evol/MathCritique-v0` replies talk to themselves (an `evol eval` report
    function): over completed episodes, the reply scored is the last with a final answer (None
    when none has one). Rates: `accuracy` (the final answer right), `checked`, `passed`,
    `flagged` (a check line at all, only passing ones, one flagging a mistake), `right_when_passed`
    and `right_when_flagged`, `flag_precision` (flags before which the oracle critic finds a
    mistake), `flag_step_exact` (flags that name the oracle's first wrong step), all by
    difficulty too."""
    import envs

    env = envs.make(ENV_ID, **{k: v for k, v in (env_kwargs or {}).items() if k == "data"})
    rows = []
    for trajectory in trajectories:
        if _field(trajectory, "env") != ENV_ID or _field(trajectory, "error") is not None:
            continue
        task = _field(trajectory, "task") or {}
        _, info = env.reset(seed=task.get("seed"), options=dict(task.get("options") or {}))
        answered = [a for a in _field(trajectory, "actions") or [] if extract_answer(a, False) is not None]
        rows.append(_score_reply(answered[-1] if answered else "", env.problem, info.get("difficulty")))
    env.close()
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups["all"].append(row)
        groups[str(row["difficulty"])].append(row)
    report = _rates(groups.pop("all", []))
    report["by_difficulty"] = {level: _rates(group) for level, group in sorted(groups.items())}
    return report


def _field(trajectory: Any, name: str) -> Any:
    """A field of a trajectory object (`evol.trajectory.Trajectory`) or of its JSON dict."""
    return trajectory.get(name) if isinstance(trajectory, dict) else getattr(trajectory, name, None)


def _score_reply(reply: str, problem: Problem, difficulty: str | None) -> dict[str, Any]:
    talk = read_self_talk(reply)
    row = {
        "difficulty": difficulty,
        "right": talk.answer is not None and answers_match(talk.answer, problem.answer),
        "checked": talk.checked,
        "passed": talk.passed,
        "flagged": talk.flagged,
    }
    if talk.flagged:
        judged = OracleCritic(problem).critique(problem.question, talk.before_flag)
        stated = extract_answer(talk.before_flag, False)
        wrong_answer = stated is not None and not answers_match(stated, problem.answer)
        row["real_flag"] = judged.first_wrong_step is not None or wrong_answer
        row["exact_flag"] = talk.flagged_step is not None and talk.flagged_step == judged.first_wrong_step
    return row


def _rates(rows: list[dict[str, Any]]) -> dict[str, Any]:
    def share(selected: list[dict[str, Any]], key: str) -> float | None:
        return round(sum(bool(r[key]) for r in selected) / len(selected), 4) if selected else None

    passed = [r for r in rows if r["passed"]]
    flagged = [r for r in rows if r["flagged"]]
    return {
        "episodes": len(rows),
        "accuracy": share(rows, "right"),
        "checked": share(rows, "checked"),
        "passed": share(rows, "passed"),
        "flagged": share(rows, "flagged"),
        "right_when_passed": share(passed, "right"),
        "right_when_flagged": share(flagged, "right"),
        "flag_precision": share(flagged, "real_flag"),
        "flag_step_exact": share(flagged, "exact_flag"),
    }
