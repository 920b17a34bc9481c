"""Diffusion priors for PDE fields: EDM schedule and preconditioning, white / GRF noise,
denoisers (own U-Net, neuraloperator UNO, analytic Gaussian), denoising-score-matching
training with EMA, the plain EDM integrators and unconditional draws (:mod:`.sampling`), and the
prior health check (:mod:`.health`).  The posterior samplers and guidance that use them to solve
inverse problems are :mod:`pdeinv.solvers.diffusion`'s.  See ``docs/diffusion.md``."""
from pdeinv.priors.diffusion.denoisers import AnalyticGaussianDenoiser, EDMDenoiser, UNet, UNONet, gaussian_posterior
from pdeinv.priors.diffusion.edm import EDMSchedule
from pdeinv.priors.diffusion.health import HealthReport, check_prior
from pdeinv.priors.diffusion.noise import GRFNoise, WhiteNoise, make_noise
from pdeinv.priors.diffusion.sampling import edm_sample, ode_denoise, sample_prior

__all__ = ["EDMSchedule", "WhiteNoise", "GRFNoise", "make_noise", "AnalyticGaussianDenoiser", "EDMDenoiser",
           "UNet", "UNONet", "gaussian_posterior", "check_prior", "HealthReport", "edm_sample", "ode_denoise",
           "sample_prior"]
