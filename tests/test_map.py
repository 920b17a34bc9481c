"""MAP inversion: exact linear-Gaussian posterior mode, smooth/binary coefficients, boundary data."""
import math

import pytest
import torch

import pdeinv as pi
from pdeinv.physics import Darcy, Poisson
from pdeinv.priors import grf_prior
from pdeinv.solvers import MAP, SOLVERS
from pdeinv.solvers.gaussian import GaussianPosterior
from pdeinv.tasks import TASKS


def test_map_equals_analytic_posterior_mode_linear_gaussian():
    """Poisson source, GRF prior, Gaussian noise: the MAP point is m* = C A^T (A C A^T + s^2 I)^-1 y."""
    g = pi.Grid2D(13)
    prior = grf_prior(g, alpha=2.0, tau=3.0)
    prob = Poisson(g)
    obs = pi.PointObservation.random(g, fraction=0.3, seed=0)
    s = 1e-4
    fwd = pi.ForwardModel(prob, obs, pi.GaussianNoise(sigma=s))
    f_true = prior.sample(1, seed=1)
    y = fwd(f_true, seed=2)
    N = 13 * 13
    E = torch.eye(N, dtype=torch.float64).reshape(N, 1, 13, 13)
    A = fwd.A(E)[:, 0, :].T                                   # (P, N) by linearity
    C = prior.covariance()
    m_star = C @ A.T @ torch.linalg.solve(A @ C @ A.T + s ** 2 * torch.eye(A.shape[0], dtype=A.dtype), y[0, 0])
    # s = 1e-4 makes the whitened Hessian's condition number ~1e8: Newton-CG solves it to round-off (2.5e-10
    # measured); L-BFGS's function-value line search stalls near a relative gradient of 5e-7 (error 4e-4)
    res = MAP(prior=prior, max_iter=300, method="newton-cg", gtol=1e-12)(y, fwd)
    err = float((res.m.reshape(-1) - m_star).norm() / m_star.norm())
    assert err < 1e-8, err
    assert res.info["converged"] and res.info["whitened"]
    assert res.history["loss"][-1] <= res.history["loss"][0]


class _TwoExperiments(torch.nn.Module):
    """Darcy with f = 1 and two pressure drops (g = x, g = y) sharing one permeability: the states are
    stacked as channels, so one unknown field is observed through two experiments."""

    def __init__(self, grid):
        super().__init__()
        X, Y = grid.mesh()
        self.grid = grid
        self.darcy = Darcy(grid, f=1.0, g=torch.stack([X, Y])[:, None])

    def forward(self, m):
        return self.darcy(m).transpose(0, 1)


def test_map_smooth_coefficient_dense_noise_free():
    """A smooth log-normal permeability from noise-free nodal pressures of two experiments: < 2 % relative L2
    on the interior nodes.  (Boundary-node values of a enter the 5-point scheme only through the fluxes
    normal to the boundary and corner values not at all, so they are not identifiable from u.)"""
    g = pi.Grid2D(25)
    X, Y = g.mesh()
    a_true = torch.exp(0.5 * torch.sin(2 * math.pi * X) * torch.cos(math.pi * Y) + 0.3 * X)[None, None]
    obs = pi.MaskObservation(g, torch.ones(25, 25, dtype=torch.bool))
    fwd = pi.ForwardModel(_TwoExperiments(g), obs)
    y = fwd(a_true)
    assert y.shape == (1, 2, 625)
    res = MAP(prior="h1", weight=1e-9, positive=True, max_iter=400, tol=1e-12)(y, fwd)
    inner = (Ellipsis, slice(1, -1), slice(1, -1))
    err = float(pi.metrics.relative_l2(res.m[inner], a_true[inner]))
    assert err < 0.02, err


