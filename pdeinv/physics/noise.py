r"""Observation noise models.

:class:`GaussianNoise` adds :math:`e \sim N(0, s^2 I)` with either an absolute
standard deviation ``s = sigma`` or one relative to the root-mean-square of the
clean observations of each sample, ``s = relative * rms(y)``.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from pdeinv.physics.fields import white_noise


class GaussianNoise(nn.Module):
    """Additive Gaussian noise, absolute (``sigma=``) or relative to RMS (``relative=``)."""

    def __init__(self, sigma: Optional[float] = None, relative: Optional[float] = None):
        super().__init__()
        if (sigma is None) == (relative is None):
            raise ValueError("give exactly one of sigma= (absolute std) or relative= (fraction of the RMS)")
        v = sigma if sigma is not None else relative
        if not v >= 0:
            raise ValueError(f"noise level must be >= 0; got {v}")
        self.sigma, self.relative = sigma, relative

    def std(self, y: torch.Tensor) -> torch.Tensor:
        """Noise standard deviation per sample, broadcastable to ``y`` (shape ``(B, 1, ..., 1)``).

        For relative noise this is computed from ``y`` itself (clean when
        simulating; the observed data when weighting a misfit, which differs
        from the clean RMS by O(relative^2)).
        """
        shape = (y.shape[0],) + (1,) * (y.dim() - 1)
        if self.sigma is not None:
            return torch.full(shape, float(self.sigma), dtype=y.dtype, device=y.device)
        rms = y.detach().pow(2).flatten(1).mean(1).sqrt()
        return (self.relative * rms).reshape(shape)

    def forward(self, y: torch.Tensor, seed: Optional[int] = None,
                generator: Optional[torch.Generator] = None) -> torch.Tensor:
        e = white_noise(tuple(y.shape), seed=seed, generator=generator, dtype=y.dtype, device=y.device)
        return y + self.std(y) * e

    def extra_repr(self) -> str:
        return f"sigma={self.sigma}" if self.sigma is not None else f"relative={self.relative}"
