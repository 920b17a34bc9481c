"""Uniform grids on an interval ``[a, a + L]`` / a rectangle ``[a, a + Lx] x [c, c + Ly]``.

The domain starts at ``origin`` (default 0: the unit interval / unit square and
``[0, L]``); ``Grid1D.interval(a, b, n)`` and ``Grid2D.rectangle((a, b), (c, d), n)``
build grids from the end points.  Two boundary types (node layouts) are supported:

``"dirichlet"`` (also used for Neumann-type coefficient laws and Neumann problems)
    ``n`` nodes *including* the two boundary nodes, ``x_i = a + L i / (n - 1)``,
    spacing ``h = L / (n - 1)``.  Fields carry their boundary values.
``"periodic"``
    ``n`` nodes on the torus, ``x_i = a + L i / n``, spacing ``h = L / n``.

``to_dict`` writes ``origin`` only when it is not 0, so the descriptions of
grids on ``[0, L]`` are unchanged, and ``grid_from_dict`` reads both.

Tensors on a grid are ``(B, C, *grid.shape)``; coordinates are returned in
``ij`` indexing (first spatial axis is ``x``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Tuple

import torch

from pdeinv._validation import check_field

BOUNDARY_TYPES = ("dirichlet", "periodic")


def _coords_1d(n: int, length: float, bc: str, dtype, device, origin: float = 0.0) -> torch.Tensor:
    if bc == "periodic":
        return origin + torch.arange(n, dtype=dtype, device=device) * (length / n)
    return torch.linspace(origin, origin + length, n, dtype=dtype, device=device)


def _check_origin(origin, ndim: int):
    o = tuple(origin) if isinstance(origin, (tuple, list)) else (origin,) * ndim
    if len(o) != ndim:
        raise ValueError(f"origin must be a number or {ndim} numbers; got {origin!r}")
    try:
        o = tuple(float(v) for v in o)
    except (TypeError, ValueError):
        raise ValueError(f"origin must be finite numbers; got {origin!r}") from None
    if not all(math.isfinite(v) for v in o):
        raise ValueError(f"origin must be finite; got {origin!r}")
    return o


def _interval(lo, hi, name="interval"):
    lo, hi = float(lo), float(hi)
    if not (math.isfinite(lo) and math.isfinite(hi) and hi > lo):
        raise ValueError(f"{name} [{lo}, {hi}] must have finite ends with b > a")
    return lo, hi - lo


@dataclass(frozen=True)
class Grid1D:
    """Uniform 1-D grid on ``[origin, origin + length]``.

    Parameters
    ----------
    n : number of nodes (including both boundary nodes for ``bc="dirichlet"``).
    length : domain length ``L`` (default 1).
    bc : ``"dirichlet"`` or ``"periodic"``.
    origin : left end ``a`` of the domain (default 0).
    """

    n: int
    length: float = 1.0
    bc: str = "periodic"
    origin: float = 0.0

    @classmethod
    def interval(cls, a: float, b: float, n: int, bc: str = "dirichlet") -> "Grid1D":
        """Grid on ``[a, b]`` with ``n`` nodes."""
        lo, L = _interval(a, b)
        return cls(n, L, bc, lo)

    @property
    def bounds(self) -> Tuple[float, float]:
        """``(a, b)``: the ends of the domain (for a periodic grid, ``b`` is identified with ``a``)."""
        return (self.origin, self.origin + self.length)

    def __post_init__(self):
        object.__setattr__(self, "origin", _check_origin(self.origin, 1)[0])
        if int(self.n) != self.n or self.n < 3:
            raise ValueError(f"Grid1D needs an integer n >= 3 nodes, got {self.n!r}")
        if self.bc not in BOUNDARY_TYPES:
            raise ValueError(f"unknown boundary type {self.bc!r}; expected one of {BOUNDARY_TYPES}")
        if not self.length > 0:
            raise ValueError(f"domain length must be positive, got {self.length}")

    ndim = 1

    @property
    def shape(self) -> Tuple[int]:
        return (self.n,)

    @property
    def h(self) -> float:
        """Grid spacing."""
        return self.length / (self.n if self.bc == "periodic" else self.n - 1)

    @property
    def spacing(self) -> Tuple[float]:
        return (self.h,)

    def coords(self, dtype=torch.float64, device=None) -> Tuple[torch.Tensor]:
        """Node coordinates, a 1-tuple of a ``(n,)`` tensor."""
        return (_coords_1d(self.n, self.length, self.bc, dtype, device, self.origin),)

    def mesh(self, dtype=torch.float64, device=None) -> Tuple[torch.Tensor]:
        return self.coords(dtype, device)

    def check(self, field: torch.Tensor, name: str = "field", channels=None) -> torch.Tensor:
        """Check that ``field`` is ``(B, C, n)`` on this grid, finite; return it."""
        return check_field(field, self.shape, name=name, channels=channels)

    def to_dict(self) -> dict:
        d = {"kind": "Grid1D", "n": self.n, "length": self.length, "bc": self.bc}
        if self.origin != 0.0:
            d["origin"] = self.origin
        return d


@dataclass(frozen=True)
class Grid2D:
    """Uniform 2-D grid on ``[x0, x0 + Lx] x [y0, y0 + Ly]``.

    Parameters
    ----------
    n : number of nodes per side, or a pair ``(nx, ny)``.
    length : side length, or a pair ``(Lx, Ly)``.
    bc : ``"dirichlet"`` (nodes include the boundary) or ``"periodic"``.
    origin : lower-left corner ``(x0, y0)`` (or one number for both; default 0).
    """

    n: object
    length: object = 1.0
    bc: str = "dirichlet"
    origin: object = 0.0

    @classmethod
    def rectangle(cls, xlim, ylim, n, bc: str = "dirichlet") -> "Grid2D":
        """Grid on ``[a, b] x [c, d]`` from ``xlim = (a, b)``, ``ylim = (c, d)``; ``n`` as in the constructor."""
        (a, lx), (c, ly) = _interval(*xlim, name="xlim"), _interval(*ylim, name="ylim")
        return cls(n, (lx, ly), bc, (a, c))

    @property
    def bounds(self) -> Tuple[Tuple[float, float], Tuple[float, float]]:
        """``((a, b), (c, d))``: the ends of the domain along x and y."""
        return tuple((o, o + L) for o, L in zip(self.origin, self.length))

    def __post_init__(self):
        object.__setattr__(self, "origin", _check_origin(self.origin, 2))
        n = self.n if isinstance(self.n, (tuple, list)) else (self.n, self.n)
        L = self.length if isinstance(self.length, (tuple, list)) else (self.length, self.length)
        if len(n) != 2 or any(int(k) != k or k < 3 for k in n):
            raise ValueError(f"Grid2D needs n >= 3 nodes per side, got {self.n!r}")
        if any(not float(l) > 0 for l in L):
            raise ValueError(f"domain lengths must be positive, got {self.length!r}")
        if self.bc not in BOUNDARY_TYPES:
            raise ValueError(f"unknown boundary type {self.bc!r}; expected one of {BOUNDARY_TYPES}")
        object.__setattr__(self, "n", (int(n[0]), int(n[1])))
        object.__setattr__(self, "length", (float(L[0]), float(L[1])))

    ndim = 2

    @property
    def shape(self) -> Tuple[int, int]:
        return self.n

    @property
    def spacing(self) -> Tuple[float, float]:
        if self.bc == "periodic":
            return (self.length[0] / self.n[0], self.length[1] / self.n[1])
        return (self.length[0] / (self.n[0] - 1), self.length[1] / (self.n[1] - 1))

    @property
    def h(self) -> float:
        """Grid spacing (requires a square cell)."""
        hx, hy = self.spacing
        if abs(hx - hy) > 1e-12 * max(hx, hy):
            raise ValueError(f"grid cells are not square (hx={hx}, hy={hy}); use grid.spacing")
        return hx

    @property
    def cell_area(self) -> float:
        hx, hy = self.spacing
        return hx * hy

    def coords(self, dtype=torch.float64, device=None) -> Tuple[torch.Tensor, torch.Tensor]:
        """1-D node coordinates ``(x, y)`` of shapes ``(nx,)`` and ``(ny,)``."""
        return (
            _coords_1d(self.n[0], self.length[0], self.bc, dtype, device, self.origin[0]),
            _coords_1d(self.n[1], self.length[1], self.bc, dtype, device, self.origin[1]),
        )

    def mesh(self, dtype=torch.float64, device=None) -> Tuple[torch.Tensor, torch.Tensor]:
        """Node coordinates ``(X, Y)``, each ``(nx, ny)``, ``ij`` indexing."""
        x, y = self.coords(dtype, device)
        return torch.meshgrid(x, y, indexing="ij")

    def boundary_mask(self, device=None) -> torch.Tensor:
        """Boolean ``(nx, ny)`` mask of boundary nodes (all False if periodic)."""
        mask = torch.zeros(self.n, dtype=torch.bool, device=device)
        if self.bc == "dirichlet":
            mask[0, :] = mask[-1, :] = mask[:, 0] = mask[:, -1] = True
        return mask

    def interior_mask(self, device=None) -> torch.Tensor:
        return ~self.boundary_mask(device)

    def check(self, field: torch.Tensor, name: str = "field", channels=None) -> torch.Tensor:
        """Check that ``field`` is ``(B, C, nx, ny)`` on this grid, finite; return it."""
        return check_field(field, self.shape, name=name, channels=channels)

    def to_dict(self) -> dict:
        d = {"kind": "Grid2D", "n": list(self.n), "length": list(self.length), "bc": self.bc}
        if any(o != 0.0 for o in self.origin):
            d["origin"] = list(self.origin)
        return d


def grid_from_dict(d: dict):
    """Rebuild a grid from :meth:`Grid2D.to_dict` / :meth:`Grid1D.to_dict`."""
    kind = d.get("kind")
    if kind == "Grid2D":
        return Grid2D(tuple(d["n"]), tuple(d["length"]), d["bc"], tuple(d.get("origin", (0.0, 0.0))))
    if kind == "Grid1D":
        return Grid1D(int(d["n"]), float(d["length"]), d["bc"], float(d.get("origin", 0.0)))
    raise ValueError(f"not a grid description: {d!r}")
