"""The self-improvement loop: explore -> select -> learn -> evaluate, with pluggable parts.

    evol train loop --config loop.yaml          # any explore strategy and learn objective
    evol train agentevol --config agentevol.yaml  # the same loop, AgentEvol's defaults

The run: collect expert trajectories on a base task set (or read them) -> build the model if
a preset is named -> evaluate the untrained model -> behaviour cloning -> evaluate; then for
each iteration: **explore** (the strategy named by `explore`: `sample` draws K samples per
task with the current policy through the rollout engine and env servers; `critique_refine`
has wrong math solutions critiqued and refined; `guided` resamples the questions with few
correct samples under Socratic guidance) -> **select and
learn** (the objective named by `learn`: `sft` keeps successes and fine-tunes — AgentEvol;
`dpo` pairs better against worse samples of a task; `inverse_q` scores every token by
guidance; `grpo` explores online itself — GRPO on the train tasks, no explore phase) ->
**evaluate** on held-out tasks. Strategies live in `evol/trainers/explore/`,
objectives in `evol/trainers/objectives/`, one small file each, registered by name.

A strategy decides the config fields left null (`samples_per_task`, `keep_per_task`,
`held_in_tasks`: the math strategies default to the papers' numbers and a held-in
evaluation on the first train tasks, `eval/STAGE/held_in/`).

Held-out evaluation never shares a task with what is explored: an env with distinct train
and test splits evaluates on its test split; an env without splits, or given one data file
for both, evaluates on a hash split of its task indices (`held_out_task`) that exploration
and behaviour cloning skip.

The run directory holds `config.yaml`, `state.json` (finished phases), `expert.jsonl`,
`iter_N/explore.jsonl`, models (`bc/model`, `iter_N/model`), `eval/STAGE/` reports,
`metrics.jsonl` and `learning_curve.png`. Rerunning the same command resumes after the last
finished phase; a phase cut short keeps the trajectories it had written.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import envs
from agents.base import SamplingParams
from agents.scripted import ExpertAgent
from evol.evaluate import evaluate
from evol.rollout import EpisodeSpec, RolloutEngine
from evol.runs import prefix_cache_size, run_specs
from evol.trainers.config import save_config
from evol.trainers.data import examples, load_trajectories, select
from evol.trainers.dpo import DPOSettings
from evol.trainers.grpo import GRPOSettings
from evol.trainers.inverse_q import InverseQSettings
from evol.trainers.pairs import PAIRINGS
from evol.trainers.sft import TrainResult, TrainSettings, fine_tune
from server.launch import LaunchedServer

TASK_KEYS = ("base_tasks", "explore_tasks", "eval_tasks")
HELD_OUT_SHARE = 5  # one task index in five is held out where an env has no distinct test split


class EvolServeProcess(LaunchedServer):
    """`evol serve`: the server command that also takes --env-kwargs and --counterpart."""

    command = (LaunchedServer.command[0], "-m", "evol.cli", "serve")


@dataclass
class LoopConfig:
    """Every knob of a self-improvement run, with its default."""

    run_dir: str = field(default="runs/loop", metadata={"help": "where everything of the run is written"})
    envs: list[str] = field(default_factory=lambda: ["evol/BabyAI-v0"], metadata={"help": "env ids to learn"})
    explore: str = field(
        default="sample",
        metadata={"help": "explore strategy (evol/trainers/explore): sample, critique_refine, guided"},
    )
    learn: str = field(
        default="sft",
        metadata={"help": "learn objective (evol/trainers/objectives): sft, dpo, inverse_q, grpo"},
    )
    base_model: str = field(
        default="tiny",
        metadata={
            "help": 'an HF checkpoint directory, or a preset ("tiny", "small") built on the expert text'
        },
    )
    expert_data: list[str] = field(
        default_factory=list,
        metadata={
            "help": "BC trajectory files (EvolGym's or AgentGym's); empty: collect them with the envs' experts"
        },
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
    env_kwargs: dict[str, dict[str, Any]] = field(
        default_factory=dict,
        metadata={"help": "kwargs of the envs on the servers the run launches: {env_id: {kwarg: value}}"},
    )
    counterparts: list[str] = field(
        default_factory=list,
        metadata={"help": "NAME=AGENT counterparts for the launched servers' envs, e.g. critic=oracle"},
    )
    samples_per_task: int | None = field(
        default=None,
        metadata={
            "help": "K: exploration episodes per task; null: the explore strategy's "
            "(sample 1, critique_refine and guided 8)"
        },
    )
    explore_temperature: float = field(
        default=1.0, metadata={"help": "sampling temperature when exploring (evaluation is greedy)"}
    )
    iterations: int = field(default=2, metadata={"help": "M: explore -> learn -> evaluate rounds after BC"})
    keep: Literal["success", "threshold", "reward_weighted"] = field(
        default="success",
        metadata={
            "help": "sft: the filter/weight rule: successes, rewards over a threshold, or reward-weighted loss"
        },
    )
    keep_per_task: Literal["one", "all"] | None = field(
        default=None,
        metadata={
            "help": "sft: keep one kept trajectory per task (AgentGym's filter) or all K; null: the "
            "explore strategy's (sample one, critique_refine and guided all)"
        },
    )
    reward_threshold: float | dict[str, float] = field(
        default=0.99, metadata={"help": "with keep=threshold: one value, or one per env id"}
    )
    merge: Literal["base", "cumulative"] = field(
        default="base", metadata={"help": "learn on expert + this iteration's data, or + all iterations'"}
    )
    learn_from: Literal["base", "last"] = field(
        default="base", metadata={"help": "train the base model each iteration (AgentGym) or the last"}
    )
    pairing: str = field(
        default="first_divergence",
        metadata={"help": "dpo: cut pairs at the first differing reply, or pair whole episodes (whole)"},
    )
    pairs_per_task: int = field(default=1, metadata={"help": "dpo: the most pairs one task gives"})
    held_in_tasks: int | None = field(
        default=None,
        metadata={
            "help": "train tasks per env also evaluated (greedy) after each stage: accuracy held in; "
            "null: the explore strategy's (critique_refine and guided as many as eval_tasks, sample 0)"
        },
    )
    critic: str = field(
        default="oracle",
        metadata={
            "help": "critique_refine: who critiques wrong samples: oracle (the exact step checker) or an "
            "agent spec (hf:PATH, vllm:PATH, openai:URL#MODEL)"
        },
    )
    refine_rounds: int = field(
        default=1,
        metadata={"help": "critique_refine: rounds of critique and refinement after a wrong sample"},
    )
    critic_max_new_tokens: int = field(
        default=1024, metadata={"help": "critique_refine: tokens of one critique from a critic model"}
    )
    min_number_ratio: float = field(
        default=0.5,
        metadata={
            "help": "critique_refine, guided: a refinement or guided sample is kept only if it has at least "
            "this share of the reference solution's numbers (fewer: it copies the answer); 0: keep all"
        },
    )
    guidance: Literal["answer", "rationale", "state_reset", "interactive", "none"] = field(
        default="answer",
        metadata={
            "help": "guided: how resampling guides (with resample=guided): the gold answer, the gold "
            "rationale, a prefix of k gold lines (k cycling), or a teacher naming the wrong step"
        },
    )
    resample: Literal["guided", "brute_force", "none"] = field(
        default="guided",
        metadata={
            "help": "guided: resample the questions under resample_threshold with guidance, unguided "
            "(brute force, the same budget), or not at all (the vanilla loop)"
        },
    )
    resample_threshold: int = field(
        default=4, metadata={"help": "guided: questions with fewer correct samples than this are resampled"}
    )
    resample_rounds: int = field(
        default=8, metadata={"help": "guided: the most resampling rounds, samples_per_task episodes each"}
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
    ray: str | None = field(
        default=None,
        metadata={
            "help": "explore and evaluate on Ray actors of the cluster at this address (auto, local, "
            "HOST:PORT); each actor loads the policy (hf:DIR or vllm:DIR, one per GPU) and runs the envs "
            "in-process, or those of `urls`; null: in this process. Learning is unchanged"
        },
    )
    ray_actors: int | None = field(
        default=None,
        metadata={"help": "with ray: the actors (null: one per free CPU, at most 32; vllm: one per GPU)"},
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
        default_factory=TrainSettings, metadata={"help": "how each iteration learns with learn=sft"}
    )
    dpo: DPOSettings = field(default_factory=DPOSettings, metadata={"help": "how learn=dpo learns"})
    inverse_q: InverseQSettings = field(
        default_factory=InverseQSettings, metadata={"help": "how learn=inverse_q learns"}
    )
    grpo: GRPOSettings = field(
        default_factory=GRPOSettings, metadata={"help": "how learn=grpo learns (online, on the train tasks)"}
    )

    def __post_init__(self) -> None:
        from evol.trainers.explore import EXPLORERS
        from evol.trainers.objectives import OBJECTIVES

        if not self.envs:
            raise ValueError("envs: name at least one env id")
        for env_id in self.envs:
            try:
                envs.env_class(env_id)
            except (KeyError, ImportError) as error:
                raise ValueError(f"envs: {error}") from None
        if self.explore not in EXPLORERS:
            raise ValueError(f"explore: unknown strategy {self.explore!r}; known: {sorted(EXPLORERS)}")
        if self.learn not in OBJECTIVES:
            raise ValueError(f"learn: unknown objective {self.learn!r}; known: {sorted(OBJECTIVES)}")
        explorer = EXPLORERS[self.explore]
        defaults = {**explorer.defaults, "held_in_tasks": self.eval_tasks if explorer.held_in else 0}
        for name, value in defaults.items():  # null: the strategy's default
            if getattr(self, name) is None:
                setattr(self, name, value)
        for name in ("base_tasks", "explore_tasks", "eval_tasks", "samples_per_task", "concurrency",
                     "servers", "max_new_tokens", "pairs_per_task", "refine_rounds",
                     "critic_max_new_tokens", "resample_threshold"):  # fmt: skip
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("held_in_tasks", "resample_rounds"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not 0 <= self.min_number_ratio <= 1:
            raise ValueError(f"min_number_ratio must be in [0, 1], got {self.min_number_ratio}")
        if self.iterations < 0:
            raise ValueError(f"iterations must be >= 0, got {self.iterations}")
        if self.explore_temperature < 0:
            raise ValueError("explore_temperature must be >= 0")
        if self.history_turns is not None and self.history_turns < 0:
            raise ValueError("history_turns must be >= 0 or null")
        if self.pairing not in PAIRINGS:
            raise ValueError(f"pairing must be one of {PAIRINGS}, got {self.pairing!r}")
        if not isinstance(self.instruction_in_context, bool):
            unknown = sorted(set(self.instruction_in_context) - set(self.envs))
            if unknown:
                raise ValueError(f"instruction_in_context: {unknown} not in envs")
        for key, mapping in (("env_tasks", self.env_tasks), ("env_kwargs", self.env_kwargs)):
            for env_id in mapping:
                if env_id not in self.envs:
                    raise ValueError(f"{key}: {env_id!r} is not in envs")
        for env_id, counts in self.env_tasks.items():
            unknown = set(counts) - set(TASK_KEYS)
            if unknown:
                raise ValueError(
                    f"env_tasks.{env_id}: unknown key(s) {sorted(unknown)}; known: {list(TASK_KEYS)}"
                )
            if any(not isinstance(v, int) or v < 1 for v in counts.values()):
                raise ValueError(f"env_tasks.{env_id}: counts must be integers >= 1")
        for env_id, kwargs in self.env_kwargs.items():
            try:
                envs.check_kwargs(env_id, kwargs, from_client=False)
            except (ValueError, TypeError) as error:
                raise ValueError(f"env_kwargs.{env_id}: {error}") from None
        for item in self.counterparts:
            if "=" not in item or not item.partition("=")[2]:
                raise ValueError(f"counterparts: {item!r} is not NAME=AGENT")
        if self.ray is not None and self.counterparts and not self.urls:
            raise ValueError(
                "counterparts: with ray the actors run the envs in-process; give `urls` of servers "
                "started with --counterpart, or the counterparts in env_kwargs"
            )
        if self.ray_actors is not None and self.ray_actors < 1:
            raise ValueError(f"ray_actors must be >= 1 or null, got {self.ray_actors}")
        from agents.tiny import PRESETS

        if self.base_model not in PRESETS and not Path(self.base_model).is_dir():
            raise ValueError(
                f"base_model: {self.base_model!r} is neither a preset {sorted(PRESETS)} nor a directory"
            )
        for path in self.expert_data:
            if not Path(path).exists():
                raise ValueError(f"expert_data: {path} does not exist")
        explorer.check(self)
        OBJECTIVES[self.learn].check(self)

    def tasks(self, env_id: str, kind: str) -> int:
        return self.env_tasks.get(env_id, {}).get(kind, getattr(self, kind))


# ---- which tasks a phase runs ---------------------------------------------------------------
def held_out_task(env_id: str, task: int) -> bool:
    """Whether task index `task` of `env_id` belongs to the hash-split held-out set (1 in 5)."""
    digest = hashlib.sha256(f"{env_id}|{task}".encode()).digest()
    return int.from_bytes(digest[:4], "big") % HELD_OUT_SHARE == 0


def distinct_test_split(env_id: str, kwargs: dict[str, Any] | None = None) -> bool:
    """Whether `env_id`, built with `kwargs`, has a test split of its own: declared splits, and
    with a data file either none or one file per split."""
    if "test" not in envs.env_class(env_id).splits:
        return False
    data = next((kwargs[k] for k in ("data", "games") if (kwargs or {}).get(k) is not None), None)
    if data is None:
        return True
    return isinstance(data, dict) and {"train", "test"} <= set(data) and data["train"] != data["test"]


def _task_limit(env_id: str) -> int | None:
    param = envs.env_class(env_id).option_params.get("task")
    return int(param.maximum) + 1 if param is not None and param.maximum is not None else None


def phase_specs(
    env_id: str, count: int, kind: str, kwargs: dict[str, Any] | None = None, samples: int = 1
) -> list[EpisodeSpec]:
    """`count` tasks of `env_id` for a phase: `kind` "test" runs held-out tasks, "train" the rest.

    With a distinct test split these are tasks 0..count-1 of that split; otherwise the first
    `count` indices on the phase's side of the hash split."""
    if distinct_test_split(env_id, kwargs):
        split = "test" if kind == "test" else "train"
        indices = list(range(count))
        options_of = lambda k: {"task": k, "split": split}  # noqa: E731
    else:
        limit = _task_limit(env_id)
        indices, k = [], 0
        while len(indices) < count and (limit is None or k < limit):
            if held_out_task(env_id, k) == (kind == "test"):
                indices.append(k)
            k += 1
        has_split = "train" in envs.env_class(env_id).splits
        options_of = lambda k: {"task": k, **({"split": "train"} if has_split else {})}  # noqa: E731
    return [EpisodeSpec(env_id, k, options_of(k), sample) for k in indices for sample in range(samples)]


