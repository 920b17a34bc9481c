"""Shared analytic problem for the FunDPS / DiffusionPDE tests (not a test module).

Poisson  ∇²u = f  on an n×n Dirichlet grid with f ~ GRF: the map f -> u is linear, so the joint law of
(f, u) is Gaussian and, with point observations of either field, the posterior is Gaussian and known.
"""
import math

import torch

from pdeinv.physics import ForwardModel, GaussianNoise, GaussianRandomField, Grid2D, PointObservation, Poisson
from pdeinv.priors.diffusion import gaussian_posterior


def joint_moments(spatial):
    """Mean and covariance of (f, u), channel-major, on a grid of this shape."""
    n = int(spatial[0])
    g = Grid2D(n)
    grf = GaussianRandomField(g, alpha=2.0, tau=3.0, basis="cosine")
    N = n * n
    Cf = grf.covariance()
    P = Poisson(g)(torch.eye(N, dtype=torch.float64).reshape(N, 1, n, n)).reshape(N, N).T   # u = P f
    C = torch.cat([torch.cat([Cf, Cf @ P.T], 1), torch.cat([P @ Cf, P @ Cf @ P.T], 1)], 0)
    return torch.zeros(2 * N, dtype=torch.float64), C, Cf, P


def setup(n=12, n_obs=10, seed=5, relative=0.02):
    g = Grid2D(n)
    N = n * n
    mu, C, Cf, P = joint_moments((n, n))
    prob = Poisson(g)
    obs = PointObservation.random(g, n=n_obs, seed=1)
    fwd = ForwardModel(prob, obs, noise=GaussianNoise(relative=relative))
    f0 = GaussianRandomField(g, alpha=2.0, tau=3.0, basis="cosine").sample(1, seed=seed)
    H = obs(torch.eye(N, dtype=torch.float64).reshape(N, 1, n, n))[:, 0].T
    # inverse mode: y observes u; posterior of f
    y_inv = fwd(f0, seed=2)
    s = fwd.noise_std(y_inv).reshape(-1)
    m_inv, C_inv = gaussian_posterior(torch.zeros(N, dtype=torch.float64), Cf, H @ P, y_inv.reshape(-1), s ** 2)
    # forward mode: y observes f; posterior of u = P f
    y_fwd = fwd.noise(obs(f0), seed=3)
    s = fwd.noise_std(y_fwd).reshape(-1)
    mf, Cff = gaussian_posterior(torch.zeros(N, dtype=torch.float64), Cf, H, y_fwd.reshape(-1), s ** 2)
    return dict(grid=g, fwd=fwd, f0=f0, u0=prob(f0), moments=(mu, C), y_inv=y_inv, post_inv=(m_inv, C_inv),
                y_fwd=y_fwd, post_fwd=(P @ mf, P @ Cff @ P.T))


def errors(result, post, mode, S):
    """(relative error of the sample mean vs the analytic posterior mean, mean variance ratio)."""
    mean, cov = post
    if mode == "inverse":
        est, smp = result.m.reshape(-1), result.samples.reshape(S, -1)
    else:
        est, smp = result.u.reshape(-1), result.u_samples.reshape(S, -1)
    err = float((est - mean).norm() / mean.norm())
    ratio = float(smp.var(0).mean() / cov.diagonal().mean())
    return err, ratio


# ----------------------------------------------------------------------------- exact cases and their statistics
# DPS tempers the observation likelihood with the Tweedie covariance Cov[x0 | x_sigma] = sigma^2 J_D K reduced to
# one number per chain (a probe along O^T v).  That is exact -- the guided denoiser is then E[x0 | x_sigma, y] and the
# sampler draws from the analytic posterior as the number of steps grows -- when O Cov O^T is that number times
# O K O^T: with ONE observation (any Gaussian prior), or when the observed channel's prior covariance is a multiple
# of the diffusion-noise covariance K (channels independent).  Elsewhere (many points of a correlated joint prior)
# the scalar is an approximation and a gap to the posterior remains at any budget.

