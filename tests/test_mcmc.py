"""pCN and two-level delayed-acceptance MCMC against an analytic linear-Gaussian posterior.

Problem: m ~ GRF on an 8x8 Dirichlet grid (sine basis, 36 free pixels), y = O m + e
with O = point values at 8 interior nodes and e ~ N(0, s^2 I).  The posterior is
Gaussian with mean C O^T (O C O^T + s^2 I)^-1 y and covariance C - C O^T (...)^-1 O C;
the sampled mean/variance must match it within Monte-Carlo error computed from the
sampler's own ESS, per pixel.
"""
import math

import numpy as np
import pytest
import torch

import pdeinv as pi
from pdeinv.solvers.mcmc import MCMC, ess, split_rhat

N_SIDE, NOISE = 8, 1.0


from pdeinv.physics import Identity  # noqa: E402


class Affine(torch.nn.Module):
    """A deliberately wrong cheap model: 0.85 m + 0.4."""

    def __init__(self, grid):
        super().__init__()
        self.grid = grid

    def forward(self, m):
        return 0.85 * m + 0.4


def gaussian_posterior(prior, obs, y, s, scale=1.0, shift=0.0):
    """Exact posterior of y = O(scale*m + shift) + e, returned as (mean, var) fields."""
    C = prior.covariance()
    n = C.shape[0]
    H = scale * obs(torch.eye(n, dtype=torch.float64).reshape(n, 1, N_SIDE, N_SIDE))[:, 0].T   # (P, N)
    S = H @ C @ H.T + s ** 2 * torch.eye(H.shape[0], dtype=torch.float64)
    K = C @ H.T @ torch.linalg.inv(S)
    mean = K @ (y[0, 0] - shift)
    cov = C - K @ H @ C
    return mean.reshape(N_SIDE, N_SIDE), cov.diagonal().reshape(N_SIDE, N_SIDE)


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    g = pi.Grid2D(N_SIDE)
    prior = pi.GaussianRandomField(g, alpha=2.0, tau=3.0, sigma=30.0, basis="sine")
    obs = pi.PointObservation.random(g, n=8, seed=3, exclude_boundary=True)
    fwd = pi.ForwardModel(Identity(g), obs, noise=pi.GaussianNoise(sigma=NOISE))
    y = fwd(prior.sample(1, seed=5), seed=6)
    mean, var = gaussian_posterior(prior, obs, y, NOISE)
    return dict(grid=g, prior=prior, obs=obs, fwd=fwd, y=y, mean=mean, var=var)


def _check_against_posterior(res, mean, var):
    K = res.info["n_chains"]
    smp = res.samples[:, 0, 0]                                           # (K*S, n, n)
    chains = smp.reshape(K, -1, N_SIDE * N_SIDE).numpy()
    e = torch.from_numpy(ess(chains)).reshape(N_SIDE, N_SIDE)
    inner = (slice(1, -1), slice(1, -1))
    e, m_hat, v_hat = e[inner], smp.mean(0)[inner], smp.var(0)[inner]
    mean, var = mean[inner], var[inner]
    assert float(e.min()) > 150, f"too few effective samples for a meaningful test: {float(e.min())}"
    z_mean = (m_hat - mean) / (var.sqrt() / e.sqrt())
    z_var = (v_hat / var - 1) / (2.0 / e).sqrt()
    # 36 pixels: |z| < 4.5 fails by chance with probability < 1e-4
    assert float(z_mean.abs().max()) < 4.5, f"posterior mean off by {float(z_mean.abs().max()):.2f} MC std errors"
    assert float(z_var.abs().max()) < 4.5, f"posterior variance off by {float(z_var.abs().max()):.2f} MC std errors"
    assert res.info["rhat"] < 1.05 and res.info["rhat_loglik"] < 1.05
    return e


