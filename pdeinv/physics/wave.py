r"""2-D acoustic wave equation with a variable speed, leapfrog finite differences.

.. math::  \partial_{tt} u = \nabla\cdot(c^2\nabla u) + s(t)\,\delta(x - x_s) \ \text{in } \Omega = [a, b]\times[c, d],
           \qquad u = 0 \text{ on } \partial\Omega, \qquad u(0) = u_0,\ \partial_t u(0) = v_0.

:math:`c(x) > 0` is the wave speed (length per time), ``u`` e.g. pressure.

Space: the conservative 5-point stencil on the nodes of a Dirichlet
:class:`~pdeinv.physics.grid.Grid2D`, edge coefficients
:math:`c^2_{i+\frac12,j} = (c^2_{ij} + c^2_{i+1,j})/2` (second order).
Time: leapfrog :math:`u^{n+1} = 2u^n - u^{n-1} + \Delta t^2 (L_h u^n + s^n)`,
started by :math:`u^1 = u^0 + \Delta t v_0 + \tfrac{\Delta t^2}{2}(L_h u^0 + s^0)`
(second order in time).  It conserves the discrete energy

.. math:: E^{n+\frac12} = \tfrac12\Big\|\frac{u^{n+1}-u^n}{\Delta t}\Big\|_h^2
          + \tfrac12\, a_h(u^{n+1}, u^n), \qquad a_h(u, v) = \sum_{\text{edges}} c^2_e\, (D_e u)(D_e v)\,h_xh_y,

exactly (to round-off) without sources, for any :math:`c`; it is positive --
and the scheme stable -- under the CFL condition
:math:`\Delta t\,\max c\,\sqrt{h_x^{-2} + h_y^{-2}} \le 1`, which is checked on
every call (``ValueError`` if broken; ``dt=None`` picks ``cfl`` times the limit).

Several shots: ``u0``/``v0``/sources with ``S`` channels run ``S`` independent
experiments in one call (the speed is shared).  A point source adds
:math:`s(t)/(h_xh_y)` at its node each step (a discrete delta);
:func:`ricker` gives the usual wavelet.

Output: ``record_times`` a number gives ``(B, S, nx, ny)``, a sequence ``(B, T, S, nx, ny)``;
receiver traces are ``PointObservation(grid, receivers)`` applied to that (``(B, T, S, P)``).
"""
from __future__ import annotations

import math
from typing import Optional, Sequence, Union

import torch
from torch import nn

from pdeinv._validation import check_field
from pdeinv.physics.grid import Grid2D
from pdeinv.physics.time_stepping import parse_record_times, rollout, schedule


def ricker(t: torch.Tensor, f0: float, t0: Optional[float] = None) -> torch.Tensor:
    r"""Ricker wavelet :math:`(1 - 2\pi^2f_0^2\tau^2)e^{-\pi^2f_0^2\tau^2}`, :math:`\tau = t - t_0` (``t0 = 1.5/f0``)."""
    t0 = 1.5 / f0 if t0 is None else t0
    a = (math.pi * f0 * (t - t0)) ** 2
    return (1 - 2 * a) * torch.exp(-a)


def gaussian_pulse(grid: Grid2D, center=(0.5, 0.5), width: float = 0.05, dtype=torch.float64) -> torch.Tensor:
    """Smooth bump ``exp(-|x - center|^2 / (2 width^2))`` (zeroed on the boundary), ``(1, 1, nx, ny)``."""
    X, Y = grid.mesh(dtype=dtype)
    u = torch.exp(-((X - center[0]) ** 2 + (Y - center[1]) ** 2) / (2 * width ** 2))
    return (u * grid.interior_mask().to(dtype))[None, None]


