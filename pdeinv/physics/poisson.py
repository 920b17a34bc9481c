r"""Poisson :math:`\nabla^2 u = f` in the unit square, :math:`u = g` on the boundary.

Sign convention of BENCHMARKS.md (``∇²u = a``): the source enters with a plus
sign on the Laplacian, i.e. the solver is called with :math:`-\Delta u = -f`.
"""
from __future__ import annotations

from pdeinv.physics.elliptic import EllipticProblem


class Poisson(EllipticProblem):
    """``Poisson(grid, f=None, g=0.0, unknown="f")``; ``problem(m) -> u`` with ``m`` the source (or ``g``)."""

    inputs = ("f", "g")

    def __init__(self, grid, f=None, g=0.0, unknown: str = "f", method: str = "auto", rtol=None):
        super().__init__(grid, unknown, method, rtol, f=f, g=g)

    def coefficients(self, f, g):
        return 1.0, 0.0, -f, g
