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

import logging

import numpy as np
import torch

log = logging.getLogger(__name__)


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
    """Base class: subclasses implement :meth:`solve` with the common signature.

    ``__call__`` checks the inputs first (``y`` real floating-point ``(B, C, P)`` fitting
    ``fwd``'s observation operator, an initial guess ``m0`` on ``fwd``'s grid, an integer ``seed``)
    with errors that say what was expected, and after the solve records in ``result.info``
    ``noise_assumed`` -- when ``fwd`` has no noise level, so the misfit was weighted by the
    exact-data rule of :mod:`pdeinv.physics.noise` (also logged as a warning) -- and
    ``model_grid`` when :func:`pdeinv.solvers.build` found the trained model on another grid.
    """

    name = "solver"

    def __call__(self, y: torch.Tensor, fwd, *, seed: Optional[int] = None, **kwargs) -> InverseResult:
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
            raise TypeError(f"seed must be an integer >= 0 or None; got {seed!r}")
        if seed is not None and seed < 0:
            raise ValueError(f"seed must be an integer >= 0 or None; got {seed}")
        if hasattr(fwd, "check_observations"):
            fwd.check_observations(y)
        elif not torch.is_tensor(y):
            raise TypeError(f"observations y must be a torch.Tensor (B, C, P); got {type(y).__name__}")
        m0 = kwargs.get("m0", getattr(self, "m0", None))
        if torch.is_tensor(m0):
            check_initial_guess(m0, fwd, y)
        assumed = getattr(fwd, "noise_assumed", None) if self.uses_noise_weights(fwd) else None
        if assumed:
            log.warning("%s: %s", type(self).__name__, assumed)
        result = self.solve(y, fwd, seed=seed, **kwargs)
        if assumed and isinstance(getattr(result, "info", None), dict):
            result.info.setdefault("noise_assumed", assumed)
        note = getattr(self, "model_grid", None)
        if note and isinstance(getattr(result, "info", None), dict):
            result.info.setdefault("model_grid", note)
        return result

    def uses_noise_weights(self, fwd) -> bool:
        """Whether this solver weights its data misfit by ``fwd.noise_std`` (so that the exact-data rule
        applies to it): True unless the solver says otherwise."""
        return True

    def solve(self, y: torch.Tensor, fwd, *, seed: Optional[int] = None, **kwargs) -> InverseResult:  # pragma: no cover
        raise NotImplementedError


def check_initial_guess(m0: torch.Tensor, fwd, y: torch.Tensor) -> None:
    """Raise a clear error unless ``m0`` is a real floating-point ``(1 or B, C, *grid)`` tensor on ``fwd``'s grid."""
    grid = getattr(fwd, "grid", None)
    shape = tuple(grid.shape) if grid is not None else None
    B = y.shape[0] if torch.is_tensor(y) and y.dim() else 1
    expected = f"(1 or {B}, C, {', '.join(map(str, shape))})" if shape is not None else "(1 or B, C, *grid)"
    if m0.is_complex() or not m0.is_floating_point():
        raise TypeError(f"the initial guess m0 has dtype {m0.dtype}; expected real floating-point values {expected}")
    if shape is not None and (m0.dim() != 2 + len(shape) or tuple(m0.shape[2:]) != shape):
        raise ValueError(f"the initial guess m0 has shape {tuple(m0.shape)}; expected {expected} on the forward "
                         "model's grid (or a number)")
    if m0.shape[0] not in (1, B):
        raise ValueError(f"the initial guess m0 has {m0.shape[0]} samples for {B} sets of observations; expected "
                         f"{expected}")
    if not bool(torch.isfinite(m0).all()):
        raise ValueError("the initial guess m0 contains NaN/inf values; expected finite numbers")


def history_to_numpy(history: Dict[str, List[float]]) -> Dict[str, np.ndarray]:
    return {k: np.asarray(v, dtype=float) for k, v in history.items()}
