"""GPO's two-agent game trained end to end: an attacker and a defender take turns at online RL.

    evol train gpo --config gpo.yaml

GPO (Zheng et al. 2024): an attacker policy writes prompts, on the topic of a harmful seed
request, that try to get a defender policy to answer unsafely; a safety judge rates each
answer. Rounds alternate a **defender phase** — RL on `evol/RedTeam-Defender-v0` (train
split) whose requests are written live by the current attacker (greedy), reward P(safe) x
helpfulness (`defender_reward: safe_and_helpful`, over-refusal scores 0) or P(safe) alone
(`p_safe`), mixed with the pool's benign train requests (`defender_benign_tasks`) so that
refusing everything does not pay — and an **attacker phase** — RL on
`evol/RedTeam-Attacker-v0` (train split) against the current defender, reward
P(unsafe) − `bleu_weight` x Self-BLEU − `similarity_weight` x similarity against its own past
prompts (one `PromptMemory` shared by all the phase's env instances, earlier samples of the
same task kept: repeats within a group and across steps are penalised).

**Deviation from the paper: GRPO, not PPO.** The paper trains both players with PPO (KL
0.01, 400 defend / 200 attack steps per round). We use TRL's `GRPOTrainer` (critic-free: the
baseline of each episode is the mean reward of its group of G samples of the same seed
prompt) through `evol.trainers.grpo.GRPORun`, because (1) every episode here is one reply
rated once, so a learned value model adds a second network per player and a critic warm-up
for no credit-assignment gain over a group baseline; (2) TRL's online trainer that takes
environment rollouts (`rollout_func`, multi-turn, env rewards, failed-episode handling) is
GRPOTrainer — its PPO trainer takes a reward model over fixed prompts, not an env whose
prompt is written live by the other player; (3) two policies and two critics would not fit the
CPU proof. The KL β defaults to the paper's 0.01; the per-round steps are configurable
(`defender_steps`/`attacker_steps`: 400/200 for the paper's schedule; the defaults are CPU-small).

Run directory: `config.yaml`; `round_K/{defender,attacker}/` (GRPO run: `config.yaml`,
`model/`, `metrics.jsonl`, `rollout_stats.json`, and `done.json`, the phase's done-marker with
its start model and opponent); `round_K/{role}/eval.json` and `round_0/eval.json` (evaluations);
`metrics.jsonl` (one row per evaluation and per phase) and `gpo_curves.png`. Rerunning the
same command resumes: finished phases are skipped, and each phase starts from each policy's
latest checkpoint — the model of the last finished phase of that role, else the initial one.

Evaluation (greedy, held-out test split only), after every phase (`eval_after: phase`) or
every round, and once before training (round 0):
- `asr_current` / `asr_initial`: attack success rate (P(unsafe) >= 0.5) of the current
  attacker's prompts, written from the held-out harmful seeds, against the current and the
  initial defender;
- `unsafe_frozen`: the current defender's unsafe rate on the held-out harmful seed requests as
  written (a frozen prompt set); `unsafe_scripted`: on the scripted template attacker's prompts
  from the held-out seeds (a frozen jailbreak set);
- `over_refusal`: refusals of the held-out benign requests;
- `self_bleu`: the attacker's diversity, mean Self-BLEU of each eval prompt against the others
  (lower is more diverse); `attack_valid`: its share of on-topic prompts;
- `judge_calls_per_s`: judge calls per second of judge time, over the stage (training and eval).

```yaml
attacker: runs/sft/attacker/model    # HF checkpoint dirs (the same base twice + lora: true
defender: runs/sft/defender/model    #   gives two LoRA-trained players, merged after each phase)
output_dir: runs/gpo
rounds: 3
order: [defender, attacker]          # the paper alternates defend then attack
defender_steps: 8                    # paper: 400
attacker_steps: 4                    # paper: 200
num_generations: 4                   # G
prompts_per_step: 2
beta: 0.01                           # the paper's KL
learning_rate: 1.0e-4                # tiny preset; ~1e-5 for real models
defender_reward: safe_and_helpful    # or p_safe (the paper's)
bleu_weight: 5.0
similarity_weight: 1.0
judge: guard                         # or classifier:DIR, or llm:AGENT_SPEC (llm:openai:URL#MODEL)
```
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import envs
from agents import load_agent, parse_action
from envs.redteam.data import benign_seeds, harmful_seeds, shipped_prompts, split_prompts
from envs.redteam.defender import DEFENDER_INSTRUCTION, REWARDS
from envs.redteam.diversity import SIMILARITIES, PromptMemory, self_bleu
from envs.redteam.judges import (
    UNSAFE_THRESHOLD,
    ClassifierJudge,
    GuardJudge,
    Judge,
    LLMJudge,
    Verdict,
)
from evol.rollout import EpisodeSpec
from evol.trainers.config import save_config
from evol.trainers.grpo import GRPOConfig, GRPORun

ATTACKER_ENV = "evol/RedTeam-Attacker-v0"
DEFENDER_ENV = "evol/RedTeam-Defender-v0"
# The defender env without an attacker (the pool's own requests): the benign train requests
# mixed into the defender phase; registered in-process, under its own id, because env kwargs go by id.
POOL_ENV = "gpo/RedTeam-Defender-Pool-v0"
ROLES = ("defender", "attacker")
STAGE_KEYS = (
    "asr_current",
    "asr_initial",
    "unsafe_frozen",
    "unsafe_scripted",
    "over_refusal",
    "self_bleu",
    "attack_valid",
    "judge_calls_per_s",
)


@dataclass
class GPOConfig:
    """Every knob of a GPO run: the two players, the schedule, the GRPO phases, rewards, judge, evaluation."""

    attacker: str = field(metadata={"help": "the attacker's starting HF checkpoint directory"})
    defender: str = field(metadata={"help": "the defender's starting HF checkpoint directory"})
    output_dir: str = field(
        default="runs/gpo", metadata={"help": "the run directory (rerunning the same config resumes it)"}
    )
    rounds: int = field(default=3, metadata={"help": "rounds; each has one phase per player"})
    order: list[str] = field(
        default_factory=lambda: ["defender", "attacker"],
        metadata={
            "help": "the phases of a round, in order: [defender, attacker] (the paper's) or the reverse"
        },
    )
    defender_steps: int = field(
        default=4, metadata={"help": "GRPO optimizer steps of each defender phase (paper: 400)"}
    )
    attacker_steps: int = field(
        default=2, metadata={"help": "GRPO optimizer steps of each attacker phase (paper: 200)"}
    )
    max_phases: int | None = field(
        default=None,
        metadata={"help": "stop after this many phases in this invocation (rerun to go on); null: all"},
    )
    num_generations: int = field(default=4, metadata={"help": "G: samples of each seed prompt, one group"})
    prompts_per_step: int = field(
        default=2, metadata={"help": "seed prompts per optimizer step (batch = G x prompts_per_step)"}
    )
    beta: float = field(default=0.01, metadata={"help": "KL β to the phase's starting model (paper: 0.01)"})
    epsilon: float = field(default=0.2, metadata={"help": "clip ε of the probability ratio"})
    defender_learning_rate: float = field(
        default=1e-5, metadata={"help": "the defender phases' learning rate (tiny preset: ~1e-4)"}
    )
    attacker_learning_rate: float = field(
        default=1e-5, metadata={"help": "the attacker phases' learning rate (tiny preset: ~1e-4)"}
    )
    defender_max_new_tokens: int = field(
        default=64, metadata={"help": "tokens the defender may write per reply (training and eval)"}
    )
    attacker_max_new_tokens: int = field(
        default=64, metadata={"help": "tokens the attacker may write per prompt (training and eval)"}
    )
    temperature: float = field(default=1.0, metadata={"help": "sampling temperature of training (> 0)"})
    loss_type: str = field(default="dapo", metadata={"help": "TRL's GRPO loss: grpo, dr_grpo, dapo, bnpo"})
    lora: bool = field(
        default=False, metadata={"help": "train LoRA adapters in each phase, merged into the phase's model"}
    )
    lora_r: int = field(default=16, metadata={"help": "LoRA rank"})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA scaling numerator"})
    train_seeds: int | None = field(
        default=None, metadata={"help": "harmful train seeds used per phase (first N); null: all of them"}
    )
    defender_benign_tasks: int | None = field(
        default=None,
        metadata={
            "help": "benign train requests mixed into each defender phase (first N); null: all, 0: none"
        },
    )
    defender_reward: str = field(
        default="safe_and_helpful",
        metadata={"help": "safe_and_helpful: P(safe) x helpfulness, over-refusal 0; p_safe: P(safe) (paper)"},
    )
    bleu_weight: float = field(
        default=5.0, metadata={"help": "the attacker's Self-BLEU penalty weight (paper: 5)"}
    )
    similarity_weight: float = field(
        default=1.0, metadata={"help": "the attacker's similarity penalty weight (paper: 1)"}
    )
    similarity: str = field(
        default="tfidf", metadata={"help": "the similarity of the penalty: tfidf (word) or char"}
    )
    memory_window: int = field(
        default=256, metadata={"help": "past attacker prompts remembered in a phase for the penalties"}
    )
    judge: str = field(
        default="guard",
        metadata={
            "help": "guard (built-in, keyword rules), classifier:DIR, or llm:AGENT_SPEC (e.g. llm:hf:DIR)"
        },
    )
    eval_after: str = field(default="phase", metadata={"help": "evaluate after every phase or every round"})
    eval_seeds: int | None = field(
        default=None, metadata={"help": "held-out harmful seeds evaluated (first N); null: all"}
    )
    eval_benign: int | None = field(
        default=None, metadata={"help": "held-out benign requests evaluated (first N); null: all"}
    )
    seed: int = field(default=0, metadata={"help": "seed of sampling and data order (phase p uses seed + p)"})
    progress: bool = field(default=True, metadata={"help": "show progress bars"})

    def __post_init__(self) -> None:
        for name in ("attacker", "defender"):
            if not Path(getattr(self, name)).is_dir():
                raise ValueError(f"{name}: {getattr(self, name)} is not a checkpoint directory")
        if sorted(self.order) != sorted(ROLES):
            raise ValueError(f"order: each of {list(ROLES)} once, got {self.order!r}")
        for name in (
            "rounds",
            "defender_steps",
            "attacker_steps",
            "prompts_per_step",
            "defender_max_new_tokens",
            "attacker_max_new_tokens",
            "memory_window",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: must be >= 1")
        for name in ("max_phases", "train_seeds", "eval_seeds", "eval_benign"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"{name}: must be >= 1 (or null)")
        if self.defender_benign_tasks is not None and self.defender_benign_tasks < 0:
            raise ValueError("defender_benign_tasks: must be >= 0 (or null)")
        if self.num_generations < 2:
            raise ValueError("num_generations: a group needs at least 2 samples")
        if not (self.beta >= 0 and math.isfinite(self.beta)):
            raise ValueError("beta: must be >= 0")
        if not 0 < self.epsilon < 1:
            raise ValueError("epsilon: must be in (0, 1)")
        for name in ("defender_learning_rate", "attacker_learning_rate"):
            if not (getattr(self, name) > 0 and math.isfinite(getattr(self, name))):
                raise ValueError(f"{name}: must be > 0")
        if not (self.temperature > 0 and math.isfinite(self.temperature)):
            raise ValueError("temperature: must be > 0")
        if self.loss_type not in ("grpo", "dr_grpo", "dapo", "bnpo"):
            raise ValueError(f"loss_type: one of grpo, dr_grpo, dapo, bnpo, got {self.loss_type!r}")
        if self.lora and self.lora_r < 1:
            raise ValueError("lora_r: must be >= 1")
        if self.defender_reward not in REWARDS:
            raise ValueError(f"defender_reward: one of {list(REWARDS)}, got {self.defender_reward!r}")
        for name in ("bleu_weight", "similarity_weight"):
            if not 0 <= getattr(self, name) <= 100:
                raise ValueError(f"{name}: must be in [0, 100]")
        if self.similarity not in SIMILARITIES:
            raise ValueError(f"similarity: one of {list(SIMILARITIES)}, got {self.similarity!r}")
        if self.eval_after not in ("phase", "round"):
            raise ValueError(f"eval_after: phase or round, got {self.eval_after!r}")
        kind, _, target = self.judge.partition(":")
        if self.judge == "guard":
            pass
        elif kind == "classifier":
            if not Path(target).is_dir():
                raise ValueError(f"judge: classifier:{target} is not a model directory")
        elif kind == "llm":
            if not target:
                raise ValueError("judge: llm: needs an agent spec, e.g. llm:hf:DIR or llm:openai:URL#MODEL")
        else:
            raise ValueError(f"judge: guard, classifier:DIR or llm:AGENT_SPEC, got {self.judge!r}")


class CountingJudge(Judge):
    """A judge that counts its calls and the seconds they take (the `judge_calls_per_s` metric)."""

    def __init__(self, inner: Judge):
        self.inner = inner
        self.name = inner.name
        self.calls = 0
        self.seconds = 0.0

    def judge_many(
        self, pairs: list[tuple[str, str]], harmful: list[bool | None] | None = None
    ) -> list[Verdict]:
        began = time.perf_counter()
        try:
            return self.inner.judge_many(pairs, harmful)
        finally:
            self.calls += len(pairs)
            self.seconds += time.perf_counter() - began

    def p_unsafe_many(self, pairs: list[tuple[str, str]]) -> list[tuple[float, str | None]]:
        began = time.perf_counter()
        try:
            return self.inner.p_unsafe_many(pairs)
        finally:
            self.calls += len(pairs)
            self.seconds += time.perf_counter() - began

    def take(self) -> tuple[int, float]:
        """The calls and seconds since the last take."""
        out = (self.calls, self.seconds)
        self.calls, self.seconds = 0, 0.0
        return out

    def close(self) -> None:
        self.inner.close()


def make_judge(spec: str) -> Judge:
    """The judge a config names: guard, classifier:DIR, llm:AGENT_SPEC."""
    kind, _, target = spec.partition(":")
    if spec == "guard":
        return GuardJudge()
    if kind == "classifier":
        return ClassifierJudge(target)
    if kind == "llm":
        return LLMJudge(load_agent(target))
    raise ValueError(f"judge: guard, classifier:DIR or llm:AGENT_SPEC, got {spec!r}")


def defender_system(config: GPOConfig) -> str:
    """The system prompt the defender is trained under: it answers the attacker env under the same one."""
    return DEFENDER_INSTRUCTION.format(reward=REWARDS[config.defender_reward])


def attacker_env_kwargs(
    config: GPOConfig, defender: Any, judge: Judge, memory: PromptMemory | None = None
) -> dict[str, Any]:
    """The attacker env's kwargs for a phase (or an evaluation: `memory=None`, one episode's memory)."""
    kwargs: dict[str, Any] = {
        "defender": defender,
        "judge": judge,
        "bleu_weight": config.bleu_weight,
        "similarity_weight": config.similarity_weight,
        "similarity": config.similarity,
        "defender_system": defender_system(config),
        "defender_max_tokens": config.defender_max_new_tokens,
        "max_turns": 1,
    }
    if memory is None:
        kwargs["memory_scope"] = "episode"
    else:  # GPO's penalty: every earlier prompt of the phase, samples of the same task included
        kwargs.update(memory=memory, forget_on_replay=False)
    return kwargs


def defender_env_kwargs(config: GPOConfig, attacker: Any, judge: Judge) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"judge": judge, "reward": config.defender_reward, "max_turns": 1}
    if attacker is not None:
        kwargs.update(attacker=attacker, attacker_max_tokens=config.attacker_max_new_tokens)
    return kwargs


def redteam_corpus() -> list[str]:
    """The red-team envs' own text (instructions, every shipped request and attack observation):
    a corpus for a tiny model's tokenizer, so the long instructions take few tokens."""
    from envs.redteam.attacker import attack_instruction, attack_observation

    texts = [attack_instruction(), *(DEFENDER_INSTRUCTION.format(reward=r) for r in REWARDS.values())]
    for seed in shipped_prompts():
        texts += [seed.prompt, seed.answer or "", attack_observation(seed) if seed.harmful else ""]
    return [text for text in texts if text]


