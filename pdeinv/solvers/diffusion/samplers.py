r"""EDM samplers: deterministic Heun (EDM Alg. 1) and stochastic (EDM Alg. 2), with a guidance hook.

Both integrate the probability-flow ODE

.. math:: \frac{\mathrm d x}{\mathrm d\sigma} = \frac{x - D(x, \sigma)}{\sigma}

from :math:`x_{\sigma_0} = \sigma_0 n`, :math:`n \sim N(0, K)` down to
:math:`\sigma = 0` with Heun's second-order method on the EDM time steps.  The
stochastic sampler first raises the noise level of each step,
:math:`\hat\sigma = (1+\gamma)\sigma`, by adding fresh noise of variance
:math:`\hat\sigma^2 - \sigma^2` (``S_churn``, ``S_min``, ``S_max``, ``S_noise``
as in EDM), which corrects errors of the denoiser.

**Guidance.**  Conditioning on observations replaces the score by the posterior
score, :math:`\nabla\log p(x|y) = \nabla\log p(x) + \nabla\log p(y|x)`.  With
the prior score :math:`-K^{-1}(x - D)/\sigma^2` this is the same ODE with the
guided denoiser

.. math:: D_y(x, \sigma) = D(x, \sigma) + \sigma^2 K\,\nabla_x \log p(y \mid x),

so a guidance object only has to return :math:`D_y` (``guidance(denoiser, x,
sigma, step, num_steps)``; see :mod:`.guidance`).  Everything is batched: the
batch axis holds independent chains.  ``seed``/``generator`` make the initial
and churn noise reproducible.
"""
from __future__ import annotations

import logging
import math
from typing import Callable, Optional, Sequence

import torch

from pdeinv.priors.diffusion.edm import EDMSchedule

log = logging.getLogger(__name__)


def _denoise_plain(denoiser, x, sigma, step, num_steps):
    with torch.no_grad():
        return denoiser.denoise(x, sigma)


def edm_sample(denoiser, shape: Sequence[int], *, num_steps: int = 18, schedule: Optional[EDMSchedule] = None,
               noise=None, stochastic: bool = False, S_churn: Optional[float] = None, S_min: float = 0.0,
               S_max: float = float("inf"), S_noise: float = 1.0, guidance: Optional[Callable] = None,
               seed: Optional[int] = None, generator: Optional[torch.Generator] = None,
               dtype=torch.float64, device=None, verbose: bool = False) -> torch.Tensor:
    r"""Draw ``shape[0]`` samples ``(B, C, *spatial)`` (normalised units) from the denoiser's model.

    Parameters
    ----------
    denoiser : object with ``denoise(z, sigma)``, ``schedule`` and ``noise``.
    shape : ``(B, C, *spatial)``; any spatial size the denoiser accepts.
    num_steps : number of noise levels :math:`N` (Heun: :math:`2N-1` denoiser calls).
    schedule, noise : default to the denoiser's.
    stochastic : EDM Alg. 2 (churn) instead of the deterministic Alg. 1.
    S_churn : total churn (default ``0.4 * num_steps``, i.e. :math:`\gamma` = 0.4 per step).
    guidance : ``guidance(denoiser, x, sigma, step, num_steps) -> D_y``, or None.
    seed, generator : randomness of the initial (and churn) noise.
    dtype, device : of the chain (the network may compute in float32 inside).
    """
    schedule = schedule or denoiser.schedule
    noise = noise or denoiser.noise
    if generator is None:
        generator = torch.Generator().manual_seed(int(seed) if seed is not None else 0)
    steps = schedule.steps(num_steps, dtype=torch.float64)
    denoise = guidance if guidance is not None else _denoise_plain
    if S_churn is None:
        S_churn = 0.4 * num_steps
    x = float(steps[0]) * noise.sample(shape, generator=generator, dtype=dtype, device=device)
    it = range(num_steps)
    if verbose:
        from tqdm.auto import tqdm
        it = tqdm(it, desc="sampling", leave=False)
    for i in it:
        s_cur, s_next = float(steps[i]), float(steps[i + 1])
        gamma = min(S_churn / num_steps, math.sqrt(2) - 1) if (stochastic and S_min <= s_cur <= S_max) else 0.0
        s_hat = s_cur * (1 + gamma)
        if gamma > 0:
            eps = noise.sample(x.shape, generator=generator, dtype=dtype, device=device)
            x = x + math.sqrt(s_hat ** 2 - s_cur ** 2) * S_noise * eps
        D = denoise(denoiser, x, s_hat, i, num_steps)
        d = (x - D) / s_hat
        x_next = x + (s_next - s_hat) * d
        if s_next > 0:
            D2 = denoise(denoiser, x_next, s_next, i, num_steps)
            d2 = (x_next - D2) / s_next
            x_next = x + (s_next - s_hat) * 0.5 * (d + d2)
        x = x_next.detach()
        if not bool(torch.isfinite(x).all()):
            raise RuntimeError(f"the diffusion sampler diverged at step {i} (sigma={s_cur:.3g}); the guidance "
                               "weights are probably too large")
    return x


def heun_sampler(denoiser, shape, **kw) -> torch.Tensor:
    """Deterministic EDM sampler (Alg. 1); see :func:`edm_sample`."""
    return edm_sample(denoiser, shape, stochastic=False, **kw)


def stochastic_sampler(denoiser, shape, **kw) -> torch.Tensor:
    """Stochastic EDM sampler (Alg. 2); see :func:`edm_sample`."""
    return edm_sample(denoiser, shape, stochastic=True, **kw)


SAMPLERS = {"heun": heun_sampler, "stochastic": stochastic_sampler}
