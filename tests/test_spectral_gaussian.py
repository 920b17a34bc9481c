"""The spectral Gaussian part of a denoiser (``gaussian_skip="spectral"``): exact Wiener filter, fit, checkpoint."""
import math

import pytest
import torch

from pdeinv.physics.fields import GaussianRandomField
from pdeinv.physics.grid import Grid2D
from pdeinv.priors.diffusion.denoisers import AnalyticGaussianDenoiser, EDMDenoiser
from pdeinv.priors.diffusion.noise import GRFNoise
from pdeinv.priors.diffusion.spectral import SpectralGaussian

SIGMAS = [0.02, 0.3, 2.0, 20.0]
# (noise bc, law basis, grid bc): the law is diagonal in the noise's basis
CASES = [("dirichlet", "cosine", "dirichlet"), ("zero", "sine", "dirichlet"), ("periodic", "fourier", "periodic")]


def _law(n, basis, bc, amp=1.0):
    return GaussianRandomField(Grid2D(n, bc=bc), alpha=2.0, tau=3.0, sigma=amp, basis=basis,
                               zero_mean_mode=(basis != "sine"))


def _exact_fit(law, noise, n, channels_cov=None):
    """A SpectralGaussian holding the law's own moments (mean 0, the eigenvalues as per-mode variances)."""
    g = SpectralGaussian(1 if channels_cov is None else channels_cov.shape[0])
    lam = law.eigenvalues.to(torch.float32)
    C = 1 if channels_cov is None else channels_cov.shape[0]
    cc = torch.ones(1, 1) if channels_cov is None else channels_cov
    g.mean = torch.zeros(C, *lam.shape)
    g.cov = lam[..., None, None] * cc
    g.grid_shape = torch.tensor([n, n])
    g._eig = {}
    return g


@pytest.mark.parametrize("bc,basis,grid_bc", CASES)
def test_wiener_filter_is_the_exact_posterior_mean(bc, basis, grid_bc):
    """With the law's own moments, D_G equals the dense exact denoiser E[x0 | x0 + sigma n], n ~ N(0, K)."""
    n = 10
    noise = GRFNoise(bc=bc)
    law = _law(n, basis, grid_bc)
    g = _exact_fit(law, noise, n)
    exact = AnalyticGaussianDenoiser((torch.zeros(n * n, dtype=torch.float64), law.covariance()), noise=noise,
                                     normalize=False, jitter=1e-12)
    x0 = law.sample(4, seed=1)
    for s in SIGMAS:
        z = x0 + s * noise.sample(x0.shape, generator=torch.Generator().manual_seed(2))
        d, de = g.denoise(z, s, noise), exact.denoise(z, s)
        assert torch.allclose(d, de, atol=1e-6 * float(de.abs().max()) + 1e-9), (bc, s)


def test_two_channels_couple_mode_by_mode():
    """Joint (m, u = 2 m + e) data: the per-mode 2x2 covariance gives the exact joint posterior mean."""
    n = 8
    noise = GRFNoise()
    law = _law(n, "cosine", "dirichlet")
    cc = torch.tensor([[1.0, 2.0], [2.0, 4.25]])             # u = 2 m + 0.5 e, e an independent copy of m's law
    g = _exact_fit(law, noise, n, channels_cov=cc)
    Cm = law.covariance()
    exact = AnalyticGaussianDenoiser((torch.zeros(2 * n * n, dtype=torch.float64),
                                      torch.kron(cc.double(), Cm)), noise=noise, channels=2, normalize=False,
                                     jitter=1e-12)
    m = law.sample(3, seed=3)
    x0 = torch.cat([m, 2 * m + 0.5 * law.sample(3, seed=4)], 1)
    for s in SIGMAS:
        z = x0 + s * noise.sample(x0.shape, generator=torch.Generator().manual_seed(5))
        assert torch.allclose(g.denoise(z, s, noise), exact.denoise(z, s), atol=1e-5), s


def test_fit_from_draws_approaches_the_exact_filter():
    """Fitted on N law draws, D_G's distance to the exact filter is far below the untrained EDM skip's
    (c_skip z, the denoiser a network starts from without the Gaussian part) and shrinks with N."""
    n = 16
    noise = GRFNoise()
    law = _law(n, "cosine", "dirichlet", amp=4.4)              # data of std ~0.5, as normalised fields
    exact = _exact_fit(law, noise, n)
    x0 = law.sample(32, seed=11).float()
    dist = {}
    for N in (200, 3200):
        g = SpectralGaussian(1).fit(law.sample(N, seed=N), noise)
        dist[N] = []
        for s in (0.1, 1.0):
            z = x0 + s * noise.sample(x0.shape, generator=torch.Generator().manual_seed(7), dtype=torch.float32)
            de = exact.denoise(z, s, noise)
            skip = (0.25 / (s * s + 0.25)) * z
            d = (g.denoise(z, s, noise) - de).norm() / (skip - de).norm()
            dist[N].append(float(d))
    assert max(dist[3200]) < 0.1 and max(dist[200]) < 0.4
    assert all(b < a for a, b in zip(dist[200], dist[3200]))          # error ~ N^-1/2: 4x smaller at 16x N
    assert all(b < 0.5 * a for a, b in zip(dist[200], dist[3200]))    # (theory: 0.25)


def test_denoiser_with_gaussian_skip_starts_as_the_gaussian_and_round_trips(tmp_path):
    n = 12
    law = _law(n, "cosine", "dirichlet")
    x = law.sample(64, seed=0).float()
    model = EDMDenoiser(channels=1, arch="uno", arch_kwargs=dict(hidden=8, modes=4, lifting=8), noise="grf",
                        gaussian_skip="spectral", ema_decay=None)
    model.fit_normalizers(x)
    model.eval()
    z = model.encode(x[:4]) + 0.3 * model.noise.sample((4, 1, n, n), generator=torch.Generator().manual_seed(0),
                                                       dtype=torch.float32)
    with torch.no_grad():
        d = model.denoise(z, 0.3)
    assert torch.allclose(d, model.gaussian.denoise(z, 0.3, model.noise))         # F_theta = 0 at init
    path = model.save(tmp_path / "g.pt")
    back = EDMDenoiser.load(path)
    back.eval()
    with torch.no_grad():
        assert torch.allclose(back.denoise(z, 0.3), d)
    assert back.config["gaussian_skip"] == "spectral" and back.gaussian.spatial == (n, n)
    with pytest.raises(ValueError, match="training grid"):
        back.denoise(torch.zeros(1, 1, 2 * n, 2 * n), 0.3)


def test_bad_gaussian_skip_options():
    with pytest.raises(ValueError, match="GRF noise"):
        EDMDenoiser(channels=1, arch="unet", arch_kwargs=dict(base=8), noise="white", gaussian_skip="spectral")
    with pytest.raises(ValueError, match="gaussian_skip must be"):
        EDMDenoiser(channels=1, arch="uno", noise="grf", gaussian_skip="pca")
    with pytest.raises(RuntimeError, match="not fitted"):
        SpectralGaussian(1).denoise(torch.zeros(1, 1, 8, 8), 1.0, GRFNoise())
    with pytest.raises(ValueError, match="bc must be"):
        GRFNoise(bc="neumann")
    assert math.isfinite(float(GRFNoise(bc="zero").sample((1, 1, 8, 8)).std()))
