"""The image data the adversarial parts run on: scikit-learn's bundled 8x8 handwritten digits.

`load_digits` ships inside scikit-learn (nothing is downloaded). The split is fixed and stratified
(a quarter of each class held out, seed 0), so "test" means the same 450 images everywhere.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

SPLITS = ("train", "test")
TEST_SHARE = 0.25
SPLIT_SEED = 0
NUM_CLASSES = 10
IMAGE_SHAPE = (1, 8, 8)


@lru_cache(maxsize=1)
def _split_arrays() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    images = (bunch.images / 16.0).astype(np.float32)  # pixel values are 0..16
    labels = bunch.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        images, labels, test_size=TEST_SHARE, random_state=SPLIT_SEED, stratify=labels
    )
    return {"train": (x_train, y_train), "test": (x_test, y_test)}


def digits(split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(X, y) of one split: X float32 N x 1 x 8 x 8 in [0, 1], y int64 class ids 0..9."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {list(SPLITS)}, got {split!r}")
    images, labels = _split_arrays()[split]
    return torch.from_numpy(images.copy()).unsqueeze(1), torch.from_numpy(labels.copy())


DATASETS = {"digits": digits}


def load_dataset(name: str, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """A dataset by name (only "digits" ships); a ValueError names the choices."""
    if name not in DATASETS:
        raise ValueError(f"dataset must be one of {sorted(DATASETS)}, got {name!r}")
    return DATASETS[name](split)
