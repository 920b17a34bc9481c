"""Resampling between resolutions and coarse-grid models (pdeinv.physics.resample)."""
import math

import pytest
import torch

import pdeinv as pi
from pdeinv.physics.resample import Coarsened, resample


def _trig(grid, kx=3, ky=5):
    X, Y = grid.mesh()
    return (torch.sin(2 * math.pi * kx * X) * torch.cos(2 * math.pi * ky * Y) + 0.3)[None, None]


def test_periodic_band_limited_fields_are_exact_both_ways():
    fine, coarse = pi.Grid2D(64, bc="periodic"), pi.Grid2D(24, bc="periodic")
    f = _trig(fine)
    c = resample(f, fine, coarse)
    assert c.shape == (1, 1, 24, 24)
    assert torch.allclose(c, _trig(coarse), atol=1e-12)
    assert torch.allclose(resample(c, coarse, fine), f, atol=1e-12)


def test_periodic_restriction_drops_unresolved_modes():
    fine, coarse = pi.Grid2D(64, bc="periodic"), pi.Grid2D(16, bc="periodic")
    f = _trig(fine, 3, 5) + _trig(fine, 20, 1)                  # mode 20 is beyond 16 // 2
    assert torch.allclose(resample(f, fine, coarse), _trig(coarse, 3, 5) + 0.3, atol=1e-12)


def test_dirichlet_bilinear_fields_are_exact():
    fine, coarse = pi.Grid2D(33), pi.Grid2D(9)
    bil = lambda g: (lambda X, Y: (1 + 2 * X - Y + 3 * X * Y)[None, None])(*g.mesh())  # noqa: E731
    assert torch.allclose(resample(bil(fine), fine, coarse), bil(coarse), atol=1e-12)
    assert torch.allclose(resample(bil(coarse), coarse, fine), bil(fine), atol=1e-12)


def test_bad_pairs_are_refused():
    with pytest.raises(ValueError, match="periodic"):
        resample(torch.zeros(1, 1, 8, 8), pi.Grid2D(8), pi.Grid2D(4, bc="periodic"))
    with pytest.raises(ValueError, match="domains"):
        resample(torch.zeros(1, 1, 8, 8), pi.Grid2D(8), pi.Grid2D(4, length=2.0))
    with pytest.raises(ValueError, match="shape"):
        resample(torch.zeros(1, 1, 8, 9), pi.Grid2D(8), pi.Grid2D(4))


def test_coarsened_simulator_converges_to_the_fine_one():
    """NS at 64^2 run on 16^2 and 32^2 grids: the coarse model's error falls fast with its resolution (the
    law's spectrum decays like a smooth field's, so the truncated modes carry little), and at 32^2 it is below
    the 1 % data noise by an order of magnitude."""
    task = pi.tasks.get_task("ns")
    g, problem = task.make(64)
    m = task.sample_m(g, 2, seed=0)
    u = problem(m)
    errs = []
    for n in (16, 32):
        gc, pc = task.make(n)
        uc = Coarsened(pc, gc, g)(m)
        errs.append(float((uc - u).norm() / u.norm()))
    assert errs[1] < 0.1 * errs[0] and errs[1] < 1e-3, errs
