r"""Smoothed total variation and H¹ (Tikhonov) regularisers on a 2-D grid.

.. math::  \mathrm{TV}_\varepsilon(m) = \sum_{\text{cells}} \sqrt{|\nabla_h m|^2 + \varepsilon^2}\; h_x h_y,
           \qquad
           \mathrm{H1}(m) = \tfrac12 \sum_{\text{cells}} |\nabla_h m|^2\, h_x h_y + \tfrac{\delta}{2}\sum m^2 h_x h_y,

with forward differences :math:`\nabla_h m = ((m_{i+1,j}-m_{ij})/h_x, (m_{i,j+1}-m_{ij})/h_y)` on the
``(nx-1) x (ny-1)`` cells.  Both expose ``log_prob(m) = -R(m)`` (unnormalised),
one value per sample, so MAP treats every prior alike.
"""
from __future__ import annotations

import torch
from torch import nn


def _grad(m: torch.Tensor, spacing):
    hx, hy = spacing
    gx = (m[..., 1:, :-1] - m[..., :-1, :-1]) / hx
    gy = (m[..., :-1, 1:] - m[..., :-1, :-1]) / hy
    return gx, gy


class TotalVariation(nn.Module):
    r"""Smoothed isotropic TV :math:`\sum\sqrt{|\nabla_h m|^2+\varepsilon^2}\,h^2`; ``eps`` in units of m per length."""

    def __init__(self, grid, eps: float = 1e-2):
        super().__init__()
        if grid.ndim != 2:
            raise ValueError("TotalVariation is implemented on 2-D grids")
        if not eps > 0:
            raise ValueError(f"TV smoothing eps must be > 0, got {eps}")
        self.grid, self.eps = grid, float(eps)

    def value(self, m: torch.Tensor) -> torch.Tensor:
        gx, gy = _grad(m, self.grid.spacing)
        return (torch.sqrt(gx ** 2 + gy ** 2 + self.eps ** 2) * self.grid.cell_area).flatten(1).sum(1)

    def log_prob(self, m: torch.Tensor) -> torch.Tensor:
        return -self.value(m)


class H1Prior(nn.Module):
    r"""Tikhonov :math:`\tfrac12\|\nabla m\|^2 + \tfrac{\delta}{2}\|m - m_0\|^2` (discrete, cell-area weighted)."""

    def __init__(self, grid, delta: float = 0.0, mean: float = 0.0):
        super().__init__()
        if grid.ndim != 2:
            raise ValueError("H1Prior is implemented on 2-D grids")
        self.grid, self.delta, self.mean = grid, float(delta), float(mean)

    def value(self, m: torch.Tensor) -> torch.Tensor:
        gx, gy = _grad(m, self.grid.spacing)
        r = 0.5 * ((gx ** 2 + gy ** 2) * self.grid.cell_area).flatten(1).sum(1)
        if self.delta:
            r = r + 0.5 * self.delta * ((m - self.mean) ** 2 * self.grid.cell_area).flatten(1).sum(1)
        return r

    def log_prob(self, m: torch.Tensor) -> torch.Tensor:
        return -self.value(m)
