r"""Linear observation operators :math:`y = \mathcal{O} u` and their adjoints.

Every operator acts on the trailing spatial axes of a field and keeps any
leading axes: ``(B, C, *spatial) -> (B, C, P)`` and also
``(B, T, C, *spatial) -> (B, T, C, P)`` for time series.  ``adjoint`` maps
back, so that :math:`\langle \mathcal{O}u, y\rangle = \langle u, \mathcal{O}^*y\rangle`
(Euclidean inner products of the arrays), which ``pdeinv.checks.adjoint_test``
verifies.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import nn

from pdeinv._validation import check_finite
from pdeinv.physics.grid import Grid2D


class Observation(nn.Module):
    """Base class: a linear map from grid fields to observation vectors."""

    grid = None

    def forward(self, u: torch.Tensor) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    @property
    def n_obs(self) -> int:
        raise NotImplementedError

    def _check_input(self, u: torch.Tensor) -> None:
        shape = tuple(self.grid.shape)
        nd = len(shape)
        if not torch.is_tensor(u):
            raise TypeError(f"{type(self).__name__} observes a torch.Tensor (B, C, {', '.join(map(str, shape))}); "
                            f"got {type(u).__name__}")
        if u.dim() >= nd and tuple(u.shape[-nd:]) == shape and u.dim() < nd + 1:
            raise ValueError(
                f"{type(self).__name__} observes fields with leading axes, (B, C, {', '.join(map(str, shape))}); "
                f"got a bare field of shape {tuple(u.shape)}: add them, e.g. u[None, None]")
        if u.dim() < nd + 1 or tuple(u.shape[-nd:]) != shape:
            raise ValueError(
                f"{type(self).__name__} was built for a grid of shape {shape}; got a field of shape {tuple(u.shape)}. "
                "The observation and the problem must share the same grid."
            )


class _IndexedObservation(Observation):
    """y = sum_c w_c * u_flat[idx_c] (bilinear / nearest weights), shared by all subclasses."""

    def __init__(self, grid, index: torch.Tensor, weight: torch.Tensor):
        super().__init__()
        self.grid = grid
        self.register_buffer("index", index.long())      # (P, S) flat node indices
        self.register_buffer("weight", weight.double())  # (P, S) interpolation weights

    @property
    def n_obs(self) -> int:
        return self.index.shape[0]

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        self._check_input(u)
        nd = self.grid.ndim
        flat = u.reshape(*u.shape[:-nd], -1)
        vals = flat[..., self.index]                          # (..., P, S)
        return (vals * self.weight.to(vals.dtype)).sum(-1)

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        if y.shape[-1] != self.n_obs:
            raise ValueError(f"adjoint expects y with {self.n_obs} observations in the last axis; got {tuple(y.shape)}")
        N = int(torch.tensor(self.grid.shape).prod())
        contrib = (y[..., None] * self.weight.to(y.dtype)).reshape(*y.shape[:-1], -1)
        out = torch.zeros(*y.shape[:-1], N, dtype=y.dtype, device=y.device)
        out = out.index_add(-1, self.index.reshape(-1), contrib)
        return out.reshape(*y.shape[:-1], *self.grid.shape)


class PointObservation(_IndexedObservation):
    r"""Point values, bilinearly (linearly in 1-D) interpolated from the grid nodes.

    Parameters
    ----------
    grid : the problem's grid.
    points : ``(P, d)`` physical coordinates inside the domain (array-like).

    Points on nodes are exact; off-grid points use bilinear weights.  On a
    periodic grid interpolation wraps around.
    """

    def __init__(self, grid, points):
        pts = torch.as_tensor(points, dtype=torch.float64).detach().cpu()
        if pts.dim() == 1 and grid.ndim == 1:
            pts = pts[:, None]
        if pts.dim() != 2 or pts.shape[1] != grid.ndim:
            raise ValueError(f"points must have shape (P, {grid.ndim}); got {tuple(pts.shape)}")
        if pts.shape[0] == 0:
            raise ValueError("PointObservation needs at least one point")
        check_finite(pts, "observation points")
        lengths = (grid.length,) if grid.ndim == 1 else grid.length
        origin = _origin(grid)
        for d in range(grid.ndim):
            lo, hi = float(pts[:, d].min()) - origin[d], float(pts[:, d].max()) - origin[d]
            tol = 1e-12 * max(lengths[d], abs(origin[d]))
            if lo < -tol or hi > lengths[d] + tol:
                raise ValueError(
                    f"observation points lie outside the domain: axis {d} spans [{lo + origin[d]:g}, "
                    f"{hi + origin[d]:g}], the domain is [{origin[d]:g}, {origin[d] + lengths[d]:g}]"
                )
        self.points = pts
        idx, w = _interp_weights(grid, pts)
        super().__init__(grid, idx, w)

    @classmethod
    def random(cls, grid, fraction: Optional[float] = None, n: Optional[int] = None, seed: Optional[int] = None,
               generator: Optional[torch.Generator] = None, exclude_boundary: bool = False) -> "PointObservation":
        """Random distinct grid nodes: ``fraction`` of all nodes (rounded) or ``n`` of them, seeded.

        The benchmark protocol uses ``fraction=0.0305`` (500 of 128², 125 of 64²).
        """
        N = int(torch.tensor(grid.shape).prod())
        if (fraction is None) == (n is None):
            raise ValueError("give exactly one of fraction= or n=")
        if n is None:
            if not 0 < fraction <= 1:
                raise ValueError(f"fraction must be in (0, 1]; got {fraction}")
            n = max(1, int(round(fraction * N)))
        if generator is None:
            generator = torch.Generator().manual_seed(int(seed) if seed is not None else 0)
        candidates = torch.arange(N)
        if exclude_boundary and grid.ndim == 2 and grid.bc == "dirichlet":
            candidates = candidates[grid.interior_mask().reshape(-1)]
        if n > candidates.numel():
            raise ValueError(f"asked for {n} points but the grid has only {candidates.numel()} candidate nodes")
        pick = candidates[torch.randperm(candidates.numel(), generator=generator)[:n]].sort().values
        return cls.from_indices(grid, pick)

    @classmethod
    def from_indices(cls, grid, flat_index) -> "PointObservation":
        """Observation at the grid nodes with these flat (row-major) indices."""
        flat_index = torch.as_tensor(flat_index).long().reshape(-1)
        coords = grid.coords()
        if grid.ndim == 1:
            pts = coords[0][flat_index][:, None]
        else:
            ix, iy = flat_index // grid.shape[1], flat_index % grid.shape[1]
            pts = torch.stack([coords[0][ix], coords[1][iy]], 1)
        return cls(grid, pts)

    def mask(self) -> torch.Tensor:
        """Boolean field marking the nodes that carry interpolation weight (for plots / sparse baselines)."""
        N = int(torch.tensor(self.grid.shape).prod())
        m = torch.zeros(N, dtype=torch.bool)
        m[self.index[self.weight.abs() > 0].cpu()] = True
        return m.reshape(self.grid.shape)

    def extra_repr(self) -> str:
        return f"n_obs={self.n_obs}, grid={tuple(self.grid.shape)}"


def _origin(grid):
    """The grid's lower corner as a tuple (grids on ``[a, b]``; 0 for grids without an origin)."""
    o = getattr(grid, "origin", 0.0)
    return tuple(o) if isinstance(o, (tuple, list)) else (float(o),) * grid.ndim


