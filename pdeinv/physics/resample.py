r"""Moving fields between resolutions of one domain, and running a model on a coarser grid.

:func:`resample` maps a field ``(B, C, nx, ny)`` from one :class:`~pdeinv.physics.Grid2D` to
another of the same domain and boundary type:

* **periodic** grids: band-limited (Fourier) interpolation.  With
  :math:`\hat f_k` the DFT coefficients on the source grid, the target keeps the
  modes :math:`|k_x| < \min(n_x, n_x')/2`, :math:`|k_y| < \min(n_y, n_y')/2`
  (Nyquist modes dropped, so the result is real and the map is the orthogonal
  projection onto the shared modes) and evaluates the trigonometric polynomial
  on the target nodes.  A field whose spectrum lies in the shared band is
  reproduced exactly both ways.
* **dirichlet** grids (nodes include the boundary): bilinear interpolation
  between nodes (``align_corners=True``), exact for bilinear fields; boundary
  values map to boundary values.

:class:`Coarsened` wraps a model that works on a coarse grid (a trained neural
operator, or the simulator itself at a lower resolution) as a model of the
fine grid: :math:`u = P\,G_c(R\,m)` with :math:`R` the restriction and
:math:`P` the prolongation above.  Both maps are linear and differentiable.
Its use here is a cheap screen for two-level MCMC
(:class:`~pdeinv.solvers.TwoLevelMCMC`), where it is corrected at the chain's
state and only needs to track changes of the data.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pdeinv.physics.grid import Grid2D


def _check_pair(src: Grid2D, dst: Grid2D):
    if not (isinstance(src, Grid2D) and isinstance(dst, Grid2D)):
        raise TypeError(f"resample works between Grid2D grids; got {type(src).__name__} and {type(dst).__name__}")
    if src.bc != dst.bc:
        raise ValueError(f"cannot resample between a {src.bc!r} and a {dst.bc!r} grid")
    if any(abs(a - b) > 1e-12 * max(abs(a), abs(b), 1.0) for a, b in zip(src.length + src.origin,
                                                                        dst.length + dst.origin)):
        raise ValueError(f"the grids cover different domains: {src.to_dict()} and {dst.to_dict()}")


def _fourier(f: torch.Tensor, shape) -> torch.Tensor:
    nx, ny = f.shape[-2:]
    mx, my = shape
    kx, ky = (min(nx, mx) - 1) // 2, (min(ny, my) - 1) // 2          # modes |k| <= k*: Nyquist dropped
    c = torch.fft.rfft2(f, norm="forward")
    out = c.new_zeros(f.shape[:-2] + (mx, my // 2 + 1))
    out[..., :kx + 1, :ky + 1] = c[..., :kx + 1, :ky + 1]
    if kx > 0:
        out[..., -kx:, :ky + 1] = c[..., -kx:, :ky + 1]
    return torch.fft.irfft2(out, s=(mx, my), norm="forward")


def resample(f: torch.Tensor, src: Grid2D, dst: Grid2D) -> torch.Tensor:
    """Field ``f`` ``(B, C, *src.shape)`` on grid ``src`` as a field ``(B, C, *dst.shape)`` on ``dst``.

    Periodic grids: Fourier interpolation on the modes both grids resolve; Dirichlet grids: bilinear
    interpolation between nodes.  The grids must cover the same domain with the same boundary type.
    """
    _check_pair(src, dst)
    src.check(f, name="field")
    if tuple(src.shape) == tuple(dst.shape):
        return f
    if src.bc == "periodic":
        return _fourier(f, dst.shape)
    return F.interpolate(f, size=tuple(dst.shape), mode="bilinear", align_corners=True)


class Coarsened(nn.Module):
    """``Coarsened(model, coarse_grid, grid)``: ``u = resample(model(resample(m, grid, coarse_grid)),
    coarse_grid, grid)``.

    ``model``: any ``m -> u`` map on ``coarse_grid`` (input and output on the same grid), e.g. a
    neural operator evaluated below its training resolution or a simulator built at a lower
    resolution.  ``grid``: the fine grid of ``m`` and ``u``.  The network's dtype is respected:
    ``m`` is cast to the first parameter's dtype (if any) and the state cast back.
    """

    def __init__(self, model: nn.Module, coarse_grid: Grid2D, grid: Grid2D):
        super().__init__()
        _check_pair(grid, coarse_grid)
        self.model, self.coarse_grid, self.grid = model, coarse_grid, grid

    def forward(self, m: torch.Tensor) -> torch.Tensor:
        mc = resample(m, self.grid, self.coarse_grid)
        p = next(self.model.parameters(), None)
        if p is not None and p.is_floating_point():
            mc = mc.to(p.dtype)
        uc = self.model(mc).to(m.dtype)
        return resample(uc, self.coarse_grid, self.grid)
