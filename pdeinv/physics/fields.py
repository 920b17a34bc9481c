r"""Gaussian random fields :math:`m \sim N(\mu, \sigma^2 (-\Delta + \tau^2 I)^{-\alpha})`.

The covariance operator is diagonal in an eigenbasis of the Laplacian,

.. math::  C = \sum_k \lambda_k \, \phi_k \otimes \phi_k, \qquad
           \lambda_k = \sigma^2 (\mu_k + \tau^2)^{-\alpha},

with :math:`\phi_k` orthonormal in :math:`L^2` and :math:`\mu_k` the
eigenvalues of :math:`-\Delta`.  Three bases are available:

``"fourier"``  periodic torus, :math:`1, \sqrt2\cos(2\pi k x/L), \sqrt2\sin(2\pi k x/L)`,
               :math:`\mu_k = (2\pi k/L)^2` (the default on a periodic grid);
``"sine"``     zero Dirichlet boundary, :math:`\sqrt2 \sin(\pi k x/L)`,
               :math:`\mu_k = (\pi k/L)^2` (default on a Dirichlet grid);
``"cosine"``   zero Neumann boundary, :math:`1, \sqrt2\cos(\pi k x/L)`, :math:`\mu_k=(\pi k/L)^2`.

(Functions are normalised for the unit length; on other lengths the scale
follows :math:`\sqrt{2/L}`.)  A sample is
:math:`m = \mu + \sum_k \sqrt{\lambda_k}\,\xi_k \phi_k` with
:math:`\xi_k \sim N(0,1)` i.i.d., evaluated exactly at the grid nodes by a
(small, dense) basis matrix per axis, which keeps every path
device-agnostic and differentiable.  ``whiten`` is the inverse map
:math:`m \mapsto \xi` (used by MAP priors, pCN and FunDPS), ``color`` the
forward map.

``sigma`` multiplies the square root of the eigenvalues, as in the FNO data
generators: the Navier--Stokes law of BENCHMARKS.md is ``tau=7, alpha=2.5,
sigma=7**1.5``; the Burgers law ``tau=5, alpha=2, sigma=25`` (1-D; BENCHMARKS.md
writes the covariance factor 625 = 25²).
"""
from __future__ import annotations

import math
from typing import Optional, Union

import torch
from torch import nn

from pdeinv._validation import check_field
from pdeinv.physics.grid import Grid1D, Grid2D

BASES = ("fourier", "sine", "cosine")


