r"""Scattered space--time point observations of a trajectory.

A time-dependent problem (:class:`~pdeinv.physics.burgers.Burgers1D`,
:class:`~pdeinv.physics.navier_stokes.NavierStokes2D`, :class:`~pdeinv.physics.wave.Wave2D`) returns its
state at the record times :math:`t_1 < \dots < t_T` as ``(B, T, C, *spatial)`` (``(B, C, *spatial)`` for a
single record time).  :class:`SpaceTimePointObservation` observes it at scattered points
:math:`(x_p, t_p)` (1-D) or :math:`(x_p, y_p, t_p)` (2-D):

.. math::

    y_{b,c,p} = \sum_{k} \ell_k(t_p) \sum_{j} \phi_j(x_p)\, u_{b,k,c,j},

with :math:`\phi_j` the linear (1-D) / bilinear (2-D) hat functions of the grid nodes (wrapping around on a
periodic grid) and :math:`\ell_k` the piecewise-linear hat functions of the record times.  Both are exact for
fields linear in each variable; for a smooth field the error is :math:`O(h^2 + \Delta t^2)`, which the tests
measure.  The operator is linear, with the adjoint
:math:`(\mathcal O^* y)_{b,k,c,j} = \sum_p \ell_k(t_p)\phi_j(x_p)\,y_{b,c,p}`
(Euclidean inner products of the arrays).

Coordinates are physical: node positions come from ``grid.coords()`` (so a grid whose domain does not start
at 0 is handled), times in the problem's time unit.  Points outside the domain or times outside
``[t_1, t_T]`` raise ``ValueError`` (the state before the first record time is not stored).

Shapes: ``forward`` ``(B, T, C, *spatial) -> (B, C, P)``; ``adjoint`` ``(B, C, P) -> (B, T, C, *spatial)``.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch

from pdeinv._validation import check_finite
from pdeinv.physics.observation import Observation

_TOL = 1e-6   # relative slack at the ends (float32 inputs round 0.99 to 0.99000001); the weights clamp there


def _axis_weights(coord: torch.Tensor, nodes: torch.Tensor, periodic: bool, name: str):
    """Lower node index, upper node index and the weight of the upper node along one axis, ``(P,)`` each."""
    n = nodes.numel()
    x0 = float(nodes[0])
    h = float(nodes[1] - nodes[0])
    hi = float(nodes[-1]) + (h if periodic else 0.0)
    lo_c, hi_c = float(coord.min()), float(coord.max())
    tol = _TOL * max(1.0, abs(x0), abs(hi))
    if lo_c < x0 - tol or hi_c > hi + tol:
        raise ValueError(f"observation points lie outside the domain: {name} spans [{lo_c:g}, {hi_c:g}], "
                         f"the domain is [{x0:g}, {hi:g}]")
    s = (coord - x0) / h
    i0 = torch.floor(s)
    i0 = i0.clamp(0, n - 1) if periodic else i0.clamp(0, n - 2)
    f = (s - i0).clamp(0.0, 1.0)
    i0 = i0.long()
    i1 = (i0 + 1) % n if periodic else i0 + 1
    return i0 % n, i1, f


def _time_weights(times: torch.Tensor, record: torch.Tensor):
    """Frame indices ``(k0, k1)`` and the weight ``a`` of ``k1`` for linear interpolation in time."""
    T = record.numel()
    lo_t, hi_t = float(times.min()), float(times.max())
    t1, tT = float(record[0]), float(record[-1])
    tol = _TOL * max(1.0, abs(tT))
    if lo_t < t1 - tol or hi_t > tT + tol:
        raise ValueError(f"observation times lie outside the time window: t spans [{lo_t:g}, {hi_t:g}], the "
                         f"problem stores frames on [{t1:g}, {tT:g}] (its record_times); give times in that "
                         "window or record the trajectory over a longer span")
    if T == 1:
        z = torch.zeros(times.numel(), dtype=torch.long)
        return z, z, torch.zeros_like(times)
    k0 = (torch.searchsorted(record, times.contiguous(), right=True) - 1).clamp(0, T - 2)
    a = ((times - record[k0]) / (record[k0 + 1] - record[k0])).clamp(0.0, 1.0)
    return k0, k0 + 1, a


class SpaceTimePointObservation(Observation):
    r"""``SpaceTimePointObservation(grid, points, times, record_times, series=True)``.

    Parameters
    ----------
    grid : the problem's *state* grid (``Grid1D`` or ``Grid2D``).
    points : ``(P, d)`` spatial coordinates (``d = grid.ndim``), or ``(P, d + 1)`` with the time as the last
        column (then ``times`` is omitted).
    times : ``(P,)`` observation times, inside ``[record_times[0], record_times[-1]]``.
    record_times : the times of the frames the problem returns (``problem.record_times``).
    series : the problem returns ``(B, T, C, *spatial)`` (``True``) or, for a single record time,
        ``(B, C, *spatial)`` (``False``); :meth:`for_problem` reads it from the problem.

    ``points`` (``(P, d)`` float64) and ``times`` (``(P,)``) are kept as attributes; ``n_obs = P``.
    """

    def __init__(self, grid, points, times=None, record_times: Sequence[float] = (1.0,), series: bool = True):
        super().__init__()
        pts = torch.as_tensor(points, dtype=torch.float64).detach().cpu()
        d = grid.ndim
        if times is None:
            if pts.dim() != 2 or pts.shape[1] != d + 1:
                raise ValueError(f"space-time points must have shape (P, {d + 1}) (coordinates then time) when no "
                                 f"times are given; got {tuple(pts.shape)}")
            pts, tt = pts[:, :d].contiguous(), pts[:, d].contiguous()
        else:
            if pts.dim() == 1 and d == 1:
                pts = pts[:, None]
            if pts.dim() != 2 or pts.shape[1] != d:
                raise ValueError(f"points must have shape (P, {d}) for a {d}-D grid (with times (P,) given "
                                 f"separately); got {tuple(pts.shape)}")
            tt = torch.as_tensor(times, dtype=torch.float64).detach().cpu().reshape(-1)
            if tt.numel() != pts.shape[0]:
                raise ValueError(f"{pts.shape[0]} points but {tt.numel()} times; give one time per point")
        if pts.shape[0] == 0:
            raise ValueError("SpaceTimePointObservation needs at least one point")
        check_finite(pts, "observation points")
        check_finite(tt, "observation times")
        rec = torch.as_tensor([float(t) for t in record_times], dtype=torch.float64)
        if rec.numel() == 0 or (rec.numel() > 1 and not bool((rec[1:] > rec[:-1]).all())):
            raise ValueError(f"record_times must be a non-empty increasing sequence; got {rec.tolist()}")
        if not series and rec.numel() != 1:
            raise ValueError("series=False (a problem with one record time) needs exactly one record time")
        self.grid, self.points, self.times, self.series = grid, pts, tt, bool(series)
        self.record_times = rec.tolist()
        self.n_frames = rec.numel()
        periodic = grid.bc == "periodic"
        coords = grid.coords()
        axes = [_axis_weights(pts[:, i], coords[i], periodic, "xyz"[i]) for i in range(d)]
        k0, k1, a = _time_weights(tt, rec)
        N = 1
        for s in grid.shape:
            N *= int(s)
        # spatial stencil: (P, 2**d) flat node indices and weights
        if d == 1:
            (i0, i1, f), = axes
            sidx, sw = torch.stack([i0, i1], 1), torch.stack([1 - f, f], 1)
        else:
            (ix0, ix1, fx), (iy0, iy1, fy) = axes
            ny = grid.shape[1]
            sidx = torch.stack([ix0 * ny + iy0, ix1 * ny + iy0, ix0 * ny + iy1, ix1 * ny + iy1], 1)
            sw = torch.stack([(1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy], 1)
        idx = torch.cat([k0[:, None] * N + sidx, k1[:, None] * N + sidx], 1)
        w = torch.cat([(1 - a)[:, None] * sw, a[:, None] * sw], 1)
        w = torch.where(w.abs() < 1e-14, torch.zeros_like(w), w)
        self._N = N
        self.register_buffer("index", idx.long())   # (P, 2 * 2**d) flat (frame, node) indices
        self.register_buffer("weight", w)           # (P, 2 * 2**d) interpolation weights

    @classmethod
    def for_problem(cls, problem, points, times=None) -> "SpaceTimePointObservation":
        """The observation on ``problem.state_grid`` (else ``problem.grid``) at its record times."""
        grid = getattr(problem, "state_grid", None) or getattr(problem, "grid", None)
        rec = getattr(problem, "record_times", None)
        if rec is None or grid is None:
            raise ValueError(f"{type(problem).__name__} has no record_times: space-time observations need a "
                             "time-dependent problem")
        rec = [float(rec)] if isinstance(rec, (int, float)) else list(rec)
        single = bool(getattr(problem, "single", False))
        return cls(grid, points, times, rec, series=not single)

    @property
    def n_obs(self) -> int:
        return self.index.shape[0]

    def _check_series(self, u: torch.Tensor) -> None:
        nd = self.grid.ndim
        shape = tuple(self.grid.shape)
        want = nd + 3 if self.series else nd + 2
        if not torch.is_tensor(u) or u.dim() != want or tuple(u.shape[-nd:]) != shape or \
                (self.series and u.shape[1] != self.n_frames):
            lay = f"(B, {self.n_frames}, C, {', '.join(map(str, shape))})" if self.series else \
                f"(B, C, {', '.join(map(str, shape))})"
            got = tuple(u.shape) if torch.is_tensor(u) else type(u).__name__
            raise ValueError(f"SpaceTimePointObservation expects the trajectory {lay} (frames at the record times "
                             f"{self.record_times}); got {got}")

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        """``(B, T, C, *spatial) -> (B, C, P)``."""
        self._check_series(u)
        nd = self.grid.ndim
        if not self.series:
            u = u[:, None]
        B, T, C = u.shape[:3]
        flat = u.reshape(B, T, C, self._N).transpose(1, 2).reshape(B, C, T * self._N)
        vals = flat[..., self.index]                                # (B, C, P, S)
        return (vals * self.weight.to(vals.dtype)).sum(-1)

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """``(B, C, P) -> (B, T, C, *spatial)`` (``(B, C, *spatial)`` for a single record time)."""
        if y.dim() != 3 or y.shape[-1] != self.n_obs:
            raise ValueError(f"adjoint expects y of shape (B, C, {self.n_obs}); got {tuple(y.shape)}")
        B, C = y.shape[:2]
        contrib = (y[..., None] * self.weight.to(y.dtype)).reshape(B, C, -1)
        out = torch.zeros(B, C, self.n_frames * self._N, dtype=y.dtype, device=y.device)
        out = out.index_add(-1, self.index.reshape(-1), contrib)
        out = out.reshape(B, C, self.n_frames, self._N).transpose(1, 2).reshape(
            B, self.n_frames, C, *self.grid.shape)
        return out if self.series else out[:, 0]

    def spacetime_points(self) -> torch.Tensor:
        """``(P, d + 1)``: the coordinates with the time as the last column."""
        return torch.cat([self.points, self.times[:, None]], 1)

    def extra_repr(self) -> str:
        return (f"n_obs={self.n_obs}, grid={tuple(self.grid.shape)}, "
                f"t in [{self.record_times[0]:g}, {self.record_times[-1]:g}] ({self.n_frames} frames)")


def observation_for(problem, points, times: Optional[torch.Tensor] = None):
    """A :class:`SpaceTimePointObservation` for a time-dependent ``problem`` at ``(points, times)``."""
    return SpaceTimePointObservation.for_problem(problem, points, times)
