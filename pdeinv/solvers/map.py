r"""Maximum a posteriori estimation by adjoint/autograd gradients and L-BFGS.

.. math::  \hat m = \arg\min_m \; \tfrac12\big\|(\mathcal{O}\mathcal{F}(m) - y)/s\big\|^2
           \;-\; w\,\log p_{\text{prior}}(m),

with ``s`` the observation-noise standard deviation of ``fwd`` (unit weights
for exact data) and ``w`` the prior ``weight`` (``w = 1`` is the Bayesian MAP for
a calibrated prior such as a GRF).  An optional reparametrisation keeps the
unknown physical:

* ``positive=True``: :math:`m = e^z`;
* ``bounds=(lo, hi)``: :math:`m = lo + (hi-lo)\,\sigma(z)` (sigmoid) -- with a TV
  prior this is the classical recipe for the binary Darcy coefficient.

The optimisation runs in ``z``; the prior acts on ``m``.  Samples of a batch are
independent problems; their objectives are summed, so one L-BFGS run solves
them together (each sample's gradient only depends on its own ``z``).
"""
from __future__ import annotations

import logging
import math
import time
from typing import Optional, Tuple

import torch

from pdeinv.priors import H1Prior, TotalVariation, grf_prior
from pdeinv.solvers.base import InverseResult, InverseSolver

log = logging.getLogger(__name__)


def make_prior(prior, grid):
    """Turn ``None | "tv" | "h1" | "grf" | object with log_prob`` into a prior object (or None)."""
    if prior is None or (isinstance(prior, str) and prior == "none"):
        return None
    if isinstance(prior, str):
        if prior == "tv":
            return TotalVariation(grid)
        if prior == "h1":
            return H1Prior(grid)
        if prior == "grf":
            return grf_prior(grid)
        raise ValueError(f"unknown prior {prior!r}; expected None, 'tv', 'h1', 'grf' or an object with log_prob(m)")
    if not hasattr(prior, "log_prob"):
        raise TypeError(f"a prior must have log_prob(m); got {type(prior).__name__}")
    return prior


class Parametrisation:
    """``m = T(z)``: identity, ``exp`` (positive) or scaled sigmoid (bounds)."""

    def __init__(self, bounds: Optional[Tuple[float, float]] = None, positive: bool = False):
        if bounds is not None:
            lo, hi = map(float, bounds)
            if not hi > lo:
                raise ValueError(f"bounds must satisfy lo < hi; got {bounds}")
            self.kind, self.lo, self.hi = "bounds", lo, hi
        elif positive:
            self.kind = "positive"
        else:
            self.kind = "identity"

    def __call__(self, z):
        if self.kind == "bounds":
            return self.lo + (self.hi - self.lo) * torch.sigmoid(z)
        if self.kind == "positive":
            return torch.exp(z)
        return z

    def inverse(self, m):
        if self.kind == "bounds":
            t = ((m - self.lo) / (self.hi - self.lo)).clamp(1e-6, 1 - 1e-6)
            return torch.log(t) - torch.log1p(-t)
        if self.kind == "positive":
            if not bool((m > 0).all()):
                raise ValueError("initial guess m0 must be positive for positive=True")
            return torch.log(m)
        return m

    def default_m0(self, shape, dtype, device):
        if self.kind == "bounds":
            return torch.full(shape, 0.5 * (self.lo + self.hi), dtype=dtype, device=device)
        if self.kind == "positive":
            return torch.ones(shape, dtype=dtype, device=device)
        return torch.zeros(shape, dtype=dtype, device=device)


