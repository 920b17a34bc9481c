r"""Maximum a posteriori estimation by adjoint/autograd gradients: L-BFGS or inexact Newton--CG.

.. math::  \hat m = \arg\min_m \; \tfrac12\big\|(\mathcal{O}\mathcal{F}(m) - y)/s\big\|^2
           \;-\; w\,\log p_{\text{prior}}(m),

with ``s`` the observation-noise standard deviation of ``fwd`` (unit weights for exact data) and ``w`` the
prior ``weight`` (``w = 1`` is the Bayesian MAP for a calibrated prior such as a GRF).

Coordinates.  The optimisation runs in a variable ``x`` with ``m = T(x)``:

* **whitened** (default for a Gaussian random-field prior -- ``"grf"``, ``GaussianRandomField``,
  ``LawPrior`` -- without ``bounds``): :math:`m = \mu + C^{1/2} z` (or :math:`m = \exp(\mu + C^{1/2} z)` for a
  ``LawPrior(transform="log")``), prior term :math:`\tfrac{w}{2}\|z\|^2`.  The Hessian is then
  :math:`wI` + a data term of rank at most the number of observations, the conditioning that makes
  L-BFGS and CG converge in few iterations (the raw coordinates carry the prior's condition number,
  :math:`(\mu_{\max}+\tau^2)^\alpha/\tau^{2\alpha}`, about :math:`10^{8}` at 64² for the benchmark law);
* otherwise ``positive=True``: :math:`m = e^x`; ``bounds=(lo, hi)``: :math:`m = lo + (hi-lo)\,\sigma(x)`;
  or the identity, with the prior acting on ``m``.

Optimisers (``method``): ``"lbfgs"`` (two-loop L-BFGS, strong-Wolfe line search) and ``"newton-cg"``
(inexact Gauss--Newton--Krylov: CG on :math:`(\partial m/\partial x)^T J^T\Gamma^{-1}J(\partial m/\partial x) +
\nabla^2_x R` with Eisenstat--Walker forcing (choice 2) and Armijo backtracking; Jacobian products from
:class:`pdeinv.solvers.lowrank.Linearization`).  Both stop when
:math:`\|\nabla_x J\| \le \mathrm{gtol}\,\|\nabla_x J(x_0)\|` (``converged``), at ``max_iter``, or when the
objective stalls (relative change below ``tol``: ``converged`` stays False).  Each problem of a batch is
solved on its own, so it gets exactly the answer it would get alone.
"""
from __future__ import annotations

import logging
import math
import time
from typing import Optional, Tuple

import torch

from pdeinv.priors import H1Prior, TotalVariation, grf_prior
from pdeinv.priors.gaussian import gaussian_field
from pdeinv.solvers.base import InverseResult, InverseSolver
from pdeinv.solvers.lowrank import Linearization, WhitenedCoordinates, misfit_hessian, pcg

log = logging.getLogger(__name__)

METHODS = ("lbfgs", "newton-cg")


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

    def describe(self) -> str:
        if self.kind == "bounds":
            return f"m = {self.lo:g} + {self.hi - self.lo:g} sigmoid(x)"
        return "m = exp(x)" if self.kind == "positive" else "m = x"


class ParamCoordinates:
    """``m = param(x)`` with the prior ``-w log p(m)`` acting on ``m`` (the non-whitened coordinates)."""

    whitened = False

    def __init__(self, param: Parametrisation, prior, weight: float):
        self.param, self.prior, self.weight = param, prior, weight

    def to_m(self, x):
        return self.param(x)

    def from_m(self, m):
        return self.param.inverse(m)

    def prior_term(self, x, m):
        if self.prior is None or self.weight == 0:
            return m.new_zeros(())
        return -self.weight * self.prior.log_prob(m).sum()

    def jvp(self, x0, dx):
        if self.param.kind == "identity":
            return dx
        return torch.func.jvp(self.param, (x0.expand_as(dx).contiguous(),), (dx,))[1]

    def vjp(self, x0, dm):
        if self.param.kind == "identity":
            return dm
        X = x0.detach().expand(dm.shape[0], *x0.shape[1:]).clone().requires_grad_(True)
        with torch.enable_grad():
            return torch.autograd.grad(self.param(X), X, dm)[0]

    def prior_hvp(self, x0, v):
        if self.prior is None or self.weight == 0:
            return torch.zeros_like(v)
        X = x0.detach().clone().requires_grad_(True)
        with torch.enable_grad():
            (g,) = torch.autograd.grad(self.prior_term(X, self.param(X)), X, create_graph=True)
            out = torch.autograd.grad(g, X, v.reshape(X.shape), allow_unused=True)[0]
        return torch.zeros_like(v) if out is None else out.reshape(v.shape)

    def describe(self) -> str:
        return self.param.describe()


