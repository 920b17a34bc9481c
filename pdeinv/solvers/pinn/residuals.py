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
            s = x[:, d] / g.spacing[d]
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
        if g.bc == "periodic":
            return [0.0] * g.ndim, list(lengths)
        return [0.0] * g.ndim, list(lengths)

    def m_from_network(self, net_fn, grid, dtype, device) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    def u_from_network(self, net_fn, grid, dtype, device) -> Optional[torch.Tensor]:
        return None


def grid_points(grid, dtype=torch.float64, device=None) -> torch.Tensor:
    """Node coordinates ``(N, d)`` in row-major order (``ij`` indexing)."""
    coords = [c.to(dtype) for c in grid.coords()]
    if grid.ndim == 1:
        pts = coords[0][:, None]
    else:
        X, Y = torch.meshgrid(coords[0], coords[1], indexing="ij")
        pts = torch.stack([X.reshape(-1), Y.reshape(-1)], 1)
    return pts.to(device) if device is not None else pts


# ----------------------------------------------------------------------------- elliptic 2-D


class EllipticPINN(PINNProblem):
    r"""Scalar elliptic problems :math:`-\nabla\cdot(a\nabla u) + c u = f`, :math:`u = g` on the boundary.

    Subclasses say how the problem's named inputs map to ``(a, c, f, g)``
    (:meth:`coeffs`).  The unknown field (the problem's ``unknown``) is

    * a coefficient/source (``"a"`` or ``"f"``): a second network output, made
      positive for ``a`` (softplus, or a sigmoid into ``field_bounds``);
    * the boundary data ``"g"``: the trace of the network ``u`` itself (no BC);

    unless it is identified as a scalar (``scalars={"a": 1.0}``: a constant
    field), or it is known (``known={name: value}`` or a fixed value stored in the
    problem, when some scalar is being identified instead).  Known Dirichlet data
    is imposed exactly, :math:`u = g + \phi\,\tilde u` with
    :math:`\phi = 16\,x(L_x-x)\,y(L_y-y)/(L_x L_y)^2`.
    """

    positive_inputs: tuple = ()

    def __init__(self, problem, scalars=None, known=None, field_bounds=None):
        super().__init__(problem, scalars, known, field_bounds)
        unknown = problem.unknown
        inputs = tuple(problem.inputs)
        self.values = {}
        for name in inputs:
            if name in self.scalars0:
                continue
            v = self.known.get(name, problem.fixed(name))
            if name == unknown and (not self.scalars0 or v is None):
                continue          # the unknown field
            if v is None:
                raise ValueError(f"{type(problem).__name__}: input {name!r} is neither known nor identified; "
                                 f"pass known={{'{name}': value}}")
            self.values[name] = v
        self.field = unknown if (unknown not in self.values and unknown not in self.scalars0) else None
        self.outputs = ["u", self.field] if self.field in ("a", "f") else ["u"]
        self.interp = {k: GridInterpolant(problem.grid, v) for k, v in self.values.items()
                       if torch.is_tensor(v) and v.dim() > 0}
        self.hard_bc = "g" in self.values

    # mapping of named inputs -> generic coefficients, pointwise
    def coeffs(self, p: Dict[str, torch.Tensor]):  # pragma: no cover - interface
        raise NotImplementedError

    def geometry(self, dde):
        lo, hi = self.bounds()
        return dde.geometry.Rectangle(lo, hi)

    def _input(self, name, x, out):
        """Pointwise value ``(N, 1)`` (or scalar tensor) of input ``name`` at points ``x``."""
        if name in self.scalar_values:
            return self.scalar_values[name]()
        if name == self.field:
            if name == "g":
                return out[:, 0:1]
            return out[:, 1:2]
        if name in self.interp:
            return self.interp[name](x)
        v = self.values[name]
        return float(v) if not torch.is_tensor(v) else v.to(x.dtype).reshape(()).to(x.device)

    def _phi(self, x):
        (x0, y0), (x1, y1) = self.bounds()
        X, Y = x[:, 0:1], x[:, 1:2]
        return 16 * (X - x0) * (x1 - X) * (Y - y0) * (y1 - Y) / ((x1 - x0) * (y1 - y0)) ** 2

    def output_transform(self, x, out):
        u = self.u_scale * out[:, 0:1]
        if self.hard_bc:
            g = self.values["g"]
            gx = self.interp["g"](x) if "g" in self.interp else float(g) if not torch.is_tensor(g) else g
            u = gx + self._phi(x) * u
        cols = [u]
        if len(self.outputs) > 1:
            raw = out[:, 1:2]
            if self.field in self.positive_inputs:
                if self.field_bounds is not None:
                    lo, hi = self.field_bounds
                    cols.append(lo + (hi - lo) * torch.sigmoid(raw))
                else:
                    cols.append(self.field_scale * torch.nn.functional.softplus(raw + 0.5413))  # softplus(0.54)=1
            else:
                cols.append(self.field_scale * raw)
        return torch.cat(cols, 1)

    def set_scales(self, y_scale):
        super().set_scales(y_scale)
        L = self.bounds()[1]
        lap = sum((math.pi / l) ** 2 for l in L)      # first Dirichlet eigenvalue of -Δ
        self.lap = lap
        # typical size of the unknown field, from the balance a·λ1·u ≈ f
        if self.field == "a":
            f = self.values.get("f", 1.0)
            fs = GridInterpolant(self.grid, f).scale() if not torch.is_tensor(f) or f.dim() else abs(float(f))
            self.field_scale = max(fs / (lap * self.u_scale), 1e-12)
        elif self.field == "f":
            self.field_scale = lap * self.u_scale
        else:
            self.field_scale = 1.0

    def residual_scale(self):
        f = self.values.get("f")
        if f is not None and self.field != "f":
            fs = self.interp["f"].scale() if "f" in self.interp else (
                abs(float(f)) if not torch.is_tensor(f) else float(f.abs().max()))
            if fs > 0:
                return [fs]
        a = self.values.get("a", 1.0)
        a_s = (self.interp["a"].scale() if "a" in self.interp else
               abs(float(a)) if not torch.is_tensor(a) else float(a.abs().max())) if self.field != "a" else \
            self.field_scale
        return [max(a_s, 1e-12) * self.lap * self.u_scale]

    def residual(self, x, out):
        from pdeinv._deepxde import import_deepxde
        dde = import_deepxde()
        u = out[:, 0:1]
        p = {name: self._input(name, x, out) for name in self.problem.inputs}
        a, c, f = self.coeffs(p)
        u_x = dde.grad.jacobian(out, x, i=0, j=0)
        u_y = dde.grad.jacobian(out, x, i=0, j=1)
        lap = dde.grad.hessian(out, x, component=0, i=0, j=0) + dde.grad.hessian(out, x, component=0, i=1, j=1)
        if torch.is_tensor(a) and a.dim() == 2 and a.requires_grad:
            if self.field == "a":
                a_x = dde.grad.jacobian(out, x, i=1, j=0)
                a_y = dde.grad.jacobian(out, x, i=1, j=1)
            else:  # a known field interpolated from the grid
                a_x, a_y = torch.autograd.grad(a.sum(), x, create_graph=True)[0].split(1, 1)
            div = a * lap + a_x * u_x + a_y * u_y
        elif torch.is_tensor(a) and a.dim() == 2:
            ga = torch.autograd.grad(a.sum(), x, create_graph=True, allow_unused=True)[0]
            div = a * lap + (0 if ga is None else ga[:, 0:1] * u_x + ga[:, 1:2] * u_y)
        else:
            div = a * lap
        return [-div + c * u - f]

    def m_from_network(self, net_fn, grid, dtype, device):
        name = self.problem.unknown
        pts = grid_points(grid, dtype, device)
        shape = (1, 1) + tuple(grid.shape)
        if name in self.scalars0:
            return self.scalar_values[name]().detach().to(dtype) * torch.ones(shape, dtype=dtype, device=device)
        if name in self.values:
            v = self.values[name]
            if torch.is_tensor(v) and v.dim() > 0:
                return v.detach().to(dtype=dtype, device=device).reshape(shape)
            return torch.full(shape, float(v), dtype=dtype, device=device)
        out = net_fn(pts)
        col = 0 if name == "g" else 1
        m = out[:, col].reshape(shape).to(dtype)
        return m

    def u_from_network(self, net_fn, grid, dtype, device):
        pts = grid_points(grid, dtype, device)
        return net_fn(pts)[:, 0].reshape((1, 1) + tuple(grid.shape)).to(dtype)