def test_map_recovers_boundary_data():
    """Poisson with unknown Dirichlet data g from noise-free interior points near the boundary."""
    g = pi.Grid2D(21)
    X, Y = g.mesh()
    g_true = (1 + 0.5 * torch.sin(2 * math.pi * X) + 0.5 * Y ** 2)[None, None]
    prob = Poisson(g, f=torch.ones(1, 1, 21, 21, dtype=torch.float64), unknown="g")
    obs = pi.MaskObservation(g, g.interior_mask())
    fwd = pi.ForwardModel(prob, obs)
    y = fwd(g_true)
    res = MAP(prior="h1", weight=1e-8, max_iter=300, tol=1e-12)(y, fwd)
    bm = g.boundary_mask()
    # the 5-point scheme never reads corner values, and the two neighbours of a corner enter only through
    # the stencil of the same interior node (only their sum is identifiable): leave those 12 nodes out
    for i in (0, 1, -2, -1):
        for j in (0, 1, -2, -1):
            bm[i, j] = False
    err = float((res.m[0, 0][bm] - g_true[0, 0][bm]).norm() / g_true[0, 0][bm].norm())
    assert err < 1e-3, err


def test_map_darcy_binary_benchmark_law():
    """BENCHMARKS.md Darcy inverse task at 64^2, 3 % points, 1 % noise: TV + sigmoid MAP error rate <= 10 %."""
    from pdeinv.cli.demo import DARCY_MAP
    task = pi.tasks.TASKS["darcy"]
    grid, prob = task.make(64)
    a = task.sample_m(grid, 3, seed=2024)
    rates = []
    for i in range(3):
        obs = pi.PointObservation.random(grid, fraction=0.0305, seed=31 + i)
        fwd = pi.ForwardModel(prob, obs, pi.GaussianNoise(relative=0.01))
        y = fwd(a[i:i + 1], seed=57 + i)
        res = MAP(**{**DARCY_MAP, "max_iter": 200})(y, fwd)
        rates.append(float(pi.metrics.error_rate(res.m, a[i:i + 1])))
        assert float(res.m.min()) >= 3.0 and float(res.m.max()) <= 12.0
    assert sum(rates) / 3 <= 0.10, rates


def test_map_contract_and_errors():
    assert SOLVERS["map"] is MAP
    g = pi.Grid2D(9)
    fwd = pi.ForwardModel(Poisson(g), pi.PointObservation.random(g, fraction=0.5, seed=0))
    y = torch.zeros(1, 1, fwd.observation.n_obs, dtype=torch.float64)
    with pytest.raises(ValueError, match="NaN"):
        MAP()(y + float("nan"), fwd)
    with pytest.raises(ValueError, match="observations"):
        MAP()(torch.zeros(1, 1, 3, dtype=torch.float64), fwd)
    with pytest.raises(ValueError, match="unknown prior"):
        MAP(prior="lasso")(y, fwd)
    with pytest.raises(ValueError, match="bounds"):
        MAP(bounds=(2.0, 1.0))
    r = MAP(prior="grf", max_iter=5)(y, fwd)
    ds = r.to_xarray()
    assert ds["m"].shape == (1, 9, 9) and "history_loss" in ds


def _linear_task(n=3, task="poisson", res=16):
    t = TASKS[task]
    grid, problem = t.make(res)
    prior = t.map_options["prior"]
    fwd = pi.ForwardModel(problem, pi.PointObservation.random(grid, fraction=0.1, seed=1),
                          pi.GaussianNoise(relative=0.01))
    y = fwd(t.sample_m(grid, n, seed=3), seed=4)
    return prior, fwd, y, GaussianPosterior(prior=prior, n_samples=0)(y, fwd).m


