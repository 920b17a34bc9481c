"""Inverse solvers, all called as ``solver(y, fwd, *, seed=None) -> InverseResult``.

``SOLVERS`` maps a method name to its class; the CLI, the benchmark harness
and the contract tests read it.
"""
from .base import InverseResult, InverseSolver

SOLVERS = {}

__all__ = ["InverseResult", "InverseSolver", "SOLVERS"]