def _interp_weights(grid, pts: torch.Tensor):
    """Bilinear (linear in 1-D) node indices (P, 2**d) and weights."""
    shape = grid.shape
    h = grid.spacing
    periodic = grid.bc == "periodic"
    lo_idx, fr = [], []
    origin = _origin(grid)
    for d in range(grid.ndim):
        s = (pts[:, d] - origin[d]) / h[d]
        i0 = torch.floor(s)
        if not periodic:
            i0 = i0.clamp(0, shape[d] - 2)
        f = s - i0
        lo_idx.append(i0.long()); fr.append(f)
    if grid.ndim == 1:
        i0 = lo_idx[0]
        i1 = (i0 + 1) % shape[0] if periodic else i0 + 1
        idx = torch.stack([i0 % shape[0], i1], 1)
        w = torch.stack([1 - fr[0], fr[0]], 1)
        return idx, w
    ix0, iy0 = lo_idx
    ix1, iy1 = ix0 + 1, iy0 + 1
    if periodic:
        ix0, iy0, ix1, iy1 = ix0 % shape[0], iy0 % shape[1], ix1 % shape[0], iy1 % shape[1]
    fx, fy = fr
    idx = torch.stack([ix0 * shape[1] + iy0, ix1 * shape[1] + iy0, ix0 * shape[1] + iy1, ix1 * shape[1] + iy1], 1)
    w = torch.stack([(1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy], 1)
    # round-off: a weight of 1e-17 on a neighbour that may lie outside the data is harmless but untidy
    w = torch.where(w.abs() < 1e-14, torch.zeros_like(w), w)
    return idx, w


class MaskObservation(_IndexedObservation):
    """Values at the nodes where a boolean ``mask`` (``grid.shape``) is True, in row-major order."""

    def __init__(self, grid, mask: torch.Tensor):
        mask = torch.as_tensor(mask).bool().cpu()
        if tuple(mask.shape) != tuple(grid.shape):
            raise ValueError(f"mask has shape {tuple(mask.shape)}; expected the grid shape {tuple(grid.shape)}")
        if not bool(mask.any()):
            raise ValueError("mask selects no node")
        idx = mask.reshape(-1).nonzero()[:, 0]
        super().__init__(grid, idx[:, None], torch.ones(idx.numel(), 1, dtype=torch.float64))
        self.register_buffer("mask", mask)

    @classmethod
    def random(cls, grid, fraction: float, seed: Optional[int] = None) -> "MaskObservation":
        obs = PointObservation.random(grid, fraction=fraction, seed=seed)
        return cls(grid, obs.mask())


class BoundaryTrace(_IndexedObservation):
    """Values on the boundary nodes of a 2-D Dirichlet grid.

    ``sides`` picks among ``"bottom"`` (y = 0), ``"right"`` (x = Lx), ``"top"``
    (y = Ly) and ``"left"`` (x = 0); nodes are ordered counter-clockwise,
    each corner once.
    """

    SIDES = ("bottom", "right", "top", "left")

    def __init__(self, grid: Grid2D, sides: Sequence[str] = SIDES):
        if not isinstance(grid, Grid2D) or grid.bc != "dirichlet":
            raise ValueError("BoundaryTrace needs a 2-D grid with bc='dirichlet'")
        for s in sides:
            if s not in self.SIDES:
                raise ValueError(f"unknown side {s!r}; expected a subset of {self.SIDES}")
        nx, ny = grid.shape
        seq = {
            "bottom": [(i, 0) for i in range(nx)],
            "right": [(nx - 1, j) for j in range(ny)],
            "top": [(i, ny - 1) for i in range(nx - 1, -1, -1)],
            "left": [(0, j) for j in range(ny - 1, -1, -1)],
        }
        nodes, seen = [], set()
        for s in self.SIDES:
            if s in sides:
                for p in seq[s]:
                    if p not in seen:
                        seen.add(p); nodes.append(p)
        idx = torch.tensor([i * ny + j for i, j in nodes])
        super().__init__(grid, idx[:, None], torch.ones(len(nodes), 1, dtype=torch.float64))
        self.sides = tuple(sides)
