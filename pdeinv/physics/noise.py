r"""Observation noise models.

:class:`GaussianNoise` adds :math:`e \sim N(0, s^2 I)` with either an absolute
standard deviation ``s = sigma`` or one relative to the root-mean-square of the
clean observations of each sample, ``s = relative * rms(y)``.

Exact data
----------
One rule for data without a usable noise level (``GaussianNoise(sigma=0)`` or
``relative=0``, or no noise model at all): a misfit cannot be weighted by a zero
standard deviation, and unit weights make the balance between data and prior depend
on the units of ``y`` (with the task's prior weights, MAP then returns the prior's
constant field).  Such data are therefore **weighted as if they carried
``DEFAULT_RELATIVE_NOISE`` = 1 % relative noise** -- the level of the benchmark
tasks, and what the benchmark harness assumes for ``--noise 0``.  Simulation is not
affected (exact data stay exact); :class:`~pdeinv.physics.ForwardModel` reports the
assumption in ``fwd.noise_assumed`` and every solver copies it into
``result.info["noise_assumed"]`` with a logged warning.  Give the noise level you
believe (``GaussianNoise(sigma=...)``, ``pdeinv invert --sigma/--noise``) to silence it.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from pdeinv.physics.fields import white_noise

#: relative noise level assumed when weighting a misfit for data without a (positive) noise level
DEFAULT_RELATIVE_NOISE = 0.01


class GaussianNoise(nn.Module):
    """Additive Gaussian noise, absolute (``sigma=``) or relative to RMS (``relative=``)."""

    def __init__(self, sigma: Optional[float] = None, relative: Optional[float] = None):
        super().__init__()
        if (sigma is None) == (relative is None):
            raise ValueError("give exactly one of sigma= (absolute std) or relative= (fraction of the RMS)")
        v = sigma if sigma is not None else relative
        try:
            fv = float(v)
        except (TypeError, ValueError):
            raise TypeError(f"the noise level must be a number; got {v!r}") from None
        if isinstance(v, bool) or not fv >= 0 or fv == float("inf"):
            raise ValueError(f"noise level must be a finite number >= 0; got {v}")
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

    @property
    def level(self) -> float:
        """The noise level as given (``sigma`` or ``relative``)."""
        return float(self.sigma if self.sigma is not None else self.relative)

    def forward(self, y: torch.Tensor, seed: Optional[int] = None,
                generator: Optional[torch.Generator] = None) -> torch.Tensor:
        e = white_noise(tuple(y.shape), seed=seed, generator=generator, dtype=y.dtype, device=y.device)
        return y + self.std(y) * e

    def extra_repr(self) -> str:
        return f"sigma={self.sigma}" if self.sigma is not None else f"relative={self.relative}"


def weighting_noise(noise: Optional[nn.Module]):
    """``(noise model that weights a misfit, why it was assumed or None)``.

    ``noise`` itself when it has a positive level; otherwise ``GaussianNoise(relative=DEFAULT_RELATIVE_NOISE)``
    and a sentence saying why (the rule of the module docstring).  Noise models other than
    :class:`GaussianNoise` are returned as given.
    """
    if noise is None:
        why = "no noise model"
    elif isinstance(noise, GaussianNoise) and noise.level == 0:
        why = f"noise level 0 ({noise.extra_repr()})"
    else:
        return noise, None
    return (GaussianNoise(relative=DEFAULT_RELATIVE_NOISE),
            f"{why}: the data are treated as exact and the misfit is weighted as relative noise "
            f"{DEFAULT_RELATIVE_NOISE:g} (pdeinv.physics.noise.DEFAULT_RELATIVE_NOISE); give the data's noise level "
            "(GaussianNoise(sigma=...), pdeinv invert --noise/--sigma) to change it")