class WhitenedPrior(WhitenedCoordinates):
    r""":class:`WhitenedCoordinates` with MAP's prior term :math:`\tfrac{w}{2}\|z\|^2`."""

    whitened = True

    def __init__(self, field, latent=None, weight: float = 1.0):
        super().__init__(field, latent)
        self.weight = weight

    def prior_term(self, x, m):
        return 0.5 * self.weight * x.pow(2).sum()

    def prior_hvp(self, x0, v):
        return self.weight * v

    def describe(self) -> str:
        inner = "mu + C^(1/2) z"
        if self.latent is None:
            return f"m = {inner}"
        if isinstance(self.latent, Parametrisation):
            return self.latent.describe().replace("(x)", f"({inner})")
        return f"m = T({inner})"


class MAP(InverseSolver):
    r"""MAP point estimate (see the module docstring).

    Parameters
    ----------
    prior : ``None``, ``"tv"`` (smoothed total variation), ``"h1"``, ``"grf"`` (GRF of the BENCHMARKS law
        on the unknown's grid), or any object with ``log_prob(m) -> (B,)`` (e.g. ``pdeinv.priors.LawPrior``).
    weight : prior weight ``w`` (a regularisation parameter for TV/H1; keep 1 for a GRF).
    bounds, positive : reparametrisation (see module docstring).
    whiten : optimise a GRF prior in whitened coordinates (default: whenever the prior is a GRF/LawPrior and
        there are no ``bounds``; ``True`` refuses other priors, ``False`` keeps the raw coordinates).
    method : ``"lbfgs"`` or ``"newton-cg"``.
    m0 : initial guess ``(B|1, C, *grid)`` or a number; default: mid-range / 1 / 0 (the prior mean when
        whitened).
    max_iter : outer iterations (L-BFGS or Newton).  gtol : relative gradient-norm tolerance.
    tol : stop (not converged) when the objective changes by less than ``tol`` (relative) in an iteration.
    history_size : L-BFGS memory (default ``min(n_obs + 10, 200)`` in whitened coordinates, where the Hessian is
        the identity plus a term of rank <= n_obs that a long memory captures, else 20).
    cg_max_iter : CG iterations per Newton step.
    channels : number of channels of ``m`` (default 1).  verbose : progress bar over iterations.

    ``result.info``: ``converged`` (every problem reached ``gtol``), ``converged_per_sample``, ``iterations``,
    ``grad_norm`` (final :math:`\|\nabla_x J\|` in the optimisation coordinates), ``grad_norm_relative``
    (over the initial one), ``stop_reason``, ``n_evaluations``, ``coordinates``, ``whitened``, ``optimizer``
    (per-problem values are lists when ``B > 1``).  ``history``: one entry per iteration and problem
    (``loss``, ``misfit``, ``prior``, ``grad_norm``, ``time``, ``sample``).
    """

    name = "map"

    def __init__(self, prior=None, weight: float = 1.0, bounds: Optional[Tuple[float, float]] = None,
                 positive: bool = False, m0: Optional[torch.Tensor] = None, max_iter: int = 200,
                 tol: float = 1e-12, gtol: float = 1e-6, method: str = "lbfgs", whiten: Optional[bool] = None,
                 history_size: Optional[int] = None, cg_max_iter: int = 100, channels: int = 1, verbose: bool = False):
        if max_iter < 1:
            raise ValueError(f"max_iter must be >= 1, got {max_iter}")
        if not weight >= 0:
            raise ValueError(f"prior weight must be >= 0, got {weight}")
        if method not in METHODS:
            raise ValueError(f"unknown MAP method {method!r}; expected one of {METHODS}")
        if not gtol >= 0:
            raise ValueError(f"gtol must be >= 0, got {gtol}")
        self.prior, self.weight = prior, float(weight)
        self.param = Parametrisation(bounds, positive)
        self.bounds, self.positive, self.whiten, self.method = bounds, positive, whiten, method
        self.m0, self.max_iter, self.tol, self.gtol = m0, int(max_iter), float(tol), float(gtol)
        self.history_size, self.cg_max_iter = history_size, int(cg_max_iter)
        self.channels, self.verbose = int(channels), verbose

    # ------------------------------------------------------------------ coordinates
    def coordinates(self, grid, prior):
        """The optimisation coordinates for this prior on ``grid`` (see the module docstring)."""
        found = gaussian_field(prior, grid) if prior is not None else None
        log_law = found is not None and found[1] == "log"
        can = found is not None and self.param.kind == "identity" or (log_law and self.param.kind == "positive")
        whiten = can if self.whiten is None else bool(self.whiten)
        if whiten and not can:
            raise ValueError("whiten=True needs a Gaussian random-field prior (GaussianRandomField, LawPrior, 'grf') "
                             f"and no bounds; got prior {type(prior).__name__}, {self.param.describe()}")
        if whiten:
            field, transform = found
            return WhitenedPrior(field, Parametrisation(positive=True) if transform == "log" else None, self.weight)
        return ParamCoordinates(self.param, prior, self.weight)

    def objective(self, m: torch.Tensor, y: torch.Tensor, fwd,
                  prior) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(total, misfit, prior_term)`` in the raw coordinates, each summed over the batch."""
        misfit = fwd.misfit(m, y).sum()
        reg = -self.weight * prior.log_prob(m).sum() if prior is not None and self.weight > 0 else m.new_zeros(())
        return misfit + reg, misfit, reg

    # ------------------------------------------------------------------ solve
    def solve(self, y: torch.Tensor, fwd, *, seed: Optional[int] = None, m0: Optional[torch.Tensor] = None,
              coordinates=None, **kwargs) -> InverseResult:
        """``coordinates``: explicit optimisation coordinates (e.g. a :class:`WhitenedPrior` of a latent
        Gaussian field, as :class:`pdeinv.solvers.laplace.Laplace` uses); default :meth:`coordinates`."""
        grid = fwd.grid
        prior = make_prior(self.prior, grid) if coordinates is None else None
        if hasattr(prior, "to"):
            prior = prior.to(y.device)
        coords = coordinates if coordinates is not None else self.coordinates(grid, prior)
        B = y.shape[0]
        dtype = y.dtype if y.is_floating_point() else torch.float64
        shape = (B, self.channels, *grid.shape)
        m0 = m0 if m0 is not None else self.m0
        if m0 is None:
            x0 = (torch.zeros(B, *coords.z_shape(self.channels), dtype=dtype, device=y.device) if coords.whitened
                  else self.param.default_m0(shape, dtype, y.device))
            if not coords.whitened:
                x0 = coords.from_m(x0)
        else:
            m0 = torch.as_tensor(m0, dtype=dtype, device=y.device).expand(shape)
            grid.check(m0, "m0")
            x0 = coords.from_m(m0.detach().clone())
        t0 = time.perf_counter()
        history = {k: [] for k in ("loss", "misfit", "prior", "grad_norm", "time", "sample")}
        bar = None
        if self.verbose:
            from tqdm.auto import tqdm
            bar = tqdm(total=self.max_iter * B, desc="MAP", leave=False)
        runs, xs = [], []
        for b in range(B):
            problem = _Problem(coords, fwd, y[b:b + 1], self)

            def record(it, f, parts, gnorm, b=b):
                for k, v in zip(("loss", "misfit", "prior", "grad_norm", "time", "sample"),
                                (f, *parts, gnorm, time.perf_counter() - t0, b)):
                    history[k].append(float(v))
                if bar is not None:
                    bar.update(1); bar.set_postfix(loss=f"{f:.4g}")
            run = _lbfgs if self.method == "lbfgs" else _newton_cg
            x, st = run(problem, x0[b:b + 1].detach().clone(), self, record)
            st["n_evaluations"] = problem.n_eval
            xs.append(x); runs.append(st)
        if bar is not None:
            bar.close()
        with torch.no_grad():
            m = coords.to_m(torch.cat(xs))
            u = fwd.solve(m)
        wall = time.perf_counter() - t0

        def per_b(key):
            vals = [r[key] for r in runs]
            return vals[0] if B == 1 else vals
        conv = [bool(r["converged"]) for r in runs]
        info = {"method": "map", "optimizer": self.method, "whitened": coords.whitened,
                "coordinates": coords.describe(),
                "prior": self.prior if isinstance(self.prior, (str, type(None))) else type(self.prior).__name__,
                "weight": self.weight, "bounds": self.bounds, "positive": self.positive,
                "converged": all(conv), "converged_per_sample": conv, "iterations": per_b("iterations"),
                "grad_norm": per_b("grad_norm"), "grad_norm_relative": per_b("grad_norm_relative"),
                "stop_reason": per_b("stop_reason"), "gtol": self.gtol, "max_iter": self.max_iter,
                "n_evaluations": sum(r["n_evaluations"] for r in runs), "wall_time": wall}
        if self.method == "newton-cg":
            info["cg_iterations"] = per_b("cg_iterations")
        log.info("MAP (%s, %s): %s iterations, converged %s, relative gradient %s, %.2f s", self.method,
                 coords.describe(), info["iterations"], info["converged"], info["grad_norm_relative"], wall)
        result = InverseResult(m=m, u=u, history=history, info=info, grid=grid)
        result.x = torch.cat(xs)          # the optimisation variable (whitened z when info["whitened"])
        return result


class _Problem:
    """One problem's objective in the optimisation coordinates: value, gradient, Gauss--Newton Hessian."""

    def __init__(self, coords, fwd, y, solver: MAP):
        self.coords, self.fwd, self.y, self.solver, self.n_eval = coords, fwd, y, solver, 0

    def value(self, x, grad: bool = True):
        """``(f, (misfit, prior), g)`` with ``g = None`` when ``grad=False``; ``f`` a float."""
        self.n_eval += 1
        with torch.enable_grad():
            x = x.detach().requires_grad_(grad)
            m = self.coords.to_m(x)
            mis = self.fwd.misfit(m, self.y).sum()
            reg = self.coords.prior_term(x, m)
            total = mis + reg
            g = torch.autograd.grad(total, x)[0] if grad else None
        f = float(total.detach())
        if not math.isfinite(f):
            raise RuntimeError(f"MAP objective became {f} after {self.n_eval} evaluations; check the data scale, "
                               "the noise level and the prior weight")
        return f, (float(mis.detach()), float(reg.detach())), g

    def hessian(self, x):
        """Gauss--Newton Hessian at ``x`` as an operator on flat vectors."""
        m = self.coords.to_m(x.detach())
        lin = Linearization(self.fwd, m)
        inv_var = 1.0 / self.fwd.noise_std(self.y) ** 2
        H = misfit_hessian(lin, self.coords, x.detach(), inv_var)
        return lambda v: H(v[None])[0] + self.coords.prior_hvp(x.detach(), v.reshape(x.shape)).reshape(-1)


