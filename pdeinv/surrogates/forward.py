r"""Surrogate forward model: a trained neural operator in place of the simulator.

.. math::  y = \mathcal{O}(G_\theta(m)) + e

:class:`SurrogateForward` is a :class:`pdeinv.physics.ForwardModel`, so every
solver that takes a forward model takes it too (``MAP``, samplers ...).  The
network runs in float32; a float64 ``m`` (what the classical solvers use) is
cast to float32 on the way in and the state cast back to ``m``'s dtype on the
way out, with gradients flowing through both casts.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from pdeinv.physics.forward import ForwardModel


class _GridHolder(nn.Module):
    """Wraps a surrogate so that ``ForwardModel`` finds the grid it works on."""

    def __init__(self, surrogate: nn.Module, grid):
        super().__init__()
        self.surrogate, self.grid = surrogate, grid

    def forward(self, m: torch.Tensor) -> torch.Tensor:
        if hasattr(self.grid, "check"):
            self.grid.check(m, name="m")
        return self.surrogate(m)


class SurrogateForward(ForwardModel):
    """``SurrogateForward(surrogate, observation, noise=None, grid=None)``.

    ``surrogate``: a trained :class:`~pdeinv.surrogates.Surrogate` (``m -> u``);
    ``observation``: a linear observation on the state grid (its ``grid`` is
    taken as the grid of ``m`` and ``u`` unless ``grid`` is given);
    ``noise``: e.g. ``GaussianNoise(relative=0.01)``.  The surrogate is put in
    eval mode and its weights are frozen (``requires_grad=False``): gradients
    flow to ``m`` only.
    """

    def __init__(self, surrogate: nn.Module, observation: nn.Module, noise: Optional[nn.Module] = None, grid=None):
        grid = grid if grid is not None else getattr(observation, "grid", None)
        if grid is None:
            raise ValueError("SurrogateForward needs a grid: pass grid= or an observation built on a grid")
        surrogate.eval()
        for p in surrogate.parameters():
            p.requires_grad_(False)
        super().__init__(_GridHolder(surrogate, grid), observation, noise)

    @property
    def surrogate(self) -> nn.Module:
        return self.problem.surrogate

    def solve(self, m: torch.Tensor) -> torch.Tensor:
        """State ``u = G_theta(m)`` in ``m``'s dtype and device."""
        sur = self.surrogate
        p = next(sur.parameters(), None)
        if p is not None and p.device != m.device:
            raise ValueError(f"m is on {m.device} but the surrogate is on {p.device}; move one of them "
                             f"(surrogate.to(m.device))")
        return self.problem(m).to(m.dtype)
