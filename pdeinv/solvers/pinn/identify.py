r"""The published PINN recipe for identifying Burgers' coefficients from scattered data.

Raissi, Perdikaris & Karniadakis (J. Comput. Phys. 378, 2019, sec. 4.1.1;
``maziarraissi/PINNs``, ``appendix/continuous_time_identification (Burgers)/Burgers.py``)
identify :math:`\lambda_1, \lambda_2` in

.. math::  f := u_t + \lambda_1\,u\,u_x - \lambda_2\,u_{xx} = 0

from :math:`N_u` scattered values :math:`u_j = u(x_j, t_j)` by minimising

.. math::
   L(\theta, \lambda_1, \log\lambda_2) = \frac{1}{N_u}\sum_j \big(u_\theta(x_j, t_j) - u_j\big)^2
      + \frac{1}{N_f}\sum_i f_\theta(x_i, t_i)^2
      \;\big[ + \frac{w_b}{N_b}\sum_k \big(u_\theta(x_k, t_k) - g_k\big)^2 \big]

with the residual evaluated **at the data points** (:math:`x_i = x_j`; optional extra
collocation points), :math:`u_\theta` a fully connected tanh network of 9 hidden layers x 20
neurons (Xavier/Glorot truncated-normal weights, zero biases) on inputs mapped affinely to
:math:`[-1, 1]^2`, :math:`\lambda_2 = e^{\vartheta}` (initial :math:`\lambda_1 = 0`,
:math:`\vartheta = -6`), and SciPy's L-BFGS-B (``maxcor = maxls = 50``) run until its
``ftol``/``gtol`` tests stop it (the original caps at 50 000 iterations as a safeguard).  The
TF1 code runs in float32; pdeinv runs float64 by default (torch's default dtype is untouched:
every tensor is created with an explicit dtype).  The optional soft Dirichlet term
(:math:`u(\pm 1, t) = g`) is off by default, as in the paper, where the data alone suffice.

:func:`identify_burgers` takes the arrays ``x, t, u`` (metres/seconds/any unit of ``u``;
shapes ``(N,)``); :func:`points_from_observation` turns a
``SpaceTimePointObservation`` and its data ``y`` into those arrays.  ``nu`` is
:math:`\lambda_2/\lambda_1`-free: the identified viscosity is :math:`\lambda_2` (with
``identify_lambda1=False`` :math:`\lambda_1 \equiv 1`).
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Dict, Optional, Sequence

import numpy as np
import torch

from pdeinv._validation import check_finite

log = logging.getLogger(__name__)

#: the published recipe (Raissi et al. 2019, continuous-time identification of Burgers)
RAISSI_BURGERS = dict(layers=(20,) * 9, activation="tanh", lambda1_0=0.0, log_nu0=-6.0, adam_iters=0,
                      maxiter=50000, maxcor=50, maxls=50, residual_at_data=True, n_collocation=0)


@dataclass
class BurgersIdentification:
    """Result of :func:`identify_burgers`: the identified coefficients and the fit's record."""

    nu: float                      # identified lambda_2 (viscosity, units of x^2 / t)
    lambda1: float                 # identified convection coefficient (1 for Burgers)
    loss: float                    # final loss
    n_iter: int                    # L-BFGS-B iterations
    n_fev: int                     # loss/gradient evaluations (Adam steps excluded)
    wall_time: float               # seconds (Adam + L-BFGS-B)
    message: str                   # L-BFGS-B's stopping reason
    history: Dict[str, list] = field(default_factory=dict)   # per iteration: loss, nu, lambda1
    model: Optional[torch.nn.Module] = None                  # the trained network u(x, t)


class _MLP(torch.nn.Module):
    """tanh MLP on inputs scaled to [-1, 1]: ``u(X)`` with ``X = (x, t)`` of shape ``(N, 2)``."""

    def __init__(self, layers, lb, ub, dtype, activation="tanh"):
        super().__init__()
        acts = {"tanh": torch.tanh, "sin": torch.sin}
        if activation not in acts:
            raise ValueError(f"activation must be one of {sorted(acts)}; got {activation!r}")
        self.act = acts[activation]
        widths = [2] + [int(w) for w in layers] + [1]
        self.lins = torch.nn.ModuleList()
        for a, b in zip(widths[:-1], widths[1:]):
            lin = torch.nn.Linear(a, b, dtype=dtype)
            std = math.sqrt(2.0 / (a + b))                   # Xavier, truncated at 2 std as tf.truncated_normal
            torch.nn.init.trunc_normal_(lin.weight, std=std, a=-2 * std, b=2 * std)
            torch.nn.init.zeros_(lin.bias)
            self.lins.append(lin)
        self.register_buffer("lb", torch.as_tensor(lb, dtype=dtype))
        self.register_buffer("ub", torch.as_tensor(ub, dtype=dtype))

    def forward(self, X):
        h = 2.0 * (X - self.lb) / (self.ub - self.lb) - 1.0
        for lin in self.lins[:-1]:
            h = self.act(lin(h))
        return self.lins[-1](h)


