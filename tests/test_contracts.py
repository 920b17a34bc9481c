"""Contract tests driven by the registries: a newly registered task, solver or surrogate is tested here
the moment it is registered."""
import pytest
import torch

from pdeinv.checks import taylor_test
from pdeinv.physics import ForwardModel, GaussianNoise, GaussianRandomField, Grid2D, PointObservation, Poisson
from pdeinv.solvers import SOLVERS, InverseSolver
from pdeinv.tasks import TASKS

RES = 16


@pytest.mark.parametrize("name", sorted(TASKS))
def test_task_contract(name):
    """Seeded law, finite batched solve equal to per-sample solves, and a correct gradient (Taylor rate 2)."""
    task = TASKS[name]
    grid, problem = task.make(RES)
    m = task.sample_m(grid, 2, seed=11)
    assert torch.equal(m, task.sample_m(grid, 2, seed=11)) and not torch.equal(m, task.sample_m(grid, 2, seed=12))
    assert m.dtype == torch.float64 and tuple(m.shape[2:]) == tuple(grid.shape)
    u = problem(m)
    assert torch.isfinite(u).all() and u.shape[0] == 2
    u1 = problem(m[1:2])
    assert torch.allclose(u[1:2], u1, rtol=1e-9, atol=1e-12 * float(u.abs().max()))
    # gradient of a smooth functional of u through the problem: Taylor remainder O(h^2)
    w = torch.randn(u[:1].shape, generator=torch.Generator().manual_seed(0), dtype=u.dtype)
    dm = torch.randn(m[:1].shape, generator=torch.Generator().manual_seed(1), dtype=m.dtype)
    dm = dm * 0.05 * float(m.abs().max())
    J = _memoised(lambda x: _J(problem, w, x))
    m1 = m[:1].clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(J(m1), m1)
    h0, n = 0.5, 4
    rate, res = taylor_test(J, m[:1], dm, h0=h0, n=n, grad=grad, return_residuals=True)
    assert 1.8 < rate < 2.2, (rate, res)
    # wrong-gradient control: the check must see a gradient whose directional derivative is off by 5 %.
    # It does at steps where the correct gradient's remainder (c h^2, c measured above) is below 1/20 of
    # that error; the measured rate must then be ~1 and the check must fail.
    dJ = float((grad * dm).sum())
    eps = 0.05
    bad = grad + eps * dJ / float(dm.pow(2).sum()) * dm
    h_last = h0 * 0.5 ** (n - 1)
    curv = res[-1] / (h_last * abs(dJ))                 # remainder / first-order term at h_last, ~ h
    h0_bad = min(h0, h_last * (eps / 20) / curv)
    rate_bad = taylor_test(J, m[:1], dm, h0=h0_bad, n=n, grad=bad)
    assert abs(rate_bad - 1) < 0.15 and not rate_bad > 1.8, (name, rate_bad, h0_bad)


def _J(problem, w, x):
    u = problem(x)
    return (w * u).sum() + (u ** 2).mean()


def _memoised(f):
    """Cache f's values by the bytes of its (detached) input: the control reuses the solves it shares."""
    cache = {}

    def g(x):
        key = (tuple(x.shape), x.detach().cpu().numpy().tobytes())
        if x.requires_grad or key not in cache:
            val = f(x)
            cache[key] = val.detach()
            return val
        return cache[key]
    return g


@pytest.mark.parametrize("name", sorted(SOLVERS))
def test_solver_registry_contract(name):
    cls = SOLVERS[name]
    assert issubclass(cls, InverseSolver), f"{name} does not follow the solver(y, fwd, seed=) contract"
    assert callable(getattr(cls, "solve", None))


# ----------------------------------------------------------------------------- every solver on one linear-Gaussian
# problem: Poisson  ∇²u = f  on an 8x8 Dirichlet grid, f ~ GRF (alpha 2, tau 3, cosine basis), 10 point sensors of u,
# Gaussian noise of std 2e-3 (about the size of the signal: the posterior keeps 46 % of the prior variance).  u = P f
# is linear, so the posterior of f is Gaussian; its mean and covariance come from dense linear algebra here.

N_GRID, SIGMA, LEVEL = 8, 2e-3, 0.999


@pytest.fixture(scope="module")
def linear_gaussian():
    n = N_GRID
    N = n * n
    grid = Grid2D(n)
    prior = GaussianRandomField(grid, alpha=2.0, tau=3.0, basis="cosine")
    problem = Poisson(grid)
    obs = PointObservation.random(grid, n=10, seed=1)
    fwd = ForwardModel(problem, obs, noise=GaussianNoise(sigma=SIGMA))
    y = fwd(prior.sample(1, seed=5), seed=2)
    A = obs(problem(torch.eye(N, dtype=torch.float64).reshape(N, 1, n, n)))[:, 0].T          # (P, N) = O P
    C = prior.covariance()
    S = A @ C @ A.T + SIGMA ** 2 * torch.eye(A.shape[0], dtype=torch.float64)
    G = torch.linalg.solve(S, A @ C).T                                                        # C A^T S^-1
    mean, cov = G @ y.reshape(-1), C - G @ A @ C
    return dict(grid=grid, prior=prior, problem=problem, obs=obs, fwd=fwd, y=y, A=A, C=C, mean=mean,
                cov=0.5 * (cov + cov.T))


