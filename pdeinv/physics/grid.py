"""Uniform grids on the unit interval / unit square.

Two boundary types are supported:

``"dirichlet"`` (also used for Neumann-type coefficient laws)
    ``n`` nodes *including* the two boundary nodes, ``x_i = L i / (n - 1)``,
    spacing ``h = L / (n - 1)``.  Fields carry their boundary values.
``"periodic"``
    ``n`` nodes on the torus, ``x_i = L i / n``, spacing ``h = L / n``.

Tensors on a grid are ``(B, C, *grid.shape)``; coordinates are returned in
``ij`` indexing (first spatial axis is ``x``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

import torch

from pdeinv._validation import check_field

BOUNDARY_TYPES = ("dirichlet", "periodic")


def _coords_1d(n: int, length: float, bc: str, dtype, device) -> torch.Tensor:
    if bc == "periodic":
        return torch.arange(n, dtype=dtype, device=device) * (length / n)
    return torch.linspace(0.0, length, n, dtype=dtype, device=device)


@dataclass(frozen=True)
class Grid1D:
    """Uniform 1-D grid.

    Parameters
    ----------
    n : number of nodes (including both boundary nodes for ``bc="dirichlet"``).
    length : domain length ``L`` (default 1).
    bc : ``"dirichlet"`` or ``"periodic"``.
    """

    n: int
    length: float = 1.0
    bc: str = "periodic"

    def __post_init__(self):
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
        return (_coords_1d(self.n, self.length, self.bc, dtype, device),)

    def mesh(self, dtype=torch.float64, device=None) -> Tuple[torch.Tensor]:
        return self.coords(dtype, device)

    def check(self, field: torch.Tensor, name: str = "field", channels=None) -> torch.Tensor:
        """Check that ``field`` is ``(B, C, n)`` on this grid, finite; return it."""
        return check_field(field, self.shape, name=name, channels=channels)

    def to_dict(self) -> dict:
        return {"kind": "Grid1D", "n": self.n, "length": self.length, "bc": self.bc}


@dataclass(frozen=True)
class Grid2D:
    """Uniform 2-D grid on ``[0, Lx] x [0, Ly]``.

    Parameters
    ----------
    n : number of nodes per side, or a pair ``(nx, ny)``.
    length : side length, or a pair ``(Lx, Ly)``.
    bc : ``"dirichlet"`` (nodes include the boundary) or ``"periodic"``.
    """

    n: object
    length: object = 1.0
    bc: str = "dirichlet"

    def __post_init__(self):
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
            _coords_1d(self.n[0], self.length[0], self.bc, dtype, device),
            _coords_1d(self.n[1], self.length[1], self.bc, dtype, device),
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
        return {"kind": "Grid2D", "n": list(self.n), "length": list(self.length), "bc": self.bc}


def grid_from_dict(d: dict):
    """Rebuild a grid from :meth:`Grid2D.to_dict` / :meth:`Grid1D.to_dict`."""
    kind = d.get("kind")
    if kind == "Grid2D":
        return Grid2D(tuple(d["n"]), tuple(d["length"]), d["bc"])
    if kind == "Grid1D":
        return Grid1D(int(d["n"]), float(d["length"]), d["bc"])
    raise ValueError(f"not a grid description: {d!r}")