def div_c2_grad(u: torch.Tensor, c2: torch.Tensor, spacing) -> torch.Tensor:
    r""":math:`\nabla_h\cdot(c^2\nabla_h u)` on the full grid (zero on boundary nodes), ``u`` ``(B, S, nx, ny)``."""
    hx, hy = spacing
    ax = 0.5 * (c2[..., 1:, :] + c2[..., :-1, :])
    ay = 0.5 * (c2[..., :, 1:] + c2[..., :, :-1])
    fx = ax * (u[..., 1:, :] - u[..., :-1, :])
    fy = ay * (u[..., :, 1:] - u[..., :, :-1])
    inner = (fx[..., 1:, 1:-1] - fx[..., :-1, 1:-1]) / hx ** 2 + (fy[..., 1:-1, 1:] - fy[..., 1:-1, :-1]) / hy ** 2
    return nn.functional.pad(inner, (1, 1, 1, 1))


def energy(u_new: torch.Tensor, u_old: torch.Tensor, c: torch.Tensor, dt: float, grid: Grid2D) -> torch.Tensor:
    r"""Discrete leapfrog energy :math:`E^{n+\frac12}` (module docstring) per sample and shot, ``(B, S)``."""
    hx, hy = grid.spacing
    c2 = c ** 2
    ax = 0.5 * (c2[..., 1:, :] + c2[..., :-1, :])
    ay = 0.5 * (c2[..., :, 1:] + c2[..., :, :-1])
    dxn, dxo = (u_new[..., 1:, :] - u_new[..., :-1, :]) / hx, (u_old[..., 1:, :] - u_old[..., :-1, :]) / hx
    dyn, dyo = (u_new[..., :, 1:] - u_new[..., :, :-1]) / hy, (u_old[..., :, 1:] - u_old[..., :, :-1]) / hy
    kin = ((u_new - u_old) / dt).pow(2).sum((-2, -1))
    pot = (ax * dxn * dxo).sum((-2, -1)) + (ay * dyn * dyo).sum((-2, -1))
    return 0.5 * (kin + pot) * hx * hy


