"""Diffusion priors for PDE fields: EDM schedule and preconditioning, white / GRF noise,
denoisers (own U-Net, neuraloperator UNO, analytic Gaussian), Heun and stochastic
samplers, denoising-score-matching training with EMA, and posterior guidance
(observations, PDE residual, simulator) used by the FunDPS and DiffusionPDE solvers.
See ``docs/diffusion.md``."""
from .denoisers import AnalyticGaussianDenoiser, EDMDenoiser, UNet, UNONet, gaussian_posterior
from .edm import EDMSchedule
from .guidance import (ObservationGuidance, PosteriorGuidance, ResidualGuidance, SimulatorGuidance,
                       tune_guidance)
from .noise import GRFNoise, WhiteNoise, make_noise
from .samplers import SAMPLERS, edm_sample, heun_sampler, stochastic_sampler

__all__ = ["EDMSchedule", "WhiteNoise", "GRFNoise", "make_noise", "AnalyticGaussianDenoiser", "EDMDenoiser",
           "UNet", "UNONet", "gaussian_posterior", "edm_sample", "heun_sampler", "stochastic_sampler", "SAMPLERS",
           "ObservationGuidance", "ResidualGuidance", "SimulatorGuidance", "PosteriorGuidance", "tune_guidance"]
