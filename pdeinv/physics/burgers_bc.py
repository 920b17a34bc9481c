r"""1-D viscous Burgers equation on :math:`[a, b]` with Dirichlet, Neumann or periodic conditions.

.. math::  \partial_t u + u\,\partial_x u = \nu\,\partial_{xx} u + f(x, t), \qquad x \in [a, b],\ t \in (0, T],

with one of

* ``bc="dirichlet"``: :math:`u(a, t) = g_a(t)`, :math:`u(b, t) = g_b(t)` (time-dependent data allowed);
* ``bc="neumann"``: :math:`u_x(a, t) = g_a(t)`, :math:`u_x(b, t) = g_b(t)`;
* ``bc="periodic"``: the same finite-difference scheme on the torus (``Grid1D(n, bc="periodic")``).

Units: ``x`` in the grid's length unit, ``t`` in time units, ``u`` in length per time, ``nu`` in
length² per time; Dirichlet data in units of ``u``, Neumann data in units of ``u`` per length.
The Raissi et al. (2019) benchmark is ``a, b = -1, 1``, :math:`\nu = 0.01/\pi`,
:math:`u_0 = -\sin\pi x`, :math:`g_a = g_b = 0` (task ``burgers_dirichlet``).

Usage::

    grid = Grid1D.interval(-1.0, 1.0, 511, bc="dirichlet")
    problem = BurgersBC(grid, nu=0.01 / math.pi, bc="dirichlet", boundary=0.0, record_times=[0.5, 0.99])
    u = problem(-torch.sin(math.pi * grid.coords()[0])[None, None])      # (1, 2, 1, 511)

Discretisation (method of lines): nodes ``x_i = a + i h`` *including* both ends for Dirichlet and
Neumann (a ``bc="dirichlet"`` :class:`~pdeinv.physics.grid.Grid1D`, the node layout), periodic nodes
otherwise.  Convection in the energy-conserving skew-symmetric split form
:math:`u u_x \approx \tfrac13[\delta_x(u^2) + u\,\delta_x u]` with central differences :math:`\delta_x`;
diffusion by the 3-point Laplacian.  Dirichlet: the end values are the data, the unknowns are the
interior nodes.  Neumann: the end nodes are unknowns, closed by second-order ghost values
:math:`u_{-1} = u_1 - 2h g_a`, :math:`u_{n} = u_{n-2} + 2h g_b`.  Second order in space.

Time: the IMEX Runge--Kutta scheme ARS(3,4,3) of Ascher, Ruuth & Spiteri (1997), third order,
L-stable implicit part for :math:`\nu u_{xx}` (no diffusion step limit), 4-stage explicit part for
convection and ``f``.  The implicit stage solves :math:`(I - \gamma\,\Delta t\,\nu D_2)U = R` are
exact and :math:`O(n\log n)`: the Dirichlet (Neumann) Laplacian is the periodic one on the odd (even)
extension of length :math:`2(n-1)`, diagonalised by an FFT (a discrete sine / cosine transform).
Everything is torch, so gradients w.r.t. ``u0``, ``nu`` (one per sample) and the boundary data come
by autograd; a batch gives each sample the answer it would get alone.

Stability (documented limits): diffusion is implicit, no limit.  Convection: the explicit part is
stable on the imaginary axis for :math:`|z| \le 2.8`, so a step must satisfy the Courant bound
:math:`\Delta t\,\max|u|/h \le` ``COURANT_MAX`` (2.5); ``dt=None`` uses ``courant`` (default 1) times
:math:`h/\max|u|`, with :math:`\max|u|` over ``u0`` and the Dirichlet data (viscous Burgers obeys a
maximum principle there; with Neumann data or a source that pumps energy in, give ``dt``; a
zero ``u0`` and zero data take the velocity scale 1).  A larger ``dt``
raises ``ValueError``; a run that still blows up (non-finite state) raises ``ValueError`` too.
Central differences resolve the solution without wiggles when the cell Péclet number
:math:`\max|u|\,h/\nu \lesssim 2` (Raissi: ``n >= 320`` nodes on [-1, 1]); coarser grids stay
stable but oscillate near shocks.

Output: as :class:`~pdeinv.physics.burgers.Burgers1D`: ``record_times`` a number gives
``(B, 1, n)``; a sequence gives ``(B, T, 1, n)`` (end nodes included), so
:class:`~pdeinv.physics.timeobs.TimeSliceObservation` and
:class:`~pdeinv.physics.spacetime.SpaceTimePointObservation` apply unchanged.
``problem.residual(m, u)`` is the trapezoidal residual between frames (a physics loss), and
:func:`burgers_rhs` the semi-discrete right-hand side.  Measured (tests/test_burgers_bc.py):
second order in space for Dirichlet (time-dependent data), Neumann and periodic problems,
2.7--2.9 in time, 6.9e-5 from the Raissi reference at 2041 nodes.  (The Neumann ghost closure is
first order *locally* at the end nodes, as usual; the solution is second order.)
"""
from __future__ import annotations

