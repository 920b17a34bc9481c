"""Diffusion priors for PDE fields: EDM schedule and preconditioning, white / GRF noise,
denoisers (own U-Net, neuraloperator UNO, analytic Gaussian) and denoising-score-matching
training with EMA.  The samplers and the posterior guidance that use them to solve inverse
problems are :mod:`pdeinv.solvers.diffusion`'s.  See ``docs/diffusion.md``."""
from pdeinv.priors.diffusion.denoisers import AnalyticGaussianDenoiser, EDMDenoiser, UNet, UNONet, gaussian_posterior
from pdeinv.priors.diffusion.edm import EDMSchedule
from pdeinv.priors.diffusion.noise import GRFNoise, WhiteNoise, make_noise

__all__ = ["EDMSchedule", "WhiteNoise", "GRFNoise", "make_noise", "AnalyticGaussianDenoiser", "EDMDenoiser",
           "UNet", "UNONet", "gaussian_posterior"]
