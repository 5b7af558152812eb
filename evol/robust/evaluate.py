"""Clean and robust accuracy of classifiers under FGSM and PGD at several budgets: one table, one plot.

    rows = robust_accuracy({"standard": m1, "defense": m2}, x, y, budgets=[0.05, 0.1], norm="linf")
    markdown_table(rows); plot_robustness(rows, "robust.png")

A row is {"model", "attack" ("clean", "fgsm", "pgd"), "norm", "eps", "accuracy"}.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm


def robust_accuracy(
    models: Mapping[str, torch.nn.Module],
    x: torch.Tensor,
    y: torch.Tensor,
    budgets: Sequence[float],
    norm: str = "linf",
    attacks: Sequence[str] = ("fgsm", "pgd"),
    pgd_steps: int = 20,
    seed: int = 0,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Accuracy of every model on clean x and under each attack at each budget (white-box)."""
    from envs.adversarial.attacks import fgsm, pgd
    from envs.adversarial.models import accuracy

    rows: list[dict[str, Any]] = []
    total = len(models) * (1 + len(attacks) * len(budgets))
    with tqdm(total=total, desc="robust eval", unit="run", disable=not progress) as bar:
        for name, model in models.items():
            rows.append(
                {
                    "model": name,
                    "attack": "clean",
                    "norm": norm,
                    "eps": 0.0,
                    "accuracy": accuracy(model, x, y),
                }
            )
            bar.update()
            for attack in attacks:
                for eps in budgets:
                    if attack == "fgsm":
                        x_adv = fgsm(model, x, y, eps, norm=norm)
                    else:
                        x_adv = pgd(model, x, y, eps, steps=pgd_steps, norm=norm, seed=seed)
                    rows.append(
                        {
                            "model": name,
                            "attack": attack,
                            "norm": norm,
                            "eps": eps,
                            "accuracy": accuracy(model, x_adv, y),
                        }
                    )
                    bar.update()
    return rows


def markdown_table(rows: Sequence[dict[str, Any]]) -> str:
    """One row per model; columns: clean, then attack@eps (accuracy in %)."""
    columns = ["clean"] + sorted(
        {f"{r['attack']} {r['norm']} eps={r['eps']:g}" for r in rows if r["attack"] != "clean"},
        key=lambda c: (c.split()[0], float(c.rsplit("=", 1)[1])),
    )
    table: dict[str, dict[str, float]] = {}
    for r in rows:
        key = "clean" if r["attack"] == "clean" else f"{r['attack']} {r['norm']} eps={r['eps']:g}"
        table.setdefault(r["model"], {})[key] = r["accuracy"]
    lines = ["| model | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for model, values in table.items():
        cells = [f"{100 * values[c]:.1f}" if c in values else "" for c in columns]
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_robustness(rows: Sequence[dict[str, Any]], path: str | Path, title: str = "") -> Path:
    """Accuracy against budget, one line per model and attack (eps 0 = clean)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    models = list(dict.fromkeys(r["model"] for r in rows))
    attacks = sorted({r["attack"] for r in rows} - {"clean"})
    styles = {"fgsm": "--", "pgd": "-"}
    for i, model in enumerate(models):
        clean = next((r["accuracy"] for r in rows if r["model"] == model and r["attack"] == "clean"), None)
        for attack in attacks:
            points = sorted(
                (r["eps"], r["accuracy"]) for r in rows if r["model"] == model and r["attack"] == attack
            )
            if clean is not None:
                points = [(0.0, clean)] + points
            ax.plot(
                [p[0] for p in points],
                [100 * p[1] for p in points],
                styles.get(attack, ":"),
                marker="o",
                color=f"C{i}",
                label=f"{model} / {attack}",
            )
    norm = rows[0]["norm"] if rows else ""
    ax.set_xlabel(f"budget eps ({norm})")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title(title or "clean and robust accuracy (white-box)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
