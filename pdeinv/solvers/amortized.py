r"""Amortised inversion: run a trained inverse operator, :math:`\hat m = \mathcal{N}_\theta(y)`.

Inverse operators (NIO, ViTO, or any :class:`~pdeinv.surrogates.base.Surrogate`
trained to map observations to the unknown) cost one network evaluation per
sample instead of an optimisation with many PDE solves.  The solver has the
common contract ``Amortized(model)(y, fwd, seed=None) -> InverseResult``:

* ``y`` is turned into the network's input by ``model.inputs_from_observations(y, fwd)``
  when the model defines it (NIO stacks the EIT boundary patterns of
  ``fwd.problem`` with the measured fluxes; ViTO reshapes point values on a
  coarse square grid into a field), else passed as is;
* the output is returned in ``y``'s dtype; ``state=True`` also solves the
  forward model for ``u = F(m)`` (one PDE solve; off by default).

``Amortized.load(path)`` builds the solver from a surrogate checkpoint.
"""
from __future__ import annotations

import time
from typing import Optional

import torch

from pdeinv.solvers.base import InverseResult, InverseSolver


class Amortized(InverseSolver):
    """``Amortized(model, state=False, batch_size=None)``; ``solver(y, fwd) -> InverseResult``."""

    name = "amortized"

    def uses_noise_weights(self, fwd) -> bool:
        """An inverse operator maps y to m directly: no misfit is weighted by the noise level."""
        return False

    def __init__(self, model: torch.nn.Module, state: bool = False, batch_size: Optional[int] = None):
        if not isinstance(model, torch.nn.Module):
            raise TypeError(f"Amortized needs a trained inverse operator (torch.nn.Module); got {type(model).__name__}")
        self.model = model.eval()
        self.state = bool(state)
        self.batch_size = batch_size

    @classmethod
    def load(cls, path, map_location=None, **kwargs) -> "Amortized":
        from pdeinv.surrogates import load
        return cls(load(path, map_location=map_location), **kwargs)

    def solve(self, y: torch.Tensor, fwd=None, *, seed: Optional[int] = None, **kwargs) -> InverseResult:
        if not torch.is_tensor(y):
            raise TypeError(f"observations y must be a tensor; got {type(y).__name__}")
        prep = getattr(self.model, "inputs_from_observations", None)
        x = prep(y, fwd) if prep is not None else y
        p = next(self.model.parameters(), None)
        dev = p.device if p is not None else y.device
        t0 = time.perf_counter()
        bs = self.batch_size or x.shape[0]
        with torch.no_grad():
            m = torch.cat([self.model(x[i:i + bs].to(dev)) for i in range(0, x.shape[0], bs)], 0)
        elapsed = time.perf_counter() - t0
        m = m.to(device=y.device, dtype=y.dtype)
        u = None
        if self.state and fwd is not None:
            with torch.no_grad():
                u = fwd.solve(m)
        info = {"method": self.name, "model": type(self.model).__name__, "time": elapsed,
                "time_per_sample": elapsed / max(1, y.shape[0])}
        if hasattr(self.model, "n_parameters"):
            info["parameters"] = self.model.n_parameters()
        return InverseResult(m=m, u=u, history={}, info=info, grid=getattr(fwd, "grid", None))
