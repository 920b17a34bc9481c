"""Observation operators (adjoint tests, exact interpolation), noise and the forward model."""
import pytest
import torch
from scipy import stats

import pdeinv as pi
from pdeinv.checks import adjoint_test


def _ops():
    g = pi.Grid2D(17)
    gp = pi.Grid2D(16, bc="periodic")
    pts = torch.rand(30, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    mask = torch.zeros(17, 17, dtype=torch.bool); mask[::3, 1::4] = True
    return {
        "points-offgrid": (g, pi.PointObservation(g, pts)),
        "points-periodic": (gp, pi.PointObservation(gp, pts * 0.999)),
        "points-random": (g, pi.PointObservation.random(g, fraction=0.1, seed=3)),
        "mask": (g, pi.MaskObservation(g, mask)),
        "boundary": (g, pi.BoundaryTrace(g)),
        "boundary-two-sides": (g, pi.BoundaryTrace(g, sides=("left", "top"))),
        "points-1d": (pi.Grid1D(20), pi.PointObservation(pi.Grid1D(20), torch.linspace(0.01, 0.97, 7))),
    }


@pytest.mark.parametrize("name", list(_ops()))
@pytest.mark.parametrize("lead", [(2, 1), (2, 3, 1)])
def test_adjoint_dot_product(name, lead):
    g, op = _ops()[name]
    x = torch.zeros(*lead, *g.shape, dtype=torch.float64)
    assert adjoint_test(op, x) < 1e-13


def test_bilinear_interpolation_exact_for_bilinear_fields():
    g = pi.Grid2D(9)
    X, Y = g.mesh()
    u = (1 + 2 * X - 3 * Y + 0.5 * X * Y)[None, None]
    pts = torch.rand(50, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    y = pi.PointObservation(g, pts)(u)
    exact = 1 + 2 * pts[:, 0] - 3 * pts[:, 1] + 0.5 * pts[:, 0] * pts[:, 1]
    assert torch.allclose(y[0, 0], exact, atol=1e-13)


def test_random_points_seeded_and_sized():
    g = pi.Grid2D(64)
    o1 = pi.PointObservation.random(g, fraction=0.0305, seed=7)
    o2 = pi.PointObservation.random(g, fraction=0.0305, seed=7)
    o3 = pi.PointObservation.random(g, fraction=0.0305, seed=8)
    assert o1.n_obs == 125 and torch.equal(o1.points, o2.points) and not torch.equal(o1.points, o3.points)
    assert int(o1.mask().sum()) == 125


def test_boundary_trace_order_and_count():
    g = pi.Grid2D(5)
    bt = pi.BoundaryTrace(g)
    assert bt.n_obs == 16
    X, Y = g.mesh()
    y = bt((X + 10 * Y)[None, None])[0, 0]
    assert y[0] == 0 and y[4] == 1 and y[8] == 11  # counter-clockwise: (0,0) -> (1,0) -> (1,1)


def test_observation_bad_input():
    g = pi.Grid2D(9)
    with pytest.raises(ValueError, match="outside the domain"):
        pi.PointObservation(g, [[0.5, 1.2]])
    with pytest.raises(ValueError, match="NaN"):
        pi.PointObservation(g, [[0.5, float("nan")]])
    with pytest.raises(ValueError, match="shape"):
        pi.PointObservation(g, [[0.5, 0.5, 0.5]])
    with pytest.raises(ValueError, match="same grid"):
        pi.PointObservation.random(g, fraction=0.5, seed=0)(torch.zeros(1, 1, 10, 10))


def test_noise_levels_and_seeds():
    y = torch.randn(4, 1, 5000, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 3
    rel = pi.GaussianNoise(relative=0.05)
    e = rel(y, seed=1) - y
    rms = y.pow(2).mean(dim=(1, 2)).sqrt()

    def chi2_interval(dof, level):                    # central interval of s^2 / sigma^2 = chi2_dof / dof
        return stats.chi2.ppf([(1 - level) / 2, (1 + level) / 2], dof) / dof

    # (n-1) s^2 / sigma^2 ~ chi2_{n-1} per sample: each of the 4 inside its interval (family-wise level 0.001)
    lo, hi = chi2_interval(4999, 1 - 0.001 / 4)
    ratio = (e.std(dim=(1, 2)) / (0.05 * rms)) ** 2
    assert bool(((ratio > lo) & (ratio < hi)).all()), (ratio, lo, hi)
    assert torch.equal(rel(y, seed=1), rel(y, seed=1)) and not torch.equal(rel(y, seed=1), rel(y, seed=2))
    ab = pi.GaussianNoise(sigma=0.2)
    lo, hi = chi2_interval(e.numel() - 1, 0.999)
    assert lo < float((ab(y, seed=3) - y).std() / 0.2) ** 2 < hi
    with pytest.raises(ValueError):
        pi.GaussianNoise(sigma=0.1, relative=0.1)


def test_forward_model_misfit_is_chi_square():
    g = pi.Grid2D(17)
    prob = pi.physics.Poisson(g)
    f = pi.GaussianRandomField(g, alpha=2, tau=3).sample(1, seed=0)
    obs = pi.PointObservation.random(g, fraction=0.5, seed=0)
    fwd = pi.ForwardModel(prob, obs, pi.GaussianNoise(sigma=1e-4))
    vals = torch.stack([fwd.misfit(f, fwd(f, seed=s)) for s in range(200)])
    # each misfit is 1/2 chi^2_P, so twice the sum of the 200 independent draws is chi^2_{200 P}: inside its
    # central 0.999 interval
    dof = 200 * obs.n_obs
    lo, hi = stats.chi2.ppf([0.0005, 0.9995], dof)
    assert lo < 2 * float(vals.sum()) < hi, (2 * float(vals.sum()), lo, hi)
    assert torch.allclose(fwd.A(f), obs(prob(f)))
    with pytest.raises(ValueError, match="observations"):
        fwd.check_observations(torch.zeros(1, 1, obs.n_obs + 1, dtype=torch.float64))
