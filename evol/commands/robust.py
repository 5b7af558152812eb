"""`evol robust analyze|train|eval`: adversarial robustness of digit classifiers through the spectrum.

analyze: the spectral numbers of clean and perturbation features at chosen layers (JSON + PNG figures).
train: one classifier from a `RobustConfig` (standard, adversarial training, or the subspace defense).
eval: clean and robust accuracy under FGSM/PGD at several budgets, per model (Markdown + PNG).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from evol.commands.common import refuse


def _budgets(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"want comma-separated numbers, got {text!r}") from None
    if not values or any(not v > 0 for v in values):
        raise argparse.ArgumentTypeError(f"budgets must be > 0, got {text!r}")
    return values


class _SubcommandParser(argparse.ArgumentParser):
    """A subcommand's parser; with `pass_through=True` every argument goes to `config_args` untouched
    (argparse's REMAINDER cannot start with an option), for `parse_config` to read."""

    def __init__(self, *args: Any, pass_through: bool = False, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.pass_through = pass_through

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:
        if not self.pass_through:
            return super().parse_known_args(args, namespace)
        namespace = namespace if namespace is not None else argparse.Namespace()
        namespace.config_args = list(args or [])
        for action in self._actions:
            if action.default is not argparse.SUPPRESS and not hasattr(namespace, action.dest):
                setattr(namespace, action.dest, action.default)
        for key, value in self._defaults.items():
            setattr(namespace, key, value)
        return namespace, []


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "robust", help="adversarial robustness: spectral analysis, the subspace defense, robust accuracy"
    )
    sub = parser.add_subparsers(
        dest="robust_command", required=True, metavar="SUBCOMMAND", parser_class=_SubcommandParser
    )

    analyze = sub.add_parser("analyze", help="spectra and overlap of clean vs perturbation feature subspaces")
    analyze.add_argument(
        "--model", required=True, metavar="DIR", help="a saved classifier (evol robust train)"
    )
    analyze.add_argument(
        "--layers", default="conv,hidden", help="comma-separated layers (conv, hidden, projected, logits)"
    )
    analyze.add_argument("--attack", choices=("pgd", "fgsm"), default="pgd")
    analyze.add_argument("--norm", choices=("linf", "l2"), default="linf")
    analyze.add_argument("--eps", type=float, default=0.1, help="attack budget (default 0.1)")
    analyze.add_argument("--steps", type=int, default=20, help="PGD steps (default 20)")
    analyze.add_argument(
        "--level", type=float, default=0.95, help="energy share that sets each subspace's dim"
    )
    analyze.add_argument("--split", choices=("train", "test"), default="test")
    analyze.add_argument(
        "--out", required=True, metavar="DIR", help="writes spectral.json, spectra.png, overlap.png"
    )
    analyze.set_defaults(func=run_analyze)

    train = sub.add_parser(
        "train",
        help="train a classifier: standard, adversarial, or the subspace defense",
        description="--config FILE (YAML onto RobustConfig), --set FIELD=VALUE, --FIELD VALUE; "
        "`evol robust train --help` lists the fields",
        pass_through=True,
        add_help=False,
    )
    train.set_defaults(func=run_train)

    evaluate = sub.add_parser("eval", help="clean and robust accuracy (FGSM, PGD) at several budgets")
    evaluate.add_argument("--model", action="append", required=True, metavar="NAME=DIR", help="repeatable")
    evaluate.add_argument("--norm", choices=("linf", "l2"), default="linf")
    evaluate.add_argument("--budgets", type=_budgets, default=[0.05, 0.1, 0.2], help="e.g. 0.05,0.1,0.2")
    evaluate.add_argument("--attacks", default="fgsm,pgd", help="comma-separated: fgsm, pgd")
    evaluate.add_argument("--steps", type=int, default=20, help="PGD steps (default 20)")
    evaluate.add_argument("--split", choices=("train", "test"), default="test")
    evaluate.add_argument(
        "--out", required=True, metavar="DIR", help="writes robust.json, robust.md, robust.png"
    )
    evaluate.add_argument("--no-progress", action="store_true")
    evaluate.set_defaults(func=run_eval)


def _load(path: str) -> Any:
    from envs.adversarial.models import load_classifier

    return load_classifier(path)


def run_analyze(args: argparse.Namespace) -> int:
    from envs.adversarial.models import LAYERS

    layers = [name.strip() for name in args.layers.split(",") if name.strip()]
    bad = [name for name in layers if name not in LAYERS]
    if bad or not layers:
        return refuse(f"--layers: unknown layer(s) {bad}; known: {list(LAYERS)}")
    if not args.eps > 0:
        return refuse(f"--eps must be > 0, got {args.eps}")
    if args.steps < 1:
        return refuse(f"--steps must be >= 1, got {args.steps}")
    if not 0 < args.level <= 1:
        return refuse(f"--level must be in (0, 1], got {args.level}")
    try:
        model = _load(args.model)
    except (OSError, ValueError) as error:
        return refuse(f"--model: {error}")
    from envs.adversarial.data import digits
    from evol.robust.spectral import analyze_model, write_figures

    x, y = digits(args.split)
    report = analyze_model(model, x, y, layers, args.attack, args.eps, args.norm, args.steps, args.level)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "spectral.json").write_text(json.dumps(report, indent=2) + "\n")
    write_figures(report, out)
    for name, numbers in report["layers"].items():
        print(
            f"{name}: 95% energy in {numbers['clean']['energy_dims']['0.95']} clean / "
            f"{numbers['perturbation']['energy_dims']['0.95']} perturbation dims of {numbers['feature_dim']}; "
            f"overlap {numbers['overlap']:.3f} (random {numbers['random_overlap']:.3f}); projection removes "
            f"{100 * numbers['perturbation_energy_removed']:.1f}% of perturbation energy"
        )
    print(f"evol: wrote {out / 'spectral.json'}, spectra.png, overlap.png")
    return 0


