"""Critic training (MathCritique): SFT of a step-level critique model, evaluated on `evol/MathCritic-v0`.

    evol data critiques --n 300 --out runs/critiques.jsonl
    evol train critic --config critic.yaml

```yaml
model: tiny                      # a preset built here on the data's text ("tiny", "small"), or an HF checkpoint dir
data: [runs/critiques.jsonl]     # MathCritique's alpaca records: `evol data critiques`, or the released files
output_dir: runs/critic
eval_tasks: 100                  # MathCritic-v0 test tasks scored after training (0: none)
train: {epochs: 3, learning_rate: 2.0e-3, batch_size: 8}   # a tiny model learns from scratch: ~2e-3
```

The records (`envs.math.critique_data`: `{instruction, input, output}`) become chat examples:
with `prompt: critic` (the default) the question and the solution are read from the
instruction and asked the way `evol/MathCritic-v0` and `ModelCritic` ask (the critic
system prompt and `Problem: ... Solution: Step 1: ...`), the critique as the reply; with
`prompt: verbatim` the instruction (and input) is the user turn as written. After training
the model critiques the candidates of `eval_tasks` MathCritic-v0 tasks (correct solutions
and flawed ones, a fifth each kind), and `critic_eval.json` reports verdict accuracy on
correct and on flawed solutions, first-wrong-step accuracy, and the share of its
critiques of flawed solutions whose refinement (by `refiner`) reaches the gold answer,
with the oracle critic's scores on the same tasks beside them; `critic_eval.png` plots
them, `critic_eval.jsonl` keeps every critique.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from envs.math.critics import critique_messages
from envs.math.critique import Critique, CritiqueFormatError, parse_critique
from envs.math.critique_data import (
    CritiqueFileError,
    CritiqueRecord,
    ModelRefiner,
    OracleRefiner,
    ProblemSource,
    RefineJob,
    fixed_shares,
    read_critique_file,
)
from envs.math.problems import DIFFICULTIES, SPLITS, TASKS_PER_SPLIT
from evol.trainers.config import save_config
from evol.trainers.data import TrajectoryFileError
from evol.trainers.sft import TrainResult, TrainSettings, fine_tune

PRESETS = ("tiny", "small")  # agents.tiny's presets (built here, so that the tokenizer learns the data)
ORACLE_REFINERS = ("oracle", "expert")
METRICS = ("verdict_accuracy", "verdict_on_correct", "verdict_on_flawed", "first_wrong_step", "fixed")
METRIC_NAMES = {
    "verdict_accuracy": "verdict acc.",
    "verdict_on_correct": "verdict on correct",
    "verdict_on_flawed": "verdict on flawed",
    "first_wrong_step": "first wrong step",
    "fixed": "refinement fixes",
}


@dataclass
class CriticConfig:
    """Every knob of a critic SFT run and its MathCritic-v0 evaluation."""

    model: str = field(
        metadata={
            "help": 'the base: a preset ("tiny", "small": built here, its tokenizer trained on the data) '
            "or an HF checkpoint directory"
        }
    )
    data: list[str] = field(
        metadata={
            "help": "critique files in MathCritique's alpaca format ({instruction, input, output} a line, "
            "or a JSON list): `evol data critiques` output or a released file"
        }
    )
    output_dir: str = field(
        metadata={"help": "the run directory: config, base/, model/, critic_eval.json/.png/.jsonl"}
    )
    prompt: Literal["critic", "verbatim"] = field(
        default="critic",
        metadata={
            "help": "critic: ask as MathCritic-v0 does (question and solution read from the instruction); "
            "verbatim: the instruction (and input) as written"
        },
    )
    max_examples: int | None = field(
        default=None, metadata={"help": "train on the first N records only (null: all)"}
    )
    eval_tasks: int = field(
        default=100, metadata={"help": "MathCritic-v0 tasks 0..N-1 critiqued after training (0: none)"}
    )
    eval_split: Literal["train", "test"] = field(
        default="test", metadata={"help": "the split of the evaluation tasks"}
    )
    eval_difficulty: Literal["easy", "medium", "hard", "mixed"] = field(
        default="mixed", metadata={"help": "generated evaluation problems: a level, or mixed (task mod 3)"}
    )
    eval_data: str | None = field(
        default=None,
        metadata={
            "help": "a GSM8K- or MATH-style problem file for the evaluation (null: generated problems)"
        },
    )
    refiner: str = field(
        default="oracle",
        metadata={
            "help": "who revises a flawed solution after the critic's critique (the fix rate): oracle "
            "(the refiner that trusts the critique; `expert` too) or an agent spec (hf:PATH, openai:URL#MODEL)"
        },
    )
    max_new_tokens: int = field(
        default=768, metadata={"help": "tokens per critique (and per model refinement) at evaluation"}
    )
    eval_batch_size: int = field(default=32, metadata={"help": "critiques generated per batch"})
    train: TrainSettings = field(default_factory=TrainSettings, metadata={"help": "how fine-tuning learns"})

    def __post_init__(self) -> None:
        if self.model not in PRESETS and not Path(self.model).is_dir():
            raise ValueError(
                f"model: {self.model!r} is neither a preset {list(PRESETS)} nor a checkpoint directory"
            )
        if not self.data:
            raise ValueError("data: give at least one critique file")
        missing = [path for path in self.data if not Path(path).is_file()]
        if missing:
            raise ValueError(f"data: file(s) not found: {missing}")
        if self.max_examples is not None and self.max_examples < 1:
            raise ValueError(f"max_examples: must be >= 1 or null, got {self.max_examples}")
        if not 0 <= self.eval_tasks <= TASKS_PER_SPLIT["test"]:
            raise ValueError(f"eval_tasks: must be in [0, {TASKS_PER_SPLIT['test']}], got {self.eval_tasks}")
        if self.eval_split not in SPLITS:
            raise ValueError(f"eval_split: must be one of {list(SPLITS)}")
        if self.eval_difficulty not in DIFFICULTIES:
            raise ValueError(f"eval_difficulty: must be one of {list(DIFFICULTIES)}")
        if self.eval_data is not None:
            if not Path(self.eval_data).is_file():
                raise ValueError(f"eval_data: no such file {self.eval_data}")
            if self.eval_difficulty != "mixed":
                raise ValueError("eval_difficulty: applies to generated problems, not to eval_data")
        if self.refiner not in ORACLE_REFINERS:
            from agents import SPEC_KINDS

            if self.refiner.partition(":")[0] not in SPEC_KINDS:
                raise ValueError(
                    f"refiner: 'oracle' or an agent spec ({', '.join(SPEC_KINDS)}), got {self.refiner!r}"
                )
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens: must be >= 1, got {self.max_new_tokens}")
        if self.eval_batch_size < 1:
            raise ValueError(f"eval_batch_size: must be >= 1, got {self.eval_batch_size}")


# ---- the data --------------------------------------------------------------------------------
def critic_examples(records: list[CritiqueRecord], prompt: str = "critic") -> list[dict[str, Any]]:
    """Chat examples of critique records (`prompt` as `CriticConfig.prompt`); a record whose
    instruction holds no question and solution under `critic` is refused naming its line."""
    rows = []
    for record in records:
        if prompt == "verbatim":
            messages = [{"role": "user", "content": record.prompt}]
        else:
            parts = record.parts
            if parts is None:
                raise CritiqueFileError(
                    f"{record.where}: the instruction holds no `Question:` (or `Problem:`) and `Solution:` "
                    "parts; set `prompt: verbatim` to train on it as written"
                )
            messages = critique_messages(*parts)
        rows.append({"messages": [*messages, {"role": "assistant", "content": record.output}], "weight": 1.0})
    return rows


def load_critic_examples(paths: list[str], prompt: str = "critic", limit: int | None = None) -> list[dict]:
    """The chat examples of critique files; a bad file or line is a `TrajectoryFileError` naming it."""
    try:
        records = [record for path in paths for record in read_critique_file(path)]
        return critic_examples(records[:limit] if limit else records, prompt)
    except CritiqueFileError as error:
        raise TrajectoryFileError(str(error)) from None


# ---- the evaluation --------------------------------------------------------------------------
@dataclass
class CriticEpisode:
    """One MathCritic-v0 task as a critic did it."""

    task: int
    difficulty: str | None
    error_kind: str
    gold_first_wrong_step: int | None
    critique: str = ""
    parsed: bool = False
    verdict_correct: bool = False
    step_correct: bool = False
    fixed: bool | None = None  # flawed candidates: whether the refinement after the critique is right

    @property
    def flawed(self) -> bool:
        return self.gold_first_wrong_step is not None


def evaluate_critic(
    critic: Any,
    tasks: int,
    *,
    split: str = "test",
    difficulty: str = "mixed",
    data: str | None = None,
    refiner: Any = None,
    max_new_tokens: int = 768,
    batch_size: int = 32,
    progress: bool = True,
) -> list[CriticEpisode]:
    """Critique the candidates of MathCritic-v0 tasks 0..tasks-1 with `critic` (a `Completer`,
    greedy; or "oracle" for the env's expert critique), score them in the env, and refine every
    flawed candidate after its critique with `refiner` (default: the oracle refiner)."""
    from tqdm import tqdm

    from envs.math.critic_env import MathCriticEnv

    env = MathCriticEnv(data=data, difficulty=difficulty, max_turns=1)
    source = ProblemSource(split, difficulty, data)
    refiner = refiner or OracleRefiner()
    episodes: list[CriticEpisode] = []
    with tqdm(total=tasks, desc="MathCritic-v0", unit="task", disable=not progress) as bar:
        for start in range(0, tasks, batch_size):
            batch = list(range(start, min(tasks, start + batch_size)))
            prompts, oracle_texts = [], []
            for task in batch:
                observation, info = env.reset(seed=task, options={"task": task, "split": split})
                prompts.append(
                    [
                        {"role": "system", "content": info["instruction"]},
                        {"role": "user", "content": observation},
                    ]
                )
                oracle_texts.append(env.expert_action())
            if critic == "oracle":
                replies = oracle_texts
            else:
                replies = [
                    r[0] for r in critic.complete(prompts, temperature=0.0, max_new_tokens=max_new_tokens)
                ]
            episodes.extend(_score(env, source, refiner, batch, replies, split, data))
            bar.update(len(batch))
    return episodes


def _score(env, source, refiner, batch, replies, split, data) -> list[CriticEpisode]:
    from envs.counterparts import reply_action

    episodes, jobs = [], []
    for task, reply in zip(batch, replies):
        _, info = env.reset(seed=task, options={"task": task, "split": split})
        candidate = env.candidate
        text = reply_action(reply)
        _, _, _, _, result = env.step(text)
        episode = CriticEpisode(
            task, info.get("difficulty"), candidate.kind, candidate.first_wrong_step, text
        )
        episode.parsed = not result.get("invalid", False)
        episode.verdict_correct = bool(result.get("verdict_correct", False))
        episode.step_correct = bool(result.get("step_correct", False))
        episodes.append(episode)
        if episode.flawed:
            level = None if data is not None else info.get("difficulty")
            critique = _critique(text)
            messages = (
                source.refine_prompt(task, level, candidate.text, critique)
                if refiner.needs_messages
                else None
            )
            jobs.append((episode, RefineJob(source.problem(task, level), candidate.text, critique, messages)))
    if jobs:
        for (episode, _), (share, _) in zip(jobs, fixed_shares(refiner, [job for _, job in jobs], 1)):
            episode.fixed = share > 0
    return episodes


def _critique(text: str) -> Critique:
    try:
        return parse_critique(text)
    except CritiqueFormatError as error:
        return Critique(raw=text, format_error=str(error))


def critic_scores(episodes: list[CriticEpisode]) -> dict[str, Any]:
    """The MathCritic-v0 scores of a critic's episodes (shares in [0, 1]; None where nothing counts)."""

    def share(values: list[bool]) -> float | None:
        return sum(values) / len(values) if values else None

    flawed = [e for e in episodes if e.flawed]
    correct = [e for e in episodes if not e.flawed]
    return {
        "episodes": len(episodes),
        "flawed": len(flawed),
        "correct": len(correct),
        "parsed": share([e.parsed for e in episodes]),
        "verdict_accuracy": share([e.verdict_correct for e in episodes]),
        "verdict_on_correct": share([e.verdict_correct for e in correct]),
        "verdict_on_flawed": share([e.verdict_correct for e in flawed]),
        "first_wrong_step": share([e.step_correct for e in flawed]),
        "success": share([e.verdict_correct and e.step_correct for e in episodes]),
        "fixed": share([bool(e.fixed) for e in flawed]),
    }


def critic_report(critics: dict[str, list[CriticEpisode]], refiner: str) -> dict[str, Any]:
    """Scores per critic, overall and per difficulty."""
    report: dict[str, Any] = {"env": "evol/MathCritic-v0", "refiner": refiner, "critics": {}}
    for name, episodes in critics.items():
        levels: dict[str, list[CriticEpisode]] = defaultdict(list)
        for episode in episodes:
            levels[episode.difficulty or "file"].append(episode)
        report["critics"][name] = {
            **critic_scores(episodes),
            "by_difficulty": {level: critic_scores(group) for level, group in sorted(levels.items())},
        }
    return report


def format_critic_table(report: dict[str, Any]) -> str:
    """The report as a Markdown table: a row per critic."""
    header = ["critic", "tasks", "parsed", *(METRIC_NAMES[m] for m in METRICS)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, scores in report["critics"].items():
        cells = [name, str(scores["episodes"]), _percent(scores["parsed"])]
        cells += [_percent(scores[m]) for m in METRICS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def plot_critic_report(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(report["critics"])
    width = 0.8 / max(1, len(names))
    figure, axes = plt.subplots(figsize=(8, 3.8))
    for i, name in enumerate(names):
        scores = report["critics"][name]
        values = [100 * (scores[m] or 0.0) for m in METRICS]
        positions = [j + (i - (len(names) - 1) / 2) * width for j in range(len(METRICS))]
        bars = axes.bar(positions, values, width, label=name)
        axes.bar_label(bars, labels=[f"{v:.0f}" for v in values], fontsize=7)
    axes.set_xticks(range(len(METRICS)), [METRIC_NAMES[m] for m in METRICS], fontsize=8)
    axes.set_ylim(0, 110)
    axes.set_ylabel("%")
    axes.set_title(
        f"evol/MathCritic-v0: {report['critics'][names[0]]['episodes']} tasks, refiner {report['refiner']}"
    )
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


# ---- the trainer ------------------------------------------------------------------------------
class CriticTrainer:
    """config -> trainer -> `train()`: fine-tune, evaluate on MathCritic-v0, return the model's result."""

    def __init__(self, config: CriticConfig):
        self.config = config
        self.report: dict[str, Any] | None = None

    def train(self) -> TrainResult:
        config = self.config
        examples = load_critic_examples(config.data, config.prompt, config.max_examples)
        out = Path(config.output_dir)
        out.mkdir(parents=True, exist_ok=True)
        save_config(config, out / "config.yaml")
        base = self._base_model(out, examples)
        result = fine_tune(base, examples, out, config.train)
        summary: dict[str, Any] = {
            "base_model": str(base),
            "examples": result.examples,
            "tokens": result.tokens,
            "truncated": result.truncated,
            "seconds": round(result.seconds, 2),
            "losses": result.losses,
            "model_dir": str(result.model_dir),
        }
        if config.eval_tasks:
            self.report = self.evaluate(result.model_dir, out)
            summary["eval"] = {name: {m: s[m] for m in METRICS} for name, s in self.report["critics"].items()}
        (out / "train_summary.json").write_text(json.dumps(summary, indent=2))
        return result

    def _base_model(self, out: Path, examples: list[dict[str, Any]]) -> Path:
        config = self.config
        if config.model not in PRESETS:
            return Path(config.model)
        from agents.tiny import build_tiny_model

        corpus = [m["content"] for e in examples for m in e["messages"]]
        length = max(2048, 2 ** math.ceil(math.log2(config.train.max_length + config.max_new_tokens)))
        return build_tiny_model(
            out / "base", corpus, preset=config.model, max_length=length, seed=config.train.seed
        )

    def evaluate(self, model_dir: Path, out: Path) -> dict[str, Any]:
        """MathCritic-v0 scores of the trained critic and of the oracle critic; report files in `out`."""
        from agents import LazyAgent, load_agent

        config = self.config
        if config.refiner in ORACLE_REFINERS:
            refiner: Any = OracleRefiner()
        else:
            refiner = ModelRefiner(LazyAgent(config.refiner), 0.0, config.max_new_tokens, config.train.seed)
        settings = {
            "split": config.eval_split,
            "difficulty": config.eval_difficulty,
            "data": config.eval_data,
            "refiner": refiner,
            "max_new_tokens": config.max_new_tokens,
            "batch_size": config.eval_batch_size,
        }
        critic = load_agent(f"hf:{model_dir}", seed=config.train.seed)
        try:
            trained = evaluate_critic(critic, config.eval_tasks, **settings)
        finally:
            critic.close()
        oracle = evaluate_critic("oracle", config.eval_tasks, progress=False, **settings)
        report = critic_report({"trained": trained, "oracle": oracle}, refiner.name)
        report["model_dir"] = str(model_dir)
        (out / "critic_eval.json").write_text(json.dumps(report, indent=2))
        with open(out / "critic_eval.jsonl", "w", encoding="utf-8") as handle:
            for episode in trained:
                handle.write(json.dumps(episode.__dict__, ensure_ascii=False) + "\n")
        plot_critic_report(report, out / "critic_eval.png")
        print(format_critic_table(report))
        return report
