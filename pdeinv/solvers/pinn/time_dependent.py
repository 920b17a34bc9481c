r"""PINN forms of the space-time problems: 1-D viscous Burgers and 2-D Navier--Stokes
(vorticity--stream function), periodic in space, on :math:`[0, T]`; Burgers also on
:math:`[a, b]` with constant Dirichlet data (``BurgersBC``, soft condition)."""
from __future__ import annotations

import math

import numpy as np
import torch

from pdeinv.solvers.pinn.base import GridInterpolant, PINNProblem, grid_points


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
        lo, hi = self.bounds()
        return [self.u_scale ** 2 / (hi[0] - lo[0])]

    def conditions(self, dde, geom):
        on_b = lambda _, on_boundary: on_boundary  # noqa: E731
        g = getattr(self.problem, "boundary", None)
        if self.grid.bc == "periodic":
            bcs = [dde.icbc.PeriodicBC(geom, 0, on_b, derivative_order=0, component=0),
                   dde.icbc.PeriodicBC(geom, 0, on_b, derivative_order=1, component=0)]
        elif getattr(self.problem, "bc", None) == "dirichlet" and isinstance(g, (int, float)):
            # BurgersBC with constant known end values: a soft u = g on x = a, b
            bcs = [dde.icbc.DirichletBC(geom, lambda x, g=float(g): np.full((len(x), 1), g), on_b, component=0)]
        else:
            bcs = []
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
