"""Error metrics, per sample (first axis) unless said otherwise."""
from __future__ import annotations

import torch


def relative_l2(pred: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    """``||pred - true||_2 / ||true||_2`` per sample, shape ``(B,)``."""
    if pred.shape != true.shape:
        raise ValueError(f"shape mismatch: pred {tuple(pred.shape)} vs true {tuple(true.shape)}")
    d = (pred - true).flatten(1).norm(dim=1)
    return d / true.flatten(1).norm(dim=1).clamp_min(torch.finfo(true.dtype).tiny)


def relative_l1(pred: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    """``||pred - true||_1 / ||true||_1`` per sample (NIO's metric, reported as a median)."""
    if pred.shape != true.shape:
        raise ValueError(f"shape mismatch: pred {tuple(pred.shape)} vs true {tuple(true.shape)}")
    d = (pred - true).flatten(1).abs().sum(1)
    return d / true.flatten(1).abs().sum(1).clamp_min(torch.finfo(true.dtype).tiny)


def error_rate(pred: torch.Tensor, true: torch.Tensor, threshold: float = 7.5) -> torch.Tensor:
    """Fraction of pixels classified differently after thresholding both fields (Darcy metric), ``(B,)``."""
    if pred.shape != true.shape:
        raise ValueError(f"shape mismatch: pred {tuple(pred.shape)} vs true {tuple(true.shape)}")
    return ((pred >= threshold) != (true >= threshold)).flatten(1).float().mean(1)


def coverage(samples: torch.Tensor, true: torch.Tensor, level: float = 0.9) -> torch.Tensor:
    """Fraction of true pixels inside the equal-tailed ``level`` credible band of ``samples`` (S, B, ...), ``(B,)``."""
    q = torch.tensor([(1 - level) / 2, (1 + level) / 2], dtype=samples.dtype, device=samples.device)
    lo, hi = torch.quantile(samples.flatten(2), q, dim=0)
    t = true.flatten(1)
    return ((t >= lo) & (t <= hi)).float().mean(1)