def test_pcn_samples_the_analytic_posterior(setup):
    s = setup
    res = MCMC(s["prior"], n_samples=3000, n_chains=4, step=0.3, seed=0)(s["y"], s["fwd"])
    assert res.samples.shape == (4 * 3000, 1, 1, N_SIDE, N_SIDE)
    assert torch.allclose(res.m[0, 0], res.samples[:, 0, 0].mean(0))
    _check_against_posterior(res, s["mean"], s["var"])
    # the data are informative: the posterior is visibly narrower than the prior at observed nodes
    prior_var = s["prior"].covariance().diagonal().reshape(N_SIDE, N_SIDE)
    at_obs = s["obs"].mask()
    assert float((s["var"][at_obs] / prior_var[at_obs]).max()) < 0.5
    assert abs(res.info["acceptance"] - 0.25) < 0.08                    # adapted towards the target
    assert res.info["n_true_model_calls"] == res.info["n_proposals"] + 4  # one per step + initial states


class Bent(torch.nn.Module):
    """A cheap model with a state-dependent error: 0.85 m + 0.02 m^2 + 0.4."""

    def __init__(self, grid):
        super().__init__()
        self.grid = grid

    def forward(self, m):
        return 0.85 * m + 0.02 * m ** 2 + 0.4


@pytest.mark.parametrize("screen,correction", [(Affine, "offset"), (Affine, "none"), (Bent, "offset")])
def test_two_level_keeps_the_posterior_with_fewer_true_calls(setup, screen, correction):
    s = setup
    cheap = pi.ForwardModel(screen(s["grid"]), s["obs"], noise=pi.GaussianNoise(sigma=NOISE))
    res = MCMC(s["prior"], n_samples=4000, n_chains=4, step=0.3, surrogate_fwd=cheap, screen_correction=correction,
               seed=1)(s["y"], s["fwd"])
    e = _check_against_posterior(res, s["mean"], s["var"])
    assert res.info["n_true_model_calls"] < 0.5 * res.info["n_proposals"]
    assert res.info["screen_correction"] == correction
    # power: the surrogate's own posterior is far from the true one, so the correction stage matters
    m_bad, _ = gaussian_posterior(s["prior"], s["obs"], s["y"], NOISE, scale=0.85, shift=0.4)
    inner = (slice(1, -1), slice(1, -1))
    z_bad = (m_bad[inner] - s["mean"][inner]) / (s["var"][inner].sqrt() / e.sqrt())
    assert float(z_bad.abs().max()) > 8


def test_offset_screen_accepts_what_the_true_model_would(setup):
    """The offset-corrected screen of 0.85 m + 0.4 errs only by 0.15 O(m' - m), so its stage-2 acceptance is far
    higher than the uncorrected screen's (whose constant shift 0.4 per point it removes)."""
    s = setup
    cheap = pi.ForwardModel(Affine(s["grid"]), s["obs"], noise=pi.GaussianNoise(sigma=NOISE))
    rates = {}
    for corr in ("offset", "none"):
        r = MCMC(s["prior"], n_samples=2000, n_chains=4, step=0.3, surrogate_fwd=cheap, screen_correction=corr,
                 compute_state=False, seed=2)(s["y"], s["fwd"])
        n_passed = r.info["stage1_acceptance"] * 4 * 2000
        rates[corr] = (r.info["stage2_acceptance"], n_passed)
    (p1, n1), (p0, n0) = rates["offset"], rates["none"]
    se = math.sqrt(p1 * (1 - p1) / n1 + p0 * (1 - p0) / n0)
    assert p1 - p0 > 6 * se, rates


def test_chains_start_at_m0(setup):
    s = setup
    m0 = s["mean"].reshape(1, 1, N_SIDE, N_SIDE)
    kw = dict(n_samples=4, n_chains=2, burn_in=0, step=1e-9, adapt=False, compute_state=False)
    res = MCMC(s["prior"], **kw)(s["y"], s["fwd"], m0=m0)
    assert torch.allclose(res.samples, m0.expand_as(res.samples), atol=1e-6)    # whiten/color round trip
    with pytest.raises(ValueError, match="transform"):
        MCMC(s["prior"], transform=torch.exp, **kw)(s["y"], s["fwd"], m0=m0)


