r"""EDM integrators of the probability-flow ODE (and its stochastic variant), and unconditional draws.

Both integrate

.. math:: \frac{\mathrm d x}{\mathrm d\sigma} = \frac{x - D(x, \sigma)}{\sigma}

from :math:`x_{\sigma_0} = \sigma_0 n`, :math:`n \sim N(0, K)` down to :math:`\sigma = 0` with Heun's
second-order method on the EDM time steps (EDM Alg. 1).  The stochastic variant (EDM Alg. 2) first
raises the noise level of each step, :math:`\hat\sigma = (1+\gamma)\sigma`, by adding fresh noise of
variance :math:`\hat\sigma^2 - \sigma^2` (``S_churn``, ``S_min``, ``S_max``, ``S_noise`` as in EDM).

``denoise_fn(denoiser, x, sigma, step, num_steps) -> D`` replaces the plain denoiser call when given:
that is the hook through which :mod:`pdeinv.solvers.diffusion` conditions the sampler on data (a
guided denoiser :math:`D_y`).  The prior itself only needs the plain integrator, so it lives here
(priors never import solvers): :func:`sample_prior` draws unconditional fields for the prior health
check (:mod:`.health`), and :func:`ode_denoise` integrates from an intermediate noise level to 0 (the
:math:`\hat x_0(x_t)` of DAPS).

Everything is batched (the batch axis holds independent chains); ``seed``/``generator`` make the
initial and churn noise reproducible.
"""
from __future__ import annotations

import math
from typing import Callable, Optional, Sequence

import torch

from pdeinv.priors.diffusion.edm import EDMSchedule


def plain_denoise(denoiser, x, sigma, step, num_steps):
    """The unguided denoiser call (no autograd graph)."""
    with torch.no_grad():
        return denoiser.denoise(x, sigma)