def _as_column(a, name, dtype):
    a = torch.as_tensor(np.asarray(a, dtype=np.float64)).reshape(-1).to(dtype)
    check_finite(a, name)
    return a


def burgers_residual(net, x, t, lambda1, nu):
    r"""``(u, f)`` at the points: :math:`f = u_t + \lambda_1 u u_x - \nu u_{xx}` (autograd; shapes ``(N,)``)."""
    x = x.detach().requires_grad_(True)
    t = t.detach().requires_grad_(True)
    u = net(torch.stack([x, t], 1))[:, 0]
    u_x, u_t = torch.autograd.grad(u.sum(), (x, t), create_graph=True)
    u_xx, = torch.autograd.grad(u_x.sum(), x, create_graph=True)
    return u, u_t + lambda1 * u * u_x - nu * u_xx


def identify_burgers(x, t, u, *, layers: Sequence[int] = RAISSI_BURGERS["layers"], activation: str = "tanh",
                     dtype: torch.dtype = torch.float64, domain=None, nu0: Optional[float] = None,
                     lambda1_0: float = 0.0, identify_lambda1: bool = True, nu_param: str = "log",
                     adam_iters: int = 0, lr: float = 1e-3, maxiter: int = 50000, ftol: float = 1e-13,
                     gtol: float = 1e-9, maxcor: int = 50, maxls: int = 50, residual_at_data: bool = True,
                     n_collocation: int = 0, dirichlet: Optional[float] = None, n_boundary: int = 100,
                     bc_weight: float = 1.0, seed: int = 0, time_limit: Optional[float] = None,
                     log_every: int = 100) -> BurgersIdentification:
    r"""Identify :math:`\nu` (and :math:`\lambda_1`) of Burgers from scattered ``(x, t, u)`` (module doc).

    Parameters
    ----------
    x, t, u : arrays ``(N,)``: positions, times and observed values (noisy or not).
    layers, activation : hidden widths (default 9 x 20, tanh: the published network).
    dtype : float64 (default) or float32 (the TF1 original).
    domain : ``((x_lo, x_hi), (t_lo, t_hi))`` for the input scaling and the collocation/boundary
        points; default: the data's bounding box.
    nu0 : initial viscosity (default :math:`e^{-6}`, the original's); ``lambda1_0``: initial
        :math:`\lambda_1` (0 as published); ``identify_lambda1=False`` fixes :math:`\lambda_1 = 1`.
    nu_param : ``"log"`` (:math:`\nu = e^\vartheta`, published) or ``"plain"``.
    adam_iters, lr : optional Adam warm-up before L-BFGS-B (0 as published).
    maxiter, ftol, gtol, maxcor, maxls : L-BFGS-B options; it stops on the relative-decrease test
        ``ftol`` or the projected-gradient test ``gtol`` (``maxiter`` is a safeguard only).
    residual_at_data : evaluate the residual at the data points (published); ``n_collocation``:
        extra uniform random residual points in ``domain``.
    dirichlet : soft boundary value :math:`g` at both ends of ``domain[0]`` (``None``: no BC term),
        at ``n_boundary`` random times, weight ``bc_weight``.
    seed : seeds the initial weights and the random points (a local ``torch.Generator`` stream:
        the caller's global RNG state is unchanged).
    time_limit : stop L-BFGS-B after this many seconds (reported in ``message``).
    """
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"dtype must be torch.float32 or torch.float64; got {dtype}")
    if nu_param not in ("log", "plain"):
        raise ValueError(f"nu_param must be 'log' or 'plain'; got {nu_param!r}")
    if not residual_at_data and n_collocation <= 0:
        raise ValueError("no residual points: set residual_at_data=True or n_collocation > 0")
    if maxiter < 0 or adam_iters < 0 or maxiter + adam_iters == 0:
        raise ValueError(f"need maxiter >= 0, adam_iters >= 0 and at least one iteration; got {maxiter}, {adam_iters}")
    xs, ts, us = (_as_column(a, n, dtype) for a, n in ((x, "x"), (t, "t"), (u, "u")))
    if not (xs.shape == ts.shape == us.shape) or xs.numel() < 2:
        raise ValueError(f"x, t, u must have the same length >= 2; got {xs.numel()}, {ts.numel()}, {us.numel()}")
    if domain is None:
        domain = ((float(xs.min()), float(xs.max())), (float(ts.min()), float(ts.max())))
    (xa, xb), (ta, tb) = [(float(a), float(b)) for a, b in domain]
    if not (xb > xa and tb > ta):
        raise ValueError(f"domain must be ((x_lo, x_hi), (t_lo, t_hi)) with lo < hi; got {domain}")
    tol = 1e-9 * max(1.0, xb - xa, tb - ta)
    if xs.min() < xa - tol or xs.max() > xb + tol or ts.min() < ta - tol or ts.max() > tb + tol:
        raise ValueError(f"data points lie outside the domain {domain}")
    nu0 = math.exp(RAISSI_BURGERS["log_nu0"]) if nu0 is None else float(nu0)
    if not nu0 > 0:
        raise ValueError(f"nu0 must be > 0; got {nu0}")

    from scipy.optimize import minimize

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        net = _MLP(layers, [xa, ta], [xb, tb], dtype, activation)
        gen = torch.Generator().manual_seed(int(seed) + 1)
        xr, tr = ([xs], [ts]) if residual_at_data else ([], [])
        if n_collocation > 0:
            xr.append(xa + (xb - xa) * torch.rand(n_collocation, generator=gen, dtype=dtype))
            tr.append(ta + (tb - ta) * torch.rand(n_collocation, generator=gen, dtype=dtype))
        xr, tr = torch.cat(xr), torch.cat(tr)
        if dirichlet is not None:
            tb_pts = ta + (tb - ta) * torch.rand(n_boundary, generator=gen, dtype=dtype)
            xb_pts = torch.where(torch.arange(n_boundary) % 2 == 0, torch.tensor(xa, dtype=dtype),
                                 torch.tensor(xb, dtype=dtype))
            Xb = torch.stack([xb_pts, tb_pts], 1)
    lam1 = torch.tensor(1.0 if not identify_lambda1 else float(lambda1_0), dtype=dtype, requires_grad=identify_lambda1)
    th = torch.tensor(math.log(nu0) if nu_param == "log" else nu0, dtype=dtype, requires_grad=True)
    nu_of = (lambda v: torch.exp(v)) if nu_param == "log" else (lambda v: v)
    Xd = torch.stack([xs, ts], 1)
    params = list(net.parameters()) + [th] + ([lam1] if identify_lambda1 else [])

    def loss_fn():
        nu = nu_of(th)
        if residual_at_data and n_collocation <= 0:
            u_pred, f = burgers_residual(net, xs, ts, lam1, nu)
        else:
            u_pred = net(Xd)[:, 0]
            _, f = burgers_residual(net, xr, tr, lam1, nu)
        loss = (u_pred - us).pow(2).mean() + f.pow(2).mean()
        if dirichlet is not None:
            loss = loss + bc_weight * (net(Xb)[:, 0] - float(dirichlet)).pow(2).mean()
        return loss

    hist = {"iter": [], "loss": [], "nu": [], "lambda1": []}

    def record(it, loss):
        if it % max(1, log_every) == 0:
            hist["iter"].append(int(it)); hist["loss"].append(float(loss))
            hist["nu"].append(float(nu_of(th.detach()))); hist["lambda1"].append(float(lam1.detach()))

    t0 = time.perf_counter()
    if adam_iters:
        opt = torch.optim.Adam(params, lr=lr)
        for it in range(adam_iters):
            opt.zero_grad()
            loss = loss_fn()
            loss.backward()
            opt.step()
            record(it, loss.detach())
    sizes = [p.numel() for p in params]

    def set_flat(v):
        v = torch.from_numpy(v).to(dtype)
        with torch.no_grad():
            for p, c in zip(params, torch.split(v, sizes)):
                p.copy_(c.view_as(p))

    def fun(v):
        set_flat(v)
        for p in params:
            p.grad = None
        loss = loss_fn()
        grads = torch.autograd.grad(loss, params)
        g = torch.cat([gi.reshape(-1) for gi in grads]).detach().to(torch.float64).numpy()
        return float(loss.detach()), g

    state = {"it": 0, "stopped": None}

    def callback(intermediate_result):
        state["it"] += 1
        record(state["it"], intermediate_result.fun)
        if time_limit is not None and time.perf_counter() - t0 > time_limit:
            state["stopped"] = f"time limit {time_limit:g} s reached"
            raise StopIteration

    v0 = torch.cat([p.detach().reshape(-1) for p in params]).to(torch.float64).numpy()
    n_iter, n_fev, message = 0, 0, "no L-BFGS-B"
    if maxiter:
        res = minimize(fun, v0, jac=True, method="L-BFGS-B", callback=callback,
                       options=dict(maxiter=int(maxiter), maxfun=int(maxiter), maxcor=int(maxcor),
                                    maxls=int(maxls), ftol=float(ftol), gtol=float(gtol)))
        set_flat(res.x)
        n_iter, n_fev = int(res.nit), int(res.nfev)
        message = state["stopped"] or str(res.message)
    wall = time.perf_counter() - t0
    final = float(fun(torch.cat([p.detach().reshape(-1) for p in params]).to(torch.float64).numpy())[0])
    if not math.isfinite(final):
        raise RuntimeError("the PINN loss became NaN/inf; check the data scale")
    nu_hat, l1_hat = float(nu_of(th.detach())), float(lam1.detach())
    log.info("Burgers PINN: nu=%.6g lambda1=%.5f loss=%.3e, %d iterations, %.1f s (%s)", nu_hat, l1_hat,
             final, n_iter, wall, message)
    return BurgersIdentification(nu=nu_hat, lambda1=l1_hat, loss=final, n_iter=n_iter, n_fev=n_fev,
                                 wall_time=wall, message=message, history=hist, model=net)


