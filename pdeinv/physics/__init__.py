"""Differentiable forward simulators, grids, random fields, observations and noise.

``PROBLEMS`` maps a task name to its problem class; the CLI and the contract
tests read it, so a registered problem is tested by the existing tests.
"""
from pdeinv.physics.grid import Grid1D, Grid2D, grid_from_dict
from pdeinv.physics.fields import GaussianRandomField, threshold, white_noise
from pdeinv.physics.observation import Observation, PointObservation, MaskObservation, BoundaryTrace
from pdeinv.physics.noise import GaussianNoise
from pdeinv.physics.forward import ForwardModel, Identity
from pdeinv.physics.elliptic import EllipticProblem, solve_elliptic, stencil
from pdeinv.physics.darcy import Darcy
from pdeinv.physics.poisson import Poisson
from pdeinv.physics.helmholtz import Helmholtz
from pdeinv.physics.external import ExternalProblem  # bridge for external solvers (not in PROBLEMS: needs callables)
from pdeinv.physics.eit import EIT, DtNObservation
from pdeinv.physics.navier_stokes import NavierStokes2D
from pdeinv.physics.burgers import Burgers1D
from pdeinv.physics.burgers_bc import BurgersBC
from pdeinv.physics.wave import Wave2D
from pdeinv.physics.timeobs import TimeSliceObservation
from pdeinv.physics.spacetime import SpaceTimePointObservation

PROBLEMS = {
    "darcy": Darcy,
    "poisson": Poisson,
    "helmholtz": Helmholtz,
    "eit": EIT,
    "ns": NavierStokes2D,
    "burgers": Burgers1D,
    "burgers_dirichlet": BurgersBC,
    "wave": Wave2D,
}

__all__ = [
    "Grid1D", "Grid2D", "grid_from_dict", "GaussianRandomField", "threshold", "white_noise",
    "Observation", "PointObservation", "MaskObservation", "BoundaryTrace", "GaussianNoise",
    "ForwardModel", "Identity", "EllipticProblem", "solve_elliptic", "stencil", "Darcy", "Poisson", "Helmholtz",
    "EIT", "DtNObservation", "NavierStokes2D", "Burgers1D", "BurgersBC", "Wave2D", "TimeSliceObservation", "SpaceTimePointObservation", "ExternalProblem", "PROBLEMS",
]
