"""White-box attacks on image classifiers: FGSM and PGD, L-infinity and L2, targeted or not.

    x_adv = fgsm(model, x, y, eps=0.1)
    x_adv = pgd(model, x, y, eps=1.0, norm="l2", steps=20, targeted=True, target=t)

The project's own code (see docs in the README for why not a library): every result lies in [0, 1]
and within the budget, ||x_adv - x|| <= eps per example (float32 rounding aside), in the chosen norm.
Untargeted attacks climb the cross-entropy of the true label; targeted ones descend that of `target`.
PGD's random start and so its result are fixed by `seed`. The model's train/eval mode and parameter
gradients are left as they were.
"""

from __future__ import annotations

import torch
from torch import nn

NORMS = ("linf", "l2")
_TINY = 1e-12


def _check(eps: float, norm: str, targeted: bool, target: torch.Tensor | None) -> None:
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {list(NORMS)}, got {norm!r}")
    if not eps >= 0:
        raise ValueError(f"eps must be >= 0, got {eps}")
    if targeted and target is None:
        raise ValueError("a targeted attack needs `target` (class ids, one per example)")


def _norms(delta: torch.Tensor) -> torch.Tensor:
    """Per-example L2 norms, shaped to broadcast over delta."""
    flat = delta.flatten(1).norm(dim=1)
    return flat.view(-1, *([1] * (delta.dim() - 1)))


def _loss_gradient(model: nn.Module, x: torch.Tensor, labels: torch.Tensor, targeted: bool) -> torch.Tensor:
    """The gradient of the attack's objective w.r.t. x (ascend it): +CE(true) or -CE(target)."""
    x = x.detach().requires_grad_(True)
    loss = nn.functional.cross_entropy(model(x), labels, reduction="sum")
    (gradient,) = torch.autograd.grad(-loss if targeted else loss, x)
    return gradient


def _step(gradient: torch.Tensor, size: float, norm: str) -> torch.Tensor:
    if norm == "linf":
        return size * gradient.sign()
    return size * gradient / (_norms(gradient) + _TINY)


def project(delta: torch.Tensor, eps: float, norm: str) -> torch.Tensor:
    """The nearest perturbation inside the eps-ball of `norm` (per example)."""
    if norm == "linf":
        return delta.clamp(-eps, eps)
    scale = torch.clamp(eps / (_norms(delta) + _TINY), max=1.0)
    return delta * scale


def _in_box(x: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    """x + delta clipped to [0, 1]; clipping only shrinks |delta| coordinate-wise (x is in [0, 1])."""
    return (x + delta).clamp(0.0, 1.0)


class _EvalMode:
    def __init__(self, model: nn.Module):
        self.model, self.was_training = model, model.training

    def __enter__(self) -> None:
        self.model.eval()

    def __exit__(self, *exc: object) -> None:
        self.model.train(self.was_training)


def fgsm(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    norm: str = "linf",
    targeted: bool = False,
    target: torch.Tensor | None = None,
) -> torch.Tensor:
    """One signed (L-inf) or normalised (L2) gradient step of size eps, clipped to [0, 1]."""
    _check(eps, norm, targeted, target)
    labels = target if targeted else y
    with _EvalMode(model):
        gradient = _loss_gradient(model, x, labels, targeted)
        return _in_box(x, _step(gradient, eps, norm)).detach()


def pgd(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    alpha: float | None = None,
    steps: int = 10,
    norm: str = "linf",
    targeted: bool = False,
    target: torch.Tensor | None = None,
    random_start: bool = True,
    seed: int = 0,
) -> torch.Tensor:
    """Projected gradient descent: `steps` steps of size `alpha` (default 2.5 * eps / steps), each
    projected back onto the eps-ball around x and into [0, 1]; a uniform random start in the ball."""
    _check(eps, norm, targeted, target)
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    alpha = 2.5 * eps / steps if alpha is None else alpha
    if not alpha >= 0:
        raise ValueError(f"alpha must be >= 0, got {alpha}")
    labels = target if targeted else y
    x = x.detach()
    delta = torch.zeros_like(x)
    if random_start and eps > 0:
        generator = torch.Generator(device=x.device).manual_seed(seed)
        if norm == "linf":
            delta = (torch.rand(x.shape, generator=generator, device=x.device) * 2 - 1) * eps
        else:
            direction = torch.randn(x.shape, generator=generator, device=x.device)
            radius = torch.rand((len(x),) + (1,) * (x.dim() - 1), generator=generator, device=x.device)
            delta = direction / (_norms(direction) + _TINY) * radius * eps
        delta = _in_box(x, delta) - x
    with _EvalMode(model):
        for _ in range(steps):
            gradient = _loss_gradient(model, x + delta, labels, targeted)
            delta = project(delta + _step(gradient, alpha, norm), eps, norm)
            delta = _in_box(x, delta) - x
    return (x + delta).detach()


def perturbation_norms(x_adv: torch.Tensor, x: torch.Tensor, norm: str) -> torch.Tensor:
    """Per-example size of x_adv - x in `norm` (what a budget check compares with eps)."""
    delta = (x_adv - x).flatten(1)
    return delta.abs().amax(dim=1) if norm == "linf" else delta.norm(dim=1)
