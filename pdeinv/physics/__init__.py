"""Differentiable forward simulators, grids, random fields, observations and noise.

``PROBLEMS`` maps a task name to its problem class; the CLI and the contract
tests read it, so a registered problem is tested by the existing tests.
"""
from .grid import Grid1D, Grid2D, grid_from_dict
from .fields import GaussianRandomField, threshold, white_noise
from .observation import Observation, PointObservation, MaskObservation, BoundaryTrace
from .noise import GaussianNoise
from .forward import ForwardModel
from .elliptic import EllipticProblem, solve_elliptic, stencil
from .darcy import Darcy
from .poisson import Poisson
from .helmholtz import Helmholtz
from .external import ExternalProblem  # bridge for external solvers (not in PROBLEMS: needs callables)
from .eit import EIT, DtNObservation
from .navier_stokes import NavierStokes2D
from .burgers import Burgers1D
from .wave import Wave2D
from .timeobs import TimeSliceObservation

PROBLEMS = {
    "darcy": Darcy,
    "poisson": Poisson,
    "helmholtz": Helmholtz,
    "eit": EIT,
    "ns": NavierStokes2D,
    "burgers": Burgers1D,
    "wave": Wave2D,
}

__all__ = [
    "Grid1D", "Grid2D", "grid_from_dict", "GaussianRandomField", "threshold", "white_noise",
    "Observation", "PointObservation", "MaskObservation", "BoundaryTrace", "GaussianNoise",
    "ForwardModel", "EllipticProblem", "solve_elliptic", "stencil", "Darcy", "Poisson", "Helmholtz",
    "EIT", "DtNObservation", "NavierStokes2D", "Burgers1D", "Wave2D", "TimeSliceObservation", "ExternalProblem", "PROBLEMS",
]