def _rel(m, p):
    """Relative L2 distance to the analytic posterior mean (the data-blind prior mean, 0, scores 1)."""
    return float((m.reshape(-1) - p["mean"]).norm() / p["mean"].norm())


def _chi2_bound(cov, scale):
    """``level`` quantile of ||e||^2 for e ~ N(0, scale * cov) (Satterthwaite: tr(cov) chi2_nu / nu)."""
    from scipy import stats
    tr, tr2 = float(cov.diagonal().sum()), float((cov * cov).sum())
    nu = tr * tr / tr2
    return scale * tr * stats.chi2.ppf(LEVEL, nu) / nu


def _run_exact(name, cls, p, tol):
    """Exact methods (MAP of a Gaussian problem = the posterior mean; the exact Gaussian posterior)."""
    kwargs = {} if name == "map" else {"n_samples": 16}
    if name == "map":
        kwargs["max_iter"] = 200
    res = cls(prior=p["prior"], **kwargs)(p["y"], p["fwd"], seed=0)
    assert res.m.shape == (1, 1, N_GRID, N_GRID) and res.m.dtype == torch.float64
    assert _rel(res.m, p) < tol, (name, _rel(res.m, p))
    std = getattr(res, "pointwise_std", None)
    if std is not None:                                     # an exact pointwise std must be exact too
        assert torch.allclose(std.reshape(-1) ** 2, p["cov"].diagonal(), rtol=10 * tol, atol=0), name


def _run_surrogate_map(name, cls, p):
    """The 'surrogate' is the exact linear map (the Poisson solver itself as the network): stage 1 must then be
    MAP, i.e. the posterior mean."""
    res = cls(Poisson(p["grid"]), prior=p["prior"], max_iter=200)(p["y"], p["fwd"], seed=0)
    assert _rel(res.m_surrogate, p) < 1e-4 and _rel(res.m, p) < 1e-4, (_rel(res.m_surrogate, p), _rel(res.m, p))


class _LinearInverse(torch.nn.Module):
    """A linear inverse operator y (B, 1, P) -> m (B, 1, n, n)."""

    def __init__(self, K):
        super().__init__()
        self.K = torch.nn.Parameter(K)

    def forward(self, y):
        return (y[:, 0] @ self.K.T).reshape(y.shape[0], 1, N_GRID, N_GRID)


def _run_amortized(name, cls, p):
    """A tiny learned inverse operator: linear least squares on n prior-predictive pairs (m_i, y_i).  For a
    zero-mean jointly Gaussian (m, y) the regression target E[m | y] = K y is the posterior mean and
    m - K y ~ N(0, C_post) independently of y, so the fitted K^ gives K^ y - K y ~ N(0, c C_post) with
    c = y^T (Y^T Y)^-1 y exactly: the amortised answer must lie inside that chi-square bound."""
    n_train = 4000
    M = p["prior"].sample(n_train, seed=100).reshape(n_train, -1)
    Y = M @ p["A"].T + SIGMA * torch.randn(n_train, p["A"].shape[0], generator=torch.Generator().manual_seed(101),
                                           dtype=torch.float64)
    K = torch.linalg.lstsq(Y, M).solution.T                                           # (N, P)
    res = cls(_LinearInverse(K))(p["y"], p["fwd"], seed=0)
    yv = p["y"].reshape(-1)
    assert torch.allclose(res.m.reshape(-1), K @ yv)                                 # the operator, applied to y
    c = float(yv @ torch.linalg.solve(Y.T @ Y, yv))
    err2 = float((res.m.reshape(-1) - p["mean"]).pow(2).sum())
    assert err2 < _chi2_bound(p["cov"], c), (err2, _chi2_bound(p["cov"], c))
    assert _chi2_bound(p["cov"], c) < 0.01 * float(p["mean"].pow(2).sum())          # ... a bound with power


