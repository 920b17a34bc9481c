"""pdeinv — PDE inverse problems with differentiable simulators, neural-operator
surrogates, diffusion priors and classical solvers, behind one calling contract:

    result = solver(y, fwd, seed=0)

See ``docs/architecture.md`` for the map of the package.

Everything here loads on first use (module ``__getattr__``): ``import pdeinv`` imports
neither torch nor any sub-package, so the command line parses its arguments and prints
``--help`` without them, and ``pdeinv.Grid2D``, ``pdeinv.solvers`` ... work as before.
"""
import importlib

__version__ = "0.1.0"

#: sub-packages and modules, imported when first touched
_LAZY = {"checks", "metrics", "physics", "solvers", "surrogates", "priors", "data", "plot", "cli", "tasks",
         "benchmark", "nn"}

#: names re-exported from a sub-module: name -> module
_EXPORTS = {
    **{n: "pdeinv.physics" for n in ("BoundaryTrace", "ForwardModel", "GaussianNoise", "GaussianRandomField",
                                     "Grid1D", "Grid2D", "MaskObservation", "PointObservation", "threshold")},
    "SurrogateForward": "pdeinv.surrogates.forward",
}


def __getattr__(name):
    # heavy sub-packages (torch, neuraloperator, deepxde, matplotlib) load on first use
    if name in _LAZY:
        return importlib.import_module(f".{name}", __name__)
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'pdeinv' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | _LAZY | set(_EXPORTS))


__all__ = ["Grid1D", "Grid2D", "GaussianRandomField", "threshold", "PointObservation", "MaskObservation",
           "BoundaryTrace", "GaussianNoise", "ForwardModel", "checks", "metrics", "physics",
           "solvers", "surrogates", "priors", "data", "plot", "tasks", "SurrogateForward"]
