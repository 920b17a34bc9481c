"""Laplace approximation: exact on linear-Gaussian problems, close to a long pCN chain on a weakly nonlinear Darcy
problem, bounded/log-normal coordinates, a given MAP point, refusals."""
import pytest
import torch

import pdeinv as pi
from pdeinv.physics import Darcy, ForwardModel, GaussianNoise, GaussianRandomField, MaskObservation, PointObservation
from pdeinv.solvers import SOLVERS
from pdeinv.solvers.gaussian import GaussianPosterior
from pdeinv.solvers.laplace import Laplace
from pdeinv.solvers.mcmc import MCMC
from pdeinv.tasks import TASKS


def _rel(a, b):
    return float((a - b).norm() / b.norm())


@pytest.mark.parametrize("task", ["poisson", "helmholtz"])
def test_equals_gaussian_posterior_on_a_linear_problem(task):
    """Linear forward model, T = I: the Gauss-Newton Hessian is the exact Hessian and the MAP the mean, so
    Laplace is GaussianPosterior (measured: mean 1e-9, std 1e-14, log evidence 1e-13 relative)."""
    t = TASKS[task]
    grid, problem = t.make(16)
    prior = t.map_options["prior"]
    fwd = ForwardModel(problem, PointObservation.random(grid, fraction=0.1, seed=1), GaussianNoise(relative=0.01))
    y = fwd(t.sample_m(grid, 2, seed=3), seed=4)
    gp = GaussianPosterior(prior=prior, n_samples=16)(y, fwd, seed=0)
    lp = Laplace(prior=prior, n_samples=16, map_options=dict(gtol=1e-11))(y, fwd, seed=0)
    assert lp.info["map"]["converged"] is True
    assert _rel(lp.m, gp.m) < 1e-7
    assert _rel(lp.std, gp.std) < 1e-8 and lp.pointwise_std is not None
    assert _rel(lp.samples, gp.samples) < 1e-7                   # same white noise, same Gaussian
    for a, b in zip(lp.info["log_evidence"], gp.info["log_evidence"]):
        assert abs(a - b) < 1e-8 * abs(b)
    lo, hi = lp.credible_interval(0.9)
    assert lo.shape == lp.m.shape and bool((hi >= lo).all())
    assert SOLVERS["laplace"] is Laplace


def _darcy_problem():
    """Darcy on 8^2 with a smooth log-normal permeability a = exp(xi), xi ~ N(0, 4 (-Lap + 9)^-2) (cosine basis,
    prior std of xi 0.30), all 36 interior pressures observed with 20 % noise: the posterior std of xi is
    about 0.14, where exp is close to linear -- a weakly nonlinear problem that a pCN chain can sample quickly."""
    grid = pi.Grid2D(8)
    prior = GaussianRandomField(grid, alpha=2.0, tau=3.0, sigma=2.0, basis="cosine")
    problem = Darcy(grid, f=1.0)
    obs = MaskObservation(grid, grid.interior_mask())
    a_true = torch.exp(prior.sample(1, seed=0))
    s = 0.2 * float(problem(a_true).pow(2).mean().sqrt())
    fwd = ForwardModel(problem, obs, GaussianNoise(sigma=s))
    return grid, prior, fwd, fwd(a_true, seed=1)


def test_darcy_std_agrees_with_a_long_pcn_chain():
    """Laplace (in z, log-normal map) against 4 x 3000 pCN samples after 1500 burn-in each (R-hat < 1.1): the
    pointwise std of a and of log a agree to 20 % (measured: 4 %), and so do the means."""
    grid, prior, fwd, y = _darcy_problem()
    lp = Laplace(prior=prior, transform="exp", n_samples=4000)(y, fwd, seed=0)
    assert lp.info["map"]["converged"] is True and lp.pointwise_std is None     # T nonlinear: std from samples
    assert bool((lp.samples > 0).all())
    mc = MCMC(prior, n_samples=3000, n_chains=4, burn_in=1500, transform=torch.exp, compute_state=False)(y, fwd, seed=0)
    assert mc.info["rhat"] < 1.1, mc.info["rhat"]
    assert _rel(lp.std, mc.std) < 0.2, _rel(lp.std, mc.std)
    assert _rel(lp.latent_std, torch.log(mc.samples).std(0)) < 0.2
    ratio = lp.std / mc.std
    assert 0.8 < float(ratio.mean()) < 1.2
    assert _rel(lp.m, mc.m) < 0.05
    # a given MAP point gives the same Gaussian without running MAP again
    again = Laplace(prior=prior, transform="exp", n_samples=4000)(y, fwd, seed=0, m_map=lp)
    assert again.info["map"] is None
    assert _rel(again.latent_std, lp.latent_std) < 1e-6 and _rel(again.std, lp.std) < 1e-6


def test_bounded_coordinates_map_samples_through_the_sigmoid():
    grid, prior, fwd, y = _darcy_problem()
    lo, hi = 0.2, 5.0
    lp = Laplace(prior=prior, bounds=(lo, hi), n_samples=64)(y, fwd, seed=0)
    assert lp.info["coordinates"] == "m = 0.2 + 4.8 sigmoid(mu + C^(1/2) z)"
    assert "z (whitened latent)" in lp.info["gaussian_in"]
    assert bool((lp.samples > lo).all()) and bool((lp.samples < hi).all())
    assert lp.pointwise_std is None and torch.allclose(lp.std, lp.samples.std(0))
    assert lp.latent_std.shape == lp.m.shape and bool((lp.latent_std > 0).all())


def test_refusals():
    grid, prior, fwd, y = _darcy_problem()
    with pytest.raises(ValueError, match="whiten"):
        Laplace(prior="tv")(y, fwd)
    with pytest.raises(ValueError, match="map_options"):
        Laplace(prior=prior, map_options=dict(bounds=(1.0, 2.0)))
    with pytest.raises(ValueError, match="not both"):
        Laplace(prior=prior, transform="exp", bounds=(1.0, 2.0)).coordinates(grid)
