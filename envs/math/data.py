"""AutoMathCritique-style SFT data for critique models: `evol data critiques --n N --out FILE`.

`write_critique_data(n, out, ...)` writes `n` critic training records in MathCritique's
released alpaca format (`envs.math.critique_data`: `instruction` with the question and the
solution, `output` the critique, `meta` the labels). Each record's solution is one of:

- `correct`: the reference solution; its critique marks every step and the answer Correct;
- `inserted`: the reference with a mistake inserted at a step (a slip, a wrong operation, a
  wrong operand or a dropped step, `envs.math.flaws`; from a file `envs.math.reference_flaws`),
  carried to the final answer;
- `sampled`: an actor's own solution with a wrong final answer;
- `resampled`: the reference's first lines up to a chosen step, the actor's continuation from
  there (`evol/MathCritique-v0`'s state reset), with a wrong final answer.

The critique is the oracle critic's (`envs.math.critics.OracleCritic`: it names the first
wrong step and the right computation). A critique of a flawed solution is kept only if it
passes the Monte-Carlo filter: of `mc_k` refinements conditioned on it (by the refiner: the
oracle refiner by default, or a model), at least `mc_threshold` reach the gold answer; the
record's `meta.refined` is one that does, `meta.mc` the test's numbers. A task whose planned
solution cannot be made (the actor's samples all right or unusable) gets an inserted mistake
instead (`meta.fallback`). Tasks are distinct and drawn with `seed`; the same arguments write
the same file with the oracle refiner and no actor.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from envs.counterparts import Completer, plays_scripted, reply_action
from envs.math.answers import extract_answer
from envs.math.critics import OracleCritic
from envs.math.critique import Critique, solution_steps
from envs.math.critique_data import (
    ModelRefiner,
    OracleRefiner,
    ProblemSource,
    RefineJob,
    alpaca_record,
    fixed_shares,
    is_right,
    released_critique,
)
from envs.math.flaws import ERROR_KINDS, make_flawed
from envs.math.problems import DIFFICULTIES, LEVELS, SPLITS, Problem
from envs.math.reference_flaws import flaw_reference

METHODS = ("inserted", "sampled", "resampled")
ACTOR_METHODS = ("sampled", "resampled")
CHUNK = 16  # tasks whose actor and refiner calls go in one batch


@dataclass
class CritiqueDataReport:
    """What `write_critique_data` did."""

    written: int = 0
    tasks: int = 0  # tasks tried
    by_method: Counter = field(default_factory=Counter)  # records written per method
    mc_rejected: int = 0  # critiques the Monte-Carlo filter dropped
    fallbacks: int = 0  # tasks planned for the actor that got an inserted mistake instead
    unusable_samples: int = 0  # actor samples without steps or a final answer
    shares: list[float] = field(default_factory=list)  # the Monte-Carlo share of every flawed critique

    def summary(self) -> str:
        methods = ", ".join(f"{m} {c}" for m, c in sorted(self.by_method.items()))
        mean = sum(self.shares) / len(self.shares) if self.shares else 0.0
        return (
            f"{self.written} records from {self.tasks} tasks ({methods}); Monte-Carlo filter: "
            f"{self.mc_rejected} of {len(self.shares)} flawed critiques dropped (mean share fixed {mean:.2f}); "
            f"{self.fallbacks} actor tasks fell back to an inserted mistake; "
            f"{self.unusable_samples} unusable actor samples"
        )


@dataclass
class _Item:
    """One task on its way to a record."""

    task: int
    level: str | None
    problem: Problem
    plan: str  # "correct" or a method
    step: int | None = None  # resampled: the first step the actor writes
    prompt: list[dict[str, str]] | None = None
    expert: str = ""
    prefix: list[str] = field(default_factory=list)
    samples: list[str] = field(default_factory=list)
    method: str = ""
    solution: str = ""
    error_kind: str = "none"
    fallback: bool = False


class SettingError(ValueError):
    """A bad setting of the data: `field` names it."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.reason = message


