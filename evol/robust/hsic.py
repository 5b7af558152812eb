"""The Hilbert-Schmidt independence criterion (HSIC) with Gaussian kernels, differentiable.

    hsic(x, y)             # biased estimator tr(K H L H) / (n - 1)^2; 0 iff independent (population)
    normalized_hsic(x, y)  # HSIC(x, y) / sqrt(HSIC(x, x) HSIC(y, y)), in [0, 1], unchanged by rescaling

x and y are N x d feature batches (rows paired). Each kernel's width is the median pairwise distance
of its batch (the median heuristic, held fixed for the gradient) unless `sigma` is given.
"""

from __future__ import annotations

import torch


def squared_distances(x: torch.Tensor) -> torch.Tensor:
    """Pairwise squared distances of an N x d batch (no square root: its gradient at 0 is not finite)."""
    x = x.flatten(1)
    norms = x.pow(2).sum(1)
    return (norms[:, None] + norms[None, :] - 2 * x @ x.T).clamp_min(0.0)


def median_width(x: torch.Tensor) -> float:
    """The median pairwise distance of a batch (the median heuristic for a Gaussian kernel's width)."""
    with torch.no_grad():
        squared = squared_distances(x)
        off_diagonal = squared[~torch.eye(len(x), dtype=torch.bool, device=x.device)]
        median = float(off_diagonal.median()) if off_diagonal.numel() else 1.0
    return max(median, 1e-12) ** 0.5


def gaussian_gram(x: torch.Tensor, sigma: float | None = None) -> torch.Tensor:
    """K[i, j] = exp(-||x_i - x_j||^2 / (2 sigma^2)) for an N x d batch (sigma None: `median_width`)."""
    squared = squared_distances(x)
    if sigma is None:
        width = median_width(x)
        width2 = squared.new_tensor(width * width)
    else:
        if not sigma > 0:
            raise ValueError(f"sigma must be > 0, got {sigma}")
        width2 = squared.new_tensor(sigma * sigma)
    return torch.exp(-squared / (2 * width2))


def _centred(k: torch.Tensor) -> torch.Tensor:
    return k - k.mean(dim=0, keepdim=True) - k.mean(dim=1, keepdim=True) + k.mean()


def hsic(
    x: torch.Tensor, y: torch.Tensor, sigma_x: float | None = None, sigma_y: float | None = None
) -> torch.Tensor:
    """The biased empirical HSIC of paired batches x, y (N >= 2 rows each)."""
    if len(x) != len(y) or len(x) < 2:
        raise ValueError(f"hsic needs two paired batches of >= 2 rows, got {len(x)} and {len(y)}")
    k, l_ = gaussian_gram(x, sigma_x), gaussian_gram(y, sigma_y)
    return (_centred(k) * l_).sum() / (len(x) - 1) ** 2


def normalized_hsic(
    x: torch.Tensor, y: torch.Tensor, sigma_x: float | None = None, sigma_y: float | None = None
) -> torch.Tensor:
    """HSIC(x, y) / sqrt(HSIC(x, x) HSIC(y, y)): 0 for independent, 1 for x = y."""
    xy = hsic(x, y, sigma_x, sigma_y)
    xx, yy = hsic(x, x, sigma_x, sigma_x), hsic(y, y, sigma_y, sigma_y)
    return xy / (xx * yy).clamp_min(1e-24).sqrt()
