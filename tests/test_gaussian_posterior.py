"""GaussianPosterior: the exact posterior of the linear-Gaussian tasks (poisson, helmholtz; inverse and forward mode)
against dense linear algebra, calibration of its samples, batch independence, refusals; the low-rank machinery."""
import math

import pytest
import torch
from scipy import stats

import pdeinv as pi
from pdeinv.physics import Darcy, ForwardModel, GaussianNoise, PointObservation, Poisson
from pdeinv.priors import LawPrior
from pdeinv.solvers import SOLVERS
from pdeinv.solvers.gaussian import GaussianPosterior
from pdeinv.solvers.lowrank import LowRankGaussian, randomized_eigh, randomized_gram_eigh
from pdeinv.tasks import TASKS


from pdeinv.physics import Identity  # noqa: E402


def make(task, mode, res, noise, n=1, obs_seed=1, fraction=0.1):
    t = TASKS[task]
    grid, problem = t.make(res)
    prior = t.map_options["prior"]
    obs = PointObservation.random(grid, fraction=fraction, seed=obs_seed)
    fwd = ForwardModel(problem if mode == "inverse" else Identity(grid), obs, noise)
    m_true = t.sample_m(grid, n, seed=3)
    return grid, prior, fwd, m_true, fwd(m_true, seed=4)


def dense_posterior(fwd, field, y, s):
    """Mean, covariance and log evidence of the posterior by dense linear algebra (covariance form)."""
    n1, n2 = field.grid.shape
    N = n1 * n2
    A = fwd.A(torch.eye(N, dtype=torch.float64).reshape(N, 1, n1, n2)).reshape(N, -1).T    # (P, N), A linear
    C = field.covariance()
    mu = torch.full((N,), field.mean, dtype=torch.float64)
    S = A @ C @ A.T + s ** 2 * torch.eye(A.shape[0], dtype=torch.float64)
    AC = A @ C
    K = torch.linalg.solve(S, AC).T                                                         # C A^T S^-1
    mean = mu + K @ (y - A @ mu)
    cov = C - K @ AC
    logev = torch.distributions.MultivariateNormal(A @ mu, covariance_matrix=S).log_prob(y)
    return mean, 0.5 * (cov + cov.T), float(logev)


CASES = [(task, mode, 16, noise) for task in ("poisson", "helmholtz") for mode in ("inverse", "forward")
         for noise in (0.05, 0.01, 0.001)] + \
        [(task, mode, 32, 0.01) for task in ("poisson", "helmholtz") for mode in ("inverse", "forward")]


