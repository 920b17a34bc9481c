r"""Time-dependent benchmark tasks: ``ns``, ``ns_long``, ``burgers``, ``wave``.

=========  ==========================================================  ============  =======================
task       problem                                                     unknown m     state u
=========  ==========================================================  ============  =======================
ns         vorticity NS, nu = 1e-3, forcing 0.1(sin+cos)2pi(x+y), T=1  w0            w(T), ``(B, 1, n, n)``
ns_long    same, frames at t = 1, 2, ..., 20                           w0            ``(B, 20, 1, n, n)``
burgers    u_t + u u_x = 0.01 u_xx, periodic, frames t = k/32, k=1..32  u0            ``(B, 32, 1, n)``
wave       u_tt = div(c^2 grad u), Ricker shot at the centre           c(x)          ``(B, 10, 1, n, n)``
=========  ==========================================================  ============  =======================

Laws (BENCHMARKS.md; ``GaussianRandomField`` convention, covariance
``sigma^2 (-Lap + tau^2)^-alpha``):

* ns: :math:`w_0 \sim N(0, 7^{1.5}(-\Delta+49I)^{-2.5})` read as in the FNO generator
  (``sigma = 7**1.5`` multiplies the square-root eigenvalues), zero-mean mode dropped;
* burgers: :math:`u_0 \sim N(0, 625(-\Delta+25I)^{-2})`, i.e. ``sigma = 25`` (625 is the
  covariance factor; see :mod:`pdeinv.physics.burgers`);
* wave (pdeinv's own law): :math:`c = \mathrm{clip}(e^{\mu}, 1/3, 3)`,
  :math:`\mu \sim N(0, 2.25(-\Delta+9I)^{-2})` (cosine basis).

``map_options`` hold priors built for whatever resolution the unknown comes at
(:class:`LawPrior`), so ``MAP(**task.map_options)`` works at any ``res``.
"""
from __future__ import annotations

import math
import torch

from pdeinv.priors.gaussian import LawPrior  # noqa: F401  (re-exported: tasks' MAP priors)
from pdeinv.physics import GaussianRandomField, Grid1D, Grid2D
from pdeinv.physics.burgers import Burgers1D
from pdeinv.physics.navier_stokes import NavierStokes2D
from pdeinv.physics.wave import Wave2D, ricker
from pdeinv.tasks.base import Task, Unknown, register_task

NS_LAW = dict(alpha=2.5, tau=7.0, sigma=7 ** 1.5, zero_mean_mode=True)
BURGERS_LAW = dict(alpha=2.0, tau=5.0, sigma=25.0)
WAVE_LAW = dict(alpha=2.0, tau=3.0, sigma=1.5, basis="cosine")
WAVE_BOUNDS = (1.0 / 3.0, 3.0)
NS_LONG_TIMES = [float(k) for k in range(1, 21)]
BURGERS_TIMES = [k / 32 for k in range(1, 33)]
WAVE_TIMES = [0.1 * k for k in range(1, 11)]


def _ns_unknowns():
    return {"w0": Unknown("w0", "the initial vorticity w0(x, y)"),
            "nu": Unknown("nu", "the viscosity nu (nominal 1e-3)", kind="scalar",
                          problem_kwargs={"unknown": "viscosity"}, given="w0", attr="nu", start=1e-3),
            "amplitude": Unknown("amplitude", "the forcing amplitude (factor on the forcing; nominal 1)", kind="scalar",
                                 problem_kwargs={"unknown": "amplitude"}, given="w0", attr="amplitude", start=1.0)}


BURGERS_UNKNOWNS = {
    "u0": Unknown("u0", "the initial condition u0(x)"),
    "nu": Unknown("nu", "the viscosity nu (nominal 0.01)", kind="scalar", problem_kwargs={"unknown": "viscosity"},
                  given="u0", attr="nu", start=0.01),
}


def periodic_grid(res: int) -> Grid2D:
    return Grid2D(res, bc="periodic")


def ns_dt(res: int) -> float:
    """Time step of the ns tasks: 1e-2 at 64^2 (w(1) within ~2e-6 of the converged answer), ~1/res beyond."""
    return min(1e-2, 0.64 / res)


def _sample_ns(grid, n: int, seed: int = 0) -> torch.Tensor:
    return GaussianRandomField(grid, **NS_LAW).sample(n, seed=seed)


def _sample_burgers(grid, n: int, seed: int = 0) -> torch.Tensor:
    return GaussianRandomField(grid, **BURGERS_LAW).sample(n, seed=seed)


def sample_wave_speed(grid, n: int, seed: int = 0) -> torch.Tensor:
    mu = GaussianRandomField(grid, **WAVE_LAW).sample(n, seed=seed)
    return torch.exp(mu).clamp(*WAVE_BOUNDS)


def _latent(law, transform=None):
    def latent(grid):
        return GaussianRandomField(grid, **law), transform
    return latent


def wave_problem(grid: Grid2D, record_times=WAVE_TIMES, f0: float = 5.0, **kw) -> Wave2D:
    """The ``wave`` task's problem: one Ricker shot (peak frequency ``f0``) at the centre, u0 = v0 = 0;
    dt from the CFL limit of the largest admissible speed (3), so that it does not change during MAP."""
    hx, hy = grid.spacing
    dt = 0.9 / (WAVE_BOUNDS[1] * math.sqrt(hx ** -2 + hy ** -2))
    kw.setdefault("dt", dt)
    return Wave2D(grid, sources=[(0.5 * grid.length[0], 0.5 * grid.length[1])],
                  source_time=lambda t: ricker(t, f0=f0), record_times=record_times, **kw)


