"""Inverse solvers, all called as ``solver(y, fwd, *, seed=None) -> InverseResult``.

``SOLVERS`` (:mod:`pdeinv.solvers.registry`) maps a method name to its class; the contract
tests read it.  :func:`build` (:mod:`pdeinv.solvers.factory`) is the one way to build a method
for a task, with its trained model where it needs one: the CLI, the benchmark harness and the
demos call it.
"""
from pdeinv.solvers.base import InverseResult, InverseSolver
from pdeinv.solvers.map import MAP
from pdeinv.solvers.surrogate_map import SurrogateMAP
from pdeinv.solvers.amortized import Amortized
from pdeinv.solvers.diffusion import DAPS, DiffusionPDE, FunDPS
from pdeinv.solvers.pinn import PINN
from pdeinv.solvers.mcmc import MCMC, TwoLevelMCMC
from pdeinv.solvers.registry import SOLVERS
from pdeinv.solvers.factory import BUILDERS, NEEDS_MODEL, build

__all__ = ["InverseResult", "InverseSolver", "MAP", "SurrogateMAP", "Amortized", "FunDPS", "DiffusionPDE", "DAPS",
           "PINN", "MCMC", "TwoLevelMCMC", "SOLVERS", "build", "BUILDERS", "NEEDS_MODEL"]
