r"""FunDPS: function-space diffusion posterior sampling (Yao et al., NeurIPS 2025).

The prior is a diffusion model *on functions*: the denoiser is a neural
operator (neuraloperator's U-shaped neural operator, ``EDMDenoiser(arch="uno")``)
and the noise a Gaussian random field (``GRFNoise``), so one model can be
sampled on grids other than the training grid.  Sampling is the EDM Heun
sampler with posterior guidance (:mod:`pdeinv.solvers.diffusion.guidance`):

* observation guidance at every step, its strength following the noise
  likelihood and the noise level (:math:`\sigma^2 K\nabla\ell` with the
  likelihood tempered by :math:`r_\sigma^2`), so no hand-tuned weights;
* PDE-residual guidance (the problem's real residual) only once
  :math:`\sigma \le 1` (``pde_sigma``) -- and, as in the original's Darcy-inverse configuration
  (PDE weight 0), off by default in inverse mode: ``weights={"pde": 1}`` switches it on;
* observation noise in the likelihood (``fwd.noise``); guidance may go through
  ``fwd`` itself (``physics="simulator"``).

Usage::

    solver = FunDPS.load("darcy_uno.ckpt", mode="inverse", n_samples=8, num_steps=50)
    result = solver(y, fwd, seed=0)      # result.m, result.u, result.samples, result.std

Reference: J. Yao, A. Mammadov, J. Berner, G. Kerrigan, J. C. Ye, K. Azizzadenesheli,
A. Anandkumar, "Guided diffusion sampling on function spaces with applications to PDEs",
NeurIPS 2025.
"""
from __future__ import annotations

from pdeinv.solvers.diffusion.guidance import always, fundps_pde
from pdeinv.solvers.diffusion.posterior import DiffusionPosteriorSolver


class FunDPS(DiffusionPosteriorSolver):
    """``FunDPS(prior, mode="inverse", physics="residual", n_samples=8, num_steps=50, pde_sigma=1.0, ...)``.

    See :class:`~pdeinv.solvers.diffusion.posterior.DiffusionPosteriorSolver` for the
    common parameters.  ``pde_sigma``: PDE guidance acts once ``sigma <= pde_sigma``.  The PDE weight
    defaults to 0 in inverse mode (the original FunDPS inverse configurations), 1 otherwise.
    """

    name = "fundps"
    default_steps = 50

    def __init__(self, prior, *args, pde_sigma: float = 1.0, **kwargs):
        super().__init__(prior, *args, **kwargs)
        if not float(pde_sigma) > 0:
            raise ValueError(f"pde_sigma must be > 0; got {pde_sigma}")
        self.pde_sigma = float(pde_sigma)

    def default_pde_weight(self) -> float:
        return 0.0 if self.mode == "inverse" else 1.0

    def obs_activity(self):
        return always

    def pde_activity(self):
        return fundps_pde(self.pde_sigma)