def points_from_observation(obs, y) -> tuple:
    """``(x, t, u)`` NumPy arrays from a ``SpaceTimePointObservation`` (``spacetime_points()`` ``(P, 2)``)
    and its data ``y`` (``(P,)``, ``(1, P)`` or ``(1, 1, P)``)."""
    stp = getattr(obs, "spacetime_points", None)
    if not callable(stp):
        raise ValueError(f"{type(obs).__name__} has no spacetime_points(); pass x, t, u arrays instead")
    pts = torch.as_tensor(stp()).detach().cpu().to(torch.float64)
    if pts.dim() != 2 or pts.shape[1] != 2:
        raise ValueError(f"the Burgers PINN needs (x, t) points of shape (P, 2); got {tuple(pts.shape)}")
    yv = torch.as_tensor(y).detach().cpu().to(torch.float64).reshape(-1)
    if yv.numel() != pts.shape[0]:
        raise ValueError(f"{yv.numel()} observed values but {pts.shape[0]} space-time points (one sample only)")
    return pts[:, 0].numpy(), pts[:, 1].numpy(), yv.numpy()


def _is_burgers_identification(problem, fwd, strict: bool = False) -> bool:
    """True for a Burgers problem with ``unknown="viscosity"`` observed at scattered space-time points.

    With ``strict`` (``recipe="raissi"`` asked for explicitly) any other problem is a ValueError.
    """
    names = {c.__name__ for c in type(problem).__mro__}
    ok_problem = bool(names & {"BurgersBC", "Burgers1D", "Burgers"}) and getattr(problem, "unknown", None) == "viscosity"
    ok_obs = callable(getattr(getattr(fwd, "observation", None), "spacetime_points", None))
    if strict and not (ok_problem and ok_obs):
        raise ValueError("recipe='raissi' identifies the viscosity of a Burgers problem (unknown='viscosity') "
                         "from a SpaceTimePointObservation; got problem "
                         f"{type(problem).__name__} (unknown={getattr(problem, 'unknown', None)!r}) observed by "
                         f"{type(getattr(fwd, 'observation', None)).__name__}")
    return ok_problem and ok_obs


