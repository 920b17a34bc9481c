r"""Forward models: PDE problem (or surrogate) + observation + noise.

.. math::  y = \mathcal{O}(\mathcal{F}(m)) + e, \qquad e \sim N(0, s^2 I)

``fwd.solve(m)`` gives the state ``u = F(m)``, ``fwd.A(m)`` the noise-free
observations, ``fwd(m, seed=...)`` noisy ones, and ``fwd.misfit(m, y)`` the
negative log-likelihood :math:`\tfrac12\|(\mathcal{O}\mathcal{F}(m) - y)/s\|^2`
per sample.  Every solver takes a ``ForwardModel``; a surrogate forward model
(``pdeinv.surrogates.SurrogateForward``) has the same interface.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from pdeinv._validation import check_finite
from pdeinv.physics.noise import weighting_noise


def _same_grid(a, b) -> bool:
    return a is b or (a is not None and b is not None and a.to_dict() == b.to_dict())


class ForwardModel(nn.Module):
    """``ForwardModel(problem, observation, noise=None)``.

    ``problem``: an ``nn.Module`` with ``problem(m) -> u`` and a ``grid``
    (the grid of ``m``; a ``state_grid`` attribute, if present, is the grid of
    ``u``).  ``observation``: a linear ``Observation`` on the state grid.
    ``noise``: e.g. ``GaussianNoise(relative=0.01)``; ``None`` (or a zero noise
    level) means exact data: ``fwd(m)`` adds no noise, and the misfit weights the data
    as 1 % relative noise (``pdeinv.physics.noise.DEFAULT_RELATIVE_NOISE``), which
    ``noise_assumed`` states and solvers record in ``result.info["noise_assumed"]``.
    """

    def __init__(self, problem: nn.Module, observation: nn.Module, noise: Optional[nn.Module] = None):
        super().__init__()
        self.problem, self.observation, self.noise = problem, observation, noise
        sg = self.state_grid
        og = getattr(observation, "grid", None)
        if sg is not None and og is not None and not _same_grid(sg, og):
            raise ValueError(
                f"grid mismatch: the observation was built on {og.to_dict()} but the problem's state lives on "
                f"{sg.to_dict()}; build the observation on the problem's grid"
            )

    @property
    def grid(self):
        """Grid of the unknown ``m``."""
        return getattr(self.problem, "grid", None)

    @property
    def state_grid(self):
        """Grid of the state ``u``."""
        return getattr(self.problem, "state_grid", None) or self.grid

    def check_unknown(self, m: torch.Tensor, name: str = "m") -> torch.Tensor:
        """Raise a clear error unless ``m`` is a real floating-point ``(B, C, *grid)`` tensor on this
        model's grid (``TypeError`` for the wrong kind of values, ``ValueError`` for the wrong shape)."""
        grid = self.grid
        shape = tuple(grid.shape) if grid is not None else None
        expected = f"(B, C, {', '.join(map(str, shape))})" if shape is not None else "(B, C, *grid)"
        if not torch.is_tensor(m):
            raise TypeError(f"{name} must be a torch.Tensor of shape {expected}; got {type(m).__name__}")
        if m.is_complex() or not m.is_floating_point():
            raise TypeError(f"{name} has dtype {m.dtype}; expected real floating-point values (float64 for "
                            f"classical solves, float32 for networks) of shape {expected}")
        if shape is not None and (m.dim() != 2 + len(shape) or tuple(m.shape[2:]) != shape):
            raise ValueError(f"{name} has shape {tuple(m.shape)}; expected {expected} on this forward model's grid")
        return m

    def solve(self, m: torch.Tensor) -> torch.Tensor:
        """State ``u = F(m)``."""
        self.check_unknown(m)
        return self.problem(m)

    def A(self, m: torch.Tensor) -> torch.Tensor:
        """Noise-free observations ``O(F(m))``."""
        return self.observation(self.solve(m))

    def forward(self, m: torch.Tensor, seed: Optional[int] = None,
                generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Noisy observations (noise-free if the model has no noise)."""
        y = self.A(m)
        if self.noise is None:
            return y
        return self.noise(y, seed=seed, generator=generator)

    @property
    def noise_assumed(self) -> Optional[str]:
        """Why the misfit weights are an assumption (exact data, see :mod:`pdeinv.physics.noise`), or None."""
        return weighting_noise(self.noise)[1]

    def noise_std(self, y: torch.Tensor) -> torch.Tensor:
        """Per-sample noise std broadcastable to ``y``: the noise model's, or for exact data (no noise model,
        or a zero level) 1 % of the RMS of ``y`` (ones where ``y`` is all zeros)."""
        s = weighting_noise(self.noise)[0].std(y)
        return torch.where(s > 0, s, torch.ones_like(s))

    def check_observations(self, y: torch.Tensor) -> torch.Tensor:
        """Raise a clear error if ``y`` does not fit this model's observation operator."""
        if not torch.is_tensor(y):
            raise TypeError(f"observations y must be a torch.Tensor (B, C, P); got {type(y).__name__}")
        if y.is_complex() or not y.is_floating_point():
            raise TypeError(f"observations y have dtype {y.dtype}; expected real floating-point values "
                            "(e.g. y.double())")
        if y.dim() < 2:
            raise ValueError(f"observations y have shape {tuple(y.shape)}; expected a batch (B, C, P) as fwd(m) "
                             f"returns it (one set of P values: y.reshape(1, 1, -1))")
        check_finite(y, "observations y")
        n_obs = getattr(self.observation, "n_obs", None)
        if n_obs is not None and y.shape[-1] != n_obs:
            raise ValueError(f"observations y have {y.shape[-1]} values in the last axis; the observation "
                             f"operator produces {n_obs} (shape {tuple(y.shape)})")
        return y

    def misfit(self, m: torch.Tensor, y: torch.Tensor, u: Optional[torch.Tensor] = None) -> torch.Tensor:
        r"""Per-sample data misfit :math:`\tfrac12\|(\mathcal{O}\mathcal{F}(m) - y)/s\|^2`, shape ``(B,)``.

        Pass ``u`` (already computed state) to skip the solve.
        """
        pred = self.observation(u) if u is not None else self.A(m)
        r = (pred - y) / self.noise_std(y)
        return 0.5 * r.pow(2).flatten(1).sum(1)


class Identity(nn.Module):
    """The problem ``problem(m) = m`` on ``grid``: forward mode's map, where the data are sparse values
    of ``m`` itself (``ForwardModel(Identity(grid), obs, noise)``); linear, so exact Gaussian solvers take it."""

    def __init__(self, grid):
        super().__init__()
        self.grid = grid

    def forward(self, m: torch.Tensor) -> torch.Tensor:
        return m