NS_ATTRS = {"equation": "w_t + u.grad w = nu Lap w + f, -Lap psi = w, u = (psi_y, -psi_x), periodic [0,1]^2",
            "nu": 1e-3, "forcing": "0.1 (sin 2pi(x+y) + cos 2pi(x+y))",
            "law": "w0 ~ N(0, 7^1.5 (-Lap + 49 I)^-2.5) (FNO convention: 7^1.5 multiplies sqrt eigenvalues), "
                   "zero mean",
            "scheme": "pseudo-spectral, 2/3 de-aliasing, Crank-Nicolson viscosity + Heun advection"}

register_task(Task(
    name="ns", grid=periodic_grid,
    problem=lambda g, **kw: NavierStokes2D(g, **{**dict(nu=1e-3, forcing="fno", record_times=1.0,
                                                          dt=ns_dt(g.shape[0])), **kw}),
    sample_m=_sample_ns, m_name="w0", u_name="w",
    attrs={**NS_ATTRS, "T": 1.0},
    # L-BFGS stops at its gradient tolerance first: ~370 iterations at 64², 125 points, 1 % noise
    # (benchmarks/results/surrogate_pays-ns-converged.md); a cap of 200 stopped it short
    map_options=dict(prior=LawPrior(periodic_grid, **NS_LAW), max_iter=1000),
    description="2-D Navier-Stokes (vorticity), w0 -> w(T=1) (BENCHMARKS.md ns)", latent=_latent(NS_LAW),
    unknowns=_ns_unknowns(),
    # DAPS: the exact drift diverges on NS (docs/daps.md); surrogate MAP: 100 L-BFGS iterations through the
    # FNO reach 1.052x the converged MAP at 11.5x its speed on 20 samples (docs/surrogates.md)
    solver_defaults={"daps": {"drift": "chord", "jacobian_every": 3}, "surrogate-map": {"max_iter": 100}},
))
register_task(Task(
    name="ns_long", grid=periodic_grid,
    problem=lambda g, **kw: NavierStokes2D(g, **{**dict(nu=1e-3, forcing="fno", record_times=NS_LONG_TIMES,
                                                          dt=ns_dt(g.shape[0])), **kw}),
    sample_m=_sample_ns, m_name="w0", u_name="w",
    attrs={**NS_ATTRS, "record_times": NS_LONG_TIMES},
    map_options=dict(prior=LawPrior(periodic_grid, **NS_LAW), max_iter=200),
    description="2-D Navier-Stokes trajectory, frames at t = 1..20 (rollout surrogates)", latent=_latent(NS_LAW),
    unknowns=_ns_unknowns(),
))
register_task(Task(
    name="burgers", grid=lambda res: Grid1D(res), default_res=256,
    problem=lambda g, **kw: Burgers1D(g, **{**dict(nu=0.01, record_times=BURGERS_TIMES), **kw}),
    sample_m=_sample_burgers, m_name="u0", u_name="u",
    attrs={"equation": "u_t + u u_x = nu u_xx, periodic [0,1]", "nu": 0.01, "record_times": BURGERS_TIMES,
           "law": "u0 ~ N(0, 625 (-Lap + 25 I)^-2), i.e. sigma = 25 in the FNO GRF1 convention",
           "scheme": "pseudo-spectral, 2/3 de-aliasing, Crank-Nicolson viscosity + Heun flux, dt from Courant 0.5"},
    map_options=dict(prior=LawPrior(lambda n: Grid1D(n), **BURGERS_LAW), max_iter=200),
    description="1-D viscous Burgers, u0 -> u on the space-time grid (t = 1/32 .. 1)", latent=_latent(BURGERS_LAW),
    unknowns=BURGERS_UNKNOWNS,
))
register_task(Task(
    name="wave", grid=lambda res: Grid2D(res), default_res=64,
    problem=lambda g, **kw: wave_problem(g, **kw),
    sample_m=sample_wave_speed, m_name="c", u_name="u",
    attrs={"equation": "u_tt = div(c^2 grad u) + ricker(t; f0=5) delta(x - (0.5, 0.5)), u = 0 on the boundary",
           "record_times": WAVE_TIMES, "f0": 5.0,
           "law": "c = clip(exp(mu), 1/3, 3), mu ~ N(0, 2.25 (-Lap + 9 I)^-2), cosine basis",
           "scheme": "5-point conservative FD, leapfrog, dt = 0.9 CFL limit at c = 3"},
    map_options=dict(prior=LawPrior(lambda n: Grid2D(n), transform="log", **WAVE_LAW), bounds=WAVE_BOUNDS, m0=1.0,
                     max_iter=100),
    description="2-D acoustic wave, speed c(x) from the wave field (receiver traces)",
    latent=_latent(WAVE_LAW, lambda mu: torch.exp(mu).clamp(*WAVE_BOUNDS)),
    unknowns={"c": Unknown("c", "the wave speed c(x, y)")},
))
