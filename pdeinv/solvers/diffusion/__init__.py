"""Diffusion posterior sampling: EDM samplers, guidance (observations, PDE residual,
simulator), the posterior solver base and its methods FunDPS, DiffusionPDE and DAPS (decoupled
annealing through the simulator).  The priors themselves (denoisers, noise, schedule, training,
unconditional sampling, health checks) are :mod:`pdeinv.priors.diffusion`'s."""
from pdeinv.solvers.diffusion.daps import DAPS
from pdeinv.solvers.diffusion.diffusionpde import DiffusionPDE
from pdeinv.solvers.diffusion.fundps import FunDPS
from pdeinv.solvers.diffusion.guidance import (ObservationGuidance, PosteriorGuidance, ResidualGuidance,
                                               SimulatorGuidance, tune_guidance)
from pdeinv.solvers.diffusion.posterior import DiffusionPosteriorSolver
from pdeinv.solvers.diffusion.samplers import SAMPLERS, edm_sample, heun_sampler, stochastic_sampler
from pdeinv.solvers.diffusion.scores import posterior_scores

__all__ = ["DAPS", "DiffusionPDE", "FunDPS", "DiffusionPosteriorSolver", "ObservationGuidance", "PosteriorGuidance",
           "ResidualGuidance", "SimulatorGuidance", "tune_guidance", "SAMPLERS", "edm_sample", "heun_sampler",
           "stochastic_sampler", "posterior_scores"]