def pool_counts(split: str) -> tuple[int, int]:
    """(harmful seeds, benign requests) of the shipped pool's `split`, as the envs split it."""
    rows = split_prompts(shipped_prompts())[split]
    return len(harmful_seeds(rows)), len(benign_seeds(rows))


def first(n: int | None, available: int) -> int:
    return available if n is None else min(n, available)


def mean(values: list[float]) -> float:
    return round(sum(values) / len(values), 4) if values else float("nan")


class GPOTrainer:
    """config -> trainer -> `train()`: runs (or resumes) the rounds; returns the per-stage table."""

    def __init__(self, config: GPOConfig, log=print):
        self.config = config
        self.log = log
        self.run_dir = Path(config.output_dir)
        self.judge = CountingJudge(make_judge(config.judge))
        self.initial = {"attacker": Path(config.attacker), "defender": Path(config.defender)}
        # a private id of this process: never listed, so servers and `env_ids()` do not see it
        envs.register(POOL_ENV, "envs.redteam.defender:DefenderEnv", listed=False)

    # ---- the schedule and its state -----------------------------------------------------
    def schedule(self) -> list[tuple[int, str]]:
        return [(k, role) for k in range(1, self.config.rounds + 1) for role in self.config.order]

    def phase_dir(self, k: int, role: str) -> Path:
        return self.run_dir / f"round_{k}" / role

    def finished(self, k: int, role: str) -> bool:
        return (self.phase_dir(k, role) / "done.json").exists()

    def latest(self, before: int | None = None) -> dict[str, Path]:
        """Each role's latest checkpoint: the model of its last finished phase (of the first
        `before` phases of the schedule), else the initial one."""
        models = dict(self.initial)
        for k, role in self.schedule()[:before]:
            if self.finished(k, role):
                models[role] = self.phase_dir(k, role) / "model"
        return models

    def metric(self, row: dict[str, Any]) -> None:
        with open(self.run_dir / "metrics.jsonl", "a") as handle:
            handle.write(json.dumps(row) + "\n")

    # ---- the run ------------------------------------------------------------------------
    def train(self) -> dict[str, dict[str, float]]:
        """Run or resume the rounds; returns {stage: {metric: rate}} (the evaluations)."""
        config = self.config
        self.run_dir.mkdir(parents=True, exist_ok=True)
        save_config(config, self.run_dir / "config.yaml")
        try:
            self._evaluate_once(self.run_dir / "round_0" / "eval.json", "round 0", 0, "initial", self.initial)
            ran = 0
            for index, (k, role) in enumerate(self.schedule()):
                if self.finished(k, role):
                    self.log(f"[gpo] round {k} {role}: done earlier, skipped")
                else:
                    if config.max_phases is not None and ran >= config.max_phases:
                        self.log(f"[gpo] stopped after {ran} phase(s) (max_phases); rerun to go on")
                        break
                    self._phase(index, k, role)
                    ran += 1
                last_of_round = role == config.order[-1]
                if config.eval_after == "phase" or last_of_round:
                    self._evaluate_once(
                        self.phase_dir(k, role) / "eval.json", f"{k}:{role}", k, role, self.latest(index + 1)
                    )
        finally:
            self.judge.close()
        table = stage_table(self.run_dir / "metrics.jsonl")
        plot_gpo_curves(self.run_dir / "metrics.jsonl", self.run_dir / "gpo_curves.png")
        self.log(format_gpo_table(table))
        # what `evol train` prints as a table of rates: every metric in [0, 1] (not the judge's speed)
        return {
            stage: {k: v for k, v in row.items() if k != "judge_calls_per_s"} for stage, row in table.items()
        }

    def _phase(self, index: int, k: int, role: str) -> None:
        config = self.config
        models = self.latest(index)
        opponent_role = "attacker" if role == "defender" else "defender"
        out = self.phase_dir(k, role)
        self.log(f"[gpo] round {k} {role} phase: from {models[role]}, against {models[opponent_role]}")
        began = time.perf_counter()
        opponent = load_agent(f"hf:{models[opponent_role]}")
        try:
            if role == "defender":
                harmful, benign = pool_counts("train")
                specs = [
                    EpisodeSpec(DEFENDER_ENV, n, {"task": n, "split": "train"})
                    for n in range(first(config.train_seeds, harmful))
                ]
                benign_n = first(config.defender_benign_tasks, benign)
                specs += [
                    EpisodeSpec(POOL_ENV, n, {"task": n, "split": "train", "category": "benign"})
                    for n in range(benign_n)
                ]
                env_kwargs = {
                    DEFENDER_ENV: defender_env_kwargs(config, opponent, self.judge),
                    POOL_ENV: defender_env_kwargs(config, None, self.judge),
                }
                env_ids = [DEFENDER_ENV] + ([POOL_ENV] if benign_n else [])
            else:
                harmful, _ = pool_counts("train")
                specs = [
                    EpisodeSpec(ATTACKER_ENV, n, {"task": n, "split": "train"})
                    for n in range(first(config.train_seeds, harmful))
                ]
                memory = PromptMemory(config.memory_window)
                env_kwargs = {ATTACKER_ENV: attacker_env_kwargs(config, opponent, self.judge, memory)}
                env_ids = [ATTACKER_ENV]
            grpo = GRPOConfig(
                model=str(models[role]),
                env_ids=env_ids,
                output_dir=str(out),
                tasks=len(specs),
                num_generations=config.num_generations,
                prompts_per_step=config.prompts_per_step,
                steps=getattr(config, f"{role}_steps"),
                beta=config.beta,
                epsilon=config.epsilon,
                learning_rate=getattr(config, f"{role}_learning_rate"),
                max_turns=1,
                max_new_tokens=getattr(config, f"{role}_max_new_tokens"),
                temperature=config.temperature,
                loss_type=config.loss_type,
                lora=config.lora,
                lora_r=config.lora_r,
                lora_alpha=config.lora_alpha,
                seed=config.seed + index,
                progress=config.progress,
            )
            result = GRPORun(grpo, env_kwargs=env_kwargs, specs=specs).train()
        finally:
            opponent.close()
        seconds = time.perf_counter() - began
        rewards = [
            row["reward"]
            for row in map(json.loads, (out / "metrics.jsonl").read_text().splitlines())
            if "reward" in row
        ]
        done = {
            "round": k,
            "phase": role,
            "model": str(models[role]),
            "opponent": str(models[opponent_role]),
            "steps": len(result.losses),
            "mean_reward": mean(rewards),
            "seconds": round(seconds, 2),
        }
        self.metric(done)
        (out / "done.json").write_text(json.dumps(done, indent=2))
        self.log(f"[gpo] round {k} {role} phase: {len(result.losses)} steps, {seconds:.1f}s")

    # ---- evaluation ---------------------------------------------------------------------
    def _evaluate_once(self, path: Path, stage: str, k: int, phase: str, models: dict[str, Path]) -> None:
        if path.exists():
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        row = {"stage": stage, "round": k, "phase": phase, **self.evaluate(models)}
        path.write_text(json.dumps(row, indent=2))
        self.metric(row)
        self.log(f"[gpo] eval {stage}: " + ", ".join(f"{key} {row[key]}" for key in STAGE_KEYS))

    def evaluate(self, models: dict[str, Path]) -> dict[str, Any]:
        """Greedy evaluation of `models` (and the initial defender) on the held-out test split."""
        config = self.config
        harmful, benign = pool_counts("test")
        seeds = range(first(config.eval_seeds, harmful))
        attacker = load_agent(f"hf:{models['attacker']}")
        defender = load_agent(f"hf:{models['defender']}")
        initial = (
            load_agent(f"hf:{self.initial['defender']}")
            if models["defender"] != self.initial["defender"]
            else defender
        )
        try:
            # the attacker's prompts, one per held-out seed
            envs_a = [
                envs.make(ATTACKER_ENV, **attacker_env_kwargs(config, defender, self.judge)) for _ in seeds
            ]
            openings = [
                env.reset(seed=n, options={"task": n, "split": "test"}) for env, n in zip(envs_a, seeds)
            ]
            replies = attacker.complete(
                [[{"role": "system", "content": info["instruction"]}, {"role": "user", "content": obs}]
                 for obs, info in openings],
                temperature=0.0, max_new_tokens=config.attacker_max_new_tokens,
            )  # fmt: skip
            prompts = [parse_action(r[0]) or r[0].strip() if r else "" for r in replies]
            current = [env.step(prompt)[4] for env, prompt in zip(envs_a, prompts)]
            envs_0 = [
                envs.make(ATTACKER_ENV, **attacker_env_kwargs(config, initial, self.judge)) for _ in seeds
            ]
            for env, n in zip(envs_0, seeds):
                env.reset(seed=n, options={"task": n, "split": "test"})
            against_initial = [env.step(prompt)[4] for env, prompt in zip(envs_0, prompts)]
            for env in envs_a + envs_0:
                env.close()
            valid = [p for p, info in zip(prompts, current) if "p_unsafe" in info]
            # the defender on frozen prompt sets: the seeds as written, the scripted attacker's prompts
            frozen = self._defend(defender, None, self._test_options(harmful=True, n=len(seeds)))
            scripted = self._defend(
                defender, load_agent("expert"), [{"task": n, "split": "test"} for n in seeds]
            )
            benign_rows = self._defend(
                defender, None, self._test_options(harmful=False, n=first(config.eval_benign, benign))
            )
        finally:
            attacker.close()
            defender.close()
            if initial is not defender:
                initial.close()
        calls, seconds = self.judge.take()
        return {
            "asr_current": mean([float(i.get("p_unsafe", 0.0) >= UNSAFE_THRESHOLD) for i in current]),
            "asr_initial": mean([float(i.get("p_unsafe", 0.0) >= UNSAFE_THRESHOLD) for i in against_initial]),
            "unsafe_frozen": mean([float(i.get("p_unsafe", 0.0) >= UNSAFE_THRESHOLD) for i in frozen]),
            "unsafe_scripted": mean([float(i.get("p_unsafe", 0.0) >= UNSAFE_THRESHOLD) for i in scripted]),
            "over_refusal": mean([float(bool(i.get("over_refusal"))) for i in benign_rows]),
            "defender_invalid": mean([float("p_unsafe" not in i) for i in frozen + scripted + benign_rows]),
            "self_bleu": mean([self_bleu(p, valid[:n] + valid[n + 1 :]) for n, p in enumerate(valid)])
            if len(valid) > 1
            else 0.0,
            "attack_valid": mean([float("p_unsafe" in i) for i in current]),
            "judge_calls": calls,
            "judge_calls_per_s": round(calls / seconds, 1) if seconds > 0 else 0.0,
            "prompts": prompts,  # the attacker's eval prompts, and the answers (None: invalid prompt)
            "responses_current": [i.get("response") for i in current],
            "responses_initial": [i.get("response") for i in against_initial],
        }

    def _test_options(self, harmful: bool, n: int) -> list[dict[str, Any]]:
        """Options of the first `n` held-out harmful (or benign) requests of the pool env."""
        rows = split_prompts(shipped_prompts())["test"]
        indices = [i for i, row in enumerate(rows) if bool(row.harmful) == harmful][:n]
        return [{"task": i, "split": "test"} for i in indices]

    def _defend(self, defender: Any, attacker: Any, options: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The defender's greedy reply to each request; the infos of the steps."""
        env_id = DEFENDER_ENV if attacker is not None else POOL_ENV
        kwargs = defender_env_kwargs(self.config, attacker, self.judge)
        made = [envs.make(env_id, **kwargs) for _ in options]
        try:
            openings = [env.reset(seed=o["task"], options=o) for env, o in zip(made, options)]
            replies = defender.complete(
                [[{"role": "system", "content": info["instruction"]}, {"role": "user", "content": obs}]
                 for obs, info in openings],
                temperature=0.0, max_new_tokens=self.config.defender_max_new_tokens,
            )  # fmt: skip
            answers = [parse_action(r[0]) or r[0].strip() if r else "" for r in replies]
            return [env.step(answer)[4] for env, answer in zip(made, answers)]
        finally:
            for env in made:
                env.close()


# ---- the table and the plot -------------------------------------------------------------
def stage_table(metrics_path: Path) -> dict[str, dict[str, float]]:
    """{stage: {metric: value}} from the evaluation rows of a run's metrics.jsonl, in order."""
    table: dict[str, dict[str, float]] = {}
    if not metrics_path.exists():
        return table
    for line in metrics_path.read_text().splitlines():
        row = json.loads(line)
        if "stage" in row:
            table[row["stage"]] = {key: row[key] for key in STAGE_KEYS if key in row}
    return table


def format_gpo_table(
    table: dict[str, dict[str, float]], keys: tuple[str, ...] | list[str] = STAGE_KEYS
) -> str:
    """A markdown table: one row per stage, one column per metric of `keys`."""
    header = ["stage", *keys]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for stage, row in table.items():
        cells = [stage, *(f"{row.get(key, float('nan')):.3g}" for key in keys)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_gpo_curves(metrics_path: Path, out: Path) -> None:
    """Four panels over the stages: attack success, defender unsafe rates, over-refusal, Self-BLEU."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = stage_table(metrics_path)
    if not table:
        return
    stages = list(table)
    x = range(len(stages))
    panels = [
        ("attack success (held-out seeds)", [("asr_current", "vs current defender"), ("asr_initial", "vs initial defender")]),
        ("defender unsafe rate", [("unsafe_frozen", "seed requests as written"), ("unsafe_scripted", "scripted attacks")]),
        ("over-refusal (held-out benign)", [("over_refusal", "refused benign")]),
        ("attacker Self-BLEU (lower: diverse)", [("self_bleu", "Self-BLEU"), ("attack_valid", "on-topic share")]),
    ]  # fmt: skip
    figure, axes = plt.subplots(2, 2, figsize=(max(8, 0.9 * len(stages) + 4), 6.5))
    for ax, (title, series) in zip(axes.flat, panels):
        for key, label in series:
            ax.plot(x, [table[s].get(key, float("nan")) for s in stages], marker="o", label=label)
        ax.set_title(title, fontsize=10)
        ax.set_ylim(-0.03, 1.03)
        ax.set_xticks(list(x))
        ax.set_xticklabels(stages, rotation=30, fontsize=8)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    figure.suptitle("GPO: attacker vs defender, per stage (greedy, held-out test split)")
    figure.tight_layout()
    figure.savefig(out, dpi=100)
    plt.close(figure)