class DarcyPINN(EllipticPINN):
    """Darcy :math:`-\\nabla\\cdot(a\\nabla u) = f`: scalars ``a`` (diffusion coefficient) or ``f``."""

    scalar_names = ("a", "f")
    positive_inputs = ("a",)

    def coeffs(self, p):
        return p["a"], 0.0, p["f"]


class PoissonPINN(EllipticPINN):
    """Poisson :math:`\\nabla^2 u = f` (``a = 1, c = 0``, right-hand side ``-f``)."""

    scalar_names = ("f",)

    def coeffs(self, p):
        return 1.0, 0.0, -p["f"]


class HelmholtzPINN(EllipticPINN):
    """Helmholtz :math:`\\nabla^2 u + k^2 u = f`: scalars ``k`` (wave number) or ``f``."""

    scalar_names = ("k", "f")

    def coeffs(self, p):
        k = self.param("k")
        return 1.0, -k ** 2, -p["f"]

    def residual_scale(self):
        return super().residual_scale()


# ----------------------------------------------------------------------------- time-dependent


class _TimePINN(PINNProblem):
    """Shared parts of the space-time problems (``Burgers1D``, ``NavierStokes2D``).

    The domain is ``state_grid``'s box times :math:`[0, T]` with :math:`T` the
    last record time.  The unknown is the initial field (``"u0"``/``"w0"``: the
    network at :math:`t = 0`, no initial condition imposed) or the viscosity
    (``"viscosity"``: a ``dde.Variable`` given as ``scalars={"nu": guess}``; the
    known initial field is then imposed as a soft ``IC``).
    """

    time_dependent = True
    initial_name = "u0"
    scalar_names = ("nu",)

    def __init__(self, problem, scalars=None, known=None, field_bounds=None):
        super().__init__(problem, scalars, known, field_bounds)
        times = list(getattr(problem, "record_times", None) or [])
        if "T" in self.known:
            times = [float(self.known["T"])]
        if not times:
            raise ValueError(f"{type(problem).__name__}: no record times; pass known={{'T': final_time}}")
        self.times, self.T = [float(t) for t in times], float(max(times))
        unknown = getattr(problem, "unknown", self.initial_name)
        if unknown == "viscosity":
            if "nu" not in self.scalars0:
                raise ValueError("the unknown is the viscosity: give the PINN an initial guess, "
                                 "PINN(scalars={'nu': guess})")
        elif unknown != self.initial_name:
            raise ValueError(f"the PINN for {type(problem).__name__} recovers {self.initial_name!r} or the "
                             f"viscosity; unknown={unknown!r} is not supported")
        self.unknown = unknown
        u0 = self.known.get(self.initial_name, getattr(problem, self.initial_name, None))
        self.u0_known = u0 if unknown != self.initial_name else None
        self.field = None if self.u0_known is not None else "initial"

    @property
    def grid(self):
        return getattr(self.problem, "state_grid", None) or self.problem.grid

    def known_value(self, name):
        if name in self.known:
            return self.known[name]
        v = getattr(self.problem, name, None)
        if v is None:
            raise ValueError(f"{type(self.problem).__name__}: {name!r} is unknown here; identify it "
                             f"(scalars={{'{name}': guess}}) or pass known={{'{name}': value}}")
        return v

    def geometry(self, dde):
        lo, hi = self.bounds()
        space = dde.geometry.Interval(lo[0], hi[0]) if len(lo) == 1 else dde.geometry.Rectangle(lo, hi)
        return dde.geometry.GeometryXTime(space, dde.geometry.TimeDomain(0.0, self.T))

    def output_transform(self, x, out):
        return out * self.u_scale

    def _space_time(self, grid, t, dtype, device):
        pts = grid_points(grid, dtype, device)
        return torch.cat([pts, torch.full((pts.shape[0], 1), float(t), dtype=dtype, device=device)], 1)

    def m_from_network(self, net_fn, grid, dtype, device):
        if self.unknown == "viscosity":
            return self.scalar_values["nu"]().detach().to(dtype=dtype, device=device).reshape(1, 1, 1)
        sg = self.grid
        shape = (1, 1) + tuple(sg.shape)
        return net_fn(self._space_time(sg, 0.0, dtype, device))[:, 0].reshape(shape).to(dtype)

    def u_from_network(self, net_fn, grid, dtype, device):
        sg = self.grid
        frames = [net_fn(self._space_time(sg, t, dtype, device))[:, 0].reshape((1, 1) + tuple(sg.shape))
                  for t in self.times]
        if getattr(self.problem, "single", len(frames) == 1):
            return frames[-1].to(dtype)
        return torch.stack(frames, 1).to(dtype)                      # (1, T, 1, *shape)

    def _ic(self, dde, geom, component=0):
        u0 = self.u0_known
        f0 = GridInterpolant(self.grid, u0 if not torch.is_tensor(u0) else u0.reshape(1, 1, *self.grid.shape))
        return dde.icbc.IC(geom, lambda x: f0(torch.as_tensor(x[:, :-1], dtype=torch.float64)).cpu().numpy(),
                           lambda _, on_initial: on_initial, component=component)