def _status(it, gnorm, g0, solver, reason=None):
    conv = gnorm <= solver.gtol * g0
    return {"iterations": it, "converged": bool(conv), "grad_norm": gnorm,
            "grad_norm_relative": gnorm / g0 if g0 > 0 else 0.0,
            "stop_reason": "gtol" if conv else (reason or "max_iter")}


def _stalled(f_old, f_new, solver):
    return abs(f_new - f_old) <= solver.tol * max(abs(f_old), 1e-300)


def _lbfgs(problem: _Problem, x: torch.Tensor, solver: MAP, record):
    """L-BFGS (two-loop recursion, strong-Wolfe line search) on the objective scaled by its initial value."""
    try:
        from torch.optim.lbfgs import _strong_wolfe
    except ImportError:  # pragma: no cover - older/newer torch
        _strong_wolfe = None
    shape = x.shape
    memory = solver.history_size or (min(problem.y[0].numel() + 10, 200) if problem.coords.whitened else 20)
    f, parts, g = problem.value(x)
    scale = 1.0 / max(abs(f), 1e-30)
    g0 = float(g.norm())
    record(0, f, parts, g0)
    xf, gf, fs = x.reshape(-1), g.reshape(-1) * scale, f * scale
    S, Y, rho, H_diag = [], [], [], 1.0
    it, reason = 0, None

    seen = {}

    def evaluate(xv, t, d):
        fv, pv, gv = problem.value((xv + t * d).reshape(shape))
        seen[float(t)] = (fv, pv)
        return fv * scale, gv.reshape(-1) * scale

    while it < solver.max_iter and not float(gf.norm()) / scale <= solver.gtol * g0:
        q = -gf.clone()
        alphas = []
        for s, yv, r in zip(reversed(S), reversed(Y), reversed(rho)):
            a = r * float(s @ q); alphas.append(a); q -= a * yv
        q *= H_diag
        for (s, yv, r), a in zip(zip(S, Y, rho), reversed(alphas)):
            q += (a - r * float(yv @ q)) * s
        d = q
        gtd = float(gf @ d)
        if not gtd < 0:      # not a descent direction: restart from steepest descent
            S, Y, rho, H_diag, d = [], [], [], 1.0, -gf
            gtd = float(gf @ d)
        t = min(1.0, 1.0 / float(gf.abs().sum())) if not S else 1.0
        seen.clear()
        if _strong_wolfe is not None:   # returns the accepted step with its value and gradient
            _, g_new, t, _ = _strong_wolfe(evaluate, xf, t, d, fs, gf, gtd, tolerance_change=1e-14)
        else:                           # Armijo backtracking
            f_new, g_new = evaluate(xf, t, d)
            while f_new > fs + 1e-4 * t * gtd and t > 1e-12:
                t *= 0.5
                f_new, g_new = evaluate(xf, t, d)
        t = float(t)
        f_new, p_new = seen.get(t, (fs / scale, parts))    # t = 0: the line search found no decrease
        s, yv = t * d, g_new - gf
        ys = float(yv @ s)
        if ys > 1e-12 * float(yv.norm() * s.norm()):   # curvature condition, scale-free
            if len(S) == memory:
                S.pop(0); Y.pop(0); rho.pop(0)
            S.append(s); Y.append(yv); rho.append(1.0 / ys); H_diag = ys / float(yv @ yv)
        it += 1
        xf, gf = xf + s, g_new
        stalled = t == 0 or _stalled(fs, f_new * scale, solver)
        fs, parts = f_new * scale, p_new
        record(it, f_new, p_new, float(gf.norm()) / scale)
        if stalled and not float(gf.norm()) / scale <= solver.gtol * g0:
            reason = "stalled"
            break
    return xf.reshape(shape), _status(it, float(gf.norm()) / scale, g0, solver, reason)