def _basis_1d(n: int, length: float, basis: str):
    """Return (Phi (n, K), mu (K,)) in float64 for one axis."""
    s = math.sqrt(2.0 / length)
    if basis == "fourier":
        x = torch.arange(n, dtype=torch.float64) * (length / n)
        cols, mus = [torch.full((n,), 1.0 / math.sqrt(length), dtype=torch.float64)], [0.0]
        for k in range(1, n // 2 + 1):
            w = 2 * math.pi * k / length
            cols.append(s * torch.cos(w * x)); mus.append(w * w)
            if not (n % 2 == 0 and k == n // 2):  # the sine at the Nyquist frequency vanishes on the nodes
                cols.append(s * torch.sin(w * x)); mus.append(w * w)
        return torch.stack(cols, 1), torch.tensor(mus, dtype=torch.float64)
    x = torch.linspace(0.0, length, n, dtype=torch.float64)
    if basis == "sine":
        k = torch.arange(1, n - 1, dtype=torch.float64)
        return s * torch.sin(math.pi * x[:, None] * k[None, :] / length), (math.pi * k / length) ** 2
    if basis == "cosine":
        k = torch.arange(0, n, dtype=torch.float64)
        phi = s * torch.cos(math.pi * x[:, None] * k[None, :] / length)
        phi[:, 0] = 1.0 / math.sqrt(length)
        return phi, (math.pi * k / length) ** 2
    raise ValueError(f"unknown basis {basis!r}; expected one of {BASES}")


class GaussianRandomField(nn.Module):
    r"""Gaussian random field :math:`N(\mu, \sigma^2(-\Delta+\tau^2 I)^{-\alpha})` on a grid.

    Parameters
    ----------
    grid : :class:`Grid1D` or :class:`Grid2D`.
    alpha, tau : smoothness exponent and inverse length scale.
    sigma : amplitude multiplying :math:`\sqrt{\lambda_k}` (default 1).
    basis : ``"fourier"``, ``"sine"`` or ``"cosine"``; default from ``grid.bc``.
    mean : constant mean (default 0).
    zero_mean_mode : drop the constant mode (``"fourier"``/``"cosine"``), e.g. for
        vorticity, which has zero mean on the torus.

    Samples are ``(B, 1, *grid.shape)`` in the requested dtype (float64 by default).
    """

    def __init__(self, grid: Union[Grid1D, Grid2D], alpha: float = 2.0, tau: float = 3.0,
                 sigma: float = 1.0, basis: Optional[str] = None, mean: float = 0.0,
                 zero_mean_mode: bool = False):
        super().__init__()
        if basis is None:
            basis = "fourier" if grid.bc == "periodic" else "sine"
        if basis not in BASES:
            raise ValueError(f"unknown basis {basis!r}; expected one of {BASES}")
        if basis == "fourier" and grid.bc != "periodic":
            raise ValueError("the Fourier basis needs a periodic grid (Grid(..., bc='periodic'))")
        if basis != "fourier" and grid.bc == "periodic":
            raise ValueError(f"the {basis} basis needs a Dirichlet-type grid (nodes on the boundary)")
        if not (alpha > 0 and tau >= 0 and sigma > 0):
            raise ValueError(f"need alpha > 0, tau >= 0, sigma > 0; got alpha={alpha}, tau={tau}, sigma={sigma}")
        if tau == 0 and (basis != "sine") and not zero_mean_mode:
            raise ValueError("tau = 0 makes the constant mode's variance infinite; use tau > 0 or zero_mean_mode=True")
        self.grid, self.alpha, self.tau, self.sigma = grid, float(alpha), float(tau), float(sigma)
        self.basis, self.mean, self.zero_mean_mode = basis, float(mean), bool(zero_mean_mode)
        lengths = (grid.length,) if isinstance(grid, Grid1D) else grid.length
        phis, mus = zip(*[_basis_1d(n, L, basis) for n, L in zip(grid.shape, lengths)])
        # total Laplacian eigenvalue on the tensor-product basis
        mu = mus[0] if len(mus) == 1 else mus[0][:, None] + mus[1][None, :]
        lam = sigma ** 2 * (mu + tau ** 2).clamp_min(1e-300) ** (-alpha)
        if zero_mean_mode:
            lam = torch.where(mu == 0, torch.zeros_like(lam), lam)
        for d, phi in enumerate(phis):
            self.register_buffer(f"_phi{d}", phi, persistent=False)
            if basis == "sine":  # invert on interior nodes, where the basis is complete
                inv = torch.linalg.inv(phi[1:-1])
                inv = torch.cat([torch.zeros(inv.shape[0], 1, dtype=inv.dtype), inv,
                                 torch.zeros(inv.shape[0], 1, dtype=inv.dtype)], 1)
            else:
                inv = torch.linalg.inv(phi)
            self.register_buffer(f"_phiinv{d}", inv, persistent=False)
        self.register_buffer("eigenvalues", lam, persistent=False)
        self.register_buffer("laplacian_eigenvalues", mu, persistent=False)

    @property
    def ndim(self) -> int:
        return self.grid.ndim

    @property
    def coeff_shape(self):
        """Shape of the white-noise coefficient array ``xi``."""
        return tuple(self.eigenvalues.shape)

    def _mats(self, name, like: torch.Tensor):
        return [getattr(self, f"{name}{d}").to(dtype=like.dtype, device=like.device) for d in range(self.ndim)]

    def color(self, xi: torch.Tensor) -> torch.Tensor:
        r"""Map white noise ``xi`` (``(B, C, *coeff_shape)``) to a field ``(B, C, *grid.shape)``."""
        sq = self.eigenvalues.to(dtype=xi.dtype, device=xi.device).sqrt()
        c = xi * sq
        phis = self._mats("_phi", xi)
        if self.ndim == 1:
            m = c @ phis[0].T
        else:
            m = phis[0] @ c @ phis[1].T
        return m + self.mean

    def whiten(self, m: torch.Tensor) -> torch.Tensor:
        r"""Inverse of :meth:`color`: ``xi`` with :math:`\tfrac12\|\xi\|^2 = \tfrac12\|m-\mu\|_{C^{-1}}^2`.

        Modes with zero prior variance (dropped constant mode) get ``xi = 0``.
        For the sine basis the boundary values of ``m`` are ignored (they are zero
        for every sample of the field).
        """
        check_field(m, self.grid.shape, name="m")
        inv = self._mats("_phiinv", m)
        m = m - self.mean
        c = m @ inv[0].T if self.ndim == 1 else inv[0] @ m @ inv[1].T
        lam = self.eigenvalues.to(dtype=m.dtype, device=m.device)
        safe = torch.where(lam > 0, lam, torch.ones_like(lam))
        return torch.where(lam > 0, c / safe.sqrt(), torch.zeros_like(c))

    def log_prob(self, m: torch.Tensor) -> torch.Tensor:
        r"""Unnormalised log density :math:`-\tfrac12\|m-\mu\|^2_{C^{-1}}`, one value per sample ``(B,)``."""
        xi = self.whiten(m)
        return -0.5 * xi.pow(2).flatten(1).sum(1)

    def sample(self, n: int = 1, seed: Optional[int] = None, generator: Optional[torch.Generator] = None,
               dtype=torch.float64, device=None) -> torch.Tensor:
        """Draw ``n`` samples ``(n, 1, *grid.shape)``; ``seed`` or ``generator`` makes it reproducible."""
        xi = white_noise((n, 1) + self.coeff_shape, seed=seed, generator=generator, dtype=dtype, device=device)
        return self.color(xi)

    def covariance(self, dtype=torch.float64) -> torch.Tensor:
        """Dense covariance of the nodal values, ``(N, N)`` with ``N = prod(grid.shape)`` (small grids)."""
        phis = self._mats("_phi", torch.empty(0, dtype=dtype))
        Phi = phis[0] if self.ndim == 1 else torch.kron(phis[0], phis[1])
        lam = self.eigenvalues.to(dtype).reshape(-1)
        return (Phi * lam) @ Phi.T

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, tau={self.tau}, sigma={self.sigma}, basis={self.basis!r}, shape={self.grid.shape}"


def white_noise(shape, seed: Optional[int] = None, generator: Optional[torch.Generator] = None,
                dtype=torch.float64, device=None) -> torch.Tensor:
    """Standard normal tensor; reproducible from ``seed`` (CPU generator, so the same on every device)."""
    if generator is None:
        generator = torch.Generator().manual_seed(int(seed)) if seed is not None else None
    gen_device = generator.device if generator is not None else "cpu"
    z = torch.randn(shape, generator=generator, dtype=dtype, device=gen_device)
    return z.to(device) if device is not None else z


def threshold(mu: torch.Tensor, low: float = 3.0, high: float = 12.0, level: float = 0.0) -> torch.Tensor:
    """Binary field: ``high`` where ``mu >= level``, else ``low`` (the Darcy coefficient law)."""
    return torch.where(mu >= level, torch.full_like(mu, high), torch.full_like(mu, low))
