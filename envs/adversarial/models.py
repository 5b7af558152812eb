"""Small digit classifiers with an optional learned subspace-projection layer, and their safe storage.

    model = DigitsClassifier(arch="cnn", hidden=64, projection_rank=16)
    logits = model(x)                         # x: N x 1 x 8 x 8 in [0, 1]
    feats = model.features(x, "hidden")       # N x 64, the layer the projection acts on
    save_classifier(model, "runs/clf"); model = load_classifier("runs/clf")

Layers `features` can return: "conv" (the flattened body output: convolutions for "cnn", the first
hidden layer for "mlp"), "hidden" (the penultimate features), "projected" (the output of the
projection; equal to the layer it acts on without one), "logits".

The projection layer sits after `projection_layer` ("hidden": before the head; "conv": before the
hidden layer) and holds a learned matrix U (dim x rank); its forward pass orthonormalises U (QR) and
maps h to Q Q^T h, so what follows sees only the part of h inside the learned rank-r subspace.

A saved classifier is a directory: `config.json` (the constructor's arguments, checked on load) and
`model.safetensors` (tensors only); nothing in it is unpickled or run as code.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

LAYERS = ("conv", "hidden", "projected", "logits")
PROJECTION_LAYERS = ("hidden", "conv")
ARCHS = ("cnn", "mlp")
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"


class SubspaceProjection(nn.Module):
    """Orthogonal projection onto a learned rank-r subspace of R^dim: h -> Q Q^T h, Q = qr(U).Q."""

    def __init__(self, dim: int, rank: int, seed: int = 0):
        super().__init__()
        if not 1 <= rank <= dim:
            raise ValueError(f"projection_rank must be in 1..{dim}, got {rank}")
        generator = torch.Generator().manual_seed(seed)
        self.basis = nn.Parameter(torch.randn(dim, rank, generator=generator) / dim**0.5)

    def orthonormal_basis(self) -> torch.Tensor:
        """Q: dim x rank with orthonormal columns spanning the learned subspace."""
        q, _ = torch.linalg.qr(self.basis)
        return q

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        q = self.orthonormal_basis()
        return (h @ q) @ q.T


class DigitsClassifier(nn.Module):
    """A small CNN or MLP for 1 x 8 x 8 images with `num_classes` outputs.

    arch: "cnn" (two 3x3 convolutions, a 2x2 max-pool, a hidden layer) or "mlp" (two hidden layers).
    hidden: width of the penultimate "hidden" layer. projection_rank: None for no projection, else the
    rank of the learned subspace the head reads from.
    """

    def __init__(
        self,
        arch: str = "cnn",
        hidden: int = 64,
        projection_rank: int | None = None,
        projection_layer: str = "hidden",
        num_classes: int = 10,
        channels: int = 16,
        seed: int = 0,
    ):
        super().__init__()
        if arch not in ARCHS:
            raise ValueError(f"arch must be one of {list(ARCHS)}, got {arch!r}")
        if projection_layer not in PROJECTION_LAYERS:
            raise ValueError(
                f"projection_layer must be one of {list(PROJECTION_LAYERS)}, got {projection_layer!r}"
            )
        if hidden < 1 or num_classes < 2 or channels < 1:
            raise ValueError("hidden and channels must be >= 1 and num_classes >= 2")
        self.config = dict(
            arch=arch,
            hidden=hidden,
            projection_rank=projection_rank,
            projection_layer=projection_layer,
            num_classes=num_classes,
            channels=channels,
            seed=seed,
        )
        torch.manual_seed(seed)
        if arch == "cnn":
            self.body = nn.Sequential(
                nn.Conv2d(1, channels, 3, padding=1),
                nn.ReLU(),
                nn.Conv2d(channels, 2 * channels, 3, padding=1),
                nn.ReLU(),
                nn.MaxPool2d(2),
                nn.Flatten(),
            )
            body_dim = 2 * channels * 4 * 4
        else:
            self.body = nn.Sequential(nn.Flatten(), nn.Linear(64, 4 * hidden), nn.ReLU())
            body_dim = 4 * hidden
        self.to_hidden = nn.Sequential(nn.Linear(body_dim, hidden), nn.ReLU())
        self.projection_layer = projection_layer
        dim = hidden if projection_layer == "hidden" else body_dim
        self.projection = SubspaceProjection(dim, projection_rank, seed) if projection_rank else None
        self.head = nn.Linear(hidden, num_classes)

    def all_features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every layer's features for a batch (each N x d)."""
        conv = self.body(x)
        if self.projection is not None and self.projection_layer == "conv":
            projected = self.projection(conv)
            hidden = self.to_hidden(projected)
            return {"conv": conv, "projected": projected, "hidden": hidden, "logits": self.head(hidden)}
        hidden = self.to_hidden(conv)
        projected = self.projection(hidden) if self.projection is not None else hidden
        return {"conv": conv, "hidden": hidden, "projected": projected, "logits": self.head(projected)}

    def features(self, x: torch.Tensor, layer: str = "hidden") -> torch.Tensor:
        """The features of `layer` (one of LAYERS) for a batch: N x d."""
        if layer not in LAYERS:
            raise ValueError(f"layer must be one of {list(LAYERS)}, got {layer!r}")
        return self.all_features(x)[layer]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.all_features(x)["logits"]


