"""pdeinv — PDE inverse problems with differentiable simulators, neural-operator
surrogates, diffusion priors and classical solvers, behind one calling contract:

    result = solver(y, fwd, seed=0)

See ``docs/architecture.md`` for the map of the package.
"""
import importlib

from pdeinv import checks, metrics, physics
from pdeinv.physics import (BoundaryTrace, ForwardModel, GaussianNoise, GaussianRandomField, Grid1D, Grid2D,
                      MaskObservation, PointObservation, threshold)

__version__ = "0.1.0"

_LAZY = {"solvers", "surrogates", "priors", "data", "plot", "cli", "tasks", "benchmark", "nn"}


def __getattr__(name):
    # heavy sub-packages (neuraloperator, deepxde, matplotlib) load on first use
    if name in _LAZY:
        return importlib.import_module(f".{name}", __name__)
    if name == "SurrogateForward":
        from pdeinv.surrogates.forward import SurrogateForward
        return SurrogateForward
    raise AttributeError(f"module 'pdeinv' has no attribute {name!r}")


__all__ = ["Grid1D", "Grid2D", "GaussianRandomField", "threshold", "PointObservation", "MaskObservation",
           "BoundaryTrace", "GaussianNoise", "ForwardModel", "checks", "metrics", "physics",
           "solvers", "surrogates", "priors", "data", "plot", "tasks", "SurrogateForward"]