class BurgersPINN(_TimePINN):
    r"""1-D viscous Burgers :math:`u_t + u u_x = \nu u_{xx}` on :math:`[0, L)` periodic, :math:`t\in[0,T]`."""

    outputs = ["u"]

    def residual(self, x, out):
        from pdeinv._deepxde import import_deepxde
        dde = import_deepxde()
        u = out[:, 0:1]
        u_x = dde.grad.jacobian(out, x, i=0, j=0)
        u_t = dde.grad.jacobian(out, x, i=0, j=1)
        u_xx = dde.grad.hessian(out, x, component=0, i=0, j=0)
        nu = self.param("nu")
        if torch.is_tensor(nu) and nu.dim() > 0:
            nu = nu.reshape(-1)[0] if nu.numel() == 1 else nu
        return [u_t + u * u_x - nu * u_xx]

    def residual_scale(self):
        return [self.u_scale ** 2 / self.bounds()[1][0]]

    def conditions(self, dde, geom):
        if self.grid.bc != "periodic":
            return []
        on_b = lambda _, on_boundary: on_boundary  # noqa: E731
        bcs = [dde.icbc.PeriodicBC(geom, 0, on_b, derivative_order=0, component=0),
               dde.icbc.PeriodicBC(geom, 0, on_b, derivative_order=1, component=0)]
        if self.u0_known is not None:
            bcs.append(self._ic(dde, geom))
        return bcs