def _run_mcmc(name, cls, p):
    """pCN chains (two-level: screened by a surrogate 20 % off, which changes the efficiency, not the target):
    the posterior mean within Monte-Carlo error -- per pixel |mean - mu| / sqrt(var / ESS) below the
    Bonferroni-corrected normal quantile -- and the spread within a chi-square interval for the variance ratio."""
    from scipy import stats
    from pdeinv.solvers.mcmc import ess
    kw = dict(n_samples=1000, n_chains=4)
    if name == "mcmc-2level":
        class Off(torch.nn.Module):                      # a deliberately wrong cheap model: 0.8 x the solver
            def __init__(self, problem):
                super().__init__()
                self.inner, self.grid = problem, problem.grid

            def forward(self, m):
                return 0.8 * self.inner(m)
        kw["surrogate_fwd"] = ForwardModel(Off(p["problem"]), p["obs"], noise=GaussianNoise(sigma=SIGMA))
    res = cls(p["prior"], **kw)(p["y"], p["fwd"], seed=0)
    S, N = res.samples.shape[0], N_GRID ** 2
    x = res.samples.reshape(S, N)
    e = torch.as_tensor(ess(x.reshape(4, S // 4, N).numpy()), dtype=torch.float64)
    assert bool(torch.isfinite(e).all()) and float(e.min()) > 50, float(e.min())    # enough for the CLT
    z = (x.mean(0) - p["mean"]) / (p["cov"].diagonal() / e).sqrt()
    z_max = stats.norm.ppf(1 - (1 - LEVEL) / (2 * N))
    assert float(z.abs().max()) < z_max, (float(z.abs().max()), z_max)
    # the test has power: the data-blind prior mean is many standard errors away
    assert float((p["mean"] / (p["cov"].diagonal() / e).sqrt()).abs().max()) > 3 * z_max
    # pointwise variances summed, against an interval for a variance estimated from ~min ESS draws
    ratio = float(x.var(0).sum() / p["cov"].diagonal().sum())
    tr, tr2 = float(p["cov"].diagonal().sum()), float((p["cov"] ** 2).sum())
    nu = (float(e.min()) - 1) * tr * tr / tr2
    lo, hi = stats.chi2.ppf([(1 - LEVEL) / 2, (1 + LEVEL) / 2], nu) / nu
    assert lo < ratio < hi, (ratio, lo, hi)


def _run_diffusion(name, cls, p):
    """DPS with the exact GRF denoiser (m-only prior, guidance through the simulator fwd): an approximation of
    the posterior (many observations: the scalar Tweedie tempering is not exact), so only loosely -- the mean's
    error is below half the data-blind prior mean's, and the spread is closer (in log) to the posterior's than
    to the prior's (tests/test_fundps.py and test_diffusionpde.py test convergence where DPS is exact)."""
    import math
    from pdeinv.priors.diffusion import AnalyticGaussianDenoiser, GRFNoise, WhiteNoise
    noise = WhiteNoise() if name == "diffusionpde" else GRFNoise()
    prior = AnalyticGaussianDenoiser((torch.zeros(N_GRID ** 2, dtype=torch.float64), p["C"]), noise=noise)
    S = 64
    res = cls(prior, mode="inverse", physics="simulator", n_samples=S, num_steps=20, batch_size=S)(p["y"], p["fwd"],
                                                                                                  seed=0)
    assert _rel(res.m, p) < 0.5, _rel(res.m, p)
    ratio = float(res.samples.reshape(S, -1).var(0).sum() / p["cov"].diagonal().sum())
    prior_ratio = float(p["C"].diagonal().sum() / p["cov"].diagonal().sum())
    assert abs(math.log(ratio)) < abs(math.log(prior_ratio) - math.log(ratio)), (ratio, prior_ratio)


def _run_pinn(name, cls, p):
    """PINN (deepxde, tiny budget): a point estimate without a prior, so not the posterior mean -- checked
    loosely: its field, put through the true simulator, fits the data better than the data-blind prior mean,
    and it is closer to the analytic posterior mean than 0.8 x the prior mean is."""
    res = cls(layers=(20, 20), adam_iters=500, lbfgs_iters=300, n_domain=200, n_boundary=40)(p["y"], p["fwd"], seed=0)
    fwd, y = p["fwd"], p["y"]
    assert float(fwd.misfit(res.m, y)) < 0.8 * float(fwd.misfit(torch.zeros_like(res.m), y))
    assert _rel(res.m, p) < 0.8, _rel(res.m, p)


# per method family: how each registered solver is run on the problem and what is checked
FAMILIES = {
    "map": lambda n, c, p: _run_exact(n, c, p, tol=1e-4),
    "gaussian": lambda n, c, p: _run_exact(n, c, p, tol=1e-6),
    "laplace": lambda n, c, p: _run_exact(n, c, p, tol=1e-6),
    "surrogate-map": _run_surrogate_map,
    "amortized": _run_amortized,
    "mcmc": _run_mcmc,
    "mcmc-2level": _run_mcmc,
    "fundps": _run_diffusion,
    "diffusionpde": _run_diffusion,
    "daps": _run_diffusion,      # convergence to the exact posterior: tests/test_daps.py
    "pinn": _run_pinn,
}


@pytest.mark.parametrize("name", sorted(SOLVERS))
def test_solver_recovers_the_linear_gaussian_posterior(name, linear_gaussian):
    """Every registered solver, on one problem whose posterior is known analytically."""
    if name not in FAMILIES:
        pytest.fail(f"solver {name!r} is registered in pdeinv.solvers.SOLVERS but tests/test_contracts.py has no "
                    f"entry for it in FAMILIES: add how to run it on the linear-Gaussian problem and what its "
                    f"answer must match (exact posterior mean, Monte-Carlo error, or a loose bound)")
    FAMILIES[name](name, SOLVERS[name], linear_gaussian)


def test_surrogate_registry_contract():
    from pdeinv.surrogates import SURROGATES
    from pdeinv.surrogates.base import Surrogate
    for name, cls in SURROGATES.items():
        assert issubclass(cls, Surrogate), name
        assert callable(getattr(cls, "load", None)), name
