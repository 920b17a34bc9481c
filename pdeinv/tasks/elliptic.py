"""Elliptic benchmark tasks: darcy (binary permeability), poisson and helmholtz (GRF sources).

The laws are BENCHMARKS.md's; ``map_options`` are the classical MAP defaults of each task.
"""
from __future__ import annotations

import torch
from torch import nn

from pdeinv.physics import Darcy, GaussianRandomField, Grid2D, Helmholtz, Poisson, threshold
from pdeinv.physics.time_stepping import ParameterSpace, scalar_per_sample
from pdeinv.priors.gaussian import LawPrior
from pdeinv.tasks.base import Task, Unknown, register_task


class HelmholtzWavenumber(nn.Module):
    r"""The wavenumber as the unknown: :math:`\nabla^2 u + k^2 u = f` with ``f`` ``(1|B, 1, n, n)`` and
    ``g`` fixed; ``m`` is :math:`k` ``(B, 1, 1)`` (1/length) on a ``ParameterSpace``, ``u`` ``(B, 1, n, n)``;
    differentiable in :math:`k` through the Helmholtz solve."""

    def __init__(self, grid: Grid2D, f: torch.Tensor, g=0.0, **kw):
        super().__init__()
        self.base = Helmholtz(grid, k=1.0, f=f, g=g, **kw)
        self.state_grid, self.grid = grid, ParameterSpace(1, "wavenumber k")

    def forward(self, m: torch.Tensor) -> torch.Tensor:
        return self.base.solve(k=scalar_per_sample(m, "m (wavenumber k)"))

# ----------------------------------------------------------------------------- elliptic tasks
# The constant (k = 0) cosine mode is dropped, as in the FNO Darcy data generator (GRF.m sets the mean
# coefficient to zero): with it, tau^-2alpha = 1/81 would dominate the variance and many draws would
# threshold to a constant field.
DARCY_LAW = dict(alpha=2.0, tau=3.0, sigma=1.0, basis="cosine", zero_mean_mode=True, low=3.0, high=12.0)
GRF_SOURCE_LAW = dict(alpha=2.0, tau=3.0, sigma=1.0)


def darcy_latent(grid):
    """The Darcy law as ``threshold(mu)``, ``mu ~ N(0, (-Δ + 9I)^-2)`` (cosine basis, zero-mean mode dropped)."""
    law = DARCY_LAW
    prior = GaussianRandomField(grid, alpha=law["alpha"], tau=law["tau"], sigma=law["sigma"], basis=law["basis"],
                                zero_mean_mode=law["zero_mean_mode"])
    return prior, lambda mu: threshold(mu, low=law["low"], high=law["high"])


def sample_darcy_coefficient(grid, n: int, seed: int = 0) -> torch.Tensor:
    """a = 12 where mu >= 0 else 3, mu ~ N(0, (-Δ + 9I)^-2) (Neumann/cosine basis, as in the FNO data)."""
    prior, transform = darcy_latent(grid)
    return transform(prior.sample(n, seed=seed))


def _grf_latent(basis: str):
    def latent(grid):
        return GaussianRandomField(grid, basis=basis, zero_mean_mode=(basis == "cosine"), **GRF_SOURCE_LAW), None
    return latent


def _sample_grf(basis: str):
    def sample(grid, n: int, seed: int = 0) -> torch.Tensor:
        prior = GaussianRandomField(grid, basis=basis, zero_mean_mode=(basis == "cosine"), **GRF_SOURCE_LAW)
        return prior.sample(n, seed=seed)
    return sample


register_task(Task(
    name="darcy", grid=lambda res: Grid2D(res), problem=lambda g, **kw: Darcy(g, f=1.0, g=0.0, **kw),
    sample_m=sample_darcy_coefficient, m_name="a", u_name="pressure",
    attrs={"equation": "-div(a grad u) = f, u = g on boundary", "f": 1.0, "g": 0.0,
           "law": "a = 12 where mu >= 0 else 3; mu ~ N(0, (-Lap + 9 I)^-2), cosine basis, zero-mean mode dropped"},
    map_options=dict(prior="tv", weight=10.0, bounds=(3.0, 12.0)),  # weight: benchmarks/bench_map_darcy.py --sweep
    description="Darcy flow, binary permeability {3, 12}", latent=darcy_latent,
    unknowns={"a": Unknown("a", "the permeability field a(x, y)")},
    # the exact drift differentiates the simulator at clamp(a, 3, 12), zero for the binary prior's pixels on a
    # bound, and its draws misfit the data 25-150x the noise; the chord drift's fit (docs/daps.md)
    solver_defaults={"daps": {"drift": "chord"}},
))
register_task(Task(
    name="poisson", grid=lambda res: Grid2D(res), problem=lambda g, **kw: Poisson(g, g=0.0, **kw),
    sample_m=_sample_grf("cosine"), m_name="f", u_name="u",
    attrs={"equation": "Lap u = f, u = 0 on boundary", "law": "f ~ N(0, (-Lap + 9 I)^-2), cosine basis, zero-mean mode dropped"},
    map_options=dict(prior=LawPrior(Grid2D, basis="cosine", zero_mean_mode=True, **GRF_SOURCE_LAW)),
    description="Poisson equation, GRF source", latent=_grf_latent("cosine"),
    unknowns={"f": Unknown("f", "the source field f(x, y)")},
))
register_task(Task(
    name="helmholtz", grid=lambda res: Grid2D(res), problem=lambda g, **kw: Helmholtz(g, k=1.0, g=0.0, **kw),
    sample_m=_sample_grf("sine"), m_name="f", u_name="u",
    attrs={"equation": "Lap u + k^2 u = f, k = 1, u = 0 on boundary",
           "law": "f ~ N(0, (-Lap + 9 I)^-2), sine basis (zero on the boundary)", "k": 1.0},
    map_options=dict(prior=LawPrior(Grid2D, basis="sine", **GRF_SOURCE_LAW)),
    description="Helmholtz equation (k = 1), GRF source vanishing on the boundary", latent=_grf_latent("sine"),
    unknowns={"f": Unknown("f", "the source field f(x, y)"),
              "k": Unknown("k", "the wavenumber k (1/length; nominal 1)", kind="scalar",
                           build=lambda g, **kw: HelmholtzWavenumber(g, **kw), given="f", attr="k", start=1.0)},
))
