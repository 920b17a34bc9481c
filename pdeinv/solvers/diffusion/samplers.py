r"""EDM samplers for posterior sampling: deterministic Heun (EDM Alg. 1) and stochastic (EDM Alg. 2).

The integrators are the prior's own (:mod:`pdeinv.priors.diffusion.sampling`: priors never import
solvers); this module names them for the posterior solvers and documents the guidance hook.

**Guidance.**  Conditioning on observations replaces the score by the posterior score,
:math:`\nabla\log p(x|y) = \nabla\log p(x) + \nabla\log p(y|x)`.  With the prior score
:math:`-K^{-1}(x - D)/\sigma^2` this is the same ODE with the guided denoiser

.. math:: D_y(x, \sigma) = D(x, \sigma) + \sigma^2 K\,\nabla_x \log p(y \mid x),

so a guidance object only has to return :math:`D_y` (``guidance(denoiser, x, sigma, step,
num_steps)``; see :mod:`.guidance`), passed as ``edm_sample(..., guidance=...)``.
"""
from __future__ import annotations

from pdeinv.priors.diffusion.sampling import edm_sample, heun_steps, ode_denoise, sample_prior  # noqa: F401


def heun_sampler(denoiser, shape, **kw):
    """Deterministic EDM sampler (Alg. 1); see :func:`~pdeinv.priors.diffusion.sampling.edm_sample`."""
    return edm_sample(denoiser, shape, stochastic=False, **kw)


def stochastic_sampler(denoiser, shape, **kw):
    """Stochastic EDM sampler (Alg. 2); see :func:`~pdeinv.priors.diffusion.sampling.edm_sample`."""
    return edm_sample(denoiser, shape, stochastic=True, **kw)


SAMPLERS = {"heun": heun_sampler, "stochastic": stochastic_sampler}
