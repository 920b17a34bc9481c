r"""Surrogate-accelerated MAP: optimise through a trained neural operator, then refine.

Stage 1 solves

.. math::  \hat m_{\text{sur}} = \arg\min_m \tfrac12\|(\mathcal{O}G_\theta(m) - y)/s\|^2 - w \log p(m)

with the surrogate :math:`G_\theta` in place of the PDE solve (one network
evaluation + one backward pass per L-BFGS evaluation, instead of a forward and
an adjoint PDE solve).  Stage 2 (``refine_iter > 0``) continues from
:math:`\hat m_{\text{sur}}` with a few L-BFGS iterations on the true simulator,
which removes the surrogate's model error from the estimate at a fraction of
the cost of a full simulator-based MAP.

With ``bounds`` (``m = lo + (hi - lo) sigmoid(x)``) the stage-1 estimate is pulled into
``[lo + r (hi - lo), hi - r (hi - lo)]`` (``refine_margin`` r, default 0.15) before the
refinement: a surrogate that is wrong drives pixels to the bounds, where the sigmoid's
derivative vanishes and the simulator's gradient cannot move them back (measured on
Darcy 16², 30 % points: from a 60 %-error FNO the refinement stalled at misfit 3,500 with
no margin and reached the simulator MAP's error, 13 %, with r = 0.15).

**Defect correction** (``corrections=K``, between the two stages): the surrogate's error at the current
estimate is measured by one simulator solve, :math:`d = \mathcal{O}F(\hat m) - \mathcal{O}G_\theta(\hat m)`,
and stage 1 is re-solved (``correction_iter`` L-BFGS iterations, warm) with the corrected surrogate
:math:`G_\theta + d`, i.e. against the data :math:`y - d`.  A fixed point satisfies
:math:`J_G^T(\mathcal{O}F(m) - y)/s^2 = w\nabla\log p(m)`: the simulator's residual with the
surrogate's Jacobian, so the surrogate's *bias* leaves the estimate and only its Jacobian error stays
(the classic first-order multi-fidelity correction).  Each correction costs one simulator solve and no
adjoint; the data and their noise weights stay the original ones (the offset is added to the
surrogate's predicted observations).

Both stages are :class:`pdeinv.solvers.MAP`; ``fwd`` is the *true* forward
model (simulator + observation + noise): the surrogate forward model is built
from its observation and noise.
"""
from __future__ import annotations

import time
from typing import Optional, Tuple

import torch

from pdeinv.solvers.base import InverseResult, InverseSolver
from pdeinv.solvers.map import MAP


class _Offset(torch.nn.Module):
    """An observation operator plus a fixed offset ``d`` (the defect of the surrogate)."""

    def __init__(self, observation, d):
        super().__init__()
        self.observation, self.d = observation, d

    def forward(self, u):
        return self.observation(u) + self.d.to(u.dtype)