def test_dask_chains_equal_batched_chains(setup):
    s = setup
    kw = dict(n_samples=40, n_chains=2, step=0.3, seed=7, compute_state=False)
    a = MCMC(s["prior"], **kw)(s["y"], s["fwd"])
    b = MCMC(s["prior"], parallel="dask", **kw)(s["y"], s["fwd"])
    assert torch.allclose(a.samples, b.samples)
    c = MCMC(s["prior"], **kw)(s["y"], s["fwd"], seed=7)
    assert torch.equal(a.samples, c.samples)                          # seeded: same result


def test_diagnostics_on_known_chains():
    rng = np.random.default_rng(0)
    iid = rng.standard_normal((4, 2000, 3))
    assert np.all(np.abs(split_rhat(iid) - 1) < 0.01)
    assert np.all(np.abs(ess(iid) / 8000 - 1) < 0.15)
    # AR(1) with coefficient phi: integrated autocorrelation time (1 + phi) / (1 - phi) = 19
    phi, x = 0.9, np.zeros((4, 20000, 1))
    x[:, 0] = rng.standard_normal((4, 1)) / math.sqrt(1 - phi ** 2)
    for t in range(1, x.shape[1]):
        x[:, t] = phi * x[:, t - 1] + rng.standard_normal((4, 1))
    assert abs(ess(x)[0] / (80000 / 19) - 1) < 0.2
    shifted = iid + np.arange(4)[:, None, None]                      # chains stuck in different places
    assert np.all(split_rhat(shifted) > 1.5)


def test_registered_and_bad_input():
    from pdeinv.solvers import SOLVERS, TwoLevelMCMC
    assert SOLVERS["mcmc"] is MCMC and SOLVERS["mcmc-2level"] is TwoLevelMCMC
    with pytest.raises(ValueError, match="surrogate_fwd"):
        TwoLevelMCMC(None, None)
    g = pi.Grid2D(N_SIDE)
    prior = pi.GaussianRandomField(g, basis="sine")
    fwd = pi.ForwardModel(Identity(g), pi.PointObservation.random(g, n=4, seed=0))
    y = torch.zeros(1, 1, 4, dtype=torch.float64)
    with pytest.raises(ValueError, match="NaN"):
        MCMC(prior, n_samples=10)(y * float("nan"), fwd)
    with pytest.raises(ValueError, match="grid"):
        MCMC(pi.GaussianRandomField(pi.Grid2D(6), basis="sine"), n_samples=10)(y, fwd)
    with pytest.raises(ValueError, match="beta"):
        MCMC(prior, step=1.5)
    with pytest.raises(TypeError, match="GaussianRandomField"):
        MCMC(object())


# ---------------------------------------------------------------------------------------------- gpCN


def test_gpcn_with_the_exact_laplace_gaussian_draws_independent_posterior_samples(setup):
    """On a linear-Gaussian problem the Laplace approximation is the posterior, so gpCN's reference ratio cancels
    the posterior exactly: every proposal is accepted, the step adapts to beta = 1 (independent draws), and the
    ESS per step far exceeds pCN's on the same budget."""
    s = setup
    kw = dict(n_samples=2000, n_chains=4, step=0.3, compute_state=False, seed=3)
    res = MCMC(s["prior"], proposal="gpcn", **kw)(s["y"], s["fwd"])
    e = _check_against_posterior(res, s["mean"], s["var"])
    assert res.info["acceptance"] > 0.999 and res.info["step"] == pytest.approx(1.0)
    assert res.info["proposal"] == "gpcn" and res.info["laplace_seconds"] > 0
    pcn = MCMC(s["prior"], **kw)(s["y"], s["fwd"])
    assert float(e.min()) > 5 * pcn.info["ess"]


def _shifted_laplace(s, shift):
    """The Laplace Gaussian of data shifted by ``shift`` noise stds: the right covariance, the wrong mean."""
    from pdeinv.solvers.laplace import Laplace
    return Laplace(prior=s["prior"], n_samples=0, compute_state=False)(s["y"] + shift * NOISE, s["fwd"])