def _solve_raissi(solver, y: torch.Tensor, fwd, problem, seed: int):
    """``PINN.solve`` with the published recipe: one :func:`identify_burgers` fit per sample of ``y``."""
    from pdeinv.solvers.base import InverseResult

    if y.dim() < 2:
        raise ValueError(f"observations y must be (B, C, P); got shape {tuple(y.shape)}")
    grid = getattr(problem, "state_grid", None) or problem.grid
    lo = float(getattr(grid, "origin", 0.0))
    rec = [float(r) for r in (getattr(problem, "record_times", None) or [])]
    opts = dict(solver.recipe_options)
    x, t, _ = points_from_observation(fwd.observation, y[0].reshape(-1)[: fwd.observation.n_obs])
    t_hi = max(rec + [float(t.max())])
    opts.setdefault("domain", ((lo, lo + float(grid.length)), (min(0.0, float(t.min())), t_hi)))
    opts.setdefault("dtype", torch.float64)                     # the recipe runs float64 whatever solver.dtype
    if "nu" in solver.scalars:
        opts.setdefault("nu0", float(solver.scalars["nu"]))
    fits = []
    for b in range(y.shape[0]):
        x, t, u = points_from_observation(fwd.observation, y[b])
        fits.append(identify_burgers(x, t, u, seed=seed + b, **opts))
    nu = torch.tensor([f.nu for f in fits], dtype=y.dtype, device=y.device).reshape(-1, 1, 1)
    hist = fits[0].history
    scal = [{"nu": f.nu, "lambda1": f.lambda1} for f in fits]
    info = {"method": "pinn", "recipe": "raissi", "scalars": scal[0] if len(scal) == 1 else scal,
            "scalars_per_sample": scal, "wall_time": float(sum(f.wall_time for f in fits)),
            "lbfgs_iters": [f.n_iter for f in fits], "messages": [f.message for f in fits],
            "final_loss": [f.loss for f in fits], "seed": seed}
    return InverseResult(m=nu, u=None, history=hist, info=info, grid=fwd.grid)
