"""Diffusion machinery: EDM schedule/preconditioning, analytic denoiser, Heun and stochastic samplers,
GRF noise, training of a small denoiser, checkpoints.

With a Gaussian (GRF) law and linear observations the posterior is Gaussian and known in closed
form, so driving the samplers with the exact posterior denoiser must converge to it as the number
of steps grows (the spread's discretisation bias shrinks) and, at the larger budget, reproduce its
mean and covariance within sampling error: this checks the time steps, the preconditioning-free ODE,
both samplers and both noise laws at once.
"""
import math

import pytest
import torch
from scipy import stats

from pdeinv.physics import GaussianRandomField, Grid2D, PointObservation
from pdeinv.priors.diffusion import (AnalyticGaussianDenoiser, EDMDenoiser, EDMSchedule, GRFNoise, WhiteNoise,
                                     gaussian_posterior)
from pdeinv.solvers.diffusion import edm_sample
from pdeinv.priors.diffusion.training import denoising_loss, train_denoiser



def test_schedule_and_preconditioning():
    s = EDMSchedule(sigma_min=0.002, sigma_max=80.0, rho=7.0, sigma_data=0.5)
    t = s.steps(18)
    assert t.shape == (19,) and float(t[0]) == pytest.approx(80.0) and float(t[17]) == pytest.approx(0.002)
    assert float(t[-1]) == 0.0 and bool((t[:-1][1:] < t[:-1][:-1]).all())
    # rho-spacing: sigma_i^(1/rho) is linear in i
    r = t[:-1] ** (1 / 7.0)
    assert torch.allclose(r[1:] - r[:-1], (r[1] - r[0]).expand(17), rtol=1e-10)
    # EDM preconditioning: unit variance of the network input and of its training target
    sig = torch.tensor([0.01, 0.5, 3.0, 80.0], dtype=torch.float64)
    assert torch.allclose(s.c_in(sig) ** 2 * (sig ** 2 + s.sigma_data ** 2), torch.ones(4, dtype=torch.float64))
    # target F* = (x0 - c_skip x) / c_out has variance 1 for x0 ~ N(0, sd^2), x = x0 + sigma n
    var_target = ((1 - s.c_skip(sig)) ** 2 * s.sigma_data ** 2 + s.c_skip(sig) ** 2 * sig ** 2) / s.c_out(sig) ** 2
    assert torch.allclose(var_target, torch.ones(4, dtype=torch.float64))
    # the loss weight undoes c_out^2
    assert torch.allclose(s.loss_weight(sig) * s.c_out(sig) ** 2, torch.ones(4, dtype=torch.float64))


def test_grf_noise_normalised_and_covariance():
    noise = GRFNoise(alpha=1.0, tau=3.0)
    z = noise.sample((4000, 1, 9, 9), generator=torch.Generator().manual_seed(0))
    emp = torch.cov(z.reshape(4000, -1).T)
    K = noise.covariance((9, 9))
    assert float(K.diagonal().mean()) == pytest.approx(1.0, rel=1e-10)         # unit mean pointwise variance
    # every entry within its sampling error: Var(emp_ij) = (K_ij^2 + K_ii K_jj) / n for Gaussian draws;
    # Bonferroni over the 81*82/2 distinct entries at family-wise level 0.001
    se = ((K ** 2 + K.diagonal()[:, None] * K.diagonal()[None, :]) / 4000).sqrt()
    z_max = float(stats.norm.ppf(1 - 0.001 / (81 * 82)))
    assert float(((emp - K).abs() / se).max()) < z_max
    g = torch.randn(3, 2, 9, 9, dtype=torch.float64)
    Kg = noise.apply_cov(g)
    assert torch.allclose(Kg.reshape(6, -1), g.reshape(6, -1) @ K.T, atol=1e-12)