def _newton_cg(problem: _Problem, x: torch.Tensor, solver: MAP, record):
    """Inexact Gauss--Newton--CG with Eisenstat--Walker forcing (choice 2) and Armijo backtracking."""
    f, parts, g = problem.value(x)
    g0 = gnorm = float(g.norm())
    record(0, f, parts, g0)
    it, eta, cg_total, reason = 0, 0.5, 0, None
    while it < solver.max_iter and not gnorm <= solver.gtol * g0:
        H = problem.hessian(x)
        p, cg = pcg(H, -g.reshape(-1), rtol=eta, maxiter=solver.cg_max_iter)
        cg_total += cg["iterations"]
        p = p.reshape(x.shape)
        gp = float((g * p).sum())
        if not gp < 0:
            p, gp = -g, -gnorm ** 2
        t, accepted = 1.0, False
        for _ in range(30):
            f_new, p_new, _ = problem.value(x + t * p, grad=False)
            if f_new <= f + 1e-4 * t * gp:
                accepted = True
                break
            t *= 0.5
        if not accepted:
            reason = "line_search"
            break
        x = (x + t * p).detach()
        f_old, (f, parts, g) = f, problem.value(x)
        g_old, gnorm = gnorm, float(g.norm())
        it += 1
        record(it, f, parts, gnorm)
        if _stalled(f_old, f, solver) and not gnorm <= solver.gtol * g0:
            reason = "stalled"
            break
        eta_new = 0.9 * (gnorm / g_old) ** 2                 # Eisenstat & Walker (1996), choice 2
        if 0.9 * eta ** 2 > 0.1:
            eta_new = max(eta_new, 0.9 * eta ** 2)
        eta = min(0.5, max(eta_new, 0.5 * solver.gtol * g0 / max(gnorm, 1e-300)))
    st = _status(it, gnorm, g0, solver, reason)
    st["cg_iterations"] = cg_total
    return x, st
