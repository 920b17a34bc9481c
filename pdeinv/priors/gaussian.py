r"""Gaussian random-field prior :math:`m \sim N(\mu, \sigma^2(-\Delta+\tau^2)^{-\alpha})` for MAP and MCMC.

The prior *is* :class:`pdeinv.physics.fields.GaussianRandomField`: its
``log_prob(m) = -\tfrac12\|C^{-1/2}(m-\mu)\|^2`` (via ``whiten``) and
``sample``; this module only picks sensible defaults for a grid.
"""
from __future__ import annotations

from ..physics.fields import GaussianRandomField


def grf_prior(grid, alpha: float = 2.0, tau: float = 3.0, sigma: float = 1.0, mean: float = 0.0,
              basis=None, zero_mean_mode: bool = False) -> GaussianRandomField:
    """The BENCHMARKS.md law ``N(mean, sigma²(-Δ + τ²)^-α)``; basis from the grid (Fourier if periodic,
    cosine on Dirichlet grids, so that boundary values are free)."""
    if basis is None:
        basis = "fourier" if grid.bc == "periodic" else "cosine"
    return GaussianRandomField(grid, alpha=alpha, tau=tau, sigma=sigma, basis=basis, mean=mean,
                               zero_mean_mode=zero_mean_mode)