def _posterior_problem(n=10, n_obs=6):
    g = Grid2D(n)
    grf = GaussianRandomField(g, alpha=2.0, tau=3.0, basis="cosine")
    N = n * n
    C = grf.covariance()
    obs = PointObservation.random(g, n=n_obs, seed=1)
    H = obs(torch.eye(N, dtype=torch.float64).reshape(N, 1, n, n))[:, 0].T
    x0 = grf.sample(1, seed=3).reshape(-1)
    y = H @ x0 + 0.01 * torch.randn(n_obs, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    return gaussian_posterior(torch.zeros(N, dtype=torch.float64), C, H, y, 0.01 ** 2)


@pytest.mark.parametrize("noise", [WhiteNoise(), GRFNoise()], ids=["white", "grf"])
@pytest.mark.parametrize("stochastic,small,large", [(False, 10, 40), (True, 32, 128)], ids=["heun", "stochastic"])
def test_exact_posterior_score_converges_to_posterior(noise, stochastic, small, large):
    """Both samplers driven by the exact posterior denoiser: the spread's time-discretisation bias shrinks from
    ``small`` to ``large`` steps, and at ``large`` steps the 3000 samples pass tests whose acceptance regions are
    the sampling laws (family-wise level 0.001 for each group of per-pixel tests)."""
    from _diffusion_problems import sample_statistics
    mp, Cp = _posterior_problem()
    D = AnalyticGaussianDenoiser((mp, Cp), noise=noise)
    S, N = 3000, 100
    st = {}
    for steps in (small, large):
        z = edm_sample(D, (S, 1, 10, 10), num_steps=steps, stochastic=stochastic, seed=0)
        x = D.decode(z).reshape(S, -1)
        st[steps] = sample_statistics(x, (mp, Cp))
    assert abs(st[large]["ratio"] - 1) < abs(st[small]["ratio"] - 1), st
    big = st[large]                                      # x: the samples of the large budget
    # whole field: mean (chi-square of the Mahalanobis distance), trace of the covariance (chi-square interval)
    assert big["T"] < big["T_max"] and big["err"] < big["err_bound"], big
    assert big["ratio_interval"][0] < big["ratio"] < big["ratio_interval"][1], big
    # every pixel: mean within its standard error, variance ratio within its chi2_{S-1}/(S-1) interval
    level = 0.001 / N
    sd = Cp.diagonal().sqrt()
    assert float(((x.mean(0) - mp) / (sd / math.sqrt(S))).abs().max()) < stats.norm.ppf(1 - level / 2)
    lo, hi = stats.chi2.ppf([level / 2, 1 - level / 2], S - 1) / (S - 1)
    ratio = x.var(0) / Cp.diagonal()
    assert lo < float(ratio.min()) and float(ratio.max()) < hi, (float(ratio.min()), float(ratio.max()), lo, hi)
    # covariance structure, not only variances: correlation of two neighbouring pixels (Fisher z, SE 1/sqrt(S-3))
    rho_emp = float(torch.corrcoef(x[:, [44, 45]].T)[0, 1])
    rho = float(Cp[44, 45] / (Cp[44, 44] * Cp[45, 45]).sqrt())
    assert abs(math.atanh(rho_emp) - math.atanh(rho)) * math.sqrt(S - 3) < stats.norm.ppf(1 - 0.001 / 2)
    # the mean test has power: the data-blind prior mean (0) is rejected
    assert sample_statistics(torch.zeros(S, N, dtype=mp.dtype), (mp, Cp))["T"] > big["T_max"]


def test_same_seed_same_samples_and_different_seed_differs():
    mp, Cp = _posterior_problem()
    D = AnalyticGaussianDenoiser((mp, Cp), noise=GRFNoise())
    a = edm_sample(D, (4, 1, 10, 10), num_steps=8, stochastic=True, seed=7)
    b = edm_sample(D, (4, 1, 10, 10), num_steps=8, stochastic=True, seed=7)
    c = edm_sample(D, (4, 1, 10, 10), num_steps=8, stochastic=True, seed=8)
    assert torch.equal(a, b) and not torch.allclose(a, c)


def test_trained_denoiser_beats_identity_and_fitted_gaussian(tmp_path):
    """A tiny U-Net on binary Darcy coefficients (non-Gaussian) at 16^2, ~15 s of training."""
    from pdeinv.tasks import TASKS
    task = TASKS["darcy"]
    x = task.sample_m(task.grid(16), 560, seed=0).float()
    xtr, xte = x[:512], x[512:]
    model = EDMDenoiser(channels=1, arch="unet", arch_kwargs=dict(base=16, mults=[1, 2]), noise="white",
                        ema_decay=0.99, seed=0)
    ckpt = tmp_path / "den.pt"
    train_denoiser(model, xtr, epochs=8, batch_size=32, lr=3e-3, seed=0, scheduler=None, checkpoint=ckpt)
    gauss = AnalyticGaussianDenoiser.fit(xtr.double(), noise=model.noise)
    z = model.encode(xte.double())
    scale = float(model.input_normalizer.std) / gauss.channel_std((16, 16))[0]
    for sigma in (0.3, 1.0):
        net = float(denoising_loss(model, xte, sigma, seed=1))
        n = model.noise.sample(z.shape, generator=torch.Generator().manual_seed(1))
        xs = model.decode(z + sigma * n)
        Dg = gauss.decode(gauss.denoise(gauss.encode(xs), sigma * scale))
        lg = float(((model.encode(Dg) - z) ** 2).mean())
        identity = float(((sigma * n) ** 2).mean())
        assert net < 0.6 * identity, (sigma, net, identity)
        assert net < 0.8 * lg, (sigma, net, lg)
    # checkpoint round trip through the Surrogate machinery (EMA weights included)
    from pdeinv.surrogates import load
    m2 = load(ckpt)
    assert isinstance(m2, EDMDenoiser)
    zz = torch.randn(2, 1, 16, 16)
    assert torch.equal(m2.denoise(zz, 0.5), model.eval().denoise(zz, 0.5))


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="sigma_min < sigma_max"):
        EDMSchedule(sigma_min=1.0, sigma_max=0.5)
    with pytest.raises(ValueError, match="unknown denoiser architecture"):
        EDMDenoiser(channels=1, arch="transformer")
    mp, Cp = _posterior_problem()
    D = AnalyticGaussianDenoiser((mp, Cp))
    with pytest.raises(ValueError, match="values per sample"):
        D.denoise(torch.zeros(1, 1, 12, 12, dtype=torch.float64), 1.0)
    with pytest.raises(ValueError, match="> 0"):
        D.denoise(torch.zeros(1, 1, 10, 10, dtype=torch.float64), 0.0)
