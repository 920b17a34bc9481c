r"""Bridge: an external simulation code as a differentiable pdeinv problem.

Any solver that can be called from Python becomes a forward problem
``problem(m) -> u`` usable in :class:`~pdeinv.physics.forward.ForwardModel`,
in every inverse solver, and under ``torch.autograd``, once it provides

* ``forward(m) -> u`` -- the solve, on NumPy float64 arrays;
* ``vjp(m, du) -> dm`` -- the vector-Jacobian product
  :math:`\mathrm{d}m = (\partial u/\partial m)^{T}\,\mathrm{d}u` (what an
  adjoint solve gives);
* optionally ``jvp(m, dm) -> du`` -- the Jacobian-vector product
  :math:`\mathrm{d}u = (\partial u/\partial m)\,\mathrm{d}m` (a linearised /
  tangent solve), used by forward-mode autodiff (``torch.autograd.forward_ad``
  dual tensors; the ``torch.func`` transforms cannot enter NumPy code).

Shapes: by default the callables see one sample at a time, ``m`` of shape
``grid.shape`` and ``u`` of shape ``state_grid.shape`` (no batch or channel
axes); the bridge loops over the batch.  With ``batched=True`` they receive and
return whole ``(B, C, *shape)`` arrays instead.

The chain rule is then done by torch: for a loss :math:`J(u(m))`,
``J.backward()`` calls ``vjp(m, dJ/du)`` once per sample.  Check a new bridge
with :func:`pdeinv.checks.taylor_test` (rate 2 for a consistent ``vjp``) and
:meth:`ExternalProblem.check_vjp` (the dot-product test
:math:`\langle J\,\delta m, \delta u\rangle = \langle \delta m, J^T \delta u\rangle`
when ``jvp`` is given).

Example (a linear "solver" ``u = K m``)::

    K = ...                                  # (N, N) NumPy matrix, N = 16 * 16
    prob = ExternalProblem(Grid2D(16),
                           forward=lambda m: (K @ m.ravel()).reshape(m.shape),
                           vjp=lambda m, du: (K.T @ du.ravel()).reshape(m.shape))
    fwd = ForwardModel(prob, PointObservation.random(prob.grid, fraction=0.05, seed=0))
"""
from __future__ import annotations

import logging
from typing import Callable, Optional

import numpy as np
import torch
from torch import nn

from pdeinv._validation import check_finite

log = logging.getLogger(__name__)

ArrayFn = Callable[..., np.ndarray]


def _to_numpy(x: torch.Tensor) -> np.ndarray:
    return x.detach().to("cpu", torch.float64).numpy().copy()


class _ExternalSolve(torch.autograd.Function):
    """``u = F(m)`` through NumPy callables; backward = vjp, forward-mode = jvp."""

    @staticmethod
    def forward(m, problem):
        return problem._call("forward", m)

    @staticmethod
    def setup_context(ctx, inputs, output):
        m, problem = inputs
        ctx.problem = problem
        ctx.save_for_backward(m)
        ctx.m_fw = m.detach()  # forward-mode AD keeps the primal here (save_for_forward is for tensors only)

    @staticmethod
    def backward(ctx, du):
        (m,) = ctx.saved_tensors
        if du is None:
            return None, None
        return ctx.problem._call("vjp", m, du), None

    @staticmethod
    def jvp(ctx, dm, _):
        if ctx.problem._jvp is None:
            raise RuntimeError("forward-mode differentiation of this ExternalProblem needs a jvp= callable")
        return ctx.problem._call("jvp", ctx.m_fw, dm)