def proportional_setup(noise, n=12, n_obs=10, a=2.0, b=0.5, sigma=0.2, seed=5):
    """Independent channels m ~ N(0, a^2 K), u ~ N(0, b^2 K) with K the diffusion noise covariance; y observes m
    at ``n_obs`` points with noise ``sigma`` (forward mode).  Returns the moments, fwd, y, the analytic posterior of m
    and the (unchanged) prior of u."""
    g = Grid2D(n)
    N = n * n
    K = noise.covariance((n, n))
    obs = PointObservation.random(g, n=n_obs, seed=1)
    fwd = ForwardModel(Poisson(g), obs, noise=GaussianNoise(sigma=sigma))
    L = torch.linalg.cholesky(a * a * K)
    m0 = (L @ torch.randn(N, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)).reshape(1, 1, n, n)
    y = fwd.noise(obs(m0), seed=3)
    H = obs(torch.eye(N, dtype=torch.float64).reshape(N, 1, n, n))[:, 0].T
    post = gaussian_posterior(torch.zeros(N, dtype=torch.float64), a * a * K, H, y.reshape(-1), sigma ** 2)
    moments = (torch.zeros(2 * N, dtype=torch.float64), torch.block_diag(a * a * K, b * b * K))
    return dict(moments=moments, fwd=fwd, y=y, post=post, prior_u=(torch.zeros(N, dtype=torch.float64), b * b * K))


def sample_statistics(samples, post, level=0.999):
    """Compare ``S`` samples ``(S, N)`` with the Gaussian ``post = (mean, cov)`` they should be drawn from.

    * ``err``: L2 error of the sample mean relative to ``|mean|`` (absolute if the mean is 0); ``err_bound``: its
      ``level`` quantile under exact sampling, ``||mean_S - mu||^2 ~ tr(C)/S * chi2_nu/nu`` (Satterthwaite's
      ``nu = tr(C)^2 / tr(C^2)``);
    * ``T = S (mean_S - mu)^T C^+ (mean_S - mu)`` on the range of ``C`` (rank ``r``): exactly ``chi2_r`` under exact
      sampling; ``T_max`` its ``level`` quantile; ``null``: the size of the mean's error outside that range
      (directions the law pins, e.g. Dirichlet boundary values of u), relative like ``err``;
    * ``ratio = tr(sample cov) / tr(C)``, ``~ chi2_nu/nu`` with ``nu = (S-1) tr(C)^2/tr(C^2)`` (Satterthwaite);
      ``ratio_interval``: its central ``level`` interval.
    """
    from scipy import stats
    mean, cov = post
    S, N = samples.shape
    d = samples.mean(0) - mean
    scale = float(mean.norm()) or 1.0
    tr, tr2 = float(cov.diagonal().sum()), float((cov * cov).sum())
    n_eff = tr * tr / tr2
    lam, V = torch.linalg.eigh(0.5 * (cov + cov.T))
    keep = lam > 1e-10 * float(lam.max())
    c = V.T @ d
    T = float(S * (c[keep] ** 2 / lam[keep]).sum())
    nu = (S - 1) * n_eff
    lo, hi = stats.chi2.ppf([(1 - level) / 2, (1 + level) / 2], nu) / nu
    return dict(err=float(d.norm()) / scale, err_bound=(tr / S * stats.chi2.ppf(level, n_eff) / n_eff) ** 0.5 / scale,
                T=T, T_max=float(stats.chi2.ppf(level, int(keep.sum()))), null=float(c[~keep].norm()) / scale,
                ratio=float(samples.var(0).sum()) / tr, ratio_interval=(float(lo), float(hi)))


# two budgets (samples, Heun steps) for the convergence statements
SMALL, LARGE = dict(n_samples=40, num_steps=6), dict(n_samples=400, num_steps=80)


def assert_converges(small, large, post, n_large=None):
    """Convergence of a sampler that is exact in the limit: two budgets, then the large budget's statistics."""
    assert large["err"] < small["err"], (small, large)
    assert abs(large["ratio"] - 1) < abs(small["ratio"] - 1), (small, large)
    assert large["err"] < large["err_bound"], large
    assert large["T"] < large["T_max"] and large["null"] < 1e-6, large
    lo, hi = large["ratio_interval"]
    assert lo < large["ratio"] < hi, large
    # the mean test has power: the data-blind prior mean (0) is rejected by it
    mean, cov = post
    S = n_large or LARGE["n_samples"]
    blind = sample_statistics(torch.zeros(S, mean.numel(), dtype=mean.dtype), post)    # S "samples" all at 0
    assert blind["T"] > large["T_max"], blind


def assert_beats_the_prior(samples, post, prior_cov, mean_factor=0.5):
    """The approximate regime: the sample mean's error is below ``mean_factor`` times the data-blind prior mean's
    (which is 1), and the spread is closer (in log) to the analytic posterior's than to the prior's."""
    S = samples.shape[0]
    mean, cov = post
    st = sample_statistics(samples.reshape(S, -1), post)
    prior_err = float((0 * mean - mean).norm() / mean.norm())
    assert st["err"] < mean_factor * prior_err, st
    prior_ratio = float(prior_cov.diagonal().sum() / cov.diagonal().sum())
    assert abs(math.log(st["ratio"])) < abs(math.log(prior_ratio) - math.log(st["ratio"])), (st, prior_ratio)
    return st