def run_train(args: argparse.Namespace) -> int:
    from evol.robust.trainer import RobustConfig, RobustTrainer
    from evol.trainers.config import ConfigError, parse_config

    try:
        config = parse_config(RobustConfig, args.config_args, prog="evol robust train")
    except ConfigError as error:
        return refuse(f"bad config: {error}")
    result = RobustTrainer(config).train()
    print(
        f"evol: {config.method} classifier saved in {result.model_dir} (test clean accuracy {result.clean_accuracy:.3f})"
    )
    return 0


def run_eval(args: argparse.Namespace) -> int:
    attacks = [a.strip() for a in args.attacks.split(",") if a.strip()]
    if not attacks or any(a not in ("fgsm", "pgd") for a in attacks):
        return refuse(f"--attacks: want fgsm and/or pgd, got {args.attacks!r}")
    if args.steps < 1:
        return refuse(f"--steps must be >= 1, got {args.steps}")
    models = {}
    for spec in args.model:
        name, equals, path = spec.partition("=")
        if not equals or not name or not path:
            return refuse(f"--model: write NAME=DIR, got {spec!r}")
        try:
            models[name] = _load(path)
        except (OSError, ValueError) as error:
            return refuse(f"--model {name}: {error}")
    from envs.adversarial.data import digits
    from evol.robust.evaluate import markdown_table, plot_robustness, robust_accuracy

    x, y = digits(args.split)
    rows = robust_accuracy(
        models, x, y, args.budgets, args.norm, attacks, args.steps, progress=not args.no_progress
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    table = markdown_table(rows)
    (out / "robust.json").write_text(json.dumps(rows, indent=2) + "\n")
    (out / "robust.md").write_text(
        f"Accuracy (%) on digits {args.split}, white-box, PGD {args.steps} steps\n\n{table}"
    )
    plot_robustness(rows, out / "robust.png")
    print(table, end="")
    print(f"evol: wrote {out / 'robust.md'}, robust.json, robust.png")
    return 0