class Wave2D(nn.Module):
    r"""``Wave2D(grid, c=None, u0=None, v0=0, record_times=1.0, dt=None, unknown="c")``; ``problem(m) -> u``.

    Parameters
    ----------
    grid : Dirichlet :class:`Grid2D` (``u = 0`` on the boundary nodes).
    c : wave speed field ``(1|B, 1, nx, ny)`` or number (> 0), unless it is the unknown.
    u0, v0 : initial displacement and velocity, ``(1|B, S, nx, ny)`` or 0 (``S`` shots).
    sources : optional list of point sources ``[(x, y), ...]`` (grid coordinates, inside ``grid.bounds``),
        one per shot, with the wavelet ``source_time(t) -> tensor`` (e.g. ``lambda t: ricker(t, 10.0)``).
    record_times : number (output ``(B, S, nx, ny)``) or increasing sequence (``(B, T, S, nx, ny)``).
    dt : largest time step; ``None`` = ``cfl`` x the CFL limit of the current ``c``; a given ``dt`` that
        breaks the CFL condition raises ``ValueError``.  The step used is the largest one <= dt that divides
        the record intervals (which must then share one step: equally spaced, or multiples of it).
    unknown : ``"c"`` (speed, ``(B, 1, nx, ny)``, > 0) or ``"u0"`` (``(B, S, nx, ny)``).
    checkpoint : ``None``, steps per checkpointed block, or ``"sqrt"``.
    """

    inputs = ("c", "u0")

    def __init__(self, grid: Grid2D, c=None, u0=None, v0=0.0, sources=None, source_time=None,
                 record_times: Union[float, Sequence[float]] = 1.0, dt: Optional[float] = None,
                 unknown: str = "c", checkpoint=None, cfl: float = 0.9):
        super().__init__()
        if not isinstance(grid, Grid2D) or grid.bc != "dirichlet":
            raise ValueError("Wave2D needs a Dirichlet Grid2D (nodes on the boundary, u = 0 there)")
        if unknown not in self.inputs:
            raise ValueError(f"unknown={unknown!r}; expected one of {self.inputs}")
        if unknown != "c":
            if c is None:
                raise ValueError("the wave speed c= is required when it is not the unknown")
            if torch.is_tensor(c):
                check_field(c, grid.shape, name="wave speed c", channels=1)
            if not (float(torch.as_tensor(c).min()) > 0):
                raise ValueError("wave speed c must be > 0 everywhere")
        if unknown != "u0" and u0 is None and sources is None:
            raise ValueError("give an initial displacement u0= or point sources=, otherwise the wave field is zero")
        if sources is not None:
            if source_time is None:
                raise ValueError("point sources need source_time= (e.g. lambda t: ricker(t, f0=10))")
            (xa, xb), (ya, yb) = grid.bounds
            for p in sources:
                if not (xa <= p[0] <= xb and ya <= p[1] <= yb):
                    raise ValueError(f"source {p} lies outside the domain [{xa:g}, {xb:g}] x [{ya:g}, {yb:g}]")
        if dt is not None and not dt > 0:
            raise ValueError(f"dt must be > 0 (or None for automatic); got {dt}")
        if not 0 < cfl <= 1:
            raise ValueError(f"cfl must be in (0, 1]; got {cfl}")
        self.grid, self.c, self.u0, self.v0, self.unknown = grid, c, u0, v0, unknown
        self.sources, self.source_time = sources, source_time
        self.times, self.single = parse_record_times(record_times)
        self.dt, self.checkpoint, self.cfl = dt, checkpoint, float(cfl)
        self.state_grid = grid

    @property
    def record_times(self):
        return list(self.times)

    def cfl_limit(self, c: torch.Tensor) -> float:
        """Largest stable step ``1 / (max c * sqrt(hx^-2 + hy^-2))``."""
        hx, hy = self.grid.spacing
        cmax = float(torch.as_tensor(c).detach().abs().max())
        return 1.0 / (cmax * math.sqrt(hx ** -2 + hy ** -2))

    def time_step(self, c) -> float:
        """Largest step for ``c``: ``cfl`` x the CFL limit (``dt=None``) or the given ``dt`` (checked)."""
        limit = self.cfl_limit(c)
        if self.dt is None:
            return self.cfl * limit
        if self.dt > limit * (1 + 1e-12):
            raise ValueError(
                f"time step dt={self.dt:g} breaks the CFL condition dt * max(c) * sqrt(1/hx^2 + 1/hy^2) <= 1 "
                f"(max c = {float(torch.as_tensor(c).max()):.4g}): leapfrog would blow up; use dt <= {limit:.4g} "
                "or dt=None")
        return self.dt

    def _unpack(self, m: torch.Tensor):
        if self.unknown == "c":
            check_field(m, self.grid.shape, name="m (wave speed c)", channels=1)
            if not bool((m > 0).all()):
                raise ValueError(f"wave speed c must be > 0 everywhere; got min {float(m.min()):g}")
            c, u0 = m, self.u0
        else:
            check_field(m, self.grid.shape, name="m (initial displacement u0)")
            c, u0 = self.c, m
        ref = m
        if not torch.is_tensor(c):
            c = torch.full((1, 1) + tuple(self.grid.shape), float(c), dtype=ref.dtype, device=ref.device)
        c = c.to(dtype=ref.dtype, device=ref.device)
        S = 1 if self.sources is None else len(self.sources)
        if u0 is None:
            u0 = torch.zeros((1, S) + tuple(self.grid.shape), dtype=ref.dtype, device=ref.device)
        u0 = u0.to(dtype=ref.dtype, device=ref.device)
        v0 = self.v0
        v0 = v0.to(u0) if torch.is_tensor(v0) else float(v0)
        B = max(c.shape[0], u0.shape[0])
        if u0.shape[0] != B:
            u0 = u0.expand(B, *u0.shape[1:])
        return c, u0, v0

    def forward(self, m: torch.Tensor) -> torch.Tensor:
        c, u0, v0 = self._unpack(m)
        plan = schedule(self.times, self.time_step(c))
        dt = plan[0][1]
        if any(abs(d - dt) > 1e-9 * dt for _, d in plan):
            # leapfrog keeps two time levels: one step size for the whole run
            raise ValueError(f"record_times {self.times} need one common time step for the leapfrog scheme: use "
                             "equally spaced record times (or times that are multiples of dt)")
        return simulate_wave(self.grid, c, u0, v0, plan, sources=self._source_field(u0), source_time=self.source_time,
                             checkpoint=self.checkpoint, single=self.single)

    def _source_field(self, u0):
        if self.sources is None:
            return None
        hx, hy = self.grid.spacing
        S = len(self.sources)
        if u0.shape[1] != S:
            raise ValueError(f"{S} sources need u0 with {S} channels (one per shot); got {u0.shape[1]}")
        field = torch.zeros((1, S) + tuple(self.grid.shape), dtype=u0.dtype, device=u0.device)
        for s, (x, y) in enumerate(self.sources):
            i, j = int(round((x - self.grid.origin[0]) / hx)), int(round((y - self.grid.origin[1]) / hy))
            field[0, s, i, j] = 1.0 / (hx * hy)
        return field * self.grid.interior_mask(u0.device).to(u0.dtype)

    def residual(self, m: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        r"""Central-difference residual :math:`(u_{k+1} - 2u_k + u_{k-1})/\Delta t^2 - \nabla_h\cdot(c^2\nabla_h u_k)`
        at the interior record times of equally spaced frames ``u`` ``(B, T, S, nx, ny)`` (no sources),
        ``(B, T-2, S, nx, ny)``, units of u per time²; :math:`O(\Delta t^2 + h^2)` for smooth solutions."""
        c, _, _ = self._unpack(m)
        if u.dim() != 5 or u.shape[1] < 3:
            raise ValueError(f"residual needs a trajectory (B, T>=3, S, nx, ny); got {tuple(u.shape)}")
        dts = [b - a for a, b in zip(self.times, self.times[1:])]
        if max(dts) - min(dts) > 1e-9 * max(dts):
            raise ValueError("residual needs equally spaced record times")
        dt = dts[0]
        c2 = c ** 2
        lap = torch.stack([div_c2_grad(u[:, k], c2, self.grid.spacing) for k in range(1, u.shape[1] - 1)], 1)
        return (u[:, 2:] - 2 * u[:, 1:-1] + u[:, :-2]) / dt ** 2 - lap


def simulate_wave(grid: Grid2D, c: torch.Tensor, u0: torch.Tensor, v0, plan, sources=None, source_time=None,
                  checkpoint=None, single=False) -> torch.Tensor:
    """Functional core of :class:`Wave2D` (leapfrog); ``plan`` with one step size throughout."""
    c2 = c ** 2
    spacing = grid.spacing
    interior = grid.interior_mask(u0.device).to(u0.dtype)
    dt = plan[0][1]
    u0 = u0 * interior

    def src(n):
        if sources is None:
            return 0.0
        t = torch.tensor(n * dt, dtype=u0.dtype, device=u0.device)
        return source_time(t) * sources

    v0 = v0 * interior if torch.is_tensor(v0) else v0
    u1 = u0 + dt * v0 + 0.5 * dt ** 2 * (div_c2_grad(u0, c2, spacing) + src(0))
    u1 = u1 * interior
    # state: (u^{n-1}, u^n, n) with n carried as a tensor so checkpointed blocks replay the right source times
    step_no = torch.ones((), dtype=u0.dtype, device=u0.device)

    def step(state, dt_):
        u_prev, u_cur, k = state
        if sources is None:
            s = 0.0
        else:
            s = source_time(k * dt_) * sources
        u_next = 2 * u_cur - u_prev + dt_ ** 2 * (div_c2_grad(u_cur, c2, spacing) + s)
        return (u_cur, u_next, k + 1)

    # the first step is already taken: shorten the first interval by one step
    first_n, first_dt = plan[0]
    plan = [(first_n - 1, first_dt)] + list(plan[1:])
    outs = rollout(step, (u0, u1, step_no), plan, lambda s: s[1], checkpoint=checkpoint)
    return outs[-1] if single else torch.stack(outs, 1)
