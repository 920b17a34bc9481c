"""The base of every problem's PINN form: :class:`PINNProblem`, the differentiable
:class:`GridInterpolant` of known grid fields, and :func:`grid_points`.

The concrete forms live in :mod:`.elliptic` and :mod:`.time_dependent`; the registry and
:func:`~pdeinv.solvers.pinn.residuals.pinn_problem` in :mod:`.residuals`.
"""
from __future__ import annotations

import math
from typing import Callable, Dict, List, Optional

import torch

from pdeinv._validation import check_finite


# ----------------------------------------------------------------------------- interpolation


class GridInterpolant:
    r"""Bilinear (1-D: linear) interpolant of a nodal grid field, differentiable in ``x``.

    ``field``: ``(1, 1, *grid.shape)`` tensor, a number, or None (zero).
    Calling with points ``x`` ``(N, d)`` returns ``(N, 1)`` in ``x``'s dtype and
    device.  On a periodic grid the interpolant wraps around.  Its gradient
    (piecewise constant) is what autograd gives, which is enough for
    coefficients that enter the residual through :math:`\nabla a`.
    """

    def __init__(self, grid, field):
        self.grid = grid
        self.const = None
        if field is None:
            self.const = 0.0
        elif not torch.is_tensor(field):
            self.const = float(field)
        else:
            f = field.detach()
            if f.dim() == 0:
                self.const = float(f)
            else:
                if tuple(f.shape[-grid.ndim:]) != tuple(grid.shape) or f.numel() != int(math.prod(grid.shape)):
                    raise ValueError(f"a known field of shape {tuple(f.shape)} does not fit the grid "
                                     f"{tuple(grid.shape)}; expected (1, 1, {', '.join(map(str, grid.shape))})")
                check_finite(f, "known field")
                self.values = f.reshape(grid.shape).to(torch.float64)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.const is not None:
            return torch.full((x.shape[0], 1), self.const, dtype=x.dtype, device=x.device)
        g = self.grid
        v = self.values.to(dtype=x.dtype, device=x.device)
        periodic = g.bc == "periodic"
        idx, wts = [], []
        for d in range(g.ndim):
            n = g.shape[d]
            s = (x[:, d] - grid_origin(g)[d]) / g.spacing[d]
            i0 = torch.floor(s.detach())
            if not periodic:
                i0 = i0.clamp(0, n - 2)
            fr = s - i0
            i0 = i0.long()
            i1 = (i0 + 1) % n if periodic else i0 + 1
            idx.append((i0 % n if periodic else i0, i1))
            wts.append((1 - fr, fr))
        if g.ndim == 1:
            (i0, i1), (w0, w1) = idx[0], wts[0]
            out = w0 * v[i0] + w1 * v[i1]
        else:
            (ix0, ix1), (iy0, iy1) = idx
            (wx0, wx1), (wy0, wy1) = wts
            out = (wx0 * wy0 * v[ix0, iy0] + wx1 * wy0 * v[ix1, iy0]
                   + wx0 * wy1 * v[ix0, iy1] + wx1 * wy1 * v[ix1, iy1])
        return out[:, None]

    def scale(self) -> float:
        """Root-mean-square of the field (|value| for a constant)."""
        if self.const is not None:
            return abs(self.const)
        return float(self.values.pow(2).mean().sqrt())


# ----------------------------------------------------------------------------- base class


class PINNProblem:
    """Continuous description of one pdeinv problem for :class:`~pdeinv.solvers.pinn.solver.PINN`.

    Attributes set by subclasses: ``outputs`` (names of the network outputs),
    ``scalar_names`` (parameters that may be identified as scalars),
    ``time_dependent``, ``field`` (name of the unknown field, or None),
    ``field_kind`` (``"coefficient"``: a second network output; ``"boundary"``:
    the trace of ``u``; ``"initial"``: ``u`` at ``t = 0``; ``"state"``: nothing
    but ``u`` itself).
    """

    outputs: List[str] = ["u"]
    scalar_names: tuple = ()
    time_dependent = False

    def __init__(self, problem, scalars: Optional[Dict[str, float]] = None, known: Optional[dict] = None,
                 field_bounds=None):
        self.problem = problem
        self.scalars0 = dict(scalars or {})
        for k, v in self.scalars0.items():
            if k not in self.scalar_names:
                raise ValueError(f"{type(problem).__name__}: cannot identify scalar {k!r} with a PINN; "
                                 f"identifiable scalars are {self.scalar_names}")
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ValueError(f"the initial guess of scalar {k!r} must be a positive finite number; got {v!r}")
        self.known = dict(known or {})
        self.field_bounds = field_bounds
        self.scalar_values: Dict[str, Callable[[], torch.Tensor]] = {}

    # -- set by the PINN before training
    def bind_scalars(self, values: Dict[str, Callable[[], torch.Tensor]]):
        """``values[name]()`` returns the current (differentiable) value of each unknown scalar."""
        self.scalar_values = values

    def param(self, name):
        """A scalar input: the unknown's current value, or its known number/tensor."""
        if name in self.scalar_values:
            return self.scalar_values[name]()
        return self.known_value(name)

    def known_value(self, name):
        if name in self.known:
            return self.known[name]
        return getattr(self.problem, name)

    # -- interface
    @property
    def grid(self):
        return getattr(self.problem, "grid")

    @property
    def n_outputs(self) -> int:
        return len(self.outputs)

    def geometry(self, dde):  # pragma: no cover - interface
        raise NotImplementedError

    def residual(self, x, out) -> List[torch.Tensor]:  # pragma: no cover - interface
        raise NotImplementedError

    def conditions(self, dde, geom) -> list:
        """Boundary/initial conditions for known data (soft constraints); default none."""
        return []

    def output_transform(self, x, out):
        """Map raw network outputs to physical ones (scales, positivity, hard constraints)."""
        return out

    def set_scales(self, y_scale: float):
        """Called once with the observations' RMS, to scale the network outputs."""
        self.u_scale = y_scale if y_scale > 0 else 1.0

    def residual_scale(self) -> List[float]:
        """A typical size of each residual, used to weight the PDE loss terms."""
        return [1.0] * len(self.residual_names())

    def residual_names(self) -> List[str]:
        return ["pde"]

    def bounds(self):
        """(lower, upper) corners of the space(-time) domain."""
        g = self.grid
        lengths = (g.length,) if g.ndim == 1 else tuple(g.length)
        lo = grid_origin(g)
        return lo, [a + L for a, L in zip(lo, lengths)]

    def m_from_network(self, net_fn, grid, dtype, device) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    def u_from_network(self, net_fn, grid, dtype, device) -> Optional[torch.Tensor]:
        return None


def grid_origin(grid) -> List[float]:
    """Lower corner of the grid's box (``Grid1D.interval(a, b, n)`` starts at ``a``; default 0)."""
    o = getattr(grid, "origin", 0.0)
    o = [float(o)] if not isinstance(o, (tuple, list)) else [float(v) for v in o]
    return o * grid.ndim if len(o) == 1 and grid.ndim > 1 else o


def grid_points(grid, dtype=torch.float64, device=None) -> torch.Tensor:
    """Node coordinates ``(N, d)`` in row-major order (``ij`` indexing)."""
    coords = [c.to(dtype) for c in grid.coords()]
    if grid.ndim == 1:
        pts = coords[0][:, None]
    else:
        X, Y = torch.meshgrid(coords[0], coords[1], indexing="ij")
        pts = torch.stack([X.reshape(-1), Y.reshape(-1)], 1)
    return pts.to(device) if device is not None else pts