@dataclass
class CritiqueDataSettings:
    """How `write_critique_data` makes its records (each field is a flag of `evol data critiques`)."""

    seed: int = 0  # draws the tasks (and seeds the models' sampling)
    split: str = "train"
    difficulty: str = "mixed"  # generated problems: a level, or "mixed" (levels take turns)
    data: str | None = None  # a GSM8K- or MATH-style problem file instead of generated problems
    methods: tuple[str, ...] | None = None  # default: inserted, plus sampled and resampled with an actor
    correct_share: float = 0.25  # share of the records that are correct solutions
    samples: int = 4  # actor samples per question
    temperature: float = 0.7  # actor and model-refiner temperature
    mc_k: int = 4  # refinements per critique in the Monte-Carlo filter
    mc_threshold: float = 0.5  # keep a critique if at least this share of its refinements is right
    max_new_tokens: int = 512  # tokens per actor or refiner reply
    max_tasks: int | None = None  # tasks tried at most (default 4 n + 64)

    def __post_init__(self) -> None:
        if self.split not in SPLITS:
            raise SettingError("split", f"must be one of {list(SPLITS)}, got {self.split!r}")
        if self.difficulty not in DIFFICULTIES:
            raise SettingError("difficulty", f"must be one of {list(DIFFICULTIES)}, got {self.difficulty!r}")
        if self.methods is not None:
            self.methods = tuple(self.methods)
            unknown = [m for m in self.methods if m not in METHODS]
            if unknown or not self.methods:
                raise SettingError("methods", f"choose among {list(METHODS)}, got {list(self.methods)}")
        if not 0 <= self.correct_share <= 1:
            raise SettingError("correct_share", f"must be in [0, 1], got {self.correct_share}")
        for name in ("samples", "mc_k", "max_new_tokens"):
            if getattr(self, name) < 1:
                raise SettingError(name, f"must be >= 1, got {getattr(self, name)}")
        if self.temperature < 0:
            raise SettingError("temperature", f"must be >= 0, got {self.temperature}")
        if not 0 <= self.mc_threshold <= 1:
            raise SettingError("mc_threshold", f"must be in [0, 1], got {self.mc_threshold}")
        if self.max_tasks is not None and self.max_tasks < 0:
            raise SettingError("max_tasks", f"must be >= 0, got {self.max_tasks}")
        if self.data is not None and self.difficulty != "mixed":
            raise SettingError("difficulty", "applies to generated problems, not to a data file")

    def methods_for(self, actor: Any) -> tuple[str, ...]:
        """The flawed-solution methods used with `actor` (None: no actor)."""
        if self.methods is None:
            return ("inserted", *ACTOR_METHODS) if actor is not None else ("inserted",)
        if actor is None and any(m in ACTOR_METHODS for m in self.methods):
            raise SettingError("methods", "sampled and resampled need an actor")
        return self.methods


def write_critique_data(
    n: int,
    out_path: str | Path,
    settings: CritiqueDataSettings | None = None,
    *,
    actor: Completer | None = None,
    refiner: Completer | str = "oracle",
    progress: bool = False,
) -> CritiqueDataReport:
    """Write `n` records to `out_path` (JSONL; a `.json` path gets one JSON list, as released).

    `actor`: a model (`Completer`) for the `sampled` and `resampled` solutions (an agent that
    plays the env's expert writes the reference); `refiner`: "oracle" or a model.
    """
    settings = settings or CritiqueDataSettings()
    if n < 0:
        raise SettingError("n", f"must be >= 0, got {n}")
    methods = settings.methods_for(actor)
    source = ProblemSource(settings.split, settings.difficulty, settings.data)
    if refiner == "oracle" or plays_scripted(refiner):
        refiner_used: Any = OracleRefiner()
    else:
        refiner_used = ModelRefiner(refiner, settings.temperature, settings.max_new_tokens, settings.seed)
    rng = random.Random(f"evol-math-critique-data|{settings.seed}|{settings.split}")
    limit = settings.max_tasks if settings.max_tasks is not None else 4 * n + 64
    tasks = rng.sample(range(source.size), min(source.size, limit))
    report = CritiqueDataReport()
    records: list[dict[str, Any]] = []
    from tqdm import tqdm

    with tqdm(total=n, desc="critique records", unit="record", disable=not progress) as bar:
        while len(records) < n and report.tasks < len(tasks):
            start = report.tasks
            chunk = tasks[start : start + min(CHUNK, n - len(records))]
            report.tasks += len(chunk)
            items = [
                _plan(i, task, source, methods, settings.correct_share, rng)
                for i, task in enumerate(chunk, start)
            ]
            for record in _records(items, source, actor, refiner_used, report, settings, start):
                records.append(record)
                report.by_method[record["meta"]["method"]] += 1
                bar.update(1)
    report.written = len(records)
    _write(records, Path(out_path))
    return report


def _plan(
    i: int,
    task: int,
    source: ProblemSource,
    methods: tuple[str, ...],
    correct_share: float,
    rng: random.Random,
) -> _Item:
    """Task number `i`: its level (levels take turns under "mixed"), problem and planned solution.
    Correct solutions are spread evenly at `correct_share`; the methods take turns among the rest."""
    level = LEVELS[i % len(LEVELS)] if source.difficulty == "mixed" and source.data is None else None
    problem = source.problem(task, level)
    correct = int((i + 1) * correct_share) > int(i * correct_share)
    flawed_before = i - int(i * correct_share)
    plan = "correct" if correct or not methods else methods[flawed_before % len(methods)]
    item = _Item(task, level, problem, plan)
    if plan == "resampled" and len(problem.lines) >= 2:
        item.step = rng.randint(2, len(problem.lines))  # the reference is kept before it
    elif plan == "resampled":
        item.step = 1
    return item


