r"""A Gaussian fitted to the training data in the noise law's basis: the linear part of a denoiser.

With GRF noise :math:`K = \Phi\,\mathrm{diag}(\lambda^K)\,\Phi^T` (:class:`.noise.GRFNoise`; separable cosine
basis on node grids, sine basis with ``bc="zero"``, Fourier basis on periodic ones) a field's coefficients are
:math:`c = \Phi^{-1} z` (per channel, ``(C, K_0, K_1)``).  :class:`SpectralGaussian` models the data as
independent across modes, with a full :math:`C \times C` covariance per mode (the channels of a joint
``(m, u)`` prior are coupled mode by mode):

.. math:: c_k \sim N(\bar c_k, V_k), \qquad V_k = Q_k\,\mathrm{diag}(e_k)\,Q_k^T,

fitted by the sample mean and covariance of the training coefficients.  Its denoiser is the Wiener filter,
exact for such data in the noise :math:`z_\sigma = z_0 + \sigma n`, :math:`n \sim N(0, K)`:

.. math:: D_G(z_\sigma, \sigma) = \Phi\Big[\bar c + Q\,\mathrm{diag}\Big(\frac{e}{e + \sigma^2\lambda^K}\Big)
          Q^T(\Phi^{-1} z_\sigma - \bar c)\Big].

A stationary GRF law in the same basis (Poisson's source, NS vorticity) *is* such data, so ``D_G`` fitted on
1000 fields is nearly the exact score; for other data it is the best Gaussian of this structure, and the
network of :class:`.denoisers.EDMDenoiser` (``gaussian_skip="spectral"``) learns only what is left,
:math:`D = D_G + c_\text{out}(\sigma) F_\theta`, starting from :math:`F_\theta = 0`.  The fit is tied to
the grid it was made on (``(K_0, K_1)`` modes).  Units: the denoiser's normalised ones.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


class SpectralGaussian(nn.Module):
    """Mean ``(C, K0, K1)`` and per-mode covariance ``(K0, K1, C, C)`` of normalised data in the noise basis.

    ``fit(z, noise)`` on normalised fields ``(N, C, n0, n1)``; ``denoise(z, sigma, noise)`` on ``(B, C, n0, n1)``
    with ``sigma`` ``(B,)`` or a number.  The buffers are part of the state dict (a checkpoint carries the fit).
    """

    def __init__(self, channels: int):
        super().__init__()
        self.channels = int(channels)
        self.register_buffer("mean", torch.zeros(0))
        self.register_buffer("cov", torch.zeros(0))
        self.register_buffer("grid_shape", torch.zeros(0, dtype=torch.long))
        self._eig = {}

    @property
    def fitted(self) -> bool:
        return self.mean.numel() > 0

    @property
    def spatial(self) -> tuple:
        """The grid the fit was made on (the coefficient array may be smaller: sine basis)."""
        return tuple(int(v) for v in self.grid_shape)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kw):
        for name in ("mean", "cov", "grid_shape"):                 # the buffers take the fitted grid's shape
            key = prefix + name
            if key in state_dict:
                setattr(self, name, torch.empty_like(state_dict[key]))
        self._eig = {}
        super()._load_from_state_dict(state_dict, prefix, *args, **kw)

    @staticmethod
    def _basis(noise, spatial, like):
        if getattr(noise, "kind", None) != "grf":
            raise ValueError("gaussian_skip needs GRF noise (its basis diagonalises K); white noise has no such basis")
        if len(spatial) != 2:
            raise ValueError(f"gaussian_skip is 2-D; got a field of spatial shape {tuple(spatial)}")
        grf = noise.field(spatial)
        phi = grf._mats("_phi", like)
        inv = noise.basis_inverse(spatial, like)
        lam = grf.eigenvalues.to(dtype=like.dtype, device=like.device)
        return phi, inv, lam

    def coefficients(self, z: torch.Tensor, noise) -> torch.Tensor:
        """:math:`\\Phi^{-1} z`: ``(B, C, n0, n1) -> (B, C, K0, K1)``."""
        _, inv, _ = self._basis(noise, z.shape[2:], z)
        return inv[0] @ z @ inv[1].T

    @torch.no_grad()
    def fit(self, z: torch.Tensor, noise) -> "SpectralGaussian":
        """Sample mean and per-mode covariance of normalised fields ``z`` ``(N, C, n0, n1)`` (float64)."""
        if z.dim() != 4 or z.shape[1] != self.channels:
            raise ValueError(f"fit expects (N, {self.channels}, n0, n1); got {tuple(z.shape)}")
        if z.shape[0] < 2:
            raise ValueError("fitting a covariance needs at least 2 fields")
        c = self.coefficients(z.detach().to(torch.float64), noise)
        mean = c.mean(0)
        d = (c - mean).permute(2, 3, 1, 0)                       # (K0, K1, C, N)
        self.mean = mean.float()
        self.grid_shape = torch.tensor(z.shape[2:], dtype=torch.long)
        self.cov = (d @ d.transpose(-1, -2) / (z.shape[0] - 1)).float()
        self._eig = {}
        return self

    def _eigen(self, like):
        key = (like.dtype, like.device)
        if key not in self._eig:
            e, Q = torch.linalg.eigh(self.cov.to(torch.float64))   # (K0, K1, C), (K0, K1, C, C)
            self._eig[key] = (e.clamp_min(0).permute(2, 0, 1).to(like), Q.to(like))
        return self._eig[key]

    def denoise(self, z: torch.Tensor, sigma, noise) -> torch.Tensor:
        """The Wiener filter :math:`D_G(z, \\sigma)` (module docstring), in ``z``'s dtype."""
        if not self.fitted:
            raise RuntimeError("this SpectralGaussian is not fitted (call fit on the training fields)")
        if tuple(z.shape[2:]) != self.spatial or z.shape[1] != self.channels:
            raise ValueError(f"the Gaussian part was fitted on {self.channels}-channel fields of {self.spatial}; "
                             f"got {tuple(z.shape)} (a gaussian_skip denoiser serves its training grid only)")
        phi, inv, lam = self._basis(noise, z.shape[2:], z)
        mean = self.mean.to(z)
        e, Q = self._eigen(z)                                     # (C, K0, K1), (K0, K1, C, C)
        s2 = torch.as_tensor(sigma, dtype=z.dtype, device=z.device).reshape(-1, 1, 1, 1) ** 2
        c = inv[0] @ z @ inv[1].T - mean                          # (B, C, K0, K1)
        r = torch.einsum("bckl,klcd->bdkl", c, Q)                 # Q^T c
        r = r * (e / (e + s2 * lam).clamp_min(torch.finfo(z.dtype).tiny))
        c0 = torch.einsum("bdkl,klcd->bckl", r, Q) + mean
        return phi[0] @ c0 @ phi[1].T

    def extra_repr(self) -> str:
        return f"channels={self.channels}, modes={self.spatial if self.fitted else 'unfitted'}"
