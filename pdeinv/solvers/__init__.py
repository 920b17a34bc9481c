"""Inverse solvers, all called as ``solver(y, fwd, *, seed=None) -> InverseResult``.

``SOLVERS`` maps a method name to its class; the CLI, the benchmark harness
and the contract tests read it.
"""
from .base import InverseResult, InverseSolver
from .map import MAP
from .surrogate_map import SurrogateMAP
from .amortized import Amortized
from .fundps import FunDPS
from .diffusionpde import DiffusionPDE
from .pinn import PINN
from .mcmc import MCMC, TwoLevelMCMC

SOLVERS = {
    "map": MAP,
    "surrogate-map": SurrogateMAP,
    "amortized": Amortized,
    "fundps": FunDPS,
    "diffusionpde": DiffusionPDE,
    "pinn": PINN,
    "mcmc": MCMC,
    "mcmc-2level": TwoLevelMCMC,
}

__all__ = ["InverseResult", "InverseSolver", "MAP", "Amortized", "SOLVERS"]