def _records(
    items: list[_Item],
    source: ProblemSource,
    actor: Any,
    refiner: Any,
    report: CritiqueDataReport,
    settings: CritiqueDataSettings,
    call: int,
) -> list[dict[str, Any]]:
    """The records of one chunk of tasks (`call` numbers the models' sampling seeds)."""
    _sample(items, source, actor, settings, settings.seed * 1_000_003 + call)
    ready = []
    for item in items:
        if item.plan == "correct":
            item.method, item.solution = "correct", item.problem.solution
        elif item.plan in ACTOR_METHODS:
            if not _pick_sample(item, report):
                item.fallback = True
                report.fallbacks += 1
        if not item.solution and not _insert(item):
            continue
        ready.append(item)
    critiques = [_annotate(item) for item in ready]
    flawed = [(item, critique) for item, critique in zip(ready, critiques) if item.method != "correct"]
    jobs = [
        RefineJob(
            item.problem,
            item.solution,
            critique,
            source.refine_prompt(item.task, item.level, item.solution, critique)
            if refiner.needs_messages
            else None,
        )
        for item, critique in flawed
    ]
    results = (
        dict(zip((id(item) for item, _ in flawed), fixed_shares(refiner, jobs, settings.mc_k)))
        if jobs
        else {}
    )
    records = []
    for item, critique in zip(ready, critiques):
        meta = _meta(item, critique, source)
        if item.method != "correct":
            share, refined = results[id(item)]
            report.shares.append(share)
            mc_k, mc_threshold = settings.mc_k, settings.mc_threshold
            if share < mc_threshold:
                report.mc_rejected += 1
                continue
            mc = {"k": mc_k, "fixed": round(share * mc_k), "share": share, "threshold": mc_threshold}
            meta.update(refined=refined, mc={**mc, "refiner": refiner.name})
        else:
            meta["refined"] = item.solution  # nothing to fix
        records.append(alpaca_record(item.problem.question, item.solution, critique, meta))
    return records


def _sample(
    items: list[_Item], source: ProblemSource, actor: Any, settings: CritiqueDataSettings, seed: int
) -> None:
    """The actor's samples for the items planned for it, in one batched call."""
    asked = [item for item in items if item.plan in ACTOR_METHODS]
    if not asked:
        return
    for item in asked:
        prefix_steps = item.step - 1 if item.plan == "resampled" and item.step and item.step > 1 else None
        item.prompt, item.expert, item.prefix = source.actor_prompt(item.task, item.level, prefix_steps)
    if plays_scripted(actor):
        replies = [[item.expert] * settings.samples for item in asked]
    else:
        replies = actor.complete(
            [item.prompt for item in asked],
            temperature=settings.temperature,
            max_new_tokens=settings.max_new_tokens,
            n=settings.samples,
            seed=seed,
        )
    for item, texts in zip(asked, replies):
        item.samples = ["\n".join([*item.prefix, reply_action(text)]) for text in texts]


def _pick_sample(item: _Item, report: CritiqueDataReport) -> bool:
    """Take the first of the actor's samples that is usable and wrong (for resampling: whose
    first error is at or after the chosen step); False if none is."""
    for solution in item.samples:
        if not solution_steps(solution) or extract_answer(solution, fallback_last_number=False) is None:
            report.unusable_samples += 1
            continue
        if is_right(item.problem, solution):
            continue
        first_wrong = OracleCritic(item.problem).critique(item.problem.question, solution).first_wrong_step
        if item.plan == "resampled" and first_wrong is not None and first_wrong < (item.step or 1):
            continue
        item.method, item.solution, item.error_kind = item.plan, solution, item.plan
        return True
    return False


def _annotate(item: _Item) -> Critique:
    """The oracle critic's critique of the item's solution, its text as the record writes it
    (what a refiner is shown)."""
    critique = OracleCritic(item.problem).critique(item.problem.question, item.solution)
    critique.raw = released_critique(critique)
    return critique


def _insert(item: _Item) -> bool:
    """A mistake inserted into the reference (error kinds take turns by task); False if none fits."""
    problem = item.problem
    k = item.task % len(ERROR_KINDS)
    flaw = make_flawed if problem.derivation is not None else flaw_reference
    rng = random.Random(f"evol-math-critique-flaw|{problem.split}|{item.task}")
    for kind in ERROR_KINDS[k:] + ERROR_KINDS[:k]:
        flawed = flaw(problem, kind, rng)
        if flawed is not None:
            item.method, item.solution, item.error_kind = "inserted", flawed.text, flawed.kind
            return True
    return False


def _meta(item: _Item, critique: Critique, source: ProblemSource) -> dict[str, Any]:
    problem = item.problem
    meta: dict[str, Any] = {
        "question": problem.question,
        "solution": item.solution,
        "answer": problem.answer,
        "method": item.method,
        "error_kind": item.error_kind,
        "first_wrong_step": critique.first_wrong_step,
        "difficulty": problem.difficulty,
        "split": source.split,
        "task": item.task,
        "source": problem.source,
    }
    if item.method == "resampled":
        meta["resampled_from"] = item.step
    if item.fallback:
        meta["fallback"] = item.plan
    return meta


def _write(records: list[dict[str, Any]], out: Path) -> None:
    with open(out, "w", encoding="utf-8") as handle:
        if out.suffix.lower() == ".json":
            json.dump(records, handle, ensure_ascii=False, indent=1)
            handle.write("\n")
        else:
            for record in records:
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
