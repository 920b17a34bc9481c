"""Shared analytic problem for the FunDPS / DiffusionPDE tests (not a test module).

Poisson  ∇²u = f  on an n×n Dirichlet grid with f ~ GRF: the map f -> u is linear, so the joint law of
(f, u) is Gaussian and, with point observations of either field, the posterior is Gaussian and known.
"""
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