def heun_steps(denoiser, x: torch.Tensor, steps: Sequence[float], *, denoise_fn: Optional[Callable] = None,
               stochastic: bool = False, S_churn: float = 0.0, S_min: float = 0.0, S_max: float = float("inf"),
               S_noise: float = 1.0, noise=None, generator: Optional[torch.Generator] = None,
               step_offset: int = 0, num_steps: Optional[int] = None, verbose: bool = False) -> torch.Tensor:
    r"""Integrate the ODE from ``x`` at ``steps[0]`` through the decreasing noise levels ``steps`` (last may be 0).

    ``denoise_fn`` (default :func:`plain_denoise`) gets the step index ``step_offset + i`` and
    ``num_steps`` (default ``len(steps) - 1``).  With ``stochastic`` the churn ``gamma = S_churn / num_steps``
    (capped at :math:`\sqrt2 - 1`) is added for :math:`S_\min \le \sigma \le S_\max`.
    """
    denoise = denoise_fn or plain_denoise
    noise = noise or denoiser.noise
    steps = [float(s) for s in steps]
    n = num_steps or (len(steps) - 1)
    it = range(len(steps) - 1)
    if verbose:
        from tqdm.auto import tqdm
        it = tqdm(it, desc="sampling", leave=False)
    for i in it:
        s_cur, s_next = steps[i], steps[i + 1]
        gamma = min(S_churn / n, math.sqrt(2) - 1) if (stochastic and S_min <= s_cur <= S_max) else 0.0
        s_hat = s_cur * (1 + gamma)
        if gamma > 0:
            eps = noise.sample(x.shape, generator=generator, dtype=x.dtype, device=x.device)
            x = x + math.sqrt(s_hat ** 2 - s_cur ** 2) * S_noise * eps
        D = denoise(denoiser, x, s_hat, step_offset + i, n)
        d = (x - D) / s_hat
        x_next = x + (s_next - s_hat) * d
        if s_next > 0:
            D2 = denoise(denoiser, x_next, s_next, step_offset + i, n)
            d2 = (x_next - D2) / s_next
            x_next = x + (s_next - s_hat) * 0.5 * (d + d2)
        x = x_next.detach()
        if not bool(torch.isfinite(x).all()):
            raise RuntimeError(f"the diffusion sampler diverged at step {step_offset + i} (sigma={s_cur:.3g}); "
                               "with guidance, its weights are probably too large")
    return x


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
    guidance : ``guidance(denoiser, x, sigma, step, num_steps) -> D_y``, or None (the prior).
    seed, generator : randomness of the initial (and churn) noise.
    dtype, device : of the chain (the network may compute in float32 inside).
    """
    schedule = schedule or denoiser.schedule
    noise = noise or denoiser.noise
    if generator is None:
        generator = torch.Generator().manual_seed(int(seed) if seed is not None else 0)
    steps = schedule.steps(num_steps, dtype=torch.float64)
    if S_churn is None:
        S_churn = 0.4 * num_steps
    x = float(steps[0]) * noise.sample(shape, generator=generator, dtype=dtype, device=device)
    return heun_steps(denoiser, x, steps.tolist(), denoise_fn=guidance, stochastic=stochastic, S_churn=S_churn,
                      S_min=S_min, S_max=S_max, S_noise=S_noise, noise=noise, generator=generator,
                      num_steps=num_steps, verbose=verbose)


def ode_denoise(denoiser, x: torch.Tensor, sigma: float, n_steps: int = 1, schedule: Optional[EDMSchedule] = None,
                denoise_fn: Optional[Callable] = None) -> torch.Tensor:
    r""":math:`\hat x_0(x_\sigma)`: the probability-flow ODE from ``x`` at noise level ``sigma`` to 0 in ``n_steps``
    Heun steps on the EDM :math:`\rho`-spacing between ``sigma`` and ``sigma_min`` (then 0).

    ``n_steps = 1`` is one Euler step to 0, i.e. the Tweedie mean :math:`D(x, \sigma) = E[x_0 | x_\sigma]`;
    more steps follow the ODE to a point on the data manifold (DAPS's :math:`\hat x_0`)."""
    schedule = schedule or denoiser.schedule
    n = int(n_steps)
    if n < 1:
        raise ValueError(f"n_steps must be >= 1; got {n_steps}")
    sigma = float(sigma)
    if n == 1 or sigma <= schedule.sigma_min:
        steps = [sigma, 0.0]
    else:
        rho = schedule.rho
        a, b = sigma ** (1 / rho), schedule.sigma_min ** (1 / rho)
        steps = [(a + i / (n - 1) * (b - a)) ** rho for i in range(n)] + [0.0]
    return heun_steps(denoiser, x, steps, denoise_fn=denoise_fn)


@torch.no_grad()
def sample_prior(denoiser, n: int, spatial: Sequence[int], *, num_steps: int = 32, stochastic: bool = False,
                 seed: Optional[int] = 0, generator: Optional[torch.Generator] = None, batch_size: int = 64,
                 dtype=None, device=None, physical: bool = True) -> torch.Tensor:
    r"""``n`` unconditional draws ``(n, C, *spatial)`` from a diffusion prior (Heun, ``num_steps`` levels).

    ``physical=True`` decodes them to physical units (``denoiser.decode``); otherwise they stay in the
    normalised units the denoiser works in.  Batches of ``batch_size`` chains share one generator, so the
    draws depend on ``seed`` and ``batch_size`` only."""
    channels = int(getattr(denoiser, "channels", None) or denoiser.config["channels"])
    if dtype is None:
        dtype = torch.float32 if isinstance(denoiser, torch.nn.Module) else torch.float64
    if generator is None:
        generator = torch.Generator().manual_seed(int(seed) if seed is not None else 0)
    out = []
    for start in range(0, int(n), int(batch_size)):
        b = min(int(batch_size), int(n) - start)
        z = edm_sample(denoiser, (b, channels, *spatial), num_steps=num_steps, stochastic=stochastic,
                       generator=generator, dtype=dtype, device=device)
        out.append(denoiser.decode(z) if physical else z)
    return torch.cat(out)
