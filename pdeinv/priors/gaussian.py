r"""Gaussian random-field prior :math:`m \sim N(\mu, \sigma^2(-\Delta+\tau^2)^{-\alpha})` for MAP and MCMC.

The prior *is* :class:`pdeinv.physics.fields.GaussianRandomField`: its
``log_prob(m) = -\tfrac12\|C^{-1/2}(m-\mu)\|^2`` (via ``whiten``) and
``sample``; this module only picks sensible defaults for a grid.
"""
from __future__ import annotations

from typing import Dict, Optional, Tuple

import torch

from pdeinv.physics.fields import GaussianRandomField


def grf_prior(grid, alpha: float = 2.0, tau: float = 3.0, sigma: float = 1.0, mean: float = 0.0,
              basis=None, zero_mean_mode: bool = False) -> GaussianRandomField:
    """The BENCHMARKS.md law ``N(mean, sigma²(-Δ + τ²)^-α)``; basis from the grid (Fourier if periodic,
    cosine on Dirichlet grids, so that boundary values are free)."""
    if basis is None:
        basis = "fourier" if grid.bc == "periodic" else "cosine"
    return GaussianRandomField(grid, alpha=alpha, tau=tau, sigma=sigma, basis=basis, mean=mean,
                               zero_mean_mode=zero_mean_mode)


class LawPrior:
    """GRF prior of a task's law on the grid of whatever ``m`` it is given (cached per resolution).

    ``LawPrior(make_grid, **grf_kwargs).log_prob(m) -> (B,)``; an object with ``log_prob`` is what
    :class:`pdeinv.solvers.map.MAP` takes as ``prior``.  ``transform`` (e.g. ``"log"``) applies the prior to
    ``log m`` (for positive unknowns such as a wave speed).
    """

    def __init__(self, make_grid, transform: str = "identity", **grf_kwargs):
        if transform not in ("identity", "log"):
            raise ValueError(f"transform must be 'identity' or 'log'; got {transform!r}")
        self.make_grid, self.transform, self.kwargs = make_grid, transform, grf_kwargs
        self._cache: Dict[Tuple[int, ...], GaussianRandomField] = {}

    def field(self, shape) -> GaussianRandomField:
        shape = tuple(int(s) for s in shape)
        if shape not in self._cache:
            grid = self.make_grid(shape[0])
            if tuple(grid.shape) != shape:
                raise ValueError(f"the prior's grid for n={shape[0]} has shape {grid.shape}; m has {shape}")
            self._cache[shape] = GaussianRandomField(grid, **self.kwargs)
        return self._cache[shape]

    def log_prob(self, m: torch.Tensor) -> torch.Tensor:
        nd = self.make_grid(int(m.shape[-1])).ndim
        x = torch.log(m) if self.transform == "log" else m
        return self.field(m.shape[-nd:]).log_prob(x)

    def sample(self, n: int = 1, shape=None, seed=None, generator=None, dtype=torch.float64, device=None):
        x = self.field(shape).sample(n, seed=seed, generator=generator, dtype=dtype, device=device)
        return torch.exp(x) if self.transform == "log" else x

    def to(self, device):
        return self

    def __repr__(self) -> str:
        return f"LawPrior({self.kwargs}, transform={self.transform!r})"


def gaussian_field(prior, grid) -> Optional[Tuple[GaussianRandomField, str]]:
    r"""The Gaussian random field behind ``prior`` on ``grid``, and the map from it to ``m``.

    Returns ``(field, transform)`` with ``transform`` ``"identity"`` (:math:`m = \mu + C^{1/2}\xi`)
    or ``"log"`` (:math:`\log m = \mu + C^{1/2}\xi`, from ``LawPrior(transform="log")``), or ``None``
    when the prior is not a (transformed) Gaussian field that ``whiten``/``color`` can invert
    (``"tv"``, ``"h1"``, ``None``, a diffusion prior ...).  ``prior``: ``"grf"`` (:func:`grf_prior` on
    ``grid``), a :class:`GaussianRandomField` (must live on ``grid``) or a :class:`LawPrior`
    (resolved on ``grid.shape``).
    """
    if isinstance(prior, str):
        return (grf_prior(grid), "identity") if prior == "grf" else None
    if isinstance(prior, GaussianRandomField):
        if tuple(prior.grid.shape) != tuple(grid.shape):
            raise ValueError(f"the GRF prior lives on a grid of shape {tuple(prior.grid.shape)}; the unknown is on "
                             f"{tuple(grid.shape)}")
        return prior, "identity"
    if isinstance(prior, LawPrior):
        return prior.field(grid.shape), prior.transform
    return None


def pointwise_variance(field: GaussianRandomField, dtype=torch.float64, device=None) -> torch.Tensor:
    r"""Prior variance at every node, :math:`\mathrm{diag}(C)_x = \sum_k \lambda_k\,\phi_k(x)^2`, shape ``grid.shape``.

    Computed from the per-axis basis matrices (no dense ``N x N`` covariance), in units of ``m`` squared.
    """
    lam = field.eigenvalues.to(dtype=dtype, device=device)
    phis = [getattr(field, f"_phi{d}").to(dtype=dtype, device=device) ** 2 for d in range(field.ndim)]
    if field.ndim == 1:
        return phis[0] @ lam
    return phis[0] @ lam @ phis[1].T