class SurrogateMAP(InverseSolver):
    """``SurrogateMAP(surrogate, prior=None, weight=1.0, bounds=None, positive=False, max_iter=200, refine_iter=0)``.

    ``surrogate``: a trained forward surrogate ``m -> u`` (or a path to its
    checkpoint).  ``max_iter``: L-BFGS iterations through the surrogate;
    ``refine_iter``: L-BFGS iterations on the simulator afterwards (0 = none);
    ``refine_margin``: with ``bounds``, the fraction of the range the stage-1 estimate is
    pulled away from each bound before the refinement (see the module docstring).
    The other arguments (``method`` ``"lbfgs"``/``"newton-cg"``, ``gtol``, ...) are :class:`MAP`'s, used by
    every stage.  ``result.info`` holds the wall
    time of each stage; ``result.history`` concatenates both stages, with
    ``history["stage"]`` = 0 (surrogate) or 1 (simulator) per evaluation;
    ``result.m_surrogate`` is the stage-1 (surrogate-only) estimate.  ``corrections`` defect
    corrections of ``correction_iter`` surrogate iterations each run between the stages (module
    docstring); ``info["corrections"]`` records the misfit of each corrected estimate on the simulator.
    """

    name = "surrogate-map"

    def __init__(self, surrogate, prior=None, weight: float = 1.0, bounds: Optional[Tuple[float, float]] = None,
                 positive: bool = False, max_iter: int = 200, refine_iter: int = 0, tol: float = 1e-9,
                 verbose: bool = False, refine_margin: float = 0.15, corrections: int = 0,
                 correction_iter: int = 30, method: str = "lbfgs", gtol: float = 1e-6):
        if isinstance(surrogate, (str, bytes)) or hasattr(surrogate, "__fspath__"):
            from pdeinv.surrogates import load
            surrogate = load(surrogate)
        if int(refine_iter) < 0:
            raise ValueError(f"refine_iter must be >= 0; got {refine_iter}")
        if not 0.0 <= float(refine_margin) < 0.5:
            raise ValueError(f"refine_margin must be in [0, 0.5); got {refine_margin}")
        if int(corrections) < 0 or int(correction_iter) < 1:
            raise ValueError(f"need corrections >= 0 and correction_iter >= 1; got {corrections}, {correction_iter}")
        self.corrections, self.correction_iter = int(corrections), int(correction_iter)
        self.refine_margin = float(refine_margin)
        self.surrogate = surrogate
        self.map_args = dict(prior=prior, weight=weight, bounds=bounds, positive=positive, tol=tol, verbose=verbose,
                             method=method, gtol=gtol)
        self.max_iter, self.refine_iter = int(max_iter), int(refine_iter)

    def solve(self, y: torch.Tensor, fwd, *, seed: Optional[int] = None, m0: Optional[torch.Tensor] = None,
              **kwargs) -> InverseResult:
        from pdeinv.surrogates.forward import SurrogateForward

        p = next(self.surrogate.parameters(), None)
        if p is not None and p.device != y.device:
            self.surrogate.to(y.device)
        sfwd = SurrogateForward(self.surrogate, fwd.observation, fwd.noise, grid=fwd.grid)
        t0 = time.perf_counter()
        r1 = MAP(max_iter=self.max_iter, **self.map_args)(y, sfwd, m0=m0)
        t1 = time.perf_counter()
        history = {k: list(v) for k, v in r1.history.items()}
        history["stage"] = [0] * len(r1.history.get("loss", []))
        info = {"method": self.name, "surrogate": type(self.surrogate).__name__,
                "surrogate_iterations": r1.info.get("iterations"), "surrogate_seconds": t1 - t0,
                "refine_iterations": 0, "refine_seconds": 0.0}
        m, u = r1.m, None
        info["corrections"] = []
        for _ in range(self.corrections):
            with torch.no_grad():
                u_true = fwd.solve(m)
                d = fwd.observation(u_true) - sfwd.A(m)
                misfit = float(fwd.misfit(m, y, u=u_true).mean())
            cfwd = SurrogateForward(self.surrogate, _Offset(fwd.observation, d), fwd.noise, grid=fwd.grid)
            rk = MAP(max_iter=self.correction_iter, **self.map_args)(y, cfwd, m0=m)
            for k, v in rk.history.items():
                history.setdefault(k, []).extend(v)
            history["stage"].extend([0] * len(rk.history.get("loss", [])))
            info["corrections"].append({"misfit_before": misfit, "defect_rms": float(d.pow(2).mean().sqrt()),
                                        "iterations": rk.info.get("iterations")})
            m = rk.m
        info["correction_seconds"] = time.perf_counter() - t1
        t1 = time.perf_counter()
        if self.refine_iter > 0:
            m0 = m
            bounds = self.map_args.get("bounds")
            if bounds is not None:       # off the flat ends of the sigmoid, where no gradient can move a pixel
                lo, hi = map(float, bounds)
                r = self.refine_margin * (hi - lo)
                m0 = m0.clamp(lo + r, hi - r)
            r2 = MAP(max_iter=self.refine_iter, **self.map_args)(y, fwd, m0=m0)
            for k, v in r2.history.items():
                history.setdefault(k, []).extend(v)
            history["stage"].extend([1] * len(r2.history.get("loss", [])))
            m, u = r2.m, r2.u
            info.update(refine_iterations=r2.info.get("iterations"), refine_seconds=time.perf_counter() - t1)
        else:
            with torch.no_grad():
                u = fwd.solve(m)      # the simulator's state of the surrogate estimate
        info["wall_time"] = time.perf_counter() - t0
        result = InverseResult(m=m, u=u, history=history, info=info, grid=fwd.grid)
        result.m_surrogate = r1.m     # the stage-1 estimate, for comparison
        return result