class ExternalProblem(nn.Module):
    r"""``ExternalProblem(grid, forward, vjp=None, jvp=None, state_grid=None, batched=False, name="external")``.

    Parameters
    ----------
    grid : grid of the unknown ``m`` (``Grid1D``/``Grid2D``).
    forward : ``forward(m) -> u`` on NumPy float64 arrays (see module docs for shapes).
    vjp : ``vjp(m, du) -> dm``, the transpose of the Jacobian applied to ``du``
        (an adjoint solve).  Without it, backpropagating through the problem
        raises a clear error.
    jvp : optional ``jvp(m, dm) -> du`` for forward-mode differentiation.
    state_grid : grid of ``u`` if it differs from ``grid`` (the observation
        operator of a ``ForwardModel`` is built on it).
    batched : the callables take ``(B, C, *shape)`` arrays instead of one sample.
    channels : channel count of ``u`` (default 1).
    residual : optional ``residual(m, u) -> r`` on NumPy arrays (one sample), for
        methods that use the PDE residual; exposed as :meth:`residual` (not
        differentiable).

    ``problem(m)`` takes ``(B, 1, *grid.shape)`` tensors of any float dtype and
    device and returns ``(B, channels, *state_grid.shape)`` in ``m``'s dtype and
    device; the external code always sees CPU float64 arrays.
    """

    def __init__(self, grid, forward: ArrayFn, vjp: Optional[ArrayFn] = None, jvp: Optional[ArrayFn] = None,
                 state_grid=None, batched: bool = False, channels: int = 1,
                 residual: Optional[ArrayFn] = None, name: str = "external"):
        super().__init__()
        for label, fn in (("forward", forward), ("vjp", vjp), ("jvp", jvp), ("residual", residual)):
            if fn is not None and not callable(fn):
                raise TypeError(f"{label} must be a callable taking NumPy arrays; got {type(fn).__name__}")
        if forward is None:
            raise TypeError("ExternalProblem needs forward(m) -> u")
        self.grid = grid
        self._state_grid = state_grid
        self._forward, self._vjp, self._jvp, self._residual = forward, vjp, jvp, residual
        self.batched, self.channels, self.name = bool(batched), int(channels), str(name)
        self.n_forward = self.n_vjp = self.n_jvp = 0  # call counters (cost accounting)

    # ------------------------------------------------------------------ shapes
    @property
    def state_grid(self):
        return self._state_grid if self._state_grid is not None else self.grid

    def _m_shape(self):
        return tuple(self.grid.shape)

    def _u_shape(self):
        return tuple(self.state_grid.shape)

    def _check_m(self, m: torch.Tensor, name: str = "m") -> None:
        shape = self._m_shape()
        if not torch.is_tensor(m):
            raise TypeError(f"{name} must be a tensor (B, 1, {', '.join(map(str, shape))}); got {type(m).__name__}")
        if m.dim() != 2 + len(shape) or tuple(m.shape[2:]) != shape or m.shape[1] != 1:
            raise ValueError(f"{name} has shape {tuple(m.shape)}; the external problem {self.name!r} expects "
                             f"(B, 1, {', '.join(map(str, shape))}) on its grid")
        check_finite(m, name)

    # ------------------------------------------------------------------ calls
    def _call(self, which: str, m: torch.Tensor, v: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Run one of the external callables sample by sample (or batched) and convert back."""
        fn = {"forward": self._forward, "vjp": self._vjp, "jvp": self._jvp}[which]
        if fn is None:
            raise RuntimeError(f"the external problem {self.name!r} was given no {which}= callable, so it cannot "
                               f"be differentiated that way; pass {which}=... to ExternalProblem")
        out_shape = {"forward": (self.channels,) + self._u_shape(), "jvp": (self.channels,) + self._u_shape(),
                     "vjp": (1,) + self._m_shape()}[which]
        m_np = _to_numpy(m)
        v_np = _to_numpy(v) if v is not None else None
        B = m.shape[0]
        if self.batched:
            res = fn(m_np) if v_np is None else fn(m_np, v_np)
            res = self._as_array(res, which, (B,) + out_shape)
        else:
            outs = []
            for b in range(B):
                mb = m_np[b, 0]
                vb = None if v_np is None else (v_np[b, 0] if which == "jvp" or self.channels == 1 else v_np[b])
                r = fn(mb) if vb is None else fn(mb, vb)
                shape1 = out_shape if (which != "vjp" and self.channels > 1) else out_shape[1:]
                outs.append(self._as_array(r, which, shape1).reshape(out_shape))
            res = np.stack(outs, 0)
        setattr(self, f"n_{which}", getattr(self, f"n_{which}") + (1 if self.batched else B))
        return torch.from_numpy(res).to(dtype=m.dtype, device=m.device)

    def _as_array(self, r, which: str, shape) -> np.ndarray:
        try:
            r = np.asarray(r, dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise TypeError(f"the external {which} of {self.name!r} returned {type(r).__name__}, which is not "
                            f"an array of numbers") from err
        if r.size != int(np.prod(shape)):
            raise ValueError(f"the external {which} of {self.name!r} returned an array of shape {r.shape}; "
                             f"expected {tuple(shape)}")
        if not np.all(np.isfinite(r)):
            raise ValueError(f"the external {which} of {self.name!r} returned {int((~np.isfinite(r)).sum())} "
                             f"non-finite values (NaN/inf); expected finite numbers")
        return r.reshape(shape)

    def forward(self, m: torch.Tensor) -> torch.Tensor:
        """``u = F(m)``: ``(B, 1, *grid.shape) -> (B, channels, *state_grid.shape)``, differentiable."""
        self._check_m(m)
        return _ExternalSolve.apply(m, self)

    def jvp(self, m: torch.Tensor, dm: torch.Tensor) -> torch.Tensor:
        """Jacobian-vector product ``(dF/dm) dm`` (needs ``jvp=``)."""
        self._check_m(m)
        self._check_m(dm, "dm")
        return self._call("jvp", m, dm)

    def vjp(self, m: torch.Tensor, du: torch.Tensor) -> torch.Tensor:
        """Vector-Jacobian product ``(dF/dm)^T du`` (needs ``vjp=``)."""
        self._check_m(m)
        return self._call("vjp", m, du)

    def residual(self, m: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """PDE residual from the external ``residual(m, u)`` callable (one sample at a time)."""
        if self._residual is None:
            raise NotImplementedError(f"the external problem {self.name!r} was given no residual= callable")
        m_np, u_np = _to_numpy(m), _to_numpy(u)
        r = np.stack([np.asarray(self._residual(m_np[b, 0], u_np[b, 0]), dtype=np.float64)[None]
                      for b in range(m.shape[0])])
        return torch.from_numpy(r).to(dtype=m.dtype, device=m.device)

    def check_vjp(self, m: torch.Tensor, seed: int = 0) -> float:
        r"""Dot-product test :math:`|\langle J\delta m,\delta u\rangle - \langle\delta m, J^T\delta u\rangle|`
        relative to :math:`\|J\delta m\|\|\delta u\|` (needs both ``jvp`` and ``vjp``); ~1e-12 when consistent."""
        g = torch.Generator().manual_seed(seed)
        dm = torch.randn(m.shape, generator=g, dtype=torch.float64)
        du = torch.randn((m.shape[0], self.channels) + self._u_shape(), generator=g, dtype=torch.float64)
        m64 = m.detach().to("cpu", torch.float64)
        Jdm, JTdu = self.jvp(m64, dm), self.vjp(m64, du)
        lhs, rhs = float((Jdm * du).sum()), float((dm * JTdu).sum())
        return abs(lhs - rhs) / (float(Jdm.norm() * du.norm()) or 1.0)

    def extra_repr(self) -> str:
        return (f"name={self.name!r}, grid={tuple(self.grid.shape)}, state={tuple(self.state_grid.shape)}, "
                f"vjp={self._vjp is not None}, jvp={self._jvp is not None}, batched={self.batched}")
