"""The subspace-projection defense and its baselines, one trainer: `RobustConfig` -> `RobustTrainer.train()`.

Trainer card
- Methods: "standard" (cross-entropy on clean inputs), "adversarial" (PGD/FGSM adversarial training:
  cross-entropy on a mix of clean and adversarial inputs, `adversarial_share` on the adversarial part),
  "subspace" (the defense: the classifier gets a learned subspace-projection layer of rank
  `projection_rank` after `layer`, is trained on the same clean/adversarial mix, plus
  `hsic_weight` x the independence criterion between clean-signal features P F(x) and perturbation
  features P F(x_adv) - P F(x) at the projection's output (the clean side detached, so the term
  moves the perturbation features and cannot be met by collapsing the clean ones); `hsic_weight: 0` is the ablation without it).
- Independence criterion: HSIC (biased estimator) with Gaussian kernels, `evol.robust.hsic.hsic`; both
  kernels take the clean features' median pairwise distance as width (per batch), so the term is
  lowered by perturbation features that are independent of the clean signal or small.
- The HSIC term joins after `hsic_warmup_epochs` (measured, not optimised, before): from the first step a
  strong term stalls the untrained network at chance.
- Adversarial examples are made during training against the current model, every batch
  (`attack`, `attack_norm`, `attack_eps`, `attack_steps`; PGD with a seeded random start).
- Data: scikit-learn's digits (ships with the package), the fixed stratified train split.
- Output: `output_dir` holds the classifier (config.json + model.safetensors) and info.json
  (the config, per-epoch loss/HSIC/clean accuracy, the final test clean accuracy).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn
from tqdm import tqdm

METHODS = ("standard", "adversarial", "subspace")


@dataclass
class RobustConfig:
    """Train a digits classifier: standard, adversarial training, or the subspace defense with HSIC."""

    method: Literal["standard", "adversarial", "subspace"] = field(
        default="subspace",
        metadata={"help": "standard, adversarial (PGD training) or subspace (the defense)"},
    )
    dataset: Literal["digits"] = field(
        default="digits", metadata={"help": "image data (scikit-learn digits)"}
    )
    arch: Literal["cnn", "mlp"] = field(default="cnn", metadata={"help": "classifier architecture"})
    hidden: int = field(default=64, metadata={"help": "width of the penultimate layer"})
    layer: Literal["hidden", "conv"] = field(
        default="hidden", metadata={"help": "the layer the projection follows and HSIC is measured at"}
    )
    projection_rank: int = field(
        default=16, metadata={"help": "rank of the learned subspace (subspace only)"}
    )
    hsic_weight: float = field(
        default=10.0, metadata={"help": "weight of the HSIC term (subspace only; 0 = the ablation)"}
    )
    hsic_warmup_epochs: int = field(
        default=3,
        metadata={
            "help": "epochs trained without the HSIC term first (a strong term from the start "
            "stalls the untrained network)"
        },
    )
    attack: Literal["pgd", "fgsm"] = field(default="pgd", metadata={"help": "attack used during training"})
    attack_norm: Literal["linf", "l2"] = field(
        default="linf", metadata={"help": "the training attack's norm"}
    )
    attack_eps: float = field(default=0.1, metadata={"help": "the training attack's budget"})
    attack_steps: int = field(default=5, metadata={"help": "PGD steps during training"})
    adversarial_share: float = field(
        default=0.5,
        metadata={"help": "weight of the adversarial cross-entropy (the clean one gets the rest)"},
    )
    epochs: int = field(default=15, metadata={"help": "passes over the training split"})
    lr: float = field(default=3e-3, metadata={"help": "Adam learning rate"})
    batch_size: int = field(default=64, metadata={"help": "examples per step (>= 4 for HSIC)"})
    seed: int = field(default=0, metadata={"help": "model init, shuffling and attack seed"})
    output_dir: str = field(default="runs/robust", metadata={"help": "where the classifier is saved"})
    progress: bool = field(default=True, metadata={"help": "show a progress bar"})

    def __post_init__(self) -> None:
        checks = [
            ("hidden", self.hidden >= 1, "must be >= 1"),
            ("attack_eps", self.attack_eps > 0, "must be > 0"),
            ("attack_steps", self.attack_steps >= 1, "must be >= 1"),
            ("adversarial_share", 0 <= self.adversarial_share <= 1, "must be in [0, 1]"),
            ("epochs", self.epochs >= 1, "must be >= 1"),
            ("lr", self.lr > 0, "must be > 0"),
            ("batch_size", self.batch_size >= 4, "must be >= 4"),
            ("hsic_weight", self.hsic_weight >= 0, "must be >= 0"),
            ("hsic_warmup_epochs", self.hsic_warmup_epochs >= 0, "must be >= 0"),
        ]
        for name, ok, rule in checks:
            if not ok:
                raise ValueError(f"{name}: {rule}, got {getattr(self, name)!r}")
        dim = self.layer_dim()
        if self.method == "subspace" and not 1 <= self.projection_rank <= dim:
            raise ValueError(
                f"projection_rank: must be in 1..{dim} (the {self.layer} layer's width), "
                f"got {self.projection_rank}"
            )

    def layer_dim(self) -> int:
        if self.layer == "hidden":
            return self.hidden
        return 32 * 4 * 4 if self.arch == "cnn" else 4 * self.hidden


@dataclass
class RobustResult:
    model_dir: Path
    clean_accuracy: float
    history: list[dict[str, float]]


class RobustTrainer:
    """Trains one classifier per `RobustConfig` (see the module's card)."""

    def __init__(self, config: RobustConfig):
        self.config = config

    def build_model(self) -> nn.Module:
        from envs.adversarial.models import DigitsClassifier

        c = self.config
        rank = c.projection_rank if c.method == "subspace" else None
        return DigitsClassifier(c.arch, c.hidden, rank, projection_layer=c.layer, seed=c.seed)

    def _adversarial(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, seed: int) -> torch.Tensor:
        from envs.adversarial.attacks import fgsm, pgd

        c = self.config
        if c.attack == "fgsm":
            return fgsm(model, x, y, c.attack_eps, norm=c.attack_norm)
        return pgd(model, x, y, c.attack_eps, steps=c.attack_steps, norm=c.attack_norm, seed=seed)

    def loss(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, step: int, hsic_weight: float | None = None
    ) -> tuple[torch.Tensor, float]:
        """The training loss of one batch and its HSIC value (0 where not used); `hsic_weight` overrides the config's."""
        from evol.robust.hsic import hsic, median_width

        c = self.config
        if c.method == "standard":
            return nn.functional.cross_entropy(model(x), y), 0.0
        x_adv = self._adversarial(model, x, y, seed=c.seed * 1_000_003 + step)
        clean, adv = model.all_features(x), model.all_features(x_adv)
        ce = (1 - c.adversarial_share) * nn.functional.cross_entropy(clean["logits"], y)
        ce = ce + c.adversarial_share * nn.functional.cross_entropy(adv["logits"], y)
        if c.method != "subspace":
            return ce, 0.0
        signal = clean["projected"].detach()
        # the clean signal is a fixed reference and both kernels take its width: the term cannot be met by
        # collapsing the clean features, and shrinking the perturbation features lowers it too
        width = median_width(signal)
        independence = hsic(signal, adv["projected"] - clean["projected"], width, width)
        weight = c.hsic_weight if hsic_weight is None else hsic_weight
        return ce + weight * independence, float(independence.detach())

    def train(self) -> RobustResult:
        from envs.adversarial.data import load_dataset
        from envs.adversarial.models import accuracy, save_classifier

        c = self.config
        x, y = load_dataset(c.dataset, "train")
        x_test, y_test = load_dataset(c.dataset, "test")
        model = self.build_model()
        optimizer = torch.optim.Adam(model.parameters(), lr=c.lr)
        generator = torch.Generator().manual_seed(c.seed)
        history, step = [], 0
        bar = tqdm(range(c.epochs), desc=f"robust {c.method}", unit="epoch", disable=not c.progress)
        for epoch in bar:
            model.train()
            order = torch.randperm(len(x), generator=generator)
            losses, hsics = [], []
            for start in range(0, len(x) - c.batch_size // 2, c.batch_size):
                batch = order[start : start + c.batch_size]
                weight = c.hsic_weight if epoch >= c.hsic_warmup_epochs else 0.0
                loss, independence = self.loss(model, x[batch], y[batch], step, hsic_weight=weight)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                losses.append(float(loss.detach()))
                hsics.append(independence)
                step += 1
            record = {
                "epoch": epoch + 1,
                "loss": sum(losses) / len(losses),
                "hsic": sum(hsics) / len(hsics),
                "train_accuracy": accuracy(model, x, y),
            }
            history.append(record)
            bar.set_postfix(loss=f"{record['loss']:.3f}", acc=f"{record['train_accuracy']:.3f}")
        model.eval()
        clean_accuracy = accuracy(model, x_test, y_test)
        info: dict[str, Any] = {
            "config": dataclasses.asdict(c),
            "history": history,
            "test_clean_accuracy": clean_accuracy,
            "independence_criterion": "HSIC, Gaussian kernels, clean features' median width",
        }
        out = save_classifier(model, c.output_dir, extra=info)
        return RobustResult(out, clean_accuracy, history)
