r"""DiffusionPDE: joint diffusion prior over (m, u) with DPS guidance (Huang et al., NeurIPS 2024).

The prior is a diffusion model over the stacked fields ``(m, u)`` with a U-Net
denoiser and white noise (``EDMDenoiser(arch="unet", noise="white")``), trained
at one resolution.  Sampling is the EDM Heun sampler with DPS-style guidance
(:mod:`pdeinv.solvers.diffusion.guidance`):

* an observation loss on either channel (``mode="forward"``: sparse ``m``,
  recover ``u``; ``"inverse"``: sparse ``u``, recover ``m``; ``"both"``);
* the PDE residual loss (the problem's real ``residual``, scaled like the
  equation, not by 1/h as in the published Darcy code) switched on for the
  last ``pde_fraction`` = 20 % of the steps, with the observation weight
  multiplied by ``late_obs_factor`` = 0.1 then (the original's value);
* the PDE term's variance from the uncertainty of the estimate along the residual's own Jacobian
  (:class:`~pdeinv.solvers.diffusion.guidance.ResidualGuidance`), not from white perturbations.

The estimate is the posterior mean of ``n_samples`` draws; the published figures are single-sample
(thresholded) errors: :func:`~pdeinv.solvers.diffusion.scores.posterior_scores` reports both.

Guidance strengths follow the observation-noise likelihood and the noise level
(no per-task constants); ``tune_guidance`` adjusts their multipliers on
held-out samples.

Reference: J. Huang, G. Yang, Z. Wang, J. J. Park, "DiffusionPDE: Generative
PDE-solving under partial observation", NeurIPS 2024.
"""
from __future__ import annotations

from pdeinv.solvers.diffusion.guidance import diffusionpde_obs, diffusionpde_pde
from pdeinv.solvers.diffusion.posterior import DiffusionPosteriorSolver


class DiffusionPDE(DiffusionPosteriorSolver):
    """``DiffusionPDE(prior, mode="inverse", physics="residual", n_samples=8, num_steps=200,
    pde_fraction=0.2, late_obs_factor=0.1, ...)``; common parameters as
    :class:`~pdeinv.solvers.diffusion.posterior.DiffusionPosteriorSolver`."""

    name = "diffusionpde"
    default_steps = 200

    def __init__(self, prior, *args, pde_fraction: float = 0.2, late_obs_factor: float = 0.1, **kwargs):
        super().__init__(prior, *args, **kwargs)
        if not 0 <= pde_fraction <= 1:
            raise ValueError(f"pde_fraction must be in [0, 1]; got {pde_fraction}")
        if not float(late_obs_factor) >= 0:
            raise ValueError(f"late_obs_factor must be >= 0; got {late_obs_factor}")
        self.pde_fraction, self.late_obs_factor = float(pde_fraction), float(late_obs_factor)

    def obs_activity(self):
        if self.physics != "residual":
            return lambda sigma, step, n: 1.0
        return diffusionpde_obs(self.late_obs_factor, self.pde_fraction)

    def pde_activity(self):
        return diffusionpde_pde(self.pde_fraction)
