r"""Electrical impedance tomography (the Calderón problem) on the unit square.

For a conductivity :math:`\sigma > 0` and Dirichlet boundary patterns
:math:`g_\ell`, :math:`\ell = 1..L`, the potentials solve

.. math::  -\nabla\cdot(\sigma\nabla u_\ell) = 0 \ \text{in } \Omega=(0,1)^2, \qquad u_\ell = g_\ell \ \text{on } \partial\Omega,

and the measurement is the Neumann flux on the four sides, the
Dirichlet-to-Neumann (DtN) map :math:`\Lambda_\sigma g_\ell = \sigma\,\partial_n u_\ell|_{\partial\Omega}`
(outward normal).  Recovering :math:`\sigma` from :math:`\{(g_\ell, \Lambda_\sigma g_\ell)\}_\ell`
is the problem NIO (Molinaro et al., ICML 2023) was built for.

Discretisation
--------------
The potentials come from :func:`pdeinv.physics.elliptic.solve_elliptic` (5-point
conservative stencil, one SuperLU factorisation per conductivity shared by the
``L`` patterns, adjoint gradients w.r.t. :math:`\sigma`).  The flux at a boundary
node ``b`` is the balance of its half control volume,

.. math::  h_b\,(\Lambda_h g)_b = \sum_{e\ni b} w_e\, \sigma_e\,(u_b - u_{e'}),

summed over the grid edges ``e = (b, e')`` at ``b``, with edge conductivity
:math:`\sigma_e` = mean of the two nodes, edge weight :math:`w_e = h_\perp/h_\parallel`
(halved for edges that run along the boundary) and dual length :math:`h_b`
(``hy`` on the sides ``x = 0, 1``, ``hx`` on ``y = 0, 1``, :math:`(h_x+h_y)/2`
at the corners).  This is the derivative of the discrete Dirichlet energy, so
the discrete DtN matrix is the Schur complement of a symmetric matrix:
reciprocity :math:`\langle\Lambda_h g_1, g_2\rangle_h = \langle g_1, \Lambda_h g_2\rangle_h`
holds to solver round-off, the fluxes of a pattern sum to zero (no sources),
and the flux is exact for quadratic harmonic potentials and second-order
accurate for smooth ones (away from the corners, where the continuous normal
is undefined).

Boundary layout
---------------
Boundary nodes are listed counter-clockwise from the corner ``(0, 0)``: the
side ``y = 0`` (``x`` increasing), ``x = 1``, ``y = 1`` (``x`` decreasing), ``x = 0``;
``4 (n - 1)`` nodes for an ``n x n`` grid.  :func:`perimeter_coordinate` gives
their arclength ``s`` in ``[0, 4)``.  The default patterns are perimeter
Fourier modes :math:`\cos(\pi k s/2)`, :math:`\sin(\pi k s/2)`, ``k = 1..L/2``.

Shapes: ``sigma`` ``(B, 1, n, n)``; ``problem(sigma)`` -> flux ``(B, L, 4(n-1))``;
``problem.potentials(sigma)`` -> ``(B, L, n, n)``.  Units are nondimensional.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
from torch import nn

from pdeinv._validation import check_finite
from pdeinv.physics.elliptic import SOLVE_METHODS, solve_elliptic
from pdeinv.physics.grid import Grid1D, Grid2D
from pdeinv.physics.observation import Observation

__all__ = ["EIT", "DtNObservation", "boundary_indices", "perimeter_coordinate", "dual_lengths", "boundary_flux",
           "fourier_patterns", "trig_conductivity", "inclusion_conductivity", "EIT_LAWS"]


# ----------------------------------------------------------------------------- boundary geometry
def boundary_indices(grid: Grid2D) -> torch.Tensor:
    """``(4(n-1), 2)`` integer ``(i, j)`` node indices of the boundary, counter-clockwise from ``(0, 0)``."""
    nx, ny = grid.shape
    i = torch.arange(nx)
    j = torch.arange(ny)
    bottom = torch.stack([i[:-1], torch.zeros(nx - 1, dtype=torch.long)], 1)
    right = torch.stack([torch.full((ny - 1,), nx - 1), j[:-1]], 1)
    top = torch.stack([i.flip(0)[:-1], torch.full((nx - 1,), ny - 1)], 1)
    left = torch.stack([torch.zeros(ny - 1, dtype=torch.long), j.flip(0)[:-1]], 1)
    return torch.cat([bottom, right, top, left], 0)


def perimeter_coordinate(grid: Grid2D, dtype=torch.float64) -> torch.Tensor:
    """Arclength ``s`` of each boundary node (order of :func:`boundary_indices`), in units of the side length.

    ``s`` runs over ``[0, 4)``: ``[0,1)`` bottom, ``[1,2)`` right, ``[2,3)`` top, ``[3,4)`` left (unit square).
    """
    nx, ny = grid.shape
    tx = torch.arange(nx - 1, dtype=dtype) / (nx - 1)
    ty = torch.arange(ny - 1, dtype=dtype) / (ny - 1)
    return torch.cat([tx, 1 + ty, 2 + tx, 3 + ty])


def dual_lengths(grid: Grid2D, dtype=torch.float64) -> torch.Tensor:
    """Boundary length ``h_b`` attached to each boundary node (sums to the perimeter)."""
    nx, ny = grid.shape
    hx, hy = grid.spacing
    hb = torch.cat([torch.full((nx - 1,), hx), torch.full((ny - 1,), hy),
                    torch.full((nx - 1,), hx), torch.full((ny - 1,), hy)]).to(dtype)
    corners = torch.tensor([0, nx - 1, nx - 1 + ny - 1, 2 * (nx - 1) + ny - 1])
    hb[corners] = 0.5 * (hx + hy)
    return hb


def fourier_patterns(grid: Grid2D, n_patterns: int, dtype=torch.float64) -> torch.Tensor:
    r"""``(L, 4(n-1))`` perimeter Fourier modes :math:`\cos(\pi k s/2), \sin(\pi k s/2)`, k = 1, 2, ...

    Ordered ``cos k=1, sin k=1, cos k=2, ...``; continuous around the perimeter
    and with zero mean (a constant pattern carries no information: its flux is 0).
    """
    if int(n_patterns) != n_patterns or n_patterns < 1:
        raise ValueError(f"n_patterns must be a positive integer; got {n_patterns!r}")
    s = perimeter_coordinate(grid, dtype)
    nb = s.numel()
    if n_patterns > nb - 1:
        raise ValueError(f"{n_patterns} patterns requested but the boundary has only {nb} nodes "
                         f"({nb - 1} independent zero-mean patterns)")
    rows = []
    for ell in range(n_patterns):
        k = ell // 2 + 1
        rows.append(torch.cos(math.pi * k * s / 2) if ell % 2 == 0 else torch.sin(math.pi * k * s / 2))
    return torch.stack(rows, 0)


def boundary_flux(grid: Grid2D, sigma: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    r"""Outward flux :math:`\sigma\partial_n u` at the boundary nodes, ``(B, C, 4(n-1))``.

    ``sigma`` ``(B|1, 1, nx, ny)``, ``u`` ``(B, C, nx, ny)`` (any potential, one per
    channel).  Half-control-volume balance (see the module docstring); differentiable.
    """
    hx, hy = grid.spacing
    wx, wy = hy / hx, hx / hy
    sx = 0.5 * (sigma[..., 1:, :] + sigma[..., :-1, :])            # x-edges (nx-1, ny)
    sy = 0.5 * (sigma[..., :, 1:] + sigma[..., :, :-1])            # y-edges (nx, ny-1)
    ex = torch.full(sx.shape[-2:], wx, dtype=u.dtype, device=u.device)
    ex[:, 0] *= 0.5                                                # x-edges along y = 0 and y = 1
    ex[:, -1] *= 0.5
    ey = torch.full(sy.shape[-2:], wy, dtype=u.dtype, device=u.device)
    ey[0, :] *= 0.5                                                # y-edges along x = 0 and x = 1
    ey[-1, :] *= 0.5
    qx = ex * sx * (u[..., 1:, :] - u[..., :-1, :])                # w σ (u_{i+1} - u_i)
    qy = ey * sy * (u[..., :, 1:] - u[..., :, :-1])
    F = torch.zeros_like(u)
    F = F + torch.nn.functional.pad(-qx, (0, 0, 0, 1)) + torch.nn.functional.pad(qx, (0, 0, 1, 0))
    F = F + torch.nn.functional.pad(-qy, (0, 1, 0, 0)) + torch.nn.functional.pad(qy, (1, 0, 0, 0))
    idx = boundary_indices(grid).to(u.device)
    Fb = F[..., idx[:, 0], idx[:, 1]]
    return Fb / dual_lengths(grid, u.dtype).to(u.device)


# ----------------------------------------------------------------------------- conductivity laws
def trig_conductivity(grid: Grid2D, n: int, seed: Optional[int] = None, modes: int = 4,
                      amplitude: float = 1.0, dtype=torch.float64) -> torch.Tensor:
    r"""Smooth trigonometric conductivities, ``(n, 1, nx, ny)``.

    .. math:: \sigma = \exp\Big(a \sum_{k,l=1}^{K} \frac{c_{kl}}{k^2+l^2}\,\sin(\pi k x)\sin(\pi l y)\Big),
              \quad c_{kl} \sim U(-1, 1)

    (a smooth positive field equal to 1 on the boundary, as in the Poisson–sine
    EIT data of the NIO paper); ``K = modes``, ``a = amplitude``.
    """
    g = torch.Generator().manual_seed(int(seed) if seed is not None else 0)
    c = 2 * torch.rand(n, modes, modes, generator=g, dtype=torch.float64) - 1
    x, y = grid.coords(torch.float64)
    k = torch.arange(1, modes + 1, dtype=torch.float64)
    Sx = torch.sin(math.pi * x[:, None] * k[None, :])              # (nx, K)
    Sy = torch.sin(math.pi * y[:, None] * k[None, :])
    w = 1.0 / (k[:, None] ** 2 + k[None, :] ** 2)
    logs = torch.einsum("bkl,xk,yl->bxy", c * w, Sx, Sy)
    return torch.exp(amplitude * logs)[:, None].to(dtype)


def inclusion_conductivity(grid: Grid2D, n: int, seed: Optional[int] = None, max_inclusions: int = 3,
                           background: float = 1.0, radius=(0.08, 0.2), high=(2.0, 5.0), low=(0.2, 0.5),
                           dtype=torch.float64) -> torch.Tensor:
    r"""Piecewise-constant conductivities: a background with 1..``max_inclusions`` discs, ``(n, 1, nx, ny)``.

    Each disc has centre ``U([0.2, 0.8]^2)``, radius ``U(radius)`` and, with equal
    probability, a conducting value ``U(high)`` or a resistive one ``U(low)``;
    later discs overwrite earlier ones where they overlap.  The boundary keeps
    the background value (discs stay inside the square).
    """
    g = torch.Generator().manual_seed(int(seed) if seed is not None else 0)
    X, Y = grid.mesh(torch.float64)
    out = torch.full((n, *grid.shape), float(background), dtype=torch.float64)
    for b in range(n):
        k = int(torch.randint(1, max_inclusions + 1, (1,), generator=g))
        for _ in range(k):
            cx, cy = (0.2 + 0.6 * torch.rand(2, generator=g, dtype=torch.float64)).tolist()
            r = radius[0] + (radius[1] - radius[0]) * float(torch.rand(1, generator=g, dtype=torch.float64))
            lo, hi = high if float(torch.rand(1, generator=g)) < 0.5 else low
            val = lo + (hi - lo) * float(torch.rand(1, generator=g, dtype=torch.float64))
            out[b][(X - cx) ** 2 + (Y - cy) ** 2 <= r * r] = val
    return out[:, None].to(dtype)


EIT_LAWS = {"trig": trig_conductivity, "inclusions": inclusion_conductivity}


# ----------------------------------------------------------------------------- problem
class EIT(nn.Module):
    r"""``EIT(grid, n_patterns=16, patterns=None, method="auto")``; ``problem(sigma) -> flux``.

    ``sigma``: conductivity ``(B, 1, n, n)`` (> 0); returns the DtN data
    :math:`\Lambda_\sigma g_\ell` at the boundary nodes, ``(B, L, 4(n-1))``.
    ``patterns``: optional ``(L, 4(n-1))`` Dirichlet data on the boundary nodes
    (default: :func:`fourier_patterns`).  Gradients w.r.t. ``sigma`` by the
    elliptic solver's adjoint (one LU per conductivity, shared by the ``L``
    patterns and the adjoint solves).
    """

    unknown = "sigma"

    def __init__(self, grid: Grid2D, n_patterns: int = 16, patterns: Optional[torch.Tensor] = None,
                 method: str = "auto", rtol: Optional[float] = None):
        super().__init__()
        if not isinstance(grid, Grid2D) or grid.bc != "dirichlet":
            raise ValueError(f"EIT needs a Grid2D with bc='dirichlet'; got {grid!r}")
        if method not in SOLVE_METHODS:
            raise ValueError(f"unknown solve method {method!r}; expected one of {SOLVE_METHODS}")
        self.grid, self.method, self.rtol = grid, method, rtol
        nb = 2 * (grid.shape[0] + grid.shape[1] - 2)
        if patterns is None:
            patterns = fourier_patterns(grid, n_patterns)
        patterns = torch.as_tensor(patterns, dtype=torch.float64)
        if patterns.dim() != 2 or patterns.shape[1] != nb:
            raise ValueError(f"patterns must have shape (L, {nb}) (values at the boundary nodes); "
                             f"got {tuple(patterns.shape)}")
        check_finite(patterns, "patterns")
        self.register_buffer("patterns", patterns)
        self.register_buffer("_bidx", boundary_indices(grid))

    @property
    def state_grid(self) -> Grid1D:
        """The perimeter as a periodic 1-D grid of the ``4(n-1)`` boundary nodes (arclength ``s``).

        The DtN data ``(B, L, Nb)`` are ``L`` channels on this grid (what datasets store)."""
        Lx, Ly = self.grid.length
        return Grid1D(self.n_boundary, length=2 * (Lx + Ly), bc="periodic")

    @property
    def n_patterns(self) -> int:
        return self.patterns.shape[0]

    @property
    def n_boundary(self) -> int:
        return self.patterns.shape[1]

    def dirichlet_data(self, dtype=torch.float64, device=None) -> torch.Tensor:
        """Patterns as full-grid fields ``(L, 1, n, n)`` (zero in the interior)."""
        g = torch.zeros(self.n_patterns, 1, *self.grid.shape, dtype=dtype, device=device)
        g[:, 0, self._bidx[:, 0], self._bidx[:, 1]] = self.patterns.to(dtype=dtype, device=device)
        return g

    def _check_sigma(self, sigma: torch.Tensor) -> None:
        if not torch.is_tensor(sigma):
            raise TypeError(f"sigma must be a tensor (B, 1, {self.grid.shape[0]}, {self.grid.shape[1]})")
        self.grid.check(sigma, name="conductivity sigma", channels=1)
        mn = float(sigma.detach().min())
        if not mn > 0:
            raise ValueError(f"conductivity sigma must be strictly positive everywhere; its minimum is {mn:g}")

    def potentials(self, sigma: torch.Tensor) -> torch.Tensor:
        r"""Potentials :math:`u_\ell` for every pattern, ``(B, L, n, n)``."""
        self._check_sigma(sigma)
        g = self.dirichlet_data(sigma.dtype, sigma.device)
        out = []
        for b in range(sigma.shape[0]):  # one factorisation per conductivity, L right-hand sides
            u = solve_elliptic(self.grid, sigma[b:b + 1], 0.0, 0.0, g, method=self.method, rtol=self.rtol)
            out.append(u[:, 0])
        return torch.stack(out, 0)

    def forward(self, sigma: torch.Tensor) -> torch.Tensor:
        r"""DtN data :math:`\Lambda_\sigma g_\ell` at the boundary nodes, ``(B, L, 4(n-1))``."""
        u = self.potentials(sigma)
        return boundary_flux(self.grid, sigma, u)

    def reference_data(self, sigma0: float = 1.0, dtype=torch.float64, device=None) -> torch.Tensor:
        r"""DtN data of the constant conductivity ``sigma0``, ``(L, Nb)``: subtracting it from measured
        data gives *difference data* :math:`(\Lambda_\sigma - \Lambda_{\sigma_0}) g_\ell`, where the
        conductivity's signature is not buried under the background response."""
        s0 = torch.full((1, 1, *self.grid.shape), float(sigma0), dtype=dtype, device=device)
        with torch.no_grad():
            return self(s0)[0]

    def residual(self, sigma: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        r"""Interior residual :math:`-\nabla_h\cdot(\sigma\nabla_h u_\ell)`, ``(B, L, n-2, n-2)``."""
        from pdeinv.physics.elliptic import stencil
        return stencil(u, sigma, 0.0, self.grid.spacing)

    def extra_repr(self) -> str:
        return f"grid={tuple(self.grid.shape)}, n_patterns={self.n_patterns}, method={self.method!r}"


class DtNObservation(Observation):
    """Observe the DtN data ``(B, L, Nb)`` at a subset of boundary nodes (all by default): ``(B, L, P)``.

    ``index``: boundary-node positions (order of :func:`boundary_indices`) to keep.
    Linear, with :meth:`adjoint` (zero-filled scatter back to ``(..., Nb)``).
    """

    def __init__(self, n_boundary: int, index=None):
        super().__init__()
        idx = torch.arange(n_boundary) if index is None else torch.as_tensor(index, dtype=torch.long)
        if idx.dim() != 1 or idx.numel() == 0 or int(idx.min()) < 0 or int(idx.max()) >= n_boundary:
            raise ValueError(f"index must be a non-empty 1-D list of boundary positions in [0, {n_boundary})")
        self.n_boundary = int(n_boundary)
        self.register_buffer("index", idx)

    @property
    def n_obs(self) -> int:
        return self.index.numel()

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        if u.shape[-1] != self.n_boundary:
            raise ValueError(f"DtNObservation expects DtN data with {self.n_boundary} boundary values in the "
                             f"last axis; got shape {tuple(u.shape)}")
        return u[..., self.index]

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        if y.shape[-1] != self.n_obs:
            raise ValueError(f"adjoint expects {self.n_obs} values in the last axis; got {tuple(y.shape)}")
        out = torch.zeros(*y.shape[:-1], self.n_boundary, dtype=y.dtype, device=y.device)
        return out.index_copy(-1, self.index, y)
