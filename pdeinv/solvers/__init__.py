"""Inverse solvers, all called as ``solver(y, fwd, *, seed=None) -> InverseResult``.

``SOLVERS`` maps a method name to its class; the CLI, the benchmark harness
and the contract tests read it.
"""
from pdeinv.solvers.base import InverseResult, InverseSolver
from pdeinv.solvers.map import MAP
from pdeinv.solvers.surrogate_map import SurrogateMAP
from pdeinv.solvers.amortized import Amortized
from pdeinv.solvers.diffusion import DiffusionPDE, FunDPS
from pdeinv.solvers.pinn import PINN
from pdeinv.solvers.mcmc import MCMC, TwoLevelMCMC

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
