r"""Helmholtz :math:`\nabla^2 u + k^2 u = f` in the unit square, :math:`u = g` on the boundary.

BENCHMARKS.md uses ``k = 1``.  ``k`` may be a number or a tensor of shape
``(B,)``/``(B,1,1,1)`` (differentiable).  For :math:`k^2` above the first
Dirichlet eigenvalue :math:`2\pi^2` the operator is indefinite: the direct
path still works, the CG path refuses it with a clear error.
"""
from __future__ import annotations

import torch

from pdeinv.physics.elliptic import EllipticProblem


class Helmholtz(EllipticProblem):
    """``Helmholtz(grid, k=1.0, f=None, g=0.0, unknown="f")``; ``problem(m) -> u``."""

    inputs = ("f", "g")

    def __init__(self, grid, k=1.0, f=None, g=0.0, unknown: str = "f", method: str = "auto", rtol=None):
        super().__init__(grid, unknown, method, rtol, f=f, g=g)
        self.k = k

    def _operator_fixed(self, given) -> bool:
        return not torch.is_tensor(self.k)   # a tensor wavenumber builds a new operator every call

    def solve(self, k=None, **vals):
        """Solve with explicit inputs; ``k`` overrides the wavenumber."""
        old = self.k
        if k is not None:
            self.k = k
        try:
            return super().solve(**vals)
        finally:
            self.k = old

    def coefficients(self, f, g):
        k = self.k
        if torch.is_tensor(k):
            ref = f if torch.is_tensor(f) else g if torch.is_tensor(g) else None
            k = k.reshape(-1, 1, 1, 1)
            c = -(k ** 2) * torch.ones(1, 1, *self.grid.shape, dtype=k.dtype, device=k.device)
            if ref is not None:
                c = c.to(ref.dtype)
        else:
            c = -float(k) ** 2
        return 1.0, c, -f, g
