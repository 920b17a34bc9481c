r"""PINN forms of the scalar elliptic problems (Darcy, Poisson, Helmholtz) on a rectangle:
:math:`-\nabla\cdot(a\nabla u) + c u = f`, :math:`u = g` on the boundary."""
from __future__ import annotations

import math
from typing import Dict

import torch

from pdeinv.solvers.pinn.base import GridInterpolant, PINNProblem, grid_points


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
