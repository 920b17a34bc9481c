"""Prior health check (pdeinv.priors.diffusion.health): the exact prior passes, wrong ones fail.

* The exact Gaussian denoiser of the poisson task's law (GRF noise and white noise) passes: kappa > 0 at every
  noise level of the schedule, and its unconditional draws match ``task.sample_m`` draws in mean, std and
  two-point correlation.  The exact joint (f, u) denoiser passes the PDE-residual check too.
* Wrong priors fail, each for its own reason: a white law (no spatial correlation), a denoiser with a negative
  Jacobian (kappa < 0 everywhere), a Gaussian fitted to binary Darcy fields (binary and interface fractions), a joint
  prior that does not know the PDE (residual), an untrained network.
"""
import pytest
import torch

from pdeinv.priors.diffusion import AnalyticGaussianDenoiser, EDMDenoiser, GRFNoise, WhiteNoise
from pdeinv.priors.diffusion.health import check_prior, field_statistics, kappa_profile
from pdeinv.tasks import TASKS

N_GRID = 16


@pytest.fixture(scope="module")
def poisson():
    task = TASKS["poisson"]
    grid, problem = task.make(N_GRID)
    C = task.latent(grid)[0].covariance()
    return dict(task=task, grid=grid, problem=problem, C=C, ref=task.sample_m(grid, 256, seed=1))


def _exact(p, noise):
    return AnalyticGaussianDenoiser((torch.zeros(N_GRID ** 2, dtype=torch.float64), p["C"]), noise=noise)


@pytest.mark.parametrize("noise", [GRFNoise(), WhiteNoise()], ids=["grf", "white"])
def test_exact_prior_passes(poisson, noise):
    rep = check_prior(_exact(poisson, noise), poisson["ref"], n_draws=256)
    assert rep.passed, rep.summary()
    assert rep.kappa_ok and len(rep.kappa["sigma"]) == 18 and min(rep.kappa["min"]) > 0
    assert max(rep.kappa["min"]) <= 1.0 + 1e-6             # 0 < kappa <= 1 for an exact denoiser
    assert {"m.mean", "m.std", "m.corr1", "m.corr8"} <= set(rep.statistics)
    assert rep.to_dict()["passed"] is True


def test_white_law_fails_the_correlation(poisson):
    white = AnalyticGaussianDenoiser((torch.zeros(N_GRID ** 2, dtype=torch.float64),
                                      torch.eye(N_GRID ** 2, dtype=torch.float64) * poisson["C"].diagonal().mean()),
                                     noise=GRFNoise())
    rep = check_prior(white, poisson["ref"], n_draws=128)
    assert not rep.passed and rep.kappa_ok
    assert not rep.statistics["m.corr1"]["ok"] and rep.statistics["m.mean"]["ok"]


class _Negated:
    """A denoiser whose Jacobian is negative (what an under-trained network gave at large sigma)."""

    def __init__(self, d):
        self.d, self.noise, self.schedule, self.channels = d, d.noise, d.schedule, 1

    def denoise(self, z, sigma):
        return -self.d.denoise(z, sigma)

    def encode(self, x):
        return self.d.encode(x)

    def decode(self, z):
        return self.d.decode(z)


def test_negative_jacobian_fails_kappa(poisson):
    rep = check_prior(_Negated(_exact(poisson, GRFNoise())), poisson["ref"], n_draws=32)
    assert not rep.kappa_ok and not rep.passed
    assert any("kappa <= 0" in f for f in rep.failures)
    prof = kappa_profile(_Negated(_exact(poisson, GRFNoise())), poisson["ref"], [0.1, 1.0, 10.0])
    assert all(n > 0 for n in prof["n_bad"])


def test_gaussian_fitted_to_darcy_fails_binary_and_interface():
    task = TASKS["darcy"]
    grid = task.grid(N_GRID)
    gauss = AnalyticGaussianDenoiser.fit(task.sample_m(grid, 512, seed=0), noise=GRFNoise())
    ref = task.sample_m(grid, 256, seed=3)
    rep = check_prior(gauss, ref, binary=(3.0, 12.0), n_draws=128)
    assert rep.kappa_ok and not rep.passed
    assert not rep.statistics["binary_fraction"]["ok"] and not rep.statistics["interface_fraction"]["ok"]
    assert rep.statistics["binary_fraction"]["reference"] == 1.0
    # the law's own draws pass against each other (the tolerances are not too tight)
    st = field_statistics(ref, binary=(3.0, 12.0))
    assert float(st["binary_fraction"].min()) == 1.0 and 0 < float(st["interface_fraction"].mean()) < 0.5
    again = check_prior(gauss, ref, binary=(3.0, 12.0), draws=task.sample_m(grid, 128, seed=9))
    assert again.statistics["binary_fraction"]["ok"] and again.statistics["interface_fraction"]["ok"]


def test_joint_prior_residual(poisson):
    p = poisson
    n, N = N_GRID, N_GRID ** 2
    P = p["problem"](torch.eye(N, dtype=torch.float64).reshape(N, 1, n, n)).reshape(N, N).T
    C = p["C"]
    Cj = torch.cat([torch.cat([C, C @ P.T], 1), torch.cat([P @ C, P @ C @ P.T], 1)], 0)
    ref = torch.cat([p["ref"][:128], p["problem"](p["ref"][:128])], 1)
    exact = AnalyticGaussianDenoiser((torch.zeros(2 * N, dtype=torch.float64), Cj), noise=GRFNoise(), channels=2)
    rep = check_prior(exact, ref, residual=p["problem"].residual, n_draws=128)
    assert rep.passed, rep.summary()
    assert rep.residual["drawn"] < 1e-6
    Cind = Cj.clone()
    Cind[:N, N:] = 0
    Cind[N:, :N] = 0
    blind = AnalyticGaussianDenoiser((torch.zeros(2 * N, dtype=torch.float64), Cind), noise=GRFNoise(), channels=2)
    rep = check_prior(blind, ref, residual=p["problem"].residual, n_draws=64)
    assert not rep.residual["ok"] and not rep.passed
    with pytest.raises(ValueError, match="channel"):
        check_prior(exact, p["ref"])


def test_untrained_network_fails(poisson):
    """An EDMDenoiser straight from its constructor (F = 0: D = c_skip x, a positive Jacobian, so kappa passes)
    draws fields unlike the law."""
    model = EDMDenoiser(channels=1, arch="unet", arch_kwargs=dict(base=8, mults=[1, 2], emb_dim=16), noise="grf")
    model.fit_normalizers(poisson["ref"].float())
    rep = check_prior(model.eval(), poisson["ref"], n_draws=16, num_steps=8)
    assert rep.kappa_ok and not rep.passed
    assert rep.settings["n_draws"] == 16
