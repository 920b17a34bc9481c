"""Operator training data and default networks: ``(m, u)`` pairs from a dataset, FNO/DeepONet sized
for a grid.  The training loop itself is :func:`pdeinv.nn.training.train` (re-exported here)."""
from __future__ import annotations

import torch

from pdeinv.nn.training import relative_l2, relative_l2_loss, train  # noqa: F401  (the loop operators train with)
from pdeinv.surrogates.base import Surrogate


def operator_pairs(ds, mode: str = "forward", time_index: int = -1):
    """``(inputs, targets)`` float32 tensors from a dataset: ``(m, u)`` forward, ``(u, m)`` inverse.

    Time-series states ``(N, T, C, *grid)`` are reduced to ``u[:, time_index]``.
    """
    from pdeinv.data.io import dataset_tensors
    m, u = dataset_tensors(ds, dtype=torch.float32)
    if u.dim() == m.dim() + 1:
        u = u[:, time_index]
    if mode == "forward":
        return m, u
    if mode == "inverse":
        return u, m
    raise ValueError(f"mode must be 'forward' or 'inverse'; got {mode!r}")


def build_operator(kind: str, in_channels: int, out_channels: int, grid_shape, modes: int = 12, width: int = 32,
                   layers: int = 4, seed: int = 0, **options) -> Surrogate:
    """An FNO or DeepONet sized for ``grid_shape`` (the CLI's and the benchmark's defaults)."""
    from pdeinv.surrogates.deeponet import DeepONet
    from pdeinv.surrogates.fno import FNO
    grid_shape = [int(s) for s in grid_shape]
    if kind == "fno":
        n_modes = [min(int(modes), s // 2) for s in grid_shape]
        cfg = dict(in_channels=in_channels, out_channels=out_channels, n_modes=n_modes, hidden_channels=width,
                   n_layers=layers, seed=seed)
        cfg.update(options)
        return FNO(**cfg)
    if kind == "deeponet":
        cfg = dict(grid_shape=grid_shape, in_channels=in_channels, out_channels=out_channels,
                   branch_layers=[4 * width] * max(1, layers - 1), trunk_layers=[4 * width] * max(1, layers - 1),
                   width=4 * width, seed=seed)
        cfg.update(options)
        return DeepONet(**cfg)
    raise ValueError(f"unknown operator {kind!r}; expected 'fno' or 'deeponet'")
