"""EIT / Calderón forward model: analytic DtN values, convergence, reciprocity, adjoint gradient, laws."""
import math

import pytest
import torch

from pdeinv.checks import adjoint_test, convergence_order, taylor_test
from pdeinv.physics import PROBLEMS, ForwardModel, Grid2D
from pdeinv.physics.eit import (EIT, DtNObservation, boundary_indices, dual_lengths, fourier_patterns,
                                inclusion_conductivity, perimeter_coordinate, trig_conductivity)


def _boundary_xy(grid):
    idx = boundary_indices(grid)
    X, Y = grid.mesh()
    return X[idx[:, 0], idx[:, 1]], Y[idx[:, 0], idx[:, 1]]


def _problem_for(grid, u_exact):
    x, y = _boundary_xy(grid)
    return EIT(grid, patterns=u_exact(x, y)[None]), x, y


def test_dtn_exact_for_quadratic_harmonic():
    """u = x^2 - y^2 (harmonic): outward flux 0 on x=0, 2 on x=1, 0 on y=0, -2 on y=1 -- exact on any grid."""
    grid = Grid2D(12)
    p, x, y = _problem_for(grid, lambda x, y: x ** 2 - y ** 2)
    flux = p(torch.full((1, 1, 12, 12), 1.0, dtype=torch.float64))[0, 0]
    expect = torch.zeros_like(x)
    expect[x == 1] = 2.0
    expect[y == 1] = -2.0
    expect[(x == 1) & (y == 1)] = 0.0          # the corner node balances both sides: (2 - 2) / 1
    side = ~(((x == 0) | (x == 1)) & ((y == 0) | (y == 1)))
    assert torch.allclose(flux[side], expect[side], atol=1e-10)
    # scaling with sigma: Lambda_{c sigma} = c Lambda_sigma
    flux3 = p(torch.full((1, 1, 12, 12), 3.0, dtype=torch.float64))[0, 0]
    assert torch.allclose(flux3, 3 * flux, atol=1e-10)


def test_dtn_sinh_sin_second_order():
    """u = sinh(pi x) sin(pi y) / sinh(pi): flux pi coth(pi) sin(pi y) on x = 1 etc.; observed order ~ 2."""
    def exact_flux(x, y):
        s = math.sinh(math.pi)
        f = torch.zeros_like(x)
        f[x == 1] = math.pi * math.cosh(math.pi) / s * torch.sin(math.pi * y[x == 1])
        f[x == 0] = -math.pi / s * torch.sin(math.pi * y[x == 0])
        f[y == 0] = -math.pi * torch.sinh(math.pi * x[y == 0]) / s
        f[y == 1] = -math.pi * torch.sinh(math.pi * x[y == 1]) / s
        return f

    u_exact = lambda x, y: torch.sinh(math.pi * x) * torch.sin(math.pi * y) / math.sinh(math.pi)   # noqa: E731
    errs, hs, errs_1st = [], [], []
    for n in (17, 33, 65):
        grid = Grid2D(n)
        p, x, y = _problem_for(grid, u_exact)
        flux = p(torch.ones(1, 1, n, n, dtype=torch.float64))[0, 0]
        side = ~(((x == 0) | (x == 1)) & ((y == 0) | (y == 1)))
        errs.append(float((flux - exact_flux(x, y))[side].abs().max()))
        hs.append(grid.h)
        # baseline: the first-order one-sided difference (u(x) - u(x - h n)) / h of the exact solution itself
        nx = (x == 1).double() - (x == 0).double()
        ny = (y == 1).double() - (y == 0).double()
        one_sided = (u_exact(x, y) - u_exact(x - grid.h * nx, y - grid.h * ny)) / grid.h
        errs_1st.append(float((one_sided - exact_flux(x, y))[side].abs().max()))
    order = convergence_order(hs, errs)
    assert 1.8 < order < 2.3, (errs, order)
    assert errs[-1] < 0.1 * errs_1st[-1], (errs, errs_1st)     # an order of magnitude better at 65^2


