"""Diffusion posterior sampling: EDM samplers, guidance (observations, PDE residual,
simulator), the posterior solver base and its methods FunDPS and DiffusionPDE.  The priors
themselves (denoisers, noise, schedule, training) are :mod:`pdeinv.priors.diffusion`'s."""
from pdeinv.solvers.diffusion.diffusionpde import DiffusionPDE
from pdeinv.solvers.diffusion.fundps import FunDPS
from pdeinv.solvers.diffusion.guidance import (ObservationGuidance, PosteriorGuidance, ResidualGuidance,
                                               SimulatorGuidance, tune_guidance)
from pdeinv.solvers.diffusion.posterior import DiffusionPosteriorSolver
from pdeinv.solvers.diffusion.samplers import SAMPLERS, edm_sample, heun_sampler, stochastic_sampler

__all__ = ["DiffusionPDE", "FunDPS", "DiffusionPosteriorSolver", "ObservationGuidance", "PosteriorGuidance",
           "ResidualGuidance", "SimulatorGuidance", "tune_guidance", "SAMPLERS", "edm_sample", "heun_sampler",
           "stochastic_sampler"]