# ---- the loop -----------------------------------------------------------------------------
class SelfImproveTrainer:
    """config -> trainer -> `train()`: runs (or resumes) the whole loop."""

    tag = "loop"

    def __init__(self, config: LoopConfig, log=print):
        from evol.trainers.explore import EXPLORERS
        from evol.trainers.objectives import OBJECTIVES

        self.config = config
        self.run_dir = Path(config.run_dir)
        self.log = log
        self.state_path = self.run_dir / "state.json"
        self.urls: list[str] = list(config.urls)
        self._servers: list[Any] = []
        self.explorer = EXPLORERS[config.explore]
        self.objective = OBJECTIVES[config.learn]

    # ---- state --------------------------------------------------------------------------
    def _done(self) -> list[str]:
        return json.loads(self.state_path.read_text())["done"] if self.state_path.exists() else []

    def _finish(self, phase: str, seconds: float) -> None:
        done = self._done() + [phase]
        self.state_path.write_text(json.dumps({"done": done}, indent=2))
        self.metric({"phase": phase, "seconds": round(seconds, 2)})

    def metric(self, row: dict[str, Any]) -> None:
        with open(self.run_dir / "metrics.jsonl", "a") as handle:
            handle.write(json.dumps(row) + "\n")

    def _phase(self, name: str, work) -> None:
        if name in self._done():
            self.log(f"[{self.tag}] {name}: done earlier, skipped")
            return
        self.log(f"[{self.tag}] {name} ...")
        started = time.perf_counter()
        work()
        seconds = time.perf_counter() - started
        self._finish(name, seconds)
        self.log(f"[{self.tag}] {name}: {seconds:.1f}s")

    # ---- pieces strategies and objectives use ---------------------------------------------
    def ensure_servers(self) -> None:
        if self.urls:
            return
        flags = ["--capacity", "1024"]
        if self.config.env_kwargs:
            flags += ["--env-kwargs", json.dumps(self.config.env_kwargs)]
        for item in self.config.counterparts:
            flags += ["--counterpart", item]
        launcher = (
            EvolServeProcess if (self.config.env_kwargs or self.config.counterparts) else LaunchedServer
        )
        for _ in range(self.config.servers):
            server = launcher(self.config.envs, *flags, log_path=self.run_dir / "servers.log")
            self._servers.append(server)
            self.urls.append(server.url)
        self.log(f"[{self.tag}] env servers: {', '.join(self.urls)}")

    def policy(self, model_dir: Path):
        """The agent of the checkpoint in `model_dir` (a vision checkpoint gets the agent that sees
        images); with `ray`, an unloaded `LazyAgent` of its spec, which each actor loads."""
        if self.config.ray is not None:
            return self._policy_spec(model_dir)
        if self.config.backend == "vllm":
            from agents.vllm_backend import VLLMAgent

            return VLLMAgent(str(model_dir), seed=self.config.seed)
        from evol.trainers.vision import is_vision_checkpoint

        if is_vision_checkpoint(model_dir):
            from agents.hf_vision import HFVisionAgent

            return HFVisionAgent(str(model_dir), device=self.config.device, seed=self.config.seed)
        from agents.hf import HFAgent

        return HFAgent(
            str(model_dir),
            device=self.config.device,
            seed=self.config.seed,
            prefix_cache=prefix_cache_size(self.config.prefix_cache, self.config.concurrency),
        )

    def _policy_spec(self, model_dir: Path):
        from agents import LazyAgent
        from evol.trainers.vision import is_vision_checkpoint

        if self.config.backend == "vllm":
            return LazyAgent(f"vllm:{model_dir}", seed=self.config.seed)
        if is_vision_checkpoint(model_dir):
            return LazyAgent(f"hf-vision:{model_dir}", device=self.config.device, seed=self.config.seed)
        cache = prefix_cache_size(self.config.prefix_cache, self.config.concurrency)
        return LazyAgent(
            f"hf:{model_dir}", device=self.config.device, seed=self.config.seed, prefix_cache=cache
        )

    def engine(self, agent, temperature: float, env_kwargs: dict[str, dict] | None = None):
        """An engine on the run's env servers; with `env_kwargs`, on local envs built with them
        instead (an explore strategy whose envs hold an in-process counterpart, e.g. a critic).
        With `ray`, a `RayRolloutEngine`: its actors run local envs (built with `env_kwargs` or
        the config's) unless `urls` names servers."""
        if self.config.ray is not None:
            return self._ray_engine(agent, temperature, env_kwargs)
        if env_kwargs is None:
            self.ensure_servers()
        return RolloutEngine(
            agent,
            concurrency=self.config.concurrency,
            sampling=SamplingParams(temperature=temperature, max_new_tokens=self.config.max_new_tokens),
            urls=self.urls if env_kwargs is None else None,
            env_kwargs=env_kwargs,
            history_turns=self.config.history_turns,
            instruction_in_context=self.config.instruction_in_context,
            progress=self.config.progress,
        )

    def _ray_engine(self, agent, temperature: float, env_kwargs: dict[str, dict] | None):
        from evol.ray_rollout import RayRolloutEngine

        return RayRolloutEngine(
            agent,
            address=self.config.ray,
            actors=self.config.ray_actors,
            concurrency=self.config.concurrency,
            sampling=SamplingParams(temperature=temperature, max_new_tokens=self.config.max_new_tokens),
            urls=self.urls if env_kwargs is None and self.urls else None,
            env_kwargs=self.config.env_kwargs if env_kwargs is None else env_kwargs,
            history_turns=self.config.history_turns,
            instruction_in_context=self.config.instruction_in_context,
            progress=self.config.progress,
        )

    def _log_errors(self, finished: list, out: Path) -> None:
        errors = [t for t in finished if t.error is not None]
        if errors:
            self.log(
                f"[{self.tag}] {len(errors)} episodes in {out} ended with an error, e.g.: {errors[0].error}"
            )

    def rollout(
        self,
        agent,
        specs: list[EpisodeSpec],
        out: Path,
        temperature: float,
        env_kwargs: dict[str, dict] | None = None,
    ) -> None:
        """Run the `specs` not yet in `out` (see `engine` for `env_kwargs`)."""
        engine = self.engine(agent, temperature, env_kwargs)
        self._log_errors(run_specs(engine, specs, out).finished, out)

    def specs(self, kind: str, samples: int = 1) -> list[EpisodeSpec]:
        """The tasks of a phase for every env: `kind` is one of TASK_KEYS."""
        side = "test" if kind == "eval_tasks" else "train"
        return [
            spec
            for env_id in self.config.envs
            for spec in phase_specs(
                env_id, self.config.tasks(env_id, kind), side, self.config.env_kwargs.get(env_id), samples
            )
        ]

    def expert_files(self) -> list[Path]:
        return [Path(p) for p in self.config.expert_data] or [self.run_dir / "expert.jsonl"]

    def explore_files(self, i: int) -> list[Path]:
        """The exploration data iteration `i` learns from (this iteration's, or all so far)."""
        rounds = range(1, i + 1) if self.config.merge == "cumulative" else [i]
        return [self.run_dir / f"iter_{j}" / "explore.jsonl" for j in rounds]

    def examples(self, selected: list) -> list[dict]:
        return examples(selected, self.config.history_turns, self.config.instruction_in_context)

    def selected_expert(self) -> list:
        return select(load_trajectories(self.expert_files()), "success")

    def record_training(self, stage: str, result: TrainResult) -> None:
        self.metric(
            {"stage": stage, "examples": result.examples, "tokens": result.tokens, "train_s": round(result.seconds, 2),
             "tokens_per_s": round(result.tokens_per_s, 1), "truncated": result.truncated, "losses": result.losses}
        )  # fmt: skip

    def base_model_dir(self) -> Path:
        if Path(self.config.base_model).is_dir():
            return Path(self.config.base_model)
        return self.run_dir / "base_model"

    # ---- phases -------------------------------------------------------------------------
    def _evaluate(self, stage: str, model_dir: Path, iteration: int) -> None:
        """Held-out success of the model of `stage` (greedy): `eval/STAGE/` and the metrics."""
        tasks = {env_id: self.config.tasks(env_id, "eval_tasks") for env_id in self.config.envs}
        engine = self.engine(self.policy(model_dir), temperature=0.0)
        result = evaluate(
            engine,
            tasks,
            self.run_dir / "eval" / stage,
            agent=f"{stage} ({model_dir})",
            env_kwargs=self.config.env_kwargs,
            specs=self.specs("eval_tasks"),
        )
        self._log_errors(result.run.finished, result.run.path)
        for written in result.reports:
            if written.error:
                self.log(
                    f"[{self.tag}] the {written.report.name} report of {written.env} failed: {written.error}"
                )
        for env_id, row in result.summary.items():
            self.metric({"stage": stage, "iteration": iteration, "env": env_id, **row})
        self.log(
            f"[{self.tag}] {stage}: "
            + ", ".join(f"{e} {r['success_rate']:.1%}" for e, r in result.summary.items())
        )
        if self.config.held_in_tasks:
            self._evaluate_held_in(stage, model_dir, iteration)
        evaluated = getattr(self.explorer, "evaluated", None)
        if evaluated is not None:
            evaluated(self, stage, iteration)

    def _evaluate_held_in(self, stage: str, model_dir: Path, iteration: int) -> None:
        """Greedy success on the first `held_in_tasks` train tasks: `eval/STAGE/held_in/`."""
        engine = self.engine(self.policy(model_dir), temperature=0.0)
        result = evaluate(
            engine,
            dict.fromkeys(self.config.envs, self.config.held_in_tasks),
            self.held_in_dir(stage),
            agent=f"{stage} ({model_dir}), held-in",
            env_kwargs=self.config.env_kwargs,
            specs=self.held_in_specs(),
        )
        self._log_errors(result.run.finished, result.run.path)
        for env_id, row in result.summary.items():
            self.metric(
                {"stage": stage, "iteration": iteration, "env": env_id, "held_in_success_rate": row["success_rate"],
                 "held_in_episodes": row["episodes"]}
            )  # fmt: skip

    def held_in_dir(self, stage: str) -> Path:
        return self.run_dir / "eval" / stage / "held_in"

    def held_in_specs(self) -> list[EpisodeSpec]:
        """The held-in tasks: the first `held_in_tasks` train tasks of every env."""
        return [
            spec
            for env_id in self.config.envs
            for spec in phase_specs(
                env_id, self.config.held_in_tasks, "train", self.config.env_kwargs.get(env_id)
            )
        ]

    def _collect_expert(self) -> None:
        self.rollout(ExpertAgent(), self.specs("base_tasks"), self.run_dir / "expert.jsonl", temperature=0.0)

    def _build_base_model(self, base_dir: Path) -> None:
        """A tiny model (the preset `config.base_model` names) whose tokenizer learns the expert texts."""
        from agents.tiny import build_tiny_model

        corpus = [
            part
            for t in load_trajectories(self.expert_files())
            for m in t.messages
            for part in ([m["content"]] if isinstance(m["content"], str) else [])
        ]
        build_tiny_model(base_dir, corpus, preset=self.config.base_model, seed=self.config.seed)

    def _behaviour_cloning(self, bc_dir: Path, base_dir: Path) -> None:
        result = fine_tune(base_dir, self.examples(self.selected_expert()), bc_dir, self.config.bc_train)
        self.record_training(bc_dir.name, result)

    def _learn(self, i: int, iteration_dir: Path, last: Path, base_dir: Path) -> None:
        start = base_dir if self.config.learn_from == "base" else last
        result = self.objective.learn(self, i, iteration_dir, start)
        self.record_training(iteration_dir.name, result)

    def train(self) -> dict[str, dict[str, float]]:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        save_config(self.config, self.run_dir / "config.yaml")
        try:
            self._run()
        finally:
            for server in self._servers:
                server.stop()
            self._servers.clear()
        title = f"{self.tag}: held-out success per env"
        plot_learning_curve(self.run_dir / "metrics.jsonl", self.run_dir / "learning_curve.png", title)
        return learning_table(self.run_dir / "metrics.jsonl")

    def _run(self) -> None:
        config = self.config
        base_dir = self.base_model_dir()
        if not config.expert_data:
            self._phase("expert", self._collect_expert)
        if not Path(config.base_model).is_dir():
            self._phase("base_model", lambda: self._build_base_model(base_dir))
        if config.eval_untrained:
            self._phase("eval/untrained", lambda: self._evaluate("untrained", base_dir, -1))
        bc_dir = self.run_dir / "bc"
        self._phase("bc", lambda: self._behaviour_cloning(bc_dir, base_dir))
        self._phase("eval/bc", lambda: self._evaluate("bc", bc_dir / "model", 0))
        last = bc_dir / "model"
        for i in range(1, config.iterations + 1):
            iteration_dir = self.run_dir / f"iter_{i}"
            iteration_dir.mkdir(exist_ok=True)
            if not getattr(self.objective, "online", False):
                self._phase(
                    f"iter_{i}/explore", lambda p=last, d=iteration_dir: self.explorer.explore(self, p, d)
                )
            self._phase(
                f"iter_{i}/learn", lambda i=i, d=iteration_dir, p=last: self._learn(i, d, p, base_dir)
            )
            self._phase(
                f"iter_{i}/eval", lambda i=i, d=iteration_dir: self._evaluate(f"iter_{i}", d / "model", i)
            )
            last = iteration_dir / "model"


# ---- the results ----------------------------------------------------------------------------
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


def plot_learning_curve(metrics_path: Path, out: Path, title: str = "held-out success per env") -> None:
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
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(out, dpi=100)
    plt.close(figure)
