r"""Task ``burgers_dirichlet``: the Raissi et al. (2019) Burgers benchmark with Dirichlet conditions.

.. math::  u_t + u u_x = \nu u_{xx}, \quad x \in [-1, 1],\ t \in (0, 0.99], \quad u(\pm1, t) = 0,
           \quad \nu = 0.01/\pi,

reference initial condition :math:`u_0 = -\sin\pi x` (:func:`raissi_u0`; deepxde's
``examples/dataset/Burgers.npz``, a subsample of which is ``tests/fixtures/burgers_raissi_frames.npz``),
frames at :math:`t = k/100`, :math:`k = 1..99` (the reference's time grid), state ``(B, 99, 1, n)``.

Law of the unknown :math:`u_0` (pdeinv's own, so that it satisfies the boundary conditions): a
Gaussian sine series, :math:`u_0 \sim N(0, 81(-\Delta + 9I)^{-2})` with the Dirichlet Laplacian on
[-1, 1] (``GaussianRandomField(..., alpha=2, tau=3, sigma=9, basis="sine")``); ``sigma = 9`` makes
the pointwise standard deviation 0.71, that of :math:`-\sin\pi x` (:math:`1/\sqrt2`).

Resolution ``res`` = number of nodes including both ends; the default 1021 (= 4·255 + 1) contains
every node of the reference (``x_j = -1 + 2j/255``).  Against all reference frames the solver is
within 1.1e-3 (relative L2) at 511 nodes, 2.8e-4 at 1021 and 7.0e-5 at 2041 (second order), and
nu fitted to the noise-free frames is off by 1.4 %, 0.37 % and 0.09 % (benchmarks/results/burgers_bc.md).
"""
from __future__ import annotations

import math

import torch

from pdeinv.physics import GaussianRandomField, Grid1D
from pdeinv.physics.burgers_bc import BurgersBC
from pdeinv.priors.gaussian import LawPrior
from pdeinv.tasks.base import Task, Unknown, register_task

RAISSI_NU = 0.01 / math.pi
RAISSI_DOMAIN = (-1.0, 1.0)
RAISSI_TIMES = [k / 100 for k in range(1, 100)]
BURGERS_DIRICHLET_LAW = dict(alpha=2.0, tau=3.0, sigma=9.0, basis="sine")


def dirichlet_grid(res: int) -> Grid1D:
    """``res`` nodes on [-1, 1], both ends included."""
    return Grid1D.interval(*RAISSI_DOMAIN, res, bc="dirichlet")


def raissi_u0(grid: Grid1D) -> torch.Tensor:
    r"""The reference initial condition :math:`-\sin\pi x` on ``grid``, ``(1, 1, n)`` float64."""
    return -torch.sin(math.pi * grid.coords()[0])[None, None]


def _sample(grid, n: int, seed: int = 0) -> torch.Tensor:
    return GaussianRandomField(grid, **BURGERS_DIRICHLET_LAW).sample(n, seed=seed)


def _latent(grid):
    return GaussianRandomField(grid, **BURGERS_DIRICHLET_LAW), None


register_task(Task(
    name="burgers_dirichlet", grid=dirichlet_grid, default_res=1021,
    problem=lambda g, **kw: BurgersBC(g, **{**dict(nu=RAISSI_NU, bc="dirichlet", boundary=0.0,
                                                    record_times=RAISSI_TIMES), **kw}),
    sample_m=_sample, m_name="u0", u_name="u",
    attrs={"equation": "u_t + u u_x = nu u_xx on [-1, 1], u(-1, t) = u(1, t) = 0 (Raissi et al. 2019)",
           "nu": RAISSI_NU, "record_times": RAISSI_TIMES, "reference_u0": "-sin(pi x)",
           "law": "u0 ~ N(0, 81 (-Lap_D + 9 I)^-2), sine series on [-1, 1] (u0(+-1) = 0)",
           "scheme": "central FD (skew-symmetric convection), IMEX ARS(3,4,3), dt = h / max|u|"},
    map_options=dict(prior=LawPrior(dirichlet_grid, **BURGERS_DIRICHLET_LAW), max_iter=200),
    description="1-D viscous Burgers on [-1, 1] with u(+-1) = 0 (Raissi benchmark), u0 -> u at t = 0.01 .. 0.99",
    latent=_latent,
    unknowns={"u0": Unknown("u0", "the initial condition u0(x) (zero at x = +-1)"),
              "nu": Unknown("nu", "the viscosity nu (nominal 0.01/pi)", kind="scalar",
                            problem_kwargs={"unknown": "viscosity"}, given="u0", attr="nu", start=RAISSI_NU)},
))
