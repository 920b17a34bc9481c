r"""Diffusion noise: white (DiffusionPDE) or Gaussian-random-field (FunDPS) noise.

The noising process is :math:`x_\sigma = x_0 + \sigma n`, :math:`n \sim N(0, K)`.

* :class:`WhiteNoise`: :math:`K = I` (pixel-wise independent; its law has no
  limit as the grid is refined, so a model trained at one resolution is tied to it).
* :class:`GRFNoise`: :math:`K = c\,(-\Delta + \tau^2 I)^{-\alpha}` from
  :class:`pdeinv.physics.fields.GaussianRandomField`, on each channel
  independently, with :math:`c` chosen so that the mean pointwise variance is 1
  on the grid in use (so ``sigma`` keeps EDM's meaning).  A GRF is a
  well-defined measure on functions: the same model can be sampled at another
  resolution (FunDPS, Yao et al. 2025).  With :math:`\alpha` below the data's
  smoothness the noise dominates every mode at :math:`\sigma_\max`.

Both are resolution-agnostic objects: the covariance is built (and cached) for
the spatial shape of the tensor at hand.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch

from pdeinv.physics.fields import GaussianRandomField, white_noise
from pdeinv.physics.grid import Grid1D, Grid2D


class WhiteNoise:
    """``K = I``."""

    kind = "white"

    def sample(self, shape: Sequence[int], generator: Optional[torch.Generator] = None, dtype=torch.float64,
               device=None) -> torch.Tensor:
        """Standard normal ``shape`` ``(B, C, *spatial)``."""
        return white_noise(tuple(shape), generator=generator, dtype=dtype, device=device)

    def apply_cov(self, g: torch.Tensor) -> torch.Tensor:
        """``K g``."""
        return g

    def apply_prec(self, g: torch.Tensor) -> torch.Tensor:
        """``K^{-1} g``."""
        return g

    def covariance(self, spatial: Sequence[int], dtype=torch.float64) -> torch.Tensor:
        """Dense ``(N, N)`` covariance of one channel."""
        n = int(torch.tensor(list(spatial)).prod())
        return torch.eye(n, dtype=dtype)

    def to_dict(self) -> dict:
        return {"kind": "white"}

    def __repr__(self):
        return "WhiteNoise()"


class GRFNoise:
    r"""``K = c (-Δ + τ² I)^{-α}`` per channel, normalised to unit mean pointwise variance.

    Parameters
    ----------
    alpha, tau : smoothness and inverse length scale (default 1, 3: rougher than
        the benchmark laws, whose alpha is 2, so noise dominates every mode).
    bc : ``"dirichlet"`` (node grids with boundary nodes; cosine basis, full rank),
        ``"zero"`` (node grids, sine basis: noise that vanishes on the boundary, for data that do, e.g.
        the Helmholtz source; ``K`` is singular there and :meth:`apply_prec` is its pseudo-inverse on the
        interior) or ``"periodic"`` (Fourier basis).
    """

    kind = "grf"

    def __init__(self, alpha: float = 1.0, tau: float = 3.0, bc: str = "dirichlet"):
        if not (alpha > 0 and tau > 0):
            raise ValueError(f"GRF noise needs alpha > 0 and tau > 0; got alpha={alpha}, tau={tau}")
        if bc not in ("dirichlet", "zero", "periodic"):
            raise ValueError(f"bc must be 'dirichlet', 'zero' or 'periodic'; got {bc!r}")
        self.alpha, self.tau, self.bc = float(alpha), float(tau), bc
        self._cache = {}

    def field(self, spatial: Sequence[int]) -> GaussianRandomField:
        """The normalised GRF on a grid of this spatial shape (cached)."""
        spatial = tuple(int(s) for s in spatial)
        if spatial not in self._cache:
            gbc = "dirichlet" if self.bc == "zero" else self.bc
            grid = Grid1D(spatial[0], bc=gbc) if len(spatial) == 1 else Grid2D(spatial, bc=gbc)
            basis = {"periodic": "fourier", "zero": "sine"}.get(self.bc, "cosine")
            grf = GaussianRandomField(grid, alpha=self.alpha, tau=self.tau, basis=basis)
            phis = grf._mats("_phi", torch.empty(0, dtype=torch.float64))
            lam = grf.eigenvalues
            if len(spatial) == 1:
                var = (phis[0] ** 2) @ lam
            else:
                var = (phis[0] ** 2) @ lam @ (phis[1] ** 2).T
            scale = float(var.mean()) ** -0.5
            self._cache[spatial] = GaussianRandomField(grid, alpha=self.alpha, tau=self.tau, sigma=scale, basis=basis)
        return self._cache[spatial]

    def sample(self, shape: Sequence[int], generator: Optional[torch.Generator] = None, dtype=torch.float64,
               device=None) -> torch.Tensor:
        """GRF noise of ``shape`` ``(B, C, *spatial)``, independent channels."""
        shape = tuple(shape)
        grf = self.field(shape[2:])
        xi = white_noise(shape[:2] + grf.coeff_shape, generator=generator, dtype=torch.float64)
        return grf.color(xi).to(dtype=dtype, device=device)

    def apply_cov(self, g: torch.Tensor) -> torch.Tensor:
        r"""``K g`` on the trailing spatial axes (same dtype/device as ``g``)."""
        spatial = tuple(g.shape[2:])
        grf = self.field(spatial)
        phis = grf._mats("_phi", g)
        lam = grf.eigenvalues.to(dtype=g.dtype, device=g.device)
        if len(spatial) == 1:
            c = (g @ phis[0]) * lam
            return c @ phis[0].T
        c = phis[0].T @ g @ phis[1] * lam
        return phis[0] @ c @ phis[1].T

    def apply_prec(self, g: torch.Tensor) -> torch.Tensor:
        r"""``K^{-1} g`` on the trailing spatial axes: with ``K g = \Phi_0 (\Phi_0^T g \Phi_1 \circ \lambda)
        \Phi_1^T`` (2-D; ``g \Phi \Lambda \Phi^T`` in 1-D) the inverse is ``\Phi_0^{-T} ((\Phi_0^{-1} g
        \Phi_1^{-T}) / \lambda) \Phi_1^{-1}`` with the field's basis inverses (the cosine and Fourier bases are
        square and full rank, not orthonormal; for ``bc="zero"`` the sine basis is inverted on the interior
        nodes, so this is the pseudo-inverse of the singular ``K``)."""
        spatial = tuple(g.shape[2:])
        grf = self.field(spatial)
        inv = self.basis_inverse(spatial, g)
        lam = grf.eigenvalues.to(dtype=g.dtype, device=g.device)
        if len(spatial) == 1:
            c = (g @ inv[0].T) / lam
            return c @ inv[0]
        c = inv[0] @ g @ inv[1].T / lam
        return inv[0].T @ c @ inv[1]

    def basis_inverse(self, spatial: Sequence[int], like: torch.Tensor) -> list:
        """Per axis, the left inverse of the basis (``(K_d, n_d)``; zero columns on the boundary for ``"zero"``)."""
        return self.field(spatial)._mats("_phiinv", like)

    def covariance(self, spatial: Sequence[int], dtype=torch.float64) -> torch.Tensor:
        """Dense ``(N, N)`` covariance of one channel (small grids)."""
        return self.field(spatial).covariance(dtype)

    def to_dict(self) -> dict:
        return {"kind": "grf", "alpha": self.alpha, "tau": self.tau, "bc": self.bc}

    def __repr__(self):
        return f"GRFNoise(alpha={self.alpha}, tau={self.tau}, bc={self.bc!r})"


def make_noise(spec) -> object:
    """``"white"``, ``"grf"``, a dict from ``to_dict()``, or a noise object -> noise object."""
    if isinstance(spec, (WhiteNoise, GRFNoise)):
        return spec
    if spec is None or spec == "white":
        return WhiteNoise()
    if spec == "grf":
        return GRFNoise()
    if isinstance(spec, dict):
        d = dict(spec)
        kind = d.pop("kind", None)
        if kind == "white":
            return WhiteNoise()
        if kind == "grf":
            return GRFNoise(**d)
    raise ValueError(f"unknown diffusion noise {spec!r}; expected 'white', 'grf' or a dict with kind=")
