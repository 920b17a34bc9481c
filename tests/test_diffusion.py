"""Diffusion machinery: EDM schedule/preconditioning, analytic denoiser, Heun and stochastic samplers,
GRF noise, training of a small denoiser, checkpoints.

With a Gaussian (GRF) law and linear observations the posterior is Gaussian and known in closed
form, so driving the samplers with the exact posterior denoiser must reproduce its mean and
variance within sampling error: this checks the time steps, the preconditioning-free ODE, both
samplers and both noise laws at once.
"""
import math

import pytest
import torch

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
    assert float((emp - K).abs().max()) < 0.12                                 # ~ 5 SE of a covariance estimate
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
@pytest.mark.parametrize("stochastic,steps", [(False, 40), (True, 64)], ids=["heun", "stochastic"])
def test_exact_posterior_score_reproduces_posterior(noise, stochastic, steps):
    mp, Cp = _posterior_problem()
    D = AnalyticGaussianDenoiser((mp, Cp), noise=noise)
    S = 3000
    z = edm_sample(D, (S, 1, 10, 10), num_steps=steps, stochastic=stochastic, seed=0)
    x = D.decode(z).reshape(S, -1)
    sd = Cp.diagonal().sqrt()
    # posterior mean: every pixel within 4.5 standard errors
    assert float(((x.mean(0) - mp) / (sd / math.sqrt(S))).abs().max()) < 4.5
    # posterior variance: pixel ratios within [0.85, 1.2] (SE of a variance ratio is 2.6 %), average within 6 %
    ratio = x.var(0) / Cp.diagonal()
    assert 0.85 < float(ratio.min()) and float(ratio.max()) < 1.2
    assert abs(float(ratio.mean()) - 1) < 0.06
    # covariance structure, not only variances: correlation of two neighbouring pixels
    emp = torch.cov(x[:, [44, 45]].T)
    rho_emp = emp[0, 1] / emp.diagonal().prod().sqrt()
    rho = Cp[44, 45] / (Cp[44, 44] * Cp[45, 45]).sqrt()
    assert abs(float(rho_emp - rho)) < 0.06


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
