"""Spectral analysis of clean and perturbation features: do they live in small subspaces that barely meet?

For a classifier, inputs x and adversarial examples x_adv, at a chosen layer: clean features F(x) and
perturbation features F(x_adv) - F(x) (N x d each). For each set: the singular values (the spectrum),
the number of dimensions holding 90/95/99% of the energy (sum of squared singular values), and the
subspace spanned by the top right-singular vectors up to `level` energy. Between the two subspaces:
the principal angles, the overlap (mean squared cosine), and the share of the perturbation features'
energy that an orthogonal projection onto the clean subspace removes. Subspaces are linear (no
centring): a feature set's mean direction belongs to it.

    report = analyze_model(model, x, y, layers=["hidden"], eps=0.1)
    write_figures(report, out_dir)   # spectra.png, overlap.png
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

LEVELS = (0.9, 0.95, 0.99)


def singular_spectrum(features: torch.Tensor) -> torch.Tensor:
    """Singular values of an N x d feature matrix, largest first (float64)."""
    return torch.linalg.svdvals(features.detach().double().flatten(1))


def energy_dims(singular_values: torch.Tensor, levels: Sequence[float] = LEVELS) -> dict[str, int]:
    """For each level, the fewest leading dimensions whose squared singular values reach that share."""
    energy = singular_values.double().pow(2)
    total = float(energy.sum())
    if total <= 0:
        return {f"{level:g}": 0 for level in levels}
    cumulative = torch.cumsum(energy, 0) / total
    dims = {}
    for level in levels:
        reached = torch.nonzero(cumulative >= level - 1e-12)
        dims[f"{level:g}"] = int(reached[0]) + 1 if len(reached) else len(energy)
    return dims


def subspace_basis(features: torch.Tensor, dim: int) -> torch.Tensor:
    """d x dim orthonormal basis of the top-`dim` right-singular subspace of the N x d features."""
    _, _, vh = torch.linalg.svd(features.detach().double().flatten(1), full_matrices=False)
    return vh[:dim].T


def principal_angles(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Principal angles (radians, ascending) between the spans of orthonormal bases a (d x p), b (d x q)."""
    cosines = torch.linalg.svdvals(a.double().T @ b.double()).clamp(0.0, 1.0)
    return torch.arccos(cosines)