@pytest.mark.parametrize("method,gtol,rel", [("lbfgs", 1e-8, 1e-5), ("newton-cg", 1e-10, 1e-6)])
def test_whitened_map_reaches_the_exact_posterior_mean(method, gtol, rel):
    """Poisson, the task's GRF law, 26 points, 1 % noise, 3 problems: MAP in whitened coordinates reaches the
    exact posterior mean (GaussianPosterior, itself checked against dense algebra) and says it converged.

    In whitened coordinates the Hessian is ``I + J^T Gamma^{-1} J >= I``, so the error is bounded by the final
    gradient: ``|z - z*| <= |grad J(z)|`` (asserted).  The error in ``m`` a gradient tolerance buys scales with
    ``gtol`` times the conditioning of the data directions: L-BFGS stops at 1e-8 relative (it stalls in
    float64 near 1e-9 on this problem) and reaches 1e-7-1.2e-6 relative in m (two machines); Newton-CG
    reaches 4e-8 in 5 iterations at 1e-10."""
    from pdeinv.solvers.lowrank import WhitenedCoordinates
    from pdeinv.solvers.map import gaussian_field
    prior, fwd, y, exact = _linear_task()
    res = MAP(prior=prior, method=method, gtol=gtol, max_iter=500)(y, fwd)
    err = (res.m - exact).flatten(1).norm(dim=1) / exact.flatten(1).norm(dim=1)
    assert float(err.max()) < rel, err
    wc = WhitenedCoordinates(gaussian_field(prior, fwd.observation.grid)[0])
    dz = (wc.from_m(res.m) - wc.from_m(exact)).flatten(1).norm(dim=1)
    assert all(float(e) <= g for e, g in zip(dz, res.info["grad_norm"])), (dz, res.info["grad_norm"])
    assert res.info["converged"] is True and res.info["whitened"] and res.info["optimizer"] == method
    assert all(g <= gtol for g in res.info["grad_norm_relative"]) and res.info["stop_reason"] == ["gtol"] * 3
    assert len(res.info["iterations"]) == 3 and res.info["coordinates"] == "m = mu + C^(1/2) z"
    # the raw coordinates carry the prior's conditioning: far from the answer after as many iterations
    raw = MAP(prior=prior, whiten=False, gtol=gtol, max_iter=300)(y, fwd)
    assert raw.info["converged"] is False and not raw.info["whitened"]
    assert float(((raw.m - exact).flatten(1).norm(dim=1) / exact.flatten(1).norm(dim=1)).min()) > 1e-3


@pytest.mark.parametrize("method", ["lbfgs", "newton-cg"])
def test_capped_run_reports_not_converged(method):
    prior, fwd, y, _ = _linear_task(n=1)
    res = MAP(prior=prior, method=method, gtol=1e-12, max_iter=2)(y, fwd)
    assert res.info["converged"] is False and res.info["converged_per_sample"] == [False]
    assert res.info["iterations"] == 2 and res.info["stop_reason"] == "max_iter"
    assert res.info["grad_norm_relative"] > 1e-12 and res.info["grad_norm"] > 0
    assert len(res.history["grad_norm"]) == 3                        # iterations 0, 1, 2


def test_batch_gets_the_answer_of_each_problem_alone():
    """Each problem of a batch is solved on its own (issue 15): GRF/whitened and TV/sigmoid (Darcy)."""
    prior, fwd, y, _ = _linear_task(n=3, task="helmholtz")
    task = TASKS["darcy"]
    grid, prob = task.make(16)
    dfwd = pi.ForwardModel(prob, pi.PointObservation.random(grid, fraction=0.1, seed=0),
                           pi.GaussianNoise(relative=0.01))
    dy = dfwd(task.sample_m(grid, 2, seed=1), seed=2)
    for solver, yy, ff in ((MAP(prior=prior, gtol=1e-8), y, fwd), (MAP(prior=prior, method="newton-cg"), y, fwd),
                           (MAP(**{**task.map_options, "max_iter": 30}), dy, dfwd)):
        rb = solver(yy, ff)
        for b in range(yy.shape[0]):
            r1 = solver(yy[b:b + 1], ff)
            assert torch.allclose(rb.m[b:b + 1], r1.m, rtol=1e-12, atol=1e-14), b
            assert rb.info["iterations"][b] == r1.info["iterations"]


def test_coordinates_choice():
    g = pi.Grid2D(9)
    fwd = pi.ForwardModel(Poisson(g), pi.PointObservation.random(g, fraction=0.5, seed=0), pi.GaussianNoise(sigma=0.1))
    y = fwd(grf_prior(g).sample(1, seed=0), seed=1)
    assert MAP(prior="grf", max_iter=3)(y, fwd).info["whitened"]
    assert not MAP(prior="grf", bounds=(-5.0, 5.0), max_iter=3)(y, fwd).info["whitened"]
    assert not MAP(prior="tv", max_iter=3)(y, fwd).info["whitened"]
    log_law = pi.priors.LawPrior(pi.Grid2D, transform="log", basis="cosine")
    r = MAP(prior=log_law, max_iter=3)(y.abs() + 1, fwd)
    assert r.info["whitened"] and r.info["coordinates"] == "m = exp(mu + C^(1/2) z)" and bool((r.m > 0).all())
    with pytest.raises(ValueError, match="whiten=True"):
        MAP(prior="tv", whiten=True)(y, fwd)
    with pytest.raises(ValueError, match="method"):
        MAP(method="gauss-seidel")