class NavierStokesPINN(_TimePINN):
    r"""2-D incompressible NS, vorticity--stream function form, periodic in space.

    .. math::  w_t + \psi_y w_x - \psi_x w_y - \nu \Delta w - f = 0, \qquad \Delta\psi + w = 0,

    with velocity :math:`(\psi_y, -\psi_x)` and forcing ``f`` (the problem's
    ``forcing`` field or number, interpolated).  Outputs ``["w", "psi"]``.
    """

    outputs = ["w", "psi"]
    initial_name = "w0"

    def __init__(self, problem, scalars=None, known=None, field_bounds=None):
        super().__init__(problem, scalars, known, field_bounds)
        f = self.known.get("forcing", getattr(problem, "forcing", None))
        amp = self.known.get("amplitude", getattr(problem, "amplitude", 1.0))
        if torch.is_tensor(f) and f.dim() > 0:
            f = f[:1] * (float(amp) if amp is not None else 1.0)
        elif f is not None:
            f = float(f) * (float(amp) if amp is not None else 1.0)
        self.forcing = GridInterpolant(self.grid, f)

    def residual_names(self):
        return ["vorticity", "stream"]

    def residual_scale(self):
        return [self.u_scale ** 2, self.u_scale]

    def output_transform(self, x, out):
        L = max(self.bounds()[1])
        return torch.cat([out[:, 0:1] * self.u_scale, out[:, 1:2] * self.u_scale * (L / (2 * math.pi)) ** 2], 1)

    def residual(self, x, out):
        from pdeinv._deepxde import import_deepxde
        dde = import_deepxde()
        w_x = dde.grad.jacobian(out, x, i=0, j=0)
        w_y = dde.grad.jacobian(out, x, i=0, j=1)
        w_t = dde.grad.jacobian(out, x, i=0, j=2)
        p_x = dde.grad.jacobian(out, x, i=1, j=0)
        p_y = dde.grad.jacobian(out, x, i=1, j=1)
        lap_w = dde.grad.hessian(out, x, component=0, i=0, j=0) + dde.grad.hessian(out, x, component=0, i=1, j=1)
        lap_p = dde.grad.hessian(out, x, component=1, i=0, j=0) + dde.grad.hessian(out, x, component=1, i=1, j=1)
        nu = self.param("nu")
        if torch.is_tensor(nu) and nu.dim() > 0:
            nu = nu.reshape(-1)[0]
        f = self.forcing(x[:, :2])
        return [w_t + p_y * w_x - p_x * w_y - nu * lap_w - f, lap_p + out[:, 0:1]]

    def conditions(self, dde, geom):
        on_b = lambda _, on_boundary: on_boundary  # noqa: E731
        bcs = []
        for comp in (0, 1):
            for ax in (0, 1):
                bcs.append(dde.icbc.PeriodicBC(geom, ax, on_b, derivative_order=0, component=comp))
        if self.u0_known is not None:
            bcs.append(self._ic(dde, geom))
        return bcs


# ----------------------------------------------------------------------------- registry

PINN_PROBLEMS: Dict[str, type] = {
    "Darcy": DarcyPINN,
    "Poisson": PoissonPINN,
    "Helmholtz": HelmholtzPINN,
    "Burgers1D": BurgersPINN,
    "Burgers": BurgersPINN,
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
