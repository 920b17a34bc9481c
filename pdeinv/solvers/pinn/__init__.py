"""PINN inversion on deepxde: the solver (:mod:`.solver`) and the continuous residual of
each problem (:mod:`.residuals`)."""
from pdeinv.solvers.pinn.residuals import PINNProblem, pinn_problem, register_pinn_problem
from pdeinv.solvers.pinn.solver import PINN

__all__ = ["PINN", "PINNProblem", "pinn_problem", "register_pinn_problem"]
