"""AgentEvol (Xi et al. 2024, AgentGym): behaviour cloning, then evolve by exploring.

    evol train agentevol --config agentevol.yaml

The run: collect expert trajectories on a base task set (or read them) -> build the
model if a preset is named -> evaluate the untrained model -> behaviour cloning ->
evaluate; then for each iteration: **explore** (K samples per task on the wider task
set with the current policy, through the rollout engine and env servers the trainer
launches itself or finds at `urls`) -> **filter/weight** (keep successes or rewards over
a threshold, or weight the loss by reward: AgentEvol's reward-weighted likelihood, of
which filtering is the binary case) -> **merge** with the expert data (this
iteration's, or cumulative) -> **learn** (from the base model, as AgentGym's scripts
do, or from the last one) -> **evaluate** on held-out test tasks.

The run directory holds `config.yaml`, `state.json` (finished phases), `expert.jsonl`,
`iter_N/explore.jsonl`, models (`bc/model`, `iter_N/model`), `eval/STAGE/` reports,
`metrics.jsonl` and `learning_curve.png`. Rerunning the same command resumes after the
last finished phase; a phase cut short keeps the trajectories it had written.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import envs
from agents.base import SamplingParams
from agents.scripted import ExpertAgent
from evol.evaluate import evaluate
from evol.rollout import RolloutEngine, task_specs
from evol.runs import prefix_cache_size, run_specs
from evol.trainers.config import save_config
from evol.trainers.data import examples, load_trajectories, select
from evol.trainers.sft import TrainSettings, fine_tune

TASK_KEYS = ("base_tasks", "explore_tasks", "eval_tasks")


@dataclass
class AgentEvolConfig:
    """Every knob of an AgentEvol run, with its default."""

    run_dir: str = field(
        default="runs/agentevol", metadata={"help": "where everything of the run is written"}
    )
    envs: list[str] = field(default_factory=lambda: ["evol/BabyAI-v0"], metadata={"help": "env ids to learn"})
    base_model: str = field(
        default="tiny",
        metadata={
            "help": 'an HF checkpoint directory, or a preset ("tiny", "small") built on the expert text'
        },
    )
    expert_data: list[str] = field(
        default_factory=list,
        metadata={"help": "BC trajectory files; empty: collect them with the envs' experts"},
    )
    base_tasks: int = field(
        default=100, metadata={"help": "expert trajectories per env for BC: train tasks [0, base_tasks)"}
    )
    explore_tasks: int = field(
        default=400,
        metadata={"help": "the wider exploration set per env: train tasks [0, explore_tasks)"},
    )
    eval_tasks: int = field(
        default=50, metadata={"help": "held-out test tasks per env evaluated after each stage"}
    )
    env_tasks: dict[str, dict[str, int]] = field(
        default_factory=dict,
        metadata={"help": "per-env overrides of the three task counts: {env_id: {base_tasks: n, ...}}"},
    )
    samples_per_task: int = field(default=1, metadata={"help": "K: exploration episodes per task"})
    explore_temperature: float = field(
        default=1.0, metadata={"help": "sampling temperature when exploring (evaluation is greedy)"}
    )
    iterations: int = field(default=2, metadata={"help": "M: explore -> learn -> evaluate rounds after BC"})
    keep: Literal["success", "threshold", "reward_weighted"] = field(
        default="success",
        metadata={
            "help": "the filter/weight rule: successes, rewards over a threshold, or reward-weighted loss"
        },
    )
    reward_threshold: float | dict[str, float] = field(
        default=0.99, metadata={"help": "with keep=threshold: one value, or one per env id"}
    )
    merge: Literal["base", "cumulative"] = field(
        default="base", metadata={"help": "learn on expert + this iteration's data, or + all iterations'"}
    )
    learn_from: Literal["base", "last"] = field(
        default="base", metadata={"help": "fine-tune the base model each iteration (AgentGym) or the last"}
    )
    eval_untrained: bool = field(default=True, metadata={"help": "evaluate the model before any training"})
    history_turns: int | None = field(
        default=None, metadata={"help": "what the agent sees: null = the whole episode; k = the last k turns"}
    )
    instruction_in_context: bool | list[str] = field(
        default=True,
        metadata={"help": "the agent sees envs' instructions: all (true), none (false), or these env ids"},
    )
    max_new_tokens: int = field(default=32, metadata={"help": "tokens per agent reply"})
    concurrency: int = field(default=32, metadata={"help": "episodes in flight in every rollout"})
    urls: list[str] = field(
        default_factory=list, metadata={"help": "env servers to use; empty: launch `servers` of them"}
    )
    servers: int = field(
        default=1, metadata={"help": "env servers the trainer launches when `urls` is empty"}
    )
    backend: Literal["hf", "vllm"] = field(default="hf", metadata={"help": "how the policy generates"})
    device: str = field(
        default="auto", metadata={"help": "the device of the hf backend (auto, cpu, cuda, ...)"}
    )
    prefix_cache: bool = field(
        default=True, metadata={"help": "hf backend: keep each episode's KV cache across its turns"}
    )
    seed: int = field(
        default=0, metadata={"help": "seed of the policy's sampling and of the preset model's initialisation"}
    )
    progress: bool = field(default=True, metadata={"help": "show progress bars"})
    bc_train: TrainSettings = field(
        default_factory=TrainSettings, metadata={"help": "how behaviour cloning learns"}
    )
    train: TrainSettings = field(
        default_factory=TrainSettings, metadata={"help": "how each iteration learns"}
    )

    def __post_init__(self) -> None:
        if not self.envs:
            raise ValueError("envs: name at least one env id")
        for env_id in self.envs:
            try:
                envs.env_class(env_id)
            except (KeyError, ImportError) as error:
                raise ValueError(f"envs: {error}") from None
        for name in (
            "base_tasks",
            "explore_tasks",
            "eval_tasks",
            "samples_per_task",
            "concurrency",
            "servers",
            "max_new_tokens",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.iterations < 0:
            raise ValueError(f"iterations must be >= 0, got {self.iterations}")
        if self.explore_temperature < 0:
            raise ValueError("explore_temperature must be >= 0")
        if self.history_turns is not None and self.history_turns < 0:
            raise ValueError("history_turns must be >= 0 or null")
        if not isinstance(self.instruction_in_context, bool):
            unknown = sorted(set(self.instruction_in_context) - set(self.envs))
            if unknown:
                raise ValueError(f"instruction_in_context: {unknown} not in envs")
        for env_id, counts in self.env_tasks.items():
            if env_id not in self.envs:
                raise ValueError(f"env_tasks: {env_id!r} is not in envs")
            unknown = set(counts) - set(TASK_KEYS)
            if unknown:
                raise ValueError(
                    f"env_tasks.{env_id}: unknown key(s) {sorted(unknown)}; known: {list(TASK_KEYS)}"
                )
            if any(not isinstance(v, int) or v < 1 for v in counts.values()):
                raise ValueError(f"env_tasks.{env_id}: counts must be integers >= 1")
        from agents.tiny import PRESETS

        if self.base_model not in PRESETS and not Path(self.base_model).is_dir():
            raise ValueError(
                f"base_model: {self.base_model!r} is neither a preset {sorted(PRESETS)} nor a directory"
            )
        for path in self.expert_data:
            if not Path(path).exists():
                raise ValueError(f"expert_data: {path} does not exist")

    def tasks(self, env_id: str, kind: str) -> int:
        return self.env_tasks.get(env_id, {}).get(kind, getattr(self, kind))


class AgentEvolTrainer:
    """config -> trainer -> `train()`: runs (or resumes) the whole AgentEvol loop."""

    def __init__(self, config: AgentEvolConfig, log=print):
        self.config = config
        self.run_dir = Path(config.run_dir)
        self.log = log
        self.state_path = self.run_dir / "state.json"
        self.urls: list[str] = list(config.urls)
        self._servers: list[Any] = []

    # ---- state --------------------------------------------------------------------------
    def _done(self) -> list[str]:
        return json.loads(self.state_path.read_text())["done"] if self.state_path.exists() else []

    def _finish(self, phase: str, seconds: float) -> None:
        done = self._done() + [phase]
        self.state_path.write_text(json.dumps({"done": done}, indent=2))
        self._metric({"phase": phase, "seconds": round(seconds, 2)})

    def _metric(self, row: dict[str, Any]) -> None:
        with open(self.run_dir / "metrics.jsonl", "a") as handle:
            handle.write(json.dumps(row) + "\n")

    def _phase(self, name: str, work) -> None:
        if name in self._done():
            self.log(f"[agentevol] {name}: done earlier, skipped")
            return
        self.log(f"[agentevol] {name} ...")
        started = time.perf_counter()
        work()
        seconds = time.perf_counter() - started
        self._finish(name, seconds)
        self.log(f"[agentevol] {name}: {seconds:.1f}s")

    # ---- pieces -------------------------------------------------------------------------
    def _ensure_servers(self) -> None:
        if self.urls:
            return
        from server.launch import LaunchedServer

        for _ in range(self.config.servers):
            server = LaunchedServer(
                self.config.envs, "--capacity", "1024", log_path=self.run_dir / "servers.log"
            )
            self._servers.append(server)
            self.urls.append(server.url)
        self.log(f"[agentevol] env servers: {', '.join(self.urls)}")

    def _policy(self, model_dir: Path):
        if self.config.backend == "vllm":
            from agents.vllm_backend import VLLMAgent

            return VLLMAgent(str(model_dir), seed=self.config.seed)
        from agents.hf import HFAgent

        return HFAgent(
            str(model_dir),
            device=self.config.device,
            seed=self.config.seed,
            prefix_cache=prefix_cache_size(self.config.prefix_cache, self.config.concurrency),
        )

    def _engine(self, agent, temperature: float) -> RolloutEngine:
        self._ensure_servers()
        return RolloutEngine(
            agent,
            concurrency=self.config.concurrency,
            sampling=SamplingParams(temperature=temperature, max_new_tokens=self.config.max_new_tokens),
            urls=self.urls,
            history_turns=self.config.history_turns,
            instruction_in_context=self.config.instruction_in_context,
            progress=self.config.progress,
        )

    def _log_errors(self, finished: list, out: Path) -> None:
        errors = [t for t in finished if t.error is not None]
        if errors:
            self.log(
                f"[agentevol] {len(errors)} episodes in {out} ended with an error, e.g.: {errors[0].error}"
            )

    def _rollout(self, agent, specs, out: Path, temperature: float) -> None:
        self._log_errors(run_specs(self._engine(agent, temperature), specs, out).finished, out)

    def _expert_files(self) -> list[Path]:
        return [Path(p) for p in self.config.expert_data] or [self.run_dir / "expert.jsonl"]

    def _base_model_dir(self) -> Path:
        if Path(self.config.base_model).is_dir():
            return Path(self.config.base_model)
        return self.run_dir / "base_model"

    def _evaluate(self, stage: str, model_dir: Path, iteration: int) -> None:
        """Held-out success of the model of `stage` (greedy): `eval/STAGE/` and the metrics."""
        tasks = {env_id: self.config.tasks(env_id, "eval_tasks") for env_id in self.config.envs}
        engine = self._engine(self._policy(model_dir), temperature=0.0)
        result = evaluate(engine, tasks, self.run_dir / "eval" / stage, agent=f"{stage} ({model_dir})")
        self._log_errors(result.run.finished, result.run.path)
        for written in result.reports:
            if written.error:
                self.log(
                    f"[agentevol] the {written.report.name} report of {written.env} failed: {written.error}"
                )
        for env_id, row in result.summary.items():
            self._metric({"stage": stage, "iteration": iteration, "env": env_id, **row})
        self.log(
            f"[agentevol] {stage}: "
            + ", ".join(f"{e} {r['success_rate']:.1%}" for e, r in result.summary.items())
        )

    def _examples(self, selected: list) -> list[dict]:
        return examples(selected, self.config.history_turns, self.config.instruction_in_context)

    def _selected_expert(self) -> list:
        return select(load_trajectories(self._expert_files()), "success")

    # ---- the run ------------------------------------------------------------------------
    def train(self) -> dict[str, dict[str, float]]:
        config = self.config
        self.run_dir.mkdir(parents=True, exist_ok=True)
        save_config(config, self.run_dir / "config.yaml")
        try:
            self._run()
        finally:
            for server in self._servers:
                server.stop()
            self._servers.clear()
        plot_learning_curve(self.run_dir / "metrics.jsonl", self.run_dir / "learning_curve.png")
        return learning_table(self.run_dir / "metrics.jsonl")

    def _collect_expert(self) -> None:
        config = self.config
        specs = [
            s
            for env_id in config.envs
            for s in task_specs([env_id], config.tasks(env_id, "base_tasks"), split="train")
        ]
        self._rollout(ExpertAgent(), specs, self.run_dir / "expert.jsonl", temperature=0.0)

    def _build_base_model(self, base_dir: Path) -> None:
        """A tiny model (the preset `config.base_model` names) whose tokenizer learns the expert texts."""
        from agents.tiny import build_tiny_model

        corpus = [
            part
            for t in load_trajectories(self._expert_files())
            for m in t.messages
            for part in ([m["content"]] if isinstance(m["content"], str) else [])
        ]
        build_tiny_model(base_dir, corpus, preset=self.config.base_model, seed=self.config.seed)

    def _learn(self, out: Path, rows: list[dict], start: Path, settings: TrainSettings) -> None:
        result = fine_tune(start, rows, out, settings)
        self._metric(
            {"stage": out.name, "examples": result.examples, "tokens": result.tokens, "train_s": round(result.seconds, 2),
             "tokens_per_s": round(result.tokens_per_s, 1), "truncated": result.truncated, "losses": result.losses}
        )  # fmt: skip

    def _explore(self, policy_dir: Path, iteration_dir: Path) -> None:
        config = self.config
        specs = [
            s
            for env_id in config.envs
            for s in task_specs(
                [env_id],
                config.tasks(env_id, "explore_tasks"),
                split="train",
                samples=config.samples_per_task,
            )
        ]
        self._rollout(
            self._policy(policy_dir),
            specs,
            iteration_dir / "explore.jsonl",
            config.explore_temperature,
        )

    def _learn_iteration(self, i: int, iteration_dir: Path, last: Path, base_dir: Path) -> None:
        """Learn iteration `i` from the expert data and what exploration kept, from the base or `last`."""
        config = self.config
        sources = [
            self.run_dir / f"iter_{j}" / "explore.jsonl"
            for j in (range(1, i + 1) if config.merge == "cumulative" else [i])
        ]
        explored = select(load_trajectories(sources), config.keep, config.reward_threshold)
        for env_id in config.envs:
            kept = sum(t.env == env_id for t, _ in explored)
            self._metric({"stage": f"iter_{i}", "env": env_id, "explore_kept": kept})
        rows = self._examples(self._selected_expert()) + self._examples(explored)
        start = base_dir if config.learn_from == "base" else last
        self._learn(iteration_dir, rows, start, config.train)

    def _run(self) -> None:
        config = self.config
        base_dir = self._base_model_dir()

        if not config.expert_data:
            self._phase("expert", self._collect_expert)
        if not Path(config.base_model).is_dir():
            self._phase("base_model", lambda: self._build_base_model(base_dir))
        if config.eval_untrained:
            self._phase("eval/untrained", lambda: self._evaluate("untrained", base_dir, -1))

        bc_dir = self.run_dir / "bc"
        self._phase(
            "bc",
            lambda: self._learn(bc_dir, self._examples(self._selected_expert()), base_dir, config.bc_train),
        )
        self._phase("eval/bc", lambda: self._evaluate("bc", bc_dir / "model", 0))

        last = bc_dir / "model"
        for i in range(1, config.iterations + 1):
            iteration_dir = self.run_dir / f"iter_{i}"
            iteration_dir.mkdir(exist_ok=True)
            self._phase(f"iter_{i}/explore", lambda p=last, d=iteration_dir: self._explore(p, d))
            self._phase(
                f"iter_{i}/learn",
                lambda i=i, d=iteration_dir, p=last: self._learn_iteration(i, d, p, base_dir),
            )
            self._phase(
                f"iter_{i}/eval", lambda i=i, d=iteration_dir: self._evaluate(f"iter_{i}", d / "model", i)
            )
            last = iteration_dir / "model"


def learning_table(metrics_path: Path) -> dict[str, dict[str, float]]:
    """{stage: {env: held-out success}} from the metrics file, in run order."""
    table: dict[str, dict[str, float]] = {}
    if not Path(metrics_path).exists():
        return table
    for line in Path(metrics_path).read_text().splitlines():
        row = json.loads(line)
        if "success_rate" in row:
            table.setdefault(row["stage"], {})[row["env"]] = row["success_rate"]
    return table


def format_table(table: dict[str, dict[str, float]]) -> str:
    env_ids = sorted({env_id for row in table.values() for env_id in row})
    lines = ["| stage | " + " | ".join(env_ids) + " |", "|---|" + "---|" * len(env_ids)]
    for stage, row in table.items():
        lines.append(f"| {stage} | " + " | ".join(f"{row.get(e, float('nan')):.1%}" for e in env_ids) + " |")
    return "\n".join(lines)


def plot_learning_curve(metrics_path: Path, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = learning_table(metrics_path)
    if not table:
        return
    stages = list(table)
    env_ids = sorted({env_id for row in table.values() for env_id in row})
    figure, axes = plt.subplots(figsize=(max(5, 1.1 * len(stages) + 2), 3.8))
    for env_id in env_ids:
        axes.plot(
            stages, [table[s].get(env_id, float("nan")) * 100 for s in stages], marker="o", label=env_id
        )
    axes.set_ylim(-2, 102)
    axes.set_ylabel("held-out success (%)")
    axes.set_xlabel("stage")
    axes.set_title("AgentEvol: held-out success per env")
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(out, dpi=100)
    plt.close(figure)