def overlap(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean squared cosine of the principal angles: 0 for orthogonal subspaces, 1 when one holds the other."""
    k = min(a.shape[1], b.shape[1])
    return float((a.double().T @ b.double()).pow(2).sum() / k) if k else 0.0


def removed_energy(perturbation: torch.Tensor, clean_basis: torch.Tensor) -> float:
    """Share of the perturbation features' energy outside span(clean_basis): what projecting onto it removes."""
    p = perturbation.detach().double().flatten(1)
    total = float(p.pow(2).sum())
    if total <= 0:
        return 0.0
    kept = float((p @ clean_basis.double()).pow(2).sum())
    return max(0.0, 1.0 - kept / total)


def analyze_features(
    clean: torch.Tensor, perturbation: torch.Tensor, level: float = 0.95, levels: Sequence[float] = LEVELS
) -> dict[str, Any]:
    """The numbers for one layer: spectra, energy dims, angles, overlap and removed energy.

    Both subspaces take the dimension holding `level` of their own energy. `random_overlap` is the
    overlap expected between random subspaces of those dimensions in R^d (p q / d / min(p, q)).
    """
    clean_s, pert_s = singular_spectrum(clean), singular_spectrum(perturbation)
    clean_dims, pert_dims = energy_dims(clean_s, levels), energy_dims(pert_s, levels)
    key = f"{level:g}"
    p = clean_dims.get(key) or energy_dims(clean_s, [level])[key]
    q = pert_dims.get(key) or energy_dims(pert_s, [level])[key]
    d = clean.flatten(1).shape[1]
    clean_basis, pert_basis = subspace_basis(clean, p), subspace_basis(perturbation, q)
    angles = principal_angles(clean_basis, pert_basis)
    return {
        "feature_dim": d,
        "samples": len(clean),
        "level": level,
        "clean": {"energy_dims": clean_dims, "singular_values": clean_s.tolist()},
        "perturbation": {"energy_dims": pert_dims, "singular_values": pert_s.tolist()},
        "clean_subspace_dim": p,
        "perturbation_subspace_dim": q,
        "principal_angles_deg": [math.degrees(a) for a in angles.tolist()],
        "overlap": overlap(clean_basis, pert_basis),
        "random_overlap": (p * q / d) / min(p, q) if min(p, q) else 0.0,
        "perturbation_energy_removed": removed_energy(perturbation, clean_basis),
        "clean_energy_kept": 1.0 - removed_energy(clean, clean_basis),
    }


def layer_features(
    model: torch.nn.Module, x: torch.Tensor, x_adv: torch.Tensor, layers: Sequence[str], batch_size: int = 512
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """{layer: (clean features, perturbation features)} with perturbation = F(x_adv) - F(x)."""
    was_training = model.training
    model.eval()
    clean: dict[str, list[torch.Tensor]] = {layer: [] for layer in layers}
    adv: dict[str, list[torch.Tensor]] = {layer: [] for layer in layers}
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            f_clean = model.all_features(x[start : start + batch_size])
            f_adv = model.all_features(x_adv[start : start + batch_size])
            for layer in layers:
                clean[layer].append(f_clean[layer])
                adv[layer].append(f_adv[layer])
    model.train(was_training)
    out = {}
    for layer in layers:
        c, a = torch.cat(clean[layer]), torch.cat(adv[layer])
        out[layer] = (c, a - c)
    return out


def analyze_model(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    layers: Sequence[str] = ("hidden",),
    attack: str = "pgd",
    eps: float = 0.1,
    norm: str = "linf",
    steps: int = 10,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, Any]:
    """Attack x with FGSM or PGD, then `analyze_features` at each layer; also the attack's success rate."""
    from envs.adversarial.attacks import fgsm, pgd
    from envs.adversarial.models import accuracy

    if attack == "fgsm":
        x_adv = fgsm(model, x, y, eps, norm=norm)
    elif attack == "pgd":
        x_adv = pgd(model, x, y, eps, steps=steps, norm=norm, seed=seed)
    else:
        raise ValueError(f"attack must be 'fgsm' or 'pgd', got {attack!r}")
    features = layer_features(model, x, x_adv, layers)
    return {
        "attack": {"method": attack, "eps": eps, "norm": norm, "steps": steps if attack == "pgd" else 1},
        "clean_accuracy": accuracy(model, x, y),
        "adversarial_accuracy": accuracy(model, x_adv, y),
        "layers": {layer: analyze_features(c, p, level=level) for layer, (c, p) in features.items()},
    }


def write_figures(report: dict[str, Any], out_dir: str | Path) -> list[Path]:
    """spectra.png (normalised singular values, clean vs perturbation, per layer) and overlap.png
    (principal-angle cosines per layer, with overlap and removed energy in the titles)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    layers = report["layers"]
    paths = []
    fig, axes = plt.subplots(1, len(layers), figsize=(4.5 * len(layers), 3.6), squeeze=False)
    for ax, (name, numbers) in zip(axes[0], layers.items()):
        for kind, colour in (("clean", "tab:blue"), ("perturbation", "tab:red")):
            s = torch.tensor(numbers[kind]["singular_values"])
            if len(s) and float(s[0]) > 0:
                ax.semilogy(range(1, len(s) + 1), (s / s[0]).clamp_min(1e-8), color=colour, label=kind)
            dims = numbers[kind]["energy_dims"]
            if "0.95" in dims:
                ax.axvline(dims["0.95"], color=colour, linestyle=":", linewidth=1)
        ax.set_title(f"{name} (d={numbers['feature_dim']})")
        ax.set_xlabel("index")
        ax.set_ylabel("singular value / largest")
        ax.legend(fontsize=8)
    fig.suptitle(
        f"feature spectra; dotted: 95% energy ({report['attack']['method']} eps={report['attack']['eps']})"
    )
    fig.tight_layout()
    paths.append(out_dir / "spectra.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    fig, axes = plt.subplots(1, len(layers), figsize=(4.5 * len(layers), 3.6), squeeze=False)
    for ax, (name, numbers) in zip(axes[0], layers.items()):
        cosines = [math.cos(math.radians(a)) for a in numbers["principal_angles_deg"]]
        ax.bar(range(1, len(cosines) + 1), cosines, color="tab:purple")
        ax.set_ylim(0, 1)
        ax.set_xlabel("principal angle index")
        ax.set_ylabel("cos(angle)")
        ax.set_title(
            f"{name}: overlap {numbers['overlap']:.2f} (random {numbers['random_overlap']:.2f})\n"
            f"projection removes {100 * numbers['perturbation_energy_removed']:.0f}% of perturbation energy",
            fontsize=9,
        )
    fig.suptitle("clean vs perturbation feature subspaces")
    fig.tight_layout()
    paths.append(out_dir / "overlap.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)
    return paths