@pytest.mark.parametrize("task,mode,res,noise", CASES)
def test_equals_dense_posterior(task, mode, res, noise):
    """Mean, full covariance, pointwise std and log evidence equal the dense posterior to 1e-8 relative
    (measured: mean <= 4e-11, covariance <= 1e-10 in Frobenius norm)."""
    grid, prior, fwd, _, y = make(task, mode, res, GaussianNoise(relative=noise), n=1)
    res_ = GaussianPosterior(prior=prior, n_samples=4)(y, fwd, seed=0)
    field = prior.field(grid.shape)
    s = float(fwd.noise.std(y))
    mean, cov, logev = dense_posterior(fwd, field, y.reshape(-1), s)
    assert res_.info["exact_rank"] and res_.info["rank"] == fwd.observation.n_obs
    assert float((res_.m.reshape(-1) - mean).norm() / mean.norm()) < 1e-8
    cov_lr = res_.posterior[0].covariance()
    assert float((cov_lr - cov).norm() / cov.norm()) < 1e-8
    std = cov.diagonal().clamp_min(0).sqrt()
    assert float((res_.std.reshape(-1) - std).norm() / std.norm()) < 1e-8
    assert abs(res_.info["log_evidence"] - logev) < 1e-8 * abs(logev)
    # the other contract outputs
    assert res_.samples.shape == (4, 1, 1, *grid.shape) and res_.samples.dtype == torch.float64
    assert res_.u.shape == (1, 1, *grid.shape)
    dm = torch.randn(2, 1, *grid.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert torch.allclose(res_.posterior[0].cov_apply(dm).reshape(2, -1), dm.reshape(2, -1) @ cov, rtol=0,
                          atol=1e-8 * float(cov.abs().max()) * float(dm.abs().sum(dim=(1, 2, 3)).max()))


def test_coverage_of_the_90_percent_band_is_binomial():
    """1000 problems (truth from the prior, data from the model, so the posterior is calibrated by construction),
    one random pixel each: the count inside the sample-based 90 % band is binomial with the finite-sample
    expectation 0.9 (S - 1) / (S + 1) of an equal-tailed band from S draws, and the count inside the exact
    Gaussian band mean +- 1.645 std is binomial with p = 0.9; both must lie in the 99 % Clopper-Pearson
    interval of their counts (measured: 880 and 895 of 1000; intervals [0.851, 0.905] and [0.868, 0.919])."""
    n_problems, S, chunk = 1000, 200, 250
    t = TASKS["poisson"]
    grid, problem = t.make(16)
    prior = t.map_options["prior"]
    fwd = ForwardModel(problem, PointObservation.random(grid, fraction=0.1, seed=1), GaussianNoise(sigma=2e-4))
    gen = torch.Generator().manual_seed(0)
    pix = torch.randint(0, 16 * 16, (n_problems,), generator=gen)
    hits_s = hits_e = 0
    for c in range(n_problems // chunk):
        m_true = t.sample_m(grid, chunk, seed=100 + c)
        y = fwd(m_true, seed=200 + c)
        r = GaussianPosterior(prior=prior, n_samples=S)(y, fwd, seed=c)
        idx = pix[c * chunk:(c + 1) * chunk]
        truth = m_true.flatten(1).gather(1, idx[:, None])[:, 0]
        for exact, counter in ((False, "s"), (True, "e")):
            lo, hi = r.credible_interval(0.9, exact=exact)
            lo, hi = lo.flatten(1).gather(1, idx[:, None])[:, 0], hi.flatten(1).gather(1, idx[:, None])[:, 0]
            k = int(((truth >= lo) & (truth <= hi)).sum())
            if counter == "s":
                hits_s += k
            else:
                hits_e += k

    def clopper_pearson(k, n, level=0.99):
        a = 1 - level
        return stats.beta.ppf(a / 2, k, n - k + 1), stats.beta.ppf(1 - a / 2, k + 1, n - k)

    expect_s = 0.9 * (S - 1) / (S + 1)
    lo_s, hi_s = clopper_pearson(hits_s, n_problems)
    lo_e, hi_e = clopper_pearson(hits_e, n_problems)
    assert lo_s <= expect_s <= hi_s, (hits_s, lo_s, hi_s, expect_s)
    assert lo_e <= 0.9 <= hi_e, (hits_e, lo_e, hi_e)
    assert hi_e - lo_e < 0.06, (hits_s, hits_e)                # the interval has power: about +- 0.025


def test_batch_gets_the_answer_of_each_problem_alone():
    grid, prior, fwd, _, y = make("helmholtz", "inverse", 16, GaussianNoise(relative=0.01), n=3)
    gp = GaussianPosterior(prior=prior, n_samples=8)
    rb = gp(y, fwd, seed=5)
    for b in range(3):
        r1 = gp(y[b:b + 1], fwd, seed=5)
        assert torch.allclose(rb.m[b:b + 1], r1.m, rtol=1e-12, atol=0)
        assert torch.allclose(rb.std[b:b + 1], r1.std, rtol=1e-12, atol=0)
        assert math.isclose(rb.info["log_evidence"][b], r1.info["log_evidence"], rel_tol=1e-12)
    r0 = gp(y[:1], fwd, seed=5)
    assert torch.allclose(rb.samples[:, :1], r0.samples, rtol=1e-12, atol=0)      # stream (seed, 1, b)
    assert not torch.allclose(rb.samples[:, 1], rb.samples[:, 0])
    assert SOLVERS["gaussian"] is GaussianPosterior


def test_capped_rank_keeps_the_exact_mean_and_a_conservative_std():
    """With the rank capped below the number of observations, CG (low-rank preconditioned) still gives the exact
    mean (measured: 148 CG iterations); the truncated eigenvalues only make the std larger (never overconfident;
    rank 25 of 102 here: mean std 0.0198 against 0.0116)."""
    grid, prior, fwd, _, y = make("poisson", "inverse", 32, GaussianNoise(relative=0.01), n=1)
    full = GaussianPosterior(prior=prior, n_samples=0)(y, fwd)
    capped = GaussianPosterior(prior=prior, n_samples=0, max_rank=20, oversampling=5)(y, fwd)
    assert not capped.info["exact_rank"] and capped.info["rank"] == 25 and capped.info["power_iterations"] == 1
    assert float((capped.m - full.m).norm() / full.m.norm()) < 1e-8
    assert capped.info["cg_iterations"] > 1
    assert bool((capped.std >= full.std * (1 - 1e-10)).all())


def test_refuses_nonlinear_models_and_priors_it_cannot_whiten():
    g = pi.Grid2D(12)
    obs = PointObservation.random(g, fraction=0.2, seed=0)
    prior = LawPrior(pi.Grid2D, basis="cosine", zero_mean_mode=True, alpha=2.0, tau=3.0)
    y = torch.zeros(1, 1, obs.n_obs, dtype=torch.float64)
    darcy = ForwardModel(Darcy(g, f=1.0), obs, GaussianNoise(sigma=1e-3))
    with pytest.raises(ValueError, match="not linear"):
        GaussianPosterior(prior=prior)(y, darcy)
    affine = ForwardModel(Poisson(g, g=1.0), obs, GaussianNoise(sigma=1e-3))      # nonzero boundary data
    with pytest.raises(ValueError, match="not linear"):
        GaussianPosterior(prior=prior)(y, affine)
    poisson = ForwardModel(Poisson(g), obs, GaussianNoise(sigma=1e-3))
    for bad in ("tv", "h1", None):
        with pytest.raises(ValueError, match="whiten"):
            GaussianPosterior(prior=bad)(y, poisson)
    with pytest.raises(ValueError, match="log"):
        GaussianPosterior(prior=LawPrior(pi.Grid2D, transform="log", basis="cosine"))(y, poisson)
    with pytest.raises(ValueError, match="grid"):
        GaussianPosterior(prior=pi.physics.GaussianRandomField(pi.Grid2D(10), basis="cosine"))(y, poisson)


def test_randomized_eigensolvers_and_low_rank_gaussian():
    """Both eigensolvers recover a rank-12 Gram operator exactly with k >= 12; the low-rank Gaussian's
    covariance, square root and samples are consistent."""
    g = torch.Generator().manual_seed(0)
    n, p = 60, 12
    Gm = torch.randn(p, n, generator=g, dtype=torch.float64) * torch.logspace(2, -3, p, dtype=torch.float64)[:, None]
    H = Gm.T @ Gm
    exact = torch.linalg.eigvalsh(H).flip(0)[:p]
    lam1, V1 = randomized_eigh(lambda X: X @ H, n, p + 5, power_iterations=0, generator=g)
    lam2, V2 = randomized_gram_eigh(lambda X: X @ Gm.T, lambda W: W @ Gm, n, p, p + 5, generator=g)
    assert lam2.shape == (p,)                           # k is capped at p for the Gram form
    for lam, V in ((lam1[:p], V1[:p]), (lam2, V2)):
        assert torch.allclose(lam, exact, rtol=1e-9, atol=1e-12 * float(exact[0]))
        assert torch.allclose((V.T * lam) @ V, H, rtol=0, atol=1e-9 * float(exact[0]))
    post = LowRankGaussian(torch.zeros(n, dtype=torch.float64), V2, lam2)
    Hinv = torch.linalg.inv(torch.eye(n, dtype=torch.float64) + H)
    eye = torch.eye(n, dtype=torch.float64)
    assert torch.allclose(post.cov_apply(eye), Hinv, atol=1e-12)
    R = post.sqrt_cov_apply(eye)
    assert torch.allclose(R @ R.T, Hinv, atol=1e-12)
    assert math.isclose(post.logdet_hessian(), float(torch.logdet(eye + H)), rel_tol=1e-10)
    smp = post.sample(20000, torch.Generator().manual_seed(1))
    assert float((smp.T @ smp / 20000 - Hinv).abs().max()) < 0.05