import math
from typing import Callable, Optional, Sequence, Union

import torch
from torch import nn

from pdeinv._validation import check_field, check_finite
from pdeinv.physics.grid import Grid1D
from pdeinv.physics.time_stepping import ParameterSpace, parse_record_times, rollout, scalar_per_sample, schedule

COURANT_MAX = 2.5
BCS = ("dirichlet", "neumann", "periodic")

# ARS(3,4,3): explicit (AE) and implicit (AI) tableaux, shared weights B = last implicit row
_G = 0.4358665215
_AE = ((0.0, 0.0, 0.0, 0.0), (_G, 0.0, 0.0, 0.0), (0.3212788860, 0.3966543747, 0.0, 0.0),
       (-0.105858296, 0.5529291479, 0.5529291479, 0.0))
_AI = ((0.0, 0.0, 0.0, 0.0), (0.0, _G, 0.0, 0.0), (0.0, 0.5 * (1 - _G), _G, 0.0),
       (0.0, 1.208496649, -0.644363171, _G))
_B = _AI[3]
_C = (0.0, _G, 0.5 * (1 + _G), 1.0)


def boundary_function(boundary, times: Optional[Sequence[float]] = None) -> Callable[[float], torch.Tensor]:
    r"""Boundary data as a function ``t -> (B|1, 2)`` tensor (columns: end ``a``, end ``b``).

    ``boundary``: a number or pair (constant data); a tensor ``(B|1, 2)`` (constant per sample);
    a tensor ``(B|1, 2, K)`` of values at the knots ``times`` (``K`` increasing times, linear in
    between, constant outside); or a callable ``t -> (B|1, 2)`` tensor (``t`` a float).
    """
    if callable(boundary) and not torch.is_tensor(boundary):
        return boundary
    g = torch.as_tensor(boundary, dtype=torch.float64) if not torch.is_tensor(boundary) else boundary
    check_finite(g, "boundary data")
    if g.dim() <= 1:
        g = g.reshape(1, -1).expand(1, 2) if g.numel() == 1 else g.reshape(1, -1)
    if g.dim() == 2:
        if g.shape[1] != 2:
            raise ValueError(f"boundary data must have 2 columns (ends a and b); got shape {tuple(g.shape)}")
        return lambda t: g
    if g.dim() != 3 or g.shape[1] != 2:
        raise ValueError(f"boundary data must be a number, a pair, (B, 2) or (B, 2, K); got {tuple(g.shape)}")
    K = g.shape[2]
    if times is None or len(times) != K:
        raise ValueError(f"boundary data (B, 2, {K}) needs boundary_times= with {K} increasing times")
    tk = [float(s) for s in times]
    if any(b2 <= a2 for a2, b2 in zip(tk, tk[1:])):
        raise ValueError(f"boundary_times must be strictly increasing; got {tk}")

    def at(t: float) -> torch.Tensor:
        if K == 1 or t <= tk[0]:
            return g[..., 0]
        if t >= tk[-1]:
            return g[..., -1]
        j = next(i for i in range(1, K) if t <= tk[i])
        w = (t - tk[j - 1]) / (tk[j] - tk[j - 1])
        return (1 - w) * g[..., j - 1] + w * g[..., j]
    return at


