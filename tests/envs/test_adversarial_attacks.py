"""FGSM and PGD on a real tiny digits classifier: budgets, box, loss increase, targeting, hand-checked cases."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from envs.adversarial.attacks import fgsm, perturbation_norms, pgd
from envs.adversarial.data import digits
from envs.adversarial.models import (
    DigitsClassifier,
    accuracy,
    load_classifier,
    save_classifier,
    train_standard,
)

TOLERANCE = 1e-6  # float32 rounding of (x + delta) - x


@pytest.fixture(scope="module")
def trained():
    x, y = digits("train")
    model = train_standard(DigitsClassifier("mlp", hidden=32), x, y, epochs=6)
    x_test, y_test = digits("test")
    return model, x_test[:200], y_test[:200]


def test_digits_split_is_fixed_stratified_and_scaled():
    x, y = digits("train")
    x_test, y_test = digits("test")
    assert x.shape[1:] == (1, 8, 8) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert len(x) + len(x_test) == 1797 and float(x.min()) == 0.0 and float(x.max()) == 1.0
    assert torch.equal(digits("test")[1], y_test)
    assert (torch.bincount(y_test, minlength=10) >= 43).all()
    with pytest.raises(ValueError, match="split"):
        digits("validation")


def test_saved_classifier_loads_with_same_predictions(trained, tmp_path):
    model, x, _ = trained
    save_classifier(model, tmp_path / "clf")
    loaded = load_classifier(tmp_path / "clf")
    assert torch.equal(loaded(x).argmax(1), model(x).argmax(1))
    (tmp_path / "clf" / "config.json").write_text('{"arch": "cnn", "hidden": "64"}')
    with pytest.raises(ValueError, match="hidden"):
        load_classifier(tmp_path / "clf")


@pytest.mark.parametrize("norm,eps", [("linf", 0.1), ("l2", 1.0)])
@pytest.mark.parametrize("attack", ["fgsm", "pgd"])
def test_attack_respects_budget_and_box_and_raises_loss(trained, attack, norm, eps):
    model, x, y = trained
    x_adv = (
        fgsm(model, x, y, eps, norm=norm) if attack == "fgsm" else pgd(model, x, y, eps, norm=norm, steps=10)
    )
    sizes = perturbation_norms(x_adv, x, norm)
    assert float(sizes.max()) <= eps + TOLERANCE
    assert float(x_adv.min()) >= 0.0 and float(x_adv.max()) <= 1.0
    with torch.no_grad():
        clean_loss = nn.functional.cross_entropy(model(x), y)
        adv_loss = nn.functional.cross_entropy(model(x_adv), y)
    assert adv_loss > clean_loss + 0.5
    assert accuracy(model, x_adv, y) < accuracy(model, x, y) - 0.2


def test_pgd_is_at_least_as_strong_as_fgsm_and_seeded(trained):
    model, x, y = trained
    strong = pgd(model, x, y, 0.08, steps=20)
    assert accuracy(model, strong, y) <= accuracy(model, fgsm(model, x, y, 0.08), y)
    assert torch.equal(strong, pgd(model, x, y, 0.08, steps=20))


@pytest.mark.parametrize("norm,eps", [("linf", 0.15), ("l2", 1.5)])
def test_targeted_attack_hits_target_more_often(trained, norm, eps):
    model, x, y = trained
    target = (y + 1) % 10
    base = float((model(x).argmax(1) == target).float().mean())
    x_adv = pgd(model, x, y, eps, norm=norm, steps=20, targeted=True, target=target)
    hit = float((model(x_adv).argmax(1) == target).float().mean())
    assert hit > base + 0.3
    assert float(perturbation_norms(x_adv, x, norm).max()) <= eps + TOLERANCE


def test_hand_checked_linear_model():
    # logits = W x with W = [[1, -1], [0, 0]]: CE of class 0 rises along -(1, -1), so FGSM L-inf moves
    # x = (0.5, 0.5) to (0.5 - eps, 0.5 + eps) and L2 to x + eps (-1, 1) / sqrt(2).
    model = nn.Sequential(nn.Flatten(), nn.Linear(2, 2, bias=False))
    with torch.no_grad():
        model[1].weight.copy_(torch.tensor([[1.0, -1.0], [0.0, 0.0]]))
    x, y = torch.tensor([[0.5, 0.5]]), torch.tensor([0])
    assert torch.allclose(fgsm(model, x, y, 0.1), torch.tensor([[0.4, 0.6]]))
    root = 0.2 / 2**0.5
    assert torch.allclose(fgsm(model, x, y, 0.2, norm="l2"), torch.tensor([[0.5 - root, 0.5 + root]]))
    # PGD without random start: 3 steps of 0.1 inside eps 0.25 end on the ball's corner, clipped to the box
    assert torch.allclose(
        pgd(model, x, y, 0.25, alpha=0.1, steps=3, random_start=False), torch.tensor([[0.25, 0.75]])
    )
    x_edge = torch.tensor([[0.05, 0.95]])
    assert torch.allclose(fgsm(model, x_edge, y, 0.1), torch.tensor([[0.0, 1.0]]))


def test_bad_arguments_are_refused(trained):
    model, x, y = trained
    with pytest.raises(ValueError, match="norm"):
        fgsm(model, x, y, 0.1, norm="l1")
    with pytest.raises(ValueError, match="target"):
        pgd(model, x, y, 0.1, targeted=True)
    with pytest.raises(ValueError, match="eps"):
        pgd(model, x, y, -0.1)