class MAP(InverseSolver):
    r"""MAP point estimate with L-BFGS (strong Wolfe line search).

    Parameters
    ----------
    prior : ``None``, ``"tv"`` (smoothed total variation), ``"h1"``, ``"grf"``
        (GRF of the BENCHMARKS law on the unknown's grid), or any object with
        ``log_prob(m) -> (B,)`` (e.g. ``pdeinv.priors.LawPrior``, a GRF law at any resolution).
    weight : prior weight ``w`` (a regularisation parameter for TV/H1; keep 1 for a GRF).
    bounds, positive : reparametrisation (see module docstring).
    m0 : initial guess ``(B|1, C, *grid)``; default: mid-range / 1 / 0.
    max_iter : L-BFGS iterations; ``tol``: stop when the relative change of the
        objective over an iteration falls below it.
    channels : number of channels of ``m`` (default 1).
    verbose : progress bar over iterations.
    """

    name = "map"

    def __init__(self, prior=None, weight: float = 1.0, bounds: Optional[Tuple[float, float]] = None,
                 positive: bool = False, m0: Optional[torch.Tensor] = None, max_iter: int = 200,
                 tol: float = 1e-9, history_size: int = 20, channels: int = 1, verbose: bool = False):
        if max_iter < 1:
            raise ValueError(f"max_iter must be >= 1, got {max_iter}")
        if not weight >= 0:
            raise ValueError(f"prior weight must be >= 0, got {weight}")
        self.prior, self.weight = prior, float(weight)
        self.param = Parametrisation(bounds, positive)
        self.bounds, self.positive = bounds, positive
        self.m0, self.max_iter, self.tol = m0, int(max_iter), float(tol)
        self.history_size, self.channels, self.verbose = int(history_size), int(channels), verbose

    def objective(self, m: torch.Tensor, y: torch.Tensor, fwd, prior) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(total, misfit, prior_term)``, each summed over the batch."""
        misfit = fwd.misfit(m, y).sum()
        reg = -self.weight * prior.log_prob(m).sum() if prior is not None and self.weight > 0 else m.new_zeros(())
        return misfit + reg, misfit, reg

    def solve(self, y: torch.Tensor, fwd, *, seed: Optional[int] = None, m0: Optional[torch.Tensor] = None,
              **kwargs) -> InverseResult:
        grid = fwd.grid
        prior = make_prior(self.prior, grid)
        if hasattr(prior, "to"):
            prior = prior.to(y.device)
        B = y.shape[0]
        dtype = y.dtype if y.is_floating_point() else torch.float64
        shape = (B, self.channels, *grid.shape)
        m0 = m0 if m0 is not None else self.m0
        if m0 is None:
            m0 = self.param.default_m0(shape, dtype, y.device)
        else:
            m0 = torch.as_tensor(m0, dtype=dtype, device=y.device).expand(shape)
            grid.check(m0, "m0")
        z = self.param.inverse(m0.detach().clone()).requires_grad_(True)
        with torch.no_grad():  # scale the objective to O(1) so that L-BFGS tolerances are relative
            scale = 1.0 / max(float(self.objective(self.param(z), y, fwd, prior)[0]), 1e-30)
        opt = torch.optim.LBFGS([z], lr=1.0, max_iter=self.max_iter, max_eval=int(1.5 * self.max_iter) + 10,
                                history_size=self.history_size, line_search_fn="strong_wolfe",
                                tolerance_grad=1e-10, tolerance_change=self.tol)
        history = {"loss": [], "misfit": [], "prior": [], "time": []}
        t0 = time.perf_counter()
        bar = None
        if self.verbose:
            from tqdm.auto import tqdm
            bar = tqdm(total=self.max_iter, desc="MAP", leave=False)

        def closure():
            opt.zero_grad()
            m = self.param(z)
            total, mis, reg = self.objective(m, y, fwd, prior)
            (total * scale).backward()
            cur = float(total.detach())
            if not math.isfinite(cur):
                raise RuntimeError(f"MAP objective became {cur} after {len(history['loss'])} evaluations; "
                                   "check the data scale, the noise level and the prior weight")
            history["loss"].append(cur); history["misfit"].append(float(mis.detach()))
            history["prior"].append(float(reg.detach())); history["time"].append(time.perf_counter() - t0)
            if bar is not None:
                bar.update(1); bar.set_postfix(loss=f"{cur:.4g}")
            return total * scale

        opt.step(closure)
        if bar is not None:
            bar.close()
        n_iter = int(opt.state[opt._params[0]].get("n_iter", 0))
        state = {"total": history["loss"][-1], "misfit": history["misfit"][-1]}
        with torch.no_grad():
            m = self.param(z.detach())
            u = fwd.solve(m)
        wall = time.perf_counter() - t0
        log.info("MAP: %d iterations, objective %.4g (misfit %.4g), %.2f s", n_iter, state["total"],
                 state["misfit"], wall)
        info = {"method": "map", "prior": self.prior if isinstance(self.prior, (str, type(None))) else type(self.prior).__name__,
                "weight": self.weight, "bounds": self.bounds, "positive": self.positive, "iterations": n_iter,
                "wall_time": wall}
        return InverseResult(m=m, u=u, history=history, info=info, grid=grid)
