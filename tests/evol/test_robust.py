"""The robust layer: subspace numbers on synthetic features, HSIC, two-epoch training per method, the CLI."""

from __future__ import annotations

import json
import math

import pytest
import torch

from evol.cli import main
from evol.robust.hsic import hsic, normalized_hsic
from evol.robust.spectral import (
    analyze_features,
    energy_dims,
    principal_angles,
    removed_energy,
    singular_spectrum,
    subspace_basis,
)
from evol.robust.trainer import RobustConfig, RobustTrainer


def _orthonormal(d: int, k: int, seed: int) -> torch.Tensor:
    q, _ = torch.linalg.qr(
        torch.randn(d, k, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    )
    return q


def _features_in(basis: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """n points in span(basis) with equal energy per direction."""
    coords = torch.randn(
        n, basis.shape[1], generator=torch.Generator().manual_seed(seed), dtype=torch.float64
    )
    return coords @ basis.T


def test_energy_dims_and_known_subspace_dimensions_are_recovered():
    assert energy_dims(torch.tensor([3.0, 1.0, 0.0]), [0.9, 0.95, 0.99]) == {"0.9": 1, "0.95": 2, "0.99": 2}
    d = 40
    clean_basis = _orthonormal(d, 5, seed=1)
    pert_basis = _orthonormal(d, 3, seed=2)
    pert_basis = pert_basis - clean_basis @ (clean_basis.T @ pert_basis)  # orthogonal to the clean space
    pert_basis, _ = torch.linalg.qr(pert_basis)
    report = analyze_features(_features_in(clean_basis, 500, 3), _features_in(pert_basis, 500, 4), level=0.99)
    assert report["clean_subspace_dim"] == 5 and report["perturbation_subspace_dim"] == 3
    assert len(singular_spectrum(_features_in(clean_basis, 500, 3))) == d
    assert report["overlap"] < 1e-6
    assert all(abs(angle - 90) < 1e-3 for angle in report["principal_angles_deg"])
    assert report["perturbation_energy_removed"] == pytest.approx(1.0, abs=1e-6)
    assert report["clean_energy_kept"] == pytest.approx(1.0, abs=1e-6)


def test_known_principal_angles_and_partial_projection_are_recovered():
    # span(e1, e2) vs span(cos a e1 + sin a e3, e2): angles 0 and a; projecting the second removes sin^2 a
    d, a = 6, math.radians(30)
    e = torch.eye(d, dtype=torch.float64)
    first = torch.stack([e[0], e[1]], 1)
    second = torch.stack([math.cos(a) * e[0] + math.sin(a) * e[2], e[1]], 1)
    angles = sorted(math.degrees(v) for v in principal_angles(first, second).tolist())
    assert angles == pytest.approx([0.0, 30.0], abs=1e-4)
    tilted = (math.cos(a) * e[0] + math.sin(a) * e[2]).unsqueeze(0).repeat(10, 1)
    assert removed_energy(tilted, first) == pytest.approx(math.sin(a) ** 2, abs=1e-9)
    recovered = subspace_basis(_features_in(second, 300, 5), 2)
    assert sorted(math.degrees(v) for v in principal_angles(first, recovered).tolist()) == pytest.approx(
        [0.0, 30.0], abs=1e-3
    )


def test_hsic_is_near_zero_for_independent_and_positive_for_dependent_features():
    g = torch.Generator().manual_seed(0)
    x, noise = torch.randn(300, 4, generator=g), torch.randn(300, 4, generator=g)
    independent = float(normalized_hsic(x, noise))
    dependent = float(normalized_hsic(x, x.pow(2) + 0.1 * noise))  # uncorrelated yet dependent
    assert independent < 0.03
    assert dependent > 0.15 and dependent > 5 * independent
    assert float(normalized_hsic(x, x)) == pytest.approx(1.0, abs=1e-5)
    assert float(hsic(x, 2 * x + 1)) > 10 * float(hsic(x, noise))
    with pytest.raises(ValueError):
        hsic(x, noise[:10])


@pytest.mark.parametrize(
    "method,hsic_weight", [("standard", 0.0), ("adversarial", 0.0), ("subspace", 0.0), ("subspace", 0.1)]
)
def test_two_epoch_training_per_method_learns_and_saves(tmp_path, method, hsic_weight):
    from envs.adversarial.models import load_classifier

    config = RobustConfig(
        method=method,
        arch="mlp",
        hidden=32,
        projection_rank=12,
        hsic_weight=hsic_weight,
        epochs=2,
        attack_steps=2,
        hsic_warmup_epochs=1,
        batch_size=128,
        lr=1e-2,
        output_dir=str(tmp_path / method),
        progress=False,
    )
    result = RobustTrainer(config).train()
    assert len(result.history) == 2 and result.clean_accuracy > 0.5
    if method == "subspace" and hsic_weight:
        assert result.history[-1]["hsic"] > 0
    model = load_classifier(result.model_dir)
    assert (model.projection is not None) == (method == "subspace")
    info = json.loads((result.model_dir / "info.json").read_text())
    assert info["config"]["method"] == method and "HSIC" in info["independence_criterion"]


@pytest.mark.parametrize(
    "args,field",
    [
        (["--set", "projection_rank=0"], "projection_rank"),
        (["--set", "hsic_weight=-1"], "hsic_weight"),
        (["--set", "method=magic"], "method"),
        (["--set", "attack_eps=0"], "attack_eps"),
        (["--set", "epochs=two"], "epochs"),
    ],
)
def test_cli_train_refuses_bad_config_naming_the_field(tmp_path, capsys, args, field):
    assert main(["robust", "train", "--output_dir", str(tmp_path / "out"), *args]) == 2
    assert field in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_cli_analyze_and_eval_write_numbers_and_figures(tmp_path, capsys):
    from envs.adversarial.data import digits
    from envs.adversarial.models import DigitsClassifier, save_classifier, train_standard

    x, y = digits("train")
    model_dir = save_classifier(
        train_standard(DigitsClassifier("mlp", hidden=32), x, y, epochs=4), tmp_path / "m"
    )
    out = tmp_path / "analysis"
    assert main(["robust", "analyze", "--model", str(model_dir), "--steps", "5", "--out", str(out)]) == 0
    report = json.loads((out / "spectral.json").read_text())
    assert set(report["layers"]) == {"conv", "hidden"}
    hidden = report["layers"]["hidden"]
    assert 1 <= hidden["clean"]["energy_dims"]["0.9"] <= hidden["clean"]["energy_dims"]["0.99"] <= 32
    assert 0 <= hidden["overlap"] <= 1 and 0 <= hidden["perturbation_energy_removed"] <= 1
    assert (out / "spectra.png").stat().st_size > 0 and (out / "overlap.png").stat().st_size > 0
    evaluated = tmp_path / "eval"
    argv = ["robust", "eval", "--model", f"std={model_dir}", "--budgets", "0.05,0.1", "--steps", "5"]
    assert main([*argv, "--no-progress", "--out", str(evaluated)]) == 0
    rows = json.loads((evaluated / "robust.json").read_text())
    assert len(rows) == 1 + 2 * 2
    clean = rows[0]["accuracy"]
    assert all(r["accuracy"] <= clean for r in rows[1:])
    assert "| std |" in (evaluated / "robust.md").read_text() and (evaluated / "robust.png").exists()
    assert main(["robust", "analyze", "--model", str(model_dir), "--layers", "fc9", "--out", str(out)]) == 2
    assert main(["robust", "eval", "--model", "nameonly", "--out", str(evaluated)]) == 2
    assert "fc9" in capsys.readouterr().err
