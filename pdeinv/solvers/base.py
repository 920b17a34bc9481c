"""The calling contract shared by every inverse solver.

``solver(y, fwd, *, seed=None) -> InverseResult``: ``y`` are observations
(``(B, C, P)`` or whatever ``fwd.observation`` produces), ``fwd`` a
``ForwardModel`` or ``SurrogateForward``.  The result holds the point
estimate ``m`` (``(B, C, *grid)``), its state ``u``, optional posterior
``samples`` (``(S, B, C, *grid)``), and a ``history`` of per-iteration scalars.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

import numpy as np
import torch


@dataclass
class InverseResult:
    """Result of an inversion.

    Attributes
    ----------
    m : recovered unknown ``(B, C, *grid)`` (posterior mean for samplers).
    u : state of the recovered unknown (may be None).
    samples : posterior samples ``(S, B, C, *grid)`` or None.
    u_samples : the states of those samples (joint samplers), ``(S, B, C, *state_grid)`` or None.
    history : dict of lists (loss, misfit, prior, time ...), one entry per iteration.
    info : free-form metadata (method, settings, wall time ...).
    grid : grid of ``m`` (for coordinates when saving).
    """

    m: torch.Tensor
    u: Optional[torch.Tensor] = None
    samples: Optional[torch.Tensor] = None
    u_samples: Optional[torch.Tensor] = None
    history: Dict[str, List[float]] = field(default_factory=dict)
    info: Dict[str, Any] = field(default_factory=dict)
    grid: Any = None

    @property
    def std(self) -> Optional[torch.Tensor]:
        """Pixel-wise posterior standard deviation (None without samples)."""
        if self.samples is None or self.samples.shape[0] < 2:
            return None
        return self.samples.std(0)

    def credible_interval(self, level: float = 0.9):
        """Pixel-wise equal-tailed credible band ``(lo, hi)`` from the samples."""
        if self.samples is None:
            raise ValueError("this result holds no posterior samples")
        q = torch.tensor([(1 - level) / 2, (1 + level) / 2], dtype=self.samples.dtype, device=self.samples.device)
        lo, hi = torch.quantile(self.samples.flatten(1), q, dim=0)
        return lo.reshape(self.samples.shape[1:]), hi.reshape(self.samples.shape[1:])

    def to_xarray(self):
        """An ``xarray.Dataset`` with ``m``, ``u``, ``samples``, ``std`` and the history."""
        from pdeinv.data.io import result_to_xarray
        return result_to_xarray(self)


class InverseSolver:
    """Base class: subclasses implement :meth:`solve` with the common signature."""

    name = "solver"

    def __call__(self, y: torch.Tensor, fwd, *, seed: Optional[int] = None, **kwargs) -> InverseResult:
        if hasattr(fwd, "check_observations"):
            fwd.check_observations(y)
        return self.solve(y, fwd, seed=seed, **kwargs)

    def solve(self, y: torch.Tensor, fwd, *, seed: Optional[int] = None, **kwargs) -> InverseResult:  # pragma: no cover
        raise NotImplementedError


def history_to_numpy(history: Dict[str, List[float]]) -> Dict[str, np.ndarray]:
    return {k: np.asarray(v, dtype=float) for k, v in history.items()}
