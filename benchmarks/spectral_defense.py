"""Spectral view of adversarial examples on digits: finding (1) measured, then the subspace defense
against its baselines under PGD.

    python benchmarks/spectral_defense.py [--quick] [--out benchmarks/results/spectral_defense]

1. A standard CNN (`evol.robust.trainer`, method "standard"); on the test split, PGD (L-inf) examples
   and, at the "conv" and "hidden" layers, the spectra of clean and perturbation features, the dims
   holding 90/95/99% of their energy, the principal angles and overlap between the two subspaces (and
   what random subspaces of the same dims would give), and the share of perturbation feature energy
   that projecting onto the clean subspace removes (`evol.robust.spectral.analyze_model`).
2. Four classifiers trained the same way (same data, epochs, seed, PGD used in training): standard,
   PGD adversarial training, the subspace defense with the HSIC term, and without it (the ablation).
3. Each on the test split: clean accuracy and accuracy under white-box PGD (20 steps) at two L-inf
   budgets, plus FGSM (`evol.robust.evaluate.robust_accuracy`).

Writes OUT.json, OUT.md, OUT.png (robust accuracy) and OUT_spectra.png, OUT_overlap.png. `--quick`
is a smoke run (2 epochs, the MLP, 200 test images). Numbers are as measured, whatever they show.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from envs.adversarial.data import digits
from evol.robust.evaluate import markdown_table, plot_robustness, robust_accuracy
from evol.robust.spectral import analyze_model, write_figures
from evol.robust.trainer import RobustConfig, RobustTrainer

METHODS = {
    "standard": dict(method="standard"),
    "adversarial (PGD)": dict(method="adversarial"),
    "subspace + HSIC": dict(method="subspace"),
    "subspace, no HSIC": dict(method="subspace", hsic_weight=0.0),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 epochs, MLP, 200 test images")
    parser.add_argument("--epochs", type=int, default=None, help="training epochs (default 15; quick 2)")
    parser.add_argument("--budgets", default="0.05,0.1", help="two L-inf PGD budgets (default 0.05,0.1)")
    parser.add_argument("--train-eps", type=float, default=0.1, help="PGD budget used in training")
    parser.add_argument(
        "--hsic-weight", type=float, default=None, help="HSIC weight (default: RobustConfig's)"
    )
    parser.add_argument("--rank", type=int, default=16, help="subspace rank")
    parser.add_argument("--out", default="benchmarks/results/spectral_defense")
    args = parser.parse_args()
    budgets = [float(v) for v in args.budgets.split(",")]
    epochs = args.epochs or (2 if args.quick else 15)
    arch = "mlp" if args.quick else "cnn"
    started = time.time()
    x, y = digits("test")
    if args.quick:
        x, y = x[:200], y[:200]
    common = dict(arch=arch, epochs=epochs, attack_eps=args.train_eps, projection_rank=args.rank)
    if args.hsic_weight is not None:
        common["hsic_weight"] = args.hsic_weight
    models, seconds, info = {}, {}, {}
    with tempfile.TemporaryDirectory() as work:
        for name, settings in METHODS.items():
            t0 = time.time()
            config = RobustConfig(**{**common, **settings, "output_dir": f"{work}/{len(models)}"})
            result = RobustTrainer(config).train()
            from envs.adversarial.models import load_classifier

            models[name] = load_classifier(result.model_dir)
            seconds[f"train {name}"] = round(time.time() - t0, 1)
            info[name] = {
                "config": {k: getattr(config, k) for k in ("method", "hsic_weight", "projection_rank")}
            }
    t0 = time.time()
    spectral = analyze_model(models["standard"], x, y, layers=["conv", "hidden"], eps=max(budgets), steps=20)
    seconds["spectral analysis"] = round(time.time() - t0, 1)
    t0 = time.time()
    rows = robust_accuracy(models, x, y, budgets, norm="linf", attacks=("fgsm", "pgd"), pgd_steps=20)
    seconds["robust eval"] = round(time.time() - t0, 1)
    seconds["total"] = round(time.time() - started, 1)

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    finding = [
        "| layer | d | clean dims 90/95/99% | perturbation dims 90/95/99% | overlap | random overlap | "
        "perturbation energy removed | clean energy kept |",
        "|---" * 8 + "|",
    ]
    for layer, n in spectral["layers"].items():
        c, p = n["clean"]["energy_dims"], n["perturbation"]["energy_dims"]
        finding.append(
            f"| {layer} | {n['feature_dim']} | {c['0.9']}/{c['0.95']}/{c['0.99']} | {p['0.9']}/{p['0.95']}/{p['0.99']} "
            f"| {n['overlap']:.3f} | {n['random_overlap']:.3f} | {100 * n['perturbation_energy_removed']:.1f}% "
            f"| {100 * n['clean_energy_kept']:.1f}% |"
        )
    header = (
        f"Digits ({len(x)} test images), {arch}, {epochs} epochs, training PGD eps={args.train_eps}; "
        f"{'QUICK smoke run; ' if args.quick else ''}total {seconds['total']} s\n\n"
    )
    text = (
        f"# Spectral defense benchmark\n\n{header}"
        f"## Finding 1 (standard model, PGD L-inf eps={max(budgets)}, 20 steps; subspaces at 95% energy)\n\n"
        + "\n".join(finding)
        + "\n\n## Accuracy (%), white-box, L-inf\n\n"
        + markdown_table(rows)
    )
    out.with_suffix(".md").write_text(text)
    summary = {
        "settings": vars(args) | {"epochs": epochs, "arch": arch},
        "seconds": seconds,
        "models": info,
        "spectral": spectral,
        "robust": rows,
    }
    out.with_suffix(".json").write_text(json.dumps(summary, indent=2) + "\n")
    plot_robustness(rows, out.with_suffix(".png"), title=f"digits, {arch}: accuracy under white-box attacks")
    for path in write_figures(spectral, Path(tempfile.mkdtemp())):
        target = out.parent / f"{out.name}_{path.name}"
        target.write_bytes(path.read_bytes())
    print(text)
    print(json.dumps(seconds))


if __name__ == "__main__":
    main()