class BurgersBC(nn.Module):
    r"""``BurgersBC(grid, nu, bc="dirichlet", boundary=0.0, record_times=1.0, ...)``; ``problem(m) -> u``.

    Parameters
    ----------
    grid : :class:`Grid1D` on ``[a, b]`` (``Grid1D.interval(a, b, n)``): node layout ``"dirichlet"``
        (ends included) for ``bc="dirichlet"``/``"neumann"``, ``"periodic"`` for ``bc="periodic"``.
    nu : viscosity > 0, number or ``(B,)`` tensor (the unknown ``m`` with ``unknown="viscosity"``).
    bc : ``"dirichlet"`` (data = end values), ``"neumann"`` (data = :math:`u_x` at the ends) or ``"periodic"``.
    boundary : the data, see :func:`boundary_function` (number, pair, ``(B, 2)``, ``(B, 2, K)`` at
        ``boundary_times``, or callable ``t -> (B|1, 2)``); the unknown with ``unknown="boundary"``.
    boundary_times : the ``K`` knot times of tabulated data (``unknown="boundary"``: ``m`` is ``(B, 2, K)``;
        ``None`` there means constant data, ``m`` ``(B, 2, 1)``).
    record_times : number (output ``(B, 1, n)``) or increasing sequence (output ``(B, T, 1, n)``).
    dt : largest time step; ``None`` = ``courant * h / max|u|`` (module docstring); checked against ``COURANT_MAX``.
    unknown : ``"u0"`` (``(B, 1, n)``; Dirichlet end values are replaced by the data), ``"viscosity"``
        (``(B,)``, with ``u0=``) or ``"boundary"`` (with ``u0=``).
    source : optional ``f(x, t) -> tensor`` broadcastable to ``(B, 1, n)`` (``x`` the ``(n,)`` node
        coordinates), e.g. for manufactured solutions.
    checkpoint : ``None``, steps per checkpointed block, or ``"sqrt"`` (see :mod:`~pdeinv.physics.time_stepping`).
    """

    inputs = ("u0", "viscosity", "boundary")

    def __init__(self, grid: Grid1D, nu=0.01 / math.pi, bc: str = "dirichlet", boundary=0.0,
                 boundary_times: Optional[Sequence[float]] = None,
                 record_times: Union[float, Sequence[float]] = 1.0, dt: Optional[float] = None,
                 unknown: str = "u0", u0: Optional[torch.Tensor] = None, source=None, checkpoint=None,
                 courant: float = 1.0):
        super().__init__()
        if bc not in BCS:
            raise ValueError(f"bc={bc!r}; expected one of {BCS}")
        if not isinstance(grid, Grid1D):
            raise ValueError(f"BurgersBC needs a Grid1D; got {type(grid).__name__}")
        layout = "periodic" if bc == "periodic" else "dirichlet"
        if grid.bc != layout:
            raise ValueError(f"bc={bc!r} needs a Grid1D with node layout bc={layout!r} "
                             f"(e.g. Grid1D.interval(a, b, n, bc={layout!r})); got bc={grid.bc!r}")
        if unknown not in self.inputs:
            raise ValueError(f"unknown={unknown!r}; expected one of {self.inputs}")
        if unknown != "u0" and u0 is None:
            raise ValueError(f"unknown={unknown!r} needs the initial condition u0=")
        if unknown == "boundary" and bc == "periodic":
            raise ValueError("a periodic problem has no boundary data to be the unknown")
        if unknown != "viscosity":
            nus = nu if torch.is_tensor(nu) else torch.tensor(float(nu))
            check_finite(nus, "viscosity nu")
            if not bool((nus > 0).all()):
                raise ValueError(f"viscosity nu must be > 0; got {nu}")
        if dt is not None and not dt > 0:
            raise ValueError(f"dt must be > 0 (or None for automatic); got {dt}")
        if not 0 < courant <= COURANT_MAX:
            raise ValueError(f"courant must be in (0, {COURANT_MAX}]; got {courant}")
        if u0 is not None:
            check_field(u0, grid.shape, name="initial condition u0", channels=1)
        self.state_grid, self.nu, self.bc, self.unknown, self.u0 = grid, nu, bc, unknown, u0
        self.boundary, self.source = boundary, source
        self.boundary_times = None if boundary_times is None else [float(s) for s in boundary_times]
        if unknown == "boundary":
            k = 1 if self.boundary_times is None else len(self.boundary_times)
            self.grid = ParameterSpace(k, "boundary data (ends a, b) at boundary_times")
        else:
            self.grid = grid if unknown == "u0" else ParameterSpace(1, "viscosity")
            if bc != "periodic":
                boundary_function(boundary, self.boundary_times)       # validate now
        self.times, self.single = parse_record_times(record_times)
        self.dt, self.checkpoint, self.courant = dt, checkpoint, float(courant)

    @property
    def record_times(self):
        return list(self.times)

    def _unpack(self, m):
        """``(u0 (B, 1, n), nu, g(t))`` from the unknown ``m``."""
        nu, bnd = self.nu, self.boundary
        if self.unknown == "u0":
            check_field(m, self.state_grid.shape, name="m (initial condition u0)", channels=1)
            u0 = m
        else:
            if self.unknown == "viscosity":
                nu = scalar_per_sample(m, "m (viscosity)")
                if not bool((nu > 0).all()):
                    raise ValueError(f"viscosity must be > 0; got min {float(nu.min()):g}")
            else:
                check_field(m, self.grid.shape, name="m (boundary data)", channels=2)
                bnd = m
            u0 = self.u0.to(dtype=m.dtype, device=m.device)
            u0 = u0.expand(m.shape[0], *u0.shape[1:]) if u0.shape[0] != m.shape[0] else u0
        if torch.is_tensor(nu):
            nu = nu.to(u0).reshape(-1, 1, 1)
        g = None if self.bc == "periodic" else boundary_function(bnd, self.boundary_times)
        return u0, nu, g

    def _umax(self, u0: torch.Tensor, g=None) -> torch.Tensor:
        """Per-sample ``max|u|`` over ``u0`` and (Dirichlet) the data at 0, the knots and the record times, ``(B,)``."""
        umax = u0.detach().abs().flatten(1).max(1).values
        if g is not None and self.bc == "dirichlet":
            ts = [0.0] + list(self.boundary_times or []) + self.times
            gm = torch.stack([g(t).detach().abs().max(-1).values.to(umax) for t in ts]).max(0).values
            umax = torch.maximum(umax, gm.expand_as(umax) if gm.numel() == 1 else gm)
        return umax

    def time_step(self, u0: torch.Tensor, g=None) -> float:
        """The step used for the batch ``u0``: ``dt`` (checked against the Courant bound) or
        ``courant * h / max|u|``."""
        umax = float(self._umax(u0, g).max())
        h = self.state_grid.h
        limit = COURANT_MAX * h / umax if umax > 0 else math.inf
        if self.dt is None:       # u = 0 (driven only by a source or Neumann data): velocity scale 1
            return min(self.courant * h / (umax if umax > 0 else 1.0), max(self.times))
        if self.dt > limit * (1 + 1e-12):
            raise ValueError(
                f"time step dt={self.dt:g} breaks the Courant bound dt*max|u|/h <= {COURANT_MAX} "
                f"(max|u|={umax:.3g}, h={h:.3g}): use dt <= {limit:.3g} or dt=None")
        return self.dt

    def forward(self, m: torch.Tensor) -> torch.Tensor:
        u0, nu, g = self._unpack(m)
        if self.dt is not None:
            plans = [schedule(self.times, self.time_step(u0, g))] * u0.shape[0]
        else:       # per-sample automatic steps, so that a batch gives each sample its answer alone
            plans = [schedule(self.times, self.time_step(u0[b:b + 1], _row(g, slice(b, b + 1))))
                     for b in range(u0.shape[0])]
        groups = {}
        for b, plan in enumerate(plans):
            groups.setdefault(tuple(plan), []).append(b)
        parts, order = [], []
        for plan, idx in groups.items():
            sel = slice(idx[0], idx[-1] + 1) if idx == list(range(idx[0], idx[-1] + 1)) else idx
            parts.append(simulate_burgers_bc(self.state_grid, u0[sel], _rows(nu, sel), list(plan), bc=self.bc,
                                             boundary=_row(g, sel), source=self.source,
                                             checkpoint=self.checkpoint, single=self.single))
            order += idx
        if len(parts) == 1:
            u = parts[0]
        else:
            u = torch.cat(parts, 0)[torch.argsort(torch.tensor(order, device=u0.device))]
        if not bool(torch.isfinite(u.detach()).all()):
            raise ValueError("the Burgers solve blew up (non-finite values); use a smaller dt or courant")
        return u

    def residual(self, m: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        r"""Trapezoidal residual between frames :math:`u_0, u(t_1), \dots`:
        :math:`(u_k - u_{k-1})/\Delta t_k - \tfrac12(R(u_k, t_k) + R(u_{k-1}, t_{k-1}))` with :math:`R` the
        scheme's right-hand side (:func:`burgers_rhs`), units of u per time; at Dirichlet end nodes
        :math:`u_k - g(t_k)` instead.  ``(B, T, 1, n)`` (``(B, 1, n)`` for one record time); it is
        :math:`O(\Delta t_k^2 + h^2)` for the exact solution."""
        u0, nu, g = self._unpack(m)
        frames = u[:, None] if u.dim() == 3 else u
        n = self.state_grid.n
        if frames.dim() != 4 or frames.shape[1] != len(self.times) or frames.shape[-1] != n:
            raise ValueError(f"u has shape {tuple(u.shape)}; expected (B, {len(self.times)}, 1, {n})")
        allu = torch.cat([u0[:, None].to(frames), frames], 1)
        t = [0.0] + self.times

        def R(i):
            return burgers_rhs(self.state_grid, allu[:, i], t[i], nu, self.bc, g, self.source)
        out = []
        for i in range(1, allu.shape[1]):
            r = (allu[:, i] - allu[:, i - 1]) / (t[i] - t[i - 1]) - 0.5 * (R(i) + R(i - 1))
            if self.bc == "dirichlet":
                gt = g(t[i]).to(r)
                ends = allu[:, i][..., [0, -1]] - gt[:, None, :]
                r = torch.cat([ends[..., :1], r[..., 1:-1], ends[..., 1:]], -1)
            out.append(r)
        out = torch.stack(out, 1)
        return out[:, 0] if u.dim() == 3 else out


def burgers_rhs(grid: Grid1D, u: torch.Tensor, t: float, nu, bc: str = "dirichlet", boundary=None,
                source=None) -> torch.Tensor:
    r"""Semi-discrete right-hand side :math:`-u u_x + \nu u_{xx} + f` of the scheme at time ``t``, ``(B, 1, n)``.

    ``u`` ``(B, 1, n)``; Dirichlet: the end values of ``u`` are replaced by the data and the end entries of
    the result are 0; Neumann: the ghost values carry the data (module docstring); periodic: on the torus.
    """
    n, h = grid.n, grid.h
    x = grid.coords(dtype=u.dtype, device=u.device)[0]
    if bc != "periodic" and boundary is None:
        boundary = boundary_function(0.0)
    if bc == "periodic":
        p = torch.cat([u[..., -1:], u, u[..., :1]], -1)
    else:
        gt = boundary(t).to(u)
        ga, gb = gt[:, 0:1, None], gt[:, 1:2, None]
        if bc == "dirichlet":
            B = max(u.shape[0], gt.shape[0])
            core = torch.cat([ga.expand(B, 1, 1), u[..., 1:-1].expand(B, 1, n - 2), gb.expand(B, 1, 1)], -1)
            p = torch.cat([core[..., :1], core, core[..., -1:]], -1)
        else:
            p = torch.cat([u[..., 1:2] - 2 * h * ga, u, u[..., -2:-1] + 2 * h * gb], -1)
    up, um, uc = p[..., 2:], p[..., :-2], p[..., 1:-1]
    out = -(up * up - um * um + uc * (up - um)) / (6 * h) + nu * (up - 2 * uc + um) / h ** 2
    if source is not None:
        out = out + source(x, t)
    if bc == "dirichlet":
        out = torch.cat([torch.zeros_like(out[..., :1]), out[..., 1:-1], torch.zeros_like(out[..., :1])], -1)
    return out


def _rows(x, sel):
    """Rows ``sel`` of a per-sample tensor (batch 1 and numbers broadcast)."""
    return x[sel] if torch.is_tensor(x) and x.dim() > 0 and x.shape[0] > 1 else x


def _row(g, sel):
    """The boundary function restricted to the samples ``sel``."""
    return None if g is None else (lambda t: _rows(g(t), sel))


def _extend(v: torch.Tensor, bc: str) -> torch.Tensor:
    """Periodic extension whose 3-point Laplacian is the ``bc`` Laplacian (odd: Dirichlet interior, even: Neumann)."""
    if bc == "periodic":
        return v
    if bc == "neumann":
        return torch.cat([v, v[..., 1:-1].flip(-1)], -1)
    z = torch.zeros_like(v[..., :1])
    return torch.cat([z, v, z, -v.flip(-1)], -1)


def simulate_burgers_bc(grid: Grid1D, u0: torch.Tensor, nu, plan, bc: str = "dirichlet", boundary=None,
                        source=None, checkpoint=None, single: bool = False) -> torch.Tensor:
    r"""Functional core of :class:`BurgersBC`.

    ``u0`` ``(B, 1, n)``; ``nu`` number or ``(B|1, 1, 1)``; ``plan`` from
    :func:`~pdeinv.physics.time_stepping.schedule`; ``boundary`` a function ``t -> (B|1, 2)``
    (:func:`boundary_function`, ignored when periodic); ``source`` ``f(x, t)`` or ``None``.
    Returns ``(B, T, 1, n)`` frames after each plan interval (``(B, 1, n)`` if ``single``).
    """
    n, h = grid.n, grid.h
    x = grid.coords(dtype=u0.dtype, device=u0.device)[0]
    M = n if bc == "periodic" else 2 * (n - 1)
    k = torch.arange(M // 2 + 1, dtype=u0.dtype, device=u0.device)
    lam = (4.0 / h ** 2) * torch.sin(math.pi * k / M) ** 2          # -eigenvalues of the 3-point Laplacian
    if bc != "periodic" and boundary is None:
        boundary = boundary_function(0.0)
    inner = slice(1, n - 1) if bc == "dirichlet" else slice(0, n)

    def ends(t):
        gt = boundary(t).to(u0)
        return gt[:, 0:1, None], gt[:, 1:2, None]                        # (B|1, 1, 1) each

    def pad(u, t):
        """``(B, 1, n + 2)``: u with one ghost value beyond each end."""
        if bc == "periodic":
            return torch.cat([u[..., -1:], u, u[..., :1]], -1)
        if bc == "dirichlet":
            return torch.cat([u[..., :1], u, u[..., -1:]], -1)       # end tendencies are discarded
        ga, gb = ends(t)
        return torch.cat([u[..., 1:2] - 2 * h * ga, u, u[..., -2:-1] + 2 * h * gb], -1)

    def explicit(u, t):
        p = pad(u, t)
        up, um, uc = p[..., 2:], p[..., :-2], p[..., 1:-1]
        conv = (up * up - um * um + uc * (up - um)) / (6 * h)
        out = -conv
        if source is not None:
            out = out + source(x, t)
        return out[..., inner]

    def boundary_load(t):
        """``nu *`` the data's contribution to the Laplacian on the unknown nodes (zero if periodic)."""
        if bc == "periodic":
            return 0.0
        ga, gb = ends(t)
        m = n - 2 if bc == "dirichlet" else n
        e0 = torch.zeros(m, dtype=u0.dtype, device=u0.device)
        e1 = e0.clone()
        e0[0], e1[-1] = 1.0, 1.0
        if bc == "dirichlet":
            return nu * (ga * e0 + gb * e1) / h ** 2
        return nu * (-ga * e0 + gb * e1) * (2.0 / h)

    def solve(r, c):
        """``(I - c D_2) v = r`` on the unknown nodes, ``c = gamma dt nu``."""
        den = 1.0 + c * lam if not torch.is_tensor(c) else 1.0 + c.reshape(-1, 1, 1) * lam
        v = torch.fft.irfft(torch.fft.rfft(_extend(r, bc)) / den, n=M)
        return v[..., 1:n - 1] if bc == "dirichlet" else v[..., :n]

    def assemble(v, t):
        if bc != "dirichlet":
            return v
        ga, gb = ends(t)
        B = v.shape[0]
        return torch.cat([ga.expand(B, 1, 1), v, gb.expand(B, 1, 1)], -1)

    def step(state, dt):
        u, t = state
        t0 = float(t)
        un = u[..., inner]
        E, I, U = [], [], u
        for i in range(4):
            ti = t0 + _C[i] * dt
            if i > 0:
                r = un + dt * sum(_AE[i][j] * E[j] + _AI[i][j] * I[j] for j in range(i))
                c = _G * dt * nu
                v = solve(r + (_G * dt) * boundary_load(ti), c)
                I.append((v - r) / (_G * dt))
                U = assemble(v, ti)
            else:
                I.append(0.0)                                          # first implicit column is zero
            E.append(explicit(U, ti))
        v = un + dt * (E[0] * _B[0] + sum(_B[j] * (E[j] + I[j]) for j in range(1, 4)))
        return assemble(v, t0 + dt), t + dt

    u = u0
    if bc != "periodic":
        B = boundary(0.0).shape[0]
        u = u0.expand(B, *u0.shape[1:]) if u0.shape[0] == 1 and B > 1 else u0
    if bc == "dirichlet":
        u = assemble(u[..., 1:n - 1], 0.0)
    t0 = torch.zeros((), dtype=torch.float64)
    outs = rollout(step, (u, t0), plan, lambda s: s[0], checkpoint=checkpoint)
    return outs[-1] if single else torch.stack(outs, 1)

