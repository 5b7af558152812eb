"""Online RL on EvolGym envs with TRL's GRPOTrainer.

    evol train grpo --config grpo.yaml

GRPO (Shao et al. 2024): for each task, G episodes are sampled from the current policy; each
episode's advantage is its reward minus the group's mean, over the group's std; the policy
maximises the clipped ratio objective (clip ε) with a KL penalty β to the starting model.
The episodes are played by `evol.trainers.grpo_env.EnvRollout`, TRL's `rollout_func`: the
env's instruction and first observation are the prompt, up to `max_turns` turns, the env's
reward is the reward, only the model's own sampled tokens are trained (the env's tokens are
masked), and token ids / log-probs are the trainer's own generation.

Failed episodes (an env error, a dead server, a lost session) end alone, are counted and
logged (`env_failures.jsonl`, `rollout_stats.json`, TRL's `env/failed_episodes` metric) and
get reward None: TRL leaves them out of their group's baseline and gives them advantage 0.
Groups are dropped-from, never refilled, and a failure is never a zero reward.

```yaml
model: runs/bc/model                 # an HF checkpoint directory
env_ids: [evol/BabyAI-v0]
urls: [http://127.0.0.1:8000]        # env servers (sessions spread over them); [] = local envs
output_dir: runs/grpo
tasks: 64                            # training tasks per env (train split where the env has one)
num_generations: 4                   # G
prompts_per_step: 2                  # tasks per optimizer step (batch = G x prompts_per_step)
steps: 100
max_turns: 8
max_new_tokens: 32
beta: 0.04
epsilon: 0.2
learning_rate: 1.0e-5
lora: false
```
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from envs.remote import RetryPolicy
from evol.rollout import EpisodeSpec
from evol.trainers.config import save_config
from evol.trainers.grpo_env import EnvRollout
from evol.trainers.sft import TrainResult


@dataclass
class GRPOSettings:
    """How one GRPO run learns: the knobs `evol train grpo` and the loop's `grpo:` section share."""

    num_generations: int = field(default=4, metadata={"help": "G: episodes per task, one group (>= 2)"})
    prompts_per_step: int = field(
        default=2, metadata={"help": "tasks per optimizer step; the batch is G x prompts_per_step episodes"}
    )
    steps: int = field(default=50, metadata={"help": "optimizer steps"})
    time_budget_s: float | None = field(
        default=None,
        metadata={
            "help": "stop after the optimizer step that passes this many seconds (null: run all steps)"
        },
    )
    beta: float = field(default=0.04, metadata={"help": "KL β to the starting model (0: no reference model)"})
    epsilon: float = field(default=0.2, metadata={"help": "clip ε of the probability ratio"})
    learning_rate: float = field(default=1e-5, metadata={"help": "AdamW learning rate (tiny preset: ~1e-4)"})
    max_turns: int = field(default=8, metadata={"help": "turns per episode at most (the env's limit too)"})
    max_new_tokens: int = field(default=32, metadata={"help": "tokens the model may write per turn"})
    max_episode_tokens: int = field(
        default=2048, metadata={"help": "an episode longer than this (prompt + turns) ends, truncated"}
    )
    temperature: float = field(default=1.0, metadata={"help": "sampling temperature (> 0)"})
    loss_type: str = field(default="dapo", metadata={"help": "TRL's GRPO loss: grpo, dr_grpo, dapo, bnpo"})
    env_retries: int = field(
        default=2, metadata={"help": "retries of an infrastructure fault before the episode counts as failed"}
    )
    lora: bool = field(default=False, metadata={"help": "train LoRA adapters; merged into the saved model"})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank"})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA scaling numerator (scale = alpha / r)"})
    seed: int = field(default=0, metadata={"help": "seed of sampling, data order and new weights"})
    logging_steps: int = field(default=1, metadata={"help": "log metrics every N steps"})
    progress: bool = field(default=True, metadata={"help": "show a progress bar"})

    def __post_init__(self) -> None:
        if self.num_generations < 2:
            raise ValueError("num_generations: a group needs at least 2 episodes")
        for name in ("prompts_per_step", "steps", "max_turns", "max_new_tokens", "max_episode_tokens"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: must be >= 1")
        if self.env_retries < 0:
            raise ValueError("env_retries: must be >= 0")
        if self.time_budget_s is not None and not self.time_budget_s > 0:
            raise ValueError("time_budget_s: must be > 0 (or null)")
        if self.beta < 0:
            raise ValueError("beta: must be >= 0")
        if not 0 < self.epsilon < 1:
            raise ValueError("epsilon: must be in (0, 1)")
        if not (self.learning_rate > 0 and math.isfinite(self.learning_rate)):
            raise ValueError("learning_rate: must be > 0")
        if not self.temperature > 0:
            raise ValueError("temperature: must be > 0")
        if self.loss_type not in ("grpo", "dr_grpo", "dapo", "bnpo"):
            raise ValueError(f"loss_type: one of grpo, dr_grpo, dapo, bnpo, got {self.loss_type!r}")
        if self.lora and self.lora_r < 1:
            raise ValueError("lora_r: must be >= 1")


@dataclass
class GRPOConfig(GRPOSettings):
    """Every knob of an online GRPO run on EvolGym envs: what to train, where, and GRPOSettings."""

    model: str = field(kw_only=True, metadata={"help": "the HF checkpoint directory to start from"})
    env_ids: list[str] = field(
        kw_only=True, metadata={"help": "registered env ids to train on (tasks of each, mixed)"}
    )
    output_dir: str = field(
        kw_only=True,
        default="runs/grpo",
        metadata={"help": "the run directory: config, logs, the final model in `model/`"},
    )
    urls: list[str] = field(
        kw_only=True,
        default_factory=list,
        metadata={"help": "env servers (`evol serve`) to spread sessions over; empty: local envs"},
    )
    token: str | None = field(
        kw_only=True, default=None, metadata={"help": "bearer token of the env servers"}
    )
    tasks: int = field(
        kw_only=True, default=32, metadata={"help": "training tasks per env (its train split if it has one)"}
    )
    task_start: int = field(kw_only=True, default=0, metadata={"help": "the first task index"})
    instruction_in_context: bool | list[str] = field(
        kw_only=True,
        default=True,
        metadata={
            "help": "the env's instruction as the system message: all (true), none (false), or these env ids"
        },
    )

    def __post_init__(self) -> None:
        import envs

        super().__post_init__()
        if not self.env_ids:
            raise ValueError("env_ids: give at least one env id")
        if not self.urls:
            import gymnasium as gym

            unknown = [e for e in self.env_ids if e not in envs.env_ids() and e not in gym.registry]
            if unknown:
                raise ValueError(f"env_ids: not registered here: {unknown}")
        for url in self.urls:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"urls: {url!r} is not an http(s) URL")
        if not Path(self.model).is_dir():
            raise ValueError(f"model: {self.model} is not a checkpoint directory")
        if self.tasks < 1:
            raise ValueError("tasks: must be >= 1")
        if self.task_start < 0:
            raise ValueError("task_start: must be >= 0")


