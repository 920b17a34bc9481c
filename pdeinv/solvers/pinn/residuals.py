r"""Continuous PDE residuals of pdeinv's problems, in the form a PINN needs.

A physics-informed network :math:`u_\theta(x)` (or :math:`u_\theta(x, t)`) is
trained so that the *continuous* residual :math:`\mathcal{R}[u_\theta; p](x)`
vanishes at collocation points, where ``p`` are the PDE's inputs: known ones
(numbers, or grid fields interpolated bilinearly to the points), unknown
scalars (``dde.Variable``) and an unknown coefficient field (a second network
output).  This module holds, per problem class, a :class:`PINNProblem` that
knows

* the space(-time) domain (a deepxde geometry built from the problem's grid);
* the network outputs (``["u"]``, ``["u", "a"]``, ``["w", "psi"]`` ...);
* the residual(s), written with deepxde's autograd helpers;
* the boundary/initial conditions for *known* data, and how to read the
  unknown ``m`` back from the trained network on ``fwd.grid``.

Residuals (all on the unit square / unit interval unless the grid says otherwise):

==========  ====================================================================  ==================
problem     residual :math:`\mathcal{R}`                                          scalars
==========  ====================================================================  ==================
Darcy       :math:`-\nabla\cdot(a\nabla u) - f = -a\Delta u - \nabla a\cdot\nabla u - f`  ``a``, ``f``
Poisson     :math:`\Delta u - f`                                                  ``f``
Helmholtz   :math:`\Delta u + k^2 u - f`                                          ``k``, ``f``
Burgers     :math:`u_t + u u_x - \nu u_{xx}` on :math:`[0,L)\times[0,T]`, periodic  ``nu``
NS          :math:`w_t + \psi_y w_x - \psi_x w_y - \nu\Delta w - f`,               ``nu``
            :math:`\Delta\psi + w` (vorticity--stream function), periodic
==========  ====================================================================  ==================

Unknown scalars are parametrised as :math:`s = s_0 e^{\theta}` (all of them are
positive: coefficients, wave numbers, viscosities), so that a guess off by a
factor of ten is as easy to correct as one off by 10 %.  Unknown *boundary*
data (Dirichlet ``g``) is never put in a ``DirichletBC`` (LIBRARIES.md: stale
cached values on the PyTorch backend): the network's own trace is the unknown,
and only the residual and the observations constrain it.

:func:`pinn_problem` returns the right :class:`PINNProblem` for a pdeinv problem
(looked up by class name in :data:`PINN_PROBLEMS`); other helpers register
theirs with :func:`register_pinn_problem`.

The base class and helpers are in :mod:`.base`, the problems' forms in :mod:`.elliptic` and
:mod:`.time_dependent`; this module keeps the registry and re-exports them all.
"""
from __future__ import annotations

from typing import Dict

from pdeinv.solvers.pinn.base import GridInterpolant, PINNProblem, grid_points
from pdeinv.solvers.pinn.elliptic import DarcyPINN, EllipticPINN, HelmholtzPINN, PoissonPINN
from pdeinv.solvers.pinn.time_dependent import BurgersPINN, NavierStokesPINN


PINN_PROBLEMS: Dict[str, type] = {
    "Darcy": DarcyPINN,
    "Poisson": PoissonPINN,
    "Helmholtz": HelmholtzPINN,
    "Burgers1D": BurgersPINN,
    "Burgers": BurgersPINN,
    "BurgersBC": BurgersPINN,
    "NavierStokes2D": NavierStokesPINN,
    "NavierStokes": NavierStokesPINN,
}


def register_pinn_problem(class_name: str, pinn_cls: type) -> None:
    """Register the PINN form of a problem class (keyed by the problem's class name)."""
    PINN_PROBLEMS[class_name] = pinn_cls


def pinn_problem(problem, scalars=None, known=None, field_bounds=None) -> PINNProblem:
    """The :class:`PINNProblem` for a pdeinv problem instance (or pass a ``PINNProblem`` through)."""
    if isinstance(problem, PINNProblem):
        return problem
    for cls in type(problem).__mro__:
        if cls.__name__ in PINN_PROBLEMS:
            return PINN_PROBLEMS[cls.__name__](problem, scalars=scalars, known=known, field_bounds=field_bounds)
    raise ValueError(f"no PINN residual for problem class {type(problem).__name__!r}; known: "
                     f"{sorted(PINN_PROBLEMS)} (register one with register_pinn_problem)")


__all__ = ["GridInterpolant", "PINNProblem", "grid_points", "EllipticPINN", "DarcyPINN", "PoissonPINN",
           "HelmholtzPINN", "BurgersPINN", "NavierStokesPINN", "PINN_PROBLEMS", "register_pinn_problem",
           "pinn_problem"]