def test_gpcn_is_exact_whatever_its_gaussian(setup):
    """gpCN centred on a wrong Gaussian (its mean up to 1.3 posterior stds off) still samples the true posterior;
    the wrong centre only costs acceptance."""
    s = setup
    lap = _shifted_laplace(s, 1.0)
    res = MCMC(s["prior"], n_samples=3000, n_chains=4, step=0.3, proposal="gpcn", compute_state=False,
               seed=4)(s["y"], s["fwd"], laplace=lap)
    e = _check_against_posterior(res, s["mean"], s["var"])
    assert res.info["acceptance"] < 0.9                               # the wrong centre is visible ...
    inner = (slice(1, -1), slice(1, -1))                              # ... and would be detected if sampled
    z_bad = (lap.m[0, 0][inner] - s["mean"][inner]) / (s["var"][inner].sqrt() / e.sqrt())
    assert float(z_bad.abs().max()) > 8


def test_two_level_gpcn_keeps_the_posterior(setup):
    s = setup
    cheap = pi.ForwardModel(Bent(s["grid"]), s["obs"], noise=pi.GaussianNoise(sigma=NOISE))
    res = MCMC(s["prior"], n_samples=3000, n_chains=4, step=0.3, proposal="gpcn", surrogate_fwd=cheap,
               compute_state=False, seed=5)(s["y"], s["fwd"], laplace=_shifted_laplace(s, 1.0))
    _check_against_posterior(res, s["mean"], s["var"])
    assert res.info["n_true_model_calls"] < res.info["n_proposals"]
    assert 0 < res.info["stage2_acceptance"] < 1


def test_gpcn_bad_input(setup):
    s = setup
    with pytest.raises(ValueError, match="proposal"):
        MCMC(s["prior"], proposal="mala")
    with pytest.raises(ValueError, match="transform"):
        MCMC(s["prior"], proposal="gpcn", transform=torch.exp)
    lap = _shifted_laplace(s, 0.0)
    with pytest.raises(ValueError, match="gpcn"):
        MCMC(s["prior"], n_samples=10)(s["y"], s["fwd"], laplace=lap)
    with pytest.raises(ValueError, match="one Gaussian per problem"):
        MCMC(s["prior"], n_samples=10, proposal="gpcn")(s["y"].repeat(2, 1, 1), s["fwd"], laplace=lap)


def test_gpcn_gaussian_built_through_a_cheap_model_keeps_the_posterior(setup):
    """``laplace_fwd``: MAP and Gauss-Newton Hessian through a wrong cheap model (0.85 m + 0.02 m^2 + 0.4) give a
    wrong Gaussian; the chain on the true model still samples the true posterior."""
    s = setup
    cheap = pi.ForwardModel(Bent(s["grid"]), s["obs"], noise=pi.GaussianNoise(sigma=NOISE))
    res = MCMC(s["prior"], n_samples=3000, n_chains=4, step=0.3, proposal="gpcn", laplace_fwd=cheap,
               compute_state=False, seed=6)(s["y"], s["fwd"])
    _check_against_posterior(res, s["mean"], s["var"])
    assert res.info["laplace_model"] == "surrogate" and res.info["acceptance"] < 0.99
    with pytest.raises(ValueError, match="gpcn"):
        MCMC(s["prior"], laplace_fwd=cheap)


def test_ess_in_blocks_of_components_equals_all_at_once():
    """The per-component ESS is computed in blocks (bounded memory for large fields): same values."""
    from pdeinv.solvers.mcmc_diagnostics import ess
    rng = np.random.default_rng(0)
    x = np.cumsum(rng.standard_normal((3, 200, 10)), 1) * 0.1 + rng.standard_normal((3, 200, 10))
    x[:, :, 4] = 2.0                                             # a constant component: nan in every blocking
    whole = ess(x, block=10 ** 6)
    for block in (1, 3, None):
        np.testing.assert_allclose(ess(x, block=block), whole, rtol=1e-12)   # FFT round-off only
    assert np.isnan(whole[4]) and np.isfinite(np.delete(whole, 4)).all()