def _checked_config(data: Any) -> dict[str, Any]:
    """The constructor arguments read from config.json, each checked against its type."""
    kinds = {"arch": str, "hidden": int, "projection_rank": (int, type(None)), "projection_layer": str}
    kinds |= {"num_classes": int}
    kinds |= {"channels": int, "seed": int}
    if not isinstance(data, dict):
        raise ValueError(f"{CONFIG_FILE}: must be a JSON object")
    unknown = sorted(set(data) - set(kinds))
    if unknown:
        raise ValueError(f"{CONFIG_FILE}: unknown field(s) {unknown}")
    for name, value in data.items():
        if isinstance(value, bool) or not isinstance(value, kinds[name]):
            raise ValueError(f"{CONFIG_FILE}: {name} has the wrong type: {value!r}")
    return data


def save_classifier(model: DigitsClassifier, path: str | Path, extra: dict[str, Any] | None = None) -> Path:
    """Write `model` to directory `path` (config.json + model.safetensors); `extra` goes to info.json."""
    from safetensors.torch import save_file

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    (path / CONFIG_FILE).write_text(json.dumps(model.config, indent=2) + "\n")
    state = {name: tensor.detach().contiguous().cpu() for name, tensor in model.state_dict().items()}
    save_file(state, str(path / WEIGHTS_FILE))
    if extra is not None:
        (path / "info.json").write_text(json.dumps(extra, indent=2) + "\n")
    return path


def load_classifier(path: str | Path, device: str = "cpu") -> DigitsClassifier:
    """Read a classifier written by `save_classifier` (tensors only; never unpickled), in eval mode."""
    from safetensors.torch import load_file

    path = Path(path)
    if not (path / CONFIG_FILE).is_file() or not (path / WEIGHTS_FILE).is_file():
        raise FileNotFoundError(f"{path}: not a saved classifier (needs {CONFIG_FILE} and {WEIGHTS_FILE})")
    config = _checked_config(json.loads((path / CONFIG_FILE).read_text()))
    model = DigitsClassifier(**config)
    model.load_state_dict(load_file(str(path / WEIGHTS_FILE), device=device))
    return model.to(device).eval()


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 512) -> float:
    """Share of `x` that `model` classifies as `y`."""
    was_training = model.training
    model.eval()
    correct = 0
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            logits = model(x[start : start + batch_size])
            correct += int((logits.argmax(1) == y[start : start + batch_size]).sum())
    model.train(was_training)
    return correct / max(len(x), 1)


def train_standard(
    model: DigitsClassifier,
    x: torch.Tensor,
    y: torch.Tensor,
    epochs: int = 10,
    lr: float = 3e-3,
    batch_size: int = 64,
    seed: int = 0,
) -> DigitsClassifier:
    """Plain cross-entropy training with Adam (a quick way to get an undefended classifier)."""
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x), batch_size):
            batch = order[start : start + batch_size]
            loss = nn.functional.cross_entropy(model(x[batch]), y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return model.eval()