def test_dtn_reciprocity_and_conservation():
    """<Lambda g_i, g_j>_h symmetric to round-off; each pattern's fluxes integrate to zero."""
    grid = Grid2D(25)
    p = EIT(grid, n_patterns=10)
    sigma = torch.cat([trig_conductivity(grid, 1, seed=3), inclusion_conductivity(grid, 1, seed=4)])
    flux = p(sigma)                                   # (2, L, Nb)
    hb = dual_lengths(grid)
    for b in range(2):
        M = (flux[b] * hb) @ p.patterns.T            # M_ij = <Lambda g_i, g_j>
        assert float((M - M.T).abs().max()) < 1e-11 * float(M.abs().max())
        assert float((flux[b] * hb).sum(-1).abs().max()) < 1e-10 * float(flux[b].abs().max())
        # positive definite on zero-mean data (energy)
        assert float(torch.linalg.eigvalsh(0.5 * (M + M.T)).min()) > 0


def test_dtn_adjoint_gradient_taylor():
    grid = Grid2D(13)
    p = EIT(grid, n_patterns=6)
    sigma = trig_conductivity(grid, 2, seed=1)
    fwd = ForwardModel(p, DtNObservation(p.n_boundary))
    y = fwd.A(inclusion_conductivity(grid, 2, seed=2)).detach()
    dm = torch.randn(sigma.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 0.1
    rate = taylor_test(lambda s: fwd.misfit(s, y).sum(), sigma, dm)
    assert rate > 1.9


def test_dtn_observation_adjoint_and_subset():
    obs = DtNObservation(40, index=[0, 3, 7, 39])
    assert adjoint_test(obs, torch.zeros(2, 5, 40, dtype=torch.float64)) < 1e-14
    assert obs.n_obs == 4
    with pytest.raises(ValueError):
        DtNObservation(40, index=[40])


def test_laws_and_layout():
    grid = Grid2D(21)
    s1, s2 = trig_conductivity(grid, 3, seed=5), trig_conductivity(grid, 3, seed=5)
    assert torch.equal(s1, s2) and float(s1.min()) > 0
    b = boundary_indices(grid)
    assert torch.allclose(s1[:, 0, b[:, 0], b[:, 1]], torch.ones(3, b.shape[0], dtype=torch.float64))
    inc = inclusion_conductivity(grid, 4, seed=1)
    vals = torch.unique(inc)
    assert torch.all(((vals >= 2) & (vals <= 5)) | ((vals >= 0.2) & (vals <= 0.5)) | (vals == 1.0))
    assert b.shape[0] == 80 and len(set(map(tuple, b.tolist()))) == 80
    s = perimeter_coordinate(grid)
    assert float(s[0]) == 0.0 and float(s[-1]) < 4.0 and bool((s[1:] > s[:-1]).all())
    g = fourier_patterns(grid, 4)
    assert torch.allclose(g.sum(-1), torch.zeros(4, dtype=torch.float64), atol=1e-12)
    assert PROBLEMS["eit"] is EIT


def test_bad_inputs():
    grid = Grid2D(9)
    p = EIT(grid, n_patterns=4)
    with pytest.raises(ValueError, match="positive"):
        p(-torch.ones(1, 1, 9, 9, dtype=torch.float64))
    with pytest.raises(ValueError, match="shape"):
        p(torch.ones(1, 1, 8, 9, dtype=torch.float64))
    with pytest.raises(ValueError, match="patterns"):
        EIT(grid, patterns=torch.zeros(2, 5))
    with pytest.raises(ValueError, match="patterns"):
        fourier_patterns(grid, 40)


def test_eit_task_registered():
    from pdeinv.tasks import TASKS
    task = TASKS["eit"]
    grid, problem = task.make(9)
    m = task.sample_m(grid, 2, seed=0)
    y = problem(m)
    assert y.shape == (2, 16, 32) and torch.isfinite(y).all()
