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

``refine_iter = N > 0`` continues from the network's answer with ``N`` L-BFGS iterations of MAP on
``fwd`` (the simulator: ``N`` forward + adjoint solves), with the MAP arguments ``map_args`` (prior,
weight, bounds; ``pdeinv.solvers.build("amortized", task, ...)`` gives the task's).  With bounds the
start is first pulled ``refine_margin`` x (hi - lo) inside them (a sigmoid-reparametrised pixel at a
bound has no gradient).  A few iterations take the operator's answer closer to the data it fits
only roughly; many converge to the MAP point itself.

``Amortized.load(path)`` builds the solver from a surrogate checkpoint.
"""
from __future__ import annotations

import time
from typing import Optional

import torch

from pdeinv.solvers.base import InverseResult, InverseSolver


class Amortized(InverseSolver):
    """``Amortized(model, state=False, batch_size=None, refine_iter=0, map_args=None, refine_margin=0.01)``;
    ``solver(y, fwd) -> InverseResult``."""

    name = "amortized"

    def uses_noise_weights(self, fwd) -> bool:
        """An inverse operator maps y to m directly: no misfit is weighted by the noise level (the refinement's is)."""
        return self.refine_iter > 0

    def __init__(self, model: torch.nn.Module, state: bool = False, batch_size: Optional[int] = None,
                 refine_iter: int = 0, map_args: Optional[dict] = None, refine_margin: float = 0.01):
        if not isinstance(model, torch.nn.Module):
            raise TypeError(f"Amortized needs a trained inverse operator (torch.nn.Module); got {type(model).__name__}")
        if int(refine_iter) < 0:
            raise ValueError(f"refine_iter must be >= 0; got {refine_iter}")
        if not 0.0 <= float(refine_margin) < 0.5:
            raise ValueError(f"refine_margin must be in [0, 0.5); got {refine_margin}")
        self.model = model.eval()
        self.state = bool(state)
        self.batch_size = batch_size
        self.refine_iter, self.refine_margin = int(refine_iter), float(refine_margin)
        self.map_args = dict(map_args or {})

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
        u, history = None, {}
        info = {"method": self.name, "model": type(self.model).__name__, "time": elapsed,
                "time_per_sample": elapsed / max(1, y.shape[0])}
        if self.refine_iter > 0:
            if fwd is None:
                raise ValueError("refine_iter > 0 needs the forward model (the refinement runs MAP on it)")
            from pdeinv.solvers.map import MAP
            m_net, m0 = m, m
            bounds = self.map_args.get("bounds")
            if bounds is not None:
                lo, hi = map(float, bounds)
                r = self.refine_margin * (hi - lo)
                m0 = m0.clamp(lo + r, hi - r)
            t1 = time.perf_counter()
            res = MAP(**{**self.map_args, "max_iter": self.refine_iter})(y, fwd, m0=m0)
            m, u, history = res.m, res.u, res.history
            info.update(refine_iterations=res.info.get("iterations"), refine_seconds=time.perf_counter() - t1)
            info["time"] = elapsed + info["refine_seconds"]
            info["time_per_sample"] = info["time"] / max(1, y.shape[0])
        elif self.state and fwd is not None:
            with torch.no_grad():
                u = fwd.solve(m)
        if hasattr(self.model, "n_parameters"):
            info["parameters"] = self.model.n_parameters()
        result = InverseResult(m=m, u=u, history=history, info=info, grid=getattr(fwd, "grid", None))
        if self.refine_iter > 0:
            result.m_network = m_net      # the operator's own answer, for comparison
        return result