def time_budget(seconds: float) -> Any:
    """A TRL callback: training stops after the optimizer step that passes `seconds`."""
    from transformers import TrainerCallback

    class TimeBudget(TrainerCallback):
        def __init__(self) -> None:
            self.began = time.perf_counter()

        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.began = time.perf_counter()

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
            if time.perf_counter() - self.began >= seconds:
                control.should_training_stop = True
            return control

    return TimeBudget()


class GRPORun:
    """config -> trainer -> `train()`, which returns the trained model's directory.

    `env_kwargs` ({env id: kwargs}) construct the envs (local ones may take objects: a
    counterpart agent, a shared judge); `specs` replace the config's task range with exactly
    these tasks (the loop passes its train tasks, never its held-out ones)."""

    def __init__(
        self,
        config: GRPOConfig,
        env_kwargs: dict[str, dict] | None = None,
        specs: list[EpisodeSpec] | None = None,
    ):
        self.config = config
        self.env_kwargs = env_kwargs
        self.specs = specs
        self.rollout: EnvRollout | None = None
        self.trainer = None

    def train(self) -> TrainResult:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from trl import GRPOConfig as TRLGRPOConfig
        from trl import GRPOTrainer

        os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
        config = self.config
        out = Path(config.output_dir)
        out.mkdir(parents=True, exist_ok=True)
        save_config(config, out / "config.yaml")
        torch.manual_seed(config.seed)
        rollout = EnvRollout(
            config.env_ids,
            urls=config.urls or None,
            token=config.token,
            env_kwargs=self.env_kwargs,
            max_turns=config.max_turns,
            max_new_tokens=config.max_new_tokens,
            temperature=config.temperature,
            max_episode_tokens=config.max_episode_tokens,
            retry=RetryPolicy(retries=config.env_retries, backoff=0.25, max_wait=4.0),
            failure_log=out / "env_failures.jsonl",
            instruction_in_context=config.instruction_in_context,
        )
        self.rollout = rollout
        dataset = rollout.dataset(config.tasks, start=config.task_start, specs=self.specs)
        tokenizer = AutoTokenizer.from_pretrained(config.model)
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        model = AutoModelForCausalLM.from_pretrained(config.model, dtype=torch.float32)
        peft_config = None
        if config.lora:
            from peft import LoraConfig

            peft_config = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, task_type="CAUSAL_LM")
        args = TRLGRPOConfig(
            output_dir=str(out / "trl"),
            num_generations=config.num_generations,
            per_device_train_batch_size=config.num_generations * config.prompts_per_step,
            gradient_accumulation_steps=1,
            max_steps=config.steps,
            learning_rate=config.learning_rate,
            beta=config.beta,
            epsilon=config.epsilon,
            loss_type=config.loss_type,
            temperature=config.temperature,
            max_completion_length=config.max_episode_tokens,
            logging_steps=config.logging_steps,
            save_strategy="no",
            report_to="none",
            seed=config.seed,
            disable_tqdm=not config.progress,
            use_cpu=not torch.cuda.is_available(),
            bf16=False,
        )
        trainer = GRPOTrainer(
            model=model,
            processing_class=tokenizer,
            reward_funcs=rollout.reward_func,
            args=args,
            train_dataset=dataset,
            rollout_func=rollout,
            peft_config=peft_config,
        )
        self.trainer = trainer
        if config.time_budget_s is not None:
            trainer.add_callback(time_budget(config.time_budget_s))
        began = time.perf_counter()
        try:
            trainer.train()
        finally:
            rollout.close()
        seconds = time.perf_counter() - began
        final = trainer.model
        if config.lora:
            final = final.merge_and_unload()
        model_dir = out / "model"
        final.save_pretrained(model_dir)
        tokenizer.save_pretrained(model_dir)
        history = [row for row in trainer.state.log_history if "loss" in row]
        (out / "metrics.jsonl").write_text(
            "".join(json.dumps(row) + "\n" for row in trainer.state.log_history)
        )
        stats = rollout.stats.as_dict()
        stats["env_share"] = round(stats["env_seconds"] / seconds, 3) if seconds else 0.0
        (out / "rollout_stats.json").write_text(json.dumps(stats, indent=2))
        return TrainResult(
            model_dir=model_dir,
            examples=rollout.stats.episodes,
            tokens=rollout.stats.model_tokens,
            truncated=rollout.stats.truncated,
            seconds=seconds,
            losses=[float(row["loss"]) for row in history],
        )
