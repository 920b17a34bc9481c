"""PINN inversion on deepxde: the solver (:mod:`.solver`) and the continuous residual of
each problem (:mod:`.elliptic`, :mod:`.time_dependent`, on :mod:`.base`; looked up through the
registry in :mod:`.residuals`)."""
from pdeinv.solvers.pinn.residuals import PINNProblem, pinn_problem, register_pinn_problem
from pdeinv.solvers.pinn.solver import PINN

__all__ = ["PINN", "PINNProblem", "pinn_problem", "register_pinn_problem"]
