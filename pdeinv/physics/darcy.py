r"""Darcy flow :math:`-\nabla\cdot(a\nabla u) = f` in the unit square, :math:`u = g` on the boundary.

``a`` is the permeability (must be > 0), ``u`` the pressure, ``f`` the source
(BENCHMARKS.md: ``f = 1``, ``g = 0``, ``a`` in {3, 12}).  Units are
nondimensional.
"""
from __future__ import annotations

from pdeinv.physics.elliptic import EllipticProblem


class Darcy(EllipticProblem):
    """``Darcy(grid, a=None, f=1.0, g=0.0, unknown="a", method="auto")``; ``problem(m) -> u``.

    ``unknown`` is ``"a"`` (coefficient), ``"f"`` (source) or ``"g"`` (Dirichlet
    data); the other two inputs are fixed here (numbers or ``(1|B,1,nx,ny)``
    tensors).  Gradients w.r.t. every tensor input come from one adjoint solve.
    """

    inputs = ("a", "f", "g")
    positive = ("a",)
    operator_inputs = ("a",)

    def __init__(self, grid, a=None, f=1.0, g=0.0, unknown: str = "a", method: str = "auto", rtol=None):
        super().__init__(grid, unknown, method, rtol, a=a, f=f, g=g)

    def describe(self, name):
        return "permeability" if name == "a" else name

    def coefficients(self, a, f, g):
        return a, 0.0, f, g
