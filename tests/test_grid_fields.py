"""Grids and Gaussian random fields: the sampled law has the prescribed covariance."""
import math

import numpy as np
import pytest
import torch

import pdeinv as pi
from pdeinv.physics.fields import GaussianRandomField


def test_grid_geometry():
    g = pi.Grid2D(65)
    assert g.spacing == (1 / 64, 1 / 64) and g.h == 1 / 64
    X, Y = g.mesh()
    assert float(X[-1, 0]) == 1.0 and float(Y[0, -1]) == 1.0 and float(X[1, 0]) == pytest.approx(1 / 64)
    gp = pi.Grid2D(64, bc="periodic")
    assert gp.h == 1 / 64 and float(gp.coords()[0][-1]) == pytest.approx(63 / 64)
    assert int(g.boundary_mask().sum()) == 4 * 64
    assert pi.physics.grid_from_dict(g.to_dict()) == g
    g1 = pi.Grid1D(128)
    assert g1.h == 1 / 128 and g1.shape == (128,)


def test_grids_on_shifted_domains():
    """Grids on [a, b] and [a, b] x [c, d]: coordinates, spacing and bounds honour the origin; descriptions of
    grids at the origin 0 are unchanged (old dicts without "origin" still read back)."""
    g = pi.Grid1D.interval(-1.0, 1.0, 5)
    assert g.bounds == (-1.0, 1.0) and g.h == 0.5 and g.bc == "dirichlet"
    assert g.coords()[0].tolist() == [-1.0, -0.5, 0.0, 0.5, 1.0]
    gp = pi.Grid1D(4, length=2.0, bc="periodic", origin=-1.0)
    assert gp.coords()[0].tolist() == [-1.0, -0.5, 0.0, 0.5]
    G = pi.Grid2D.rectangle((-1.0, 1.0), (2.0, 5.0), (5, 4))
    X, Y = G.mesh()
    assert G.bounds == ((-1.0, 1.0), (2.0, 5.0)) and G.spacing == (0.5, 1.0)
    assert float(X[0, 0]) == -1.0 and float(X[-1, 0]) == 1.0 and Y[0].tolist() == [2.0, 3.0, 4.0, 5.0]
    for grid in (g, gp, G):
        assert pi.physics.grid_from_dict(grid.to_dict()) == grid and "origin" in grid.to_dict()
    assert pi.Grid2D(8).to_dict() == {"kind": "Grid2D", "n": [8, 8], "length": [1.0, 1.0], "bc": "dirichlet"}
    assert pi.Grid1D(8).to_dict() == {"kind": "Grid1D", "n": 8, "length": 1.0, "bc": "periodic"}
    assert pi.physics.grid_from_dict({"kind": "Grid1D", "n": 8, "length": 1.0, "bc": "periodic"}) == pi.Grid1D(8)
    assert pi.Grid2D(8, origin=0) == pi.Grid2D(8) and pi.Grid2D(8, origin=(0.5, 0)).origin == (0.5, 0.0)
    for bad in (lambda: pi.Grid1D.interval(1.0, -1.0, 8), lambda: pi.Grid2D(8, origin=(0, 1, 2)),
                lambda: pi.Grid1D(8, origin=float("nan")), lambda: pi.Grid2D.rectangle((0, 1), (2, 2), 8)):
        with pytest.raises(ValueError):
            bad()


@pytest.mark.parametrize("bad", [dict(n=2), dict(n=16, bc="neumann"), dict(n=16, length=-1.0)])
def test_grid_rejects_bad_input(bad):
    with pytest.raises(ValueError):
        pi.Grid2D(**bad)


def _analytic_periodic_cov(n, alpha, tau, sigma, lag):
    """C(r) = sigma^2 sum_k (4 pi^2 k^2 + tau^2)^-alpha cos(2 pi k r), |k| <= n/2 (one Nyquist term)."""
    ks = np.arange(-(n // 2) + 1, n // 2 + 1)
    lam = sigma ** 2 * (4 * np.pi ** 2 * ks ** 2 + tau ** 2) ** (-alpha)
    # the basis carries sqrt(2) cos at the Nyquist frequency: variance 2*lam there, counted once
    w = np.where(np.abs(ks) == n // 2, 2.0, 1.0)
    return float(np.sum(w * lam * np.cos(2 * np.pi * ks * lag)))


def test_periodic_grf_has_prescribed_covariance():
    n, alpha, tau, sigma = 32, 1.5, 4.0, 3.0
    prior = GaussianRandomField(pi.Grid1D(n), alpha=alpha, tau=tau, sigma=sigma)
    S = 20000
    m = prior.sample(S, seed=0)[:, 0]                      # (S, n)
    x0 = m[:, 0:1]
    emp = (x0 * m).mean(0)                                 # C(0, x_j) by stationarity at lag j/n
    ana = torch.tensor([_analytic_periodic_cov(n, alpha, tau, sigma, j / n) for j in range(n)], dtype=m.dtype)
    var0 = ana[0]
    se = torch.sqrt((var0 * var0 + ana ** 2) / S)          # standard error of a covariance estimate
    assert torch.all((emp - ana).abs() < 5 * se), float(((emp - ana).abs() / se).max())
    # the dense covariance of the implementation equals the analytic one
    C = prior.covariance()
    assert torch.allclose(C[0], ana, rtol=1e-10, atol=1e-14)


def test_dirichlet_grf_variance_profile():
    n, alpha, tau = 17, 2.0, 3.0
    g = pi.Grid2D(n)
    prior = GaussianRandomField(g, alpha=alpha, tau=tau)
    x = np.linspace(0, 1, n)
    # independent evaluation of Var m(x, y) = sum_kl lam_kl (2 sin(pi k x) sin(pi l y))^2
    k = np.arange(1, n - 1)
    lam = (np.pi ** 2 * (k[:, None] ** 2 + k[None, :] ** 2) + tau ** 2) ** (-alpha)
    sx = np.sqrt(2) * np.sin(np.pi * np.outer(x, k))
    var = np.einsum("kl,ik,jl->ij", lam, sx ** 2, sx ** 2)
    S = 20000
    m = prior.sample(S, seed=1)[:, 0]
    emp = m.pow(2).mean(0).numpy()
    se = np.sqrt(2 / S) * var
    inner = (slice(1, -1), slice(1, -1))
    assert np.all(np.abs(emp[inner] - var[inner]) < 5 * se[inner] + 1e-15)
    assert np.abs(emp[0]).max() < 1e-20 and np.abs(emp[:, -1]).max() < 1e-20  # zero on the boundary


@pytest.mark.parametrize("basis,bc", [("fourier", "periodic"), ("sine", "dirichlet"), ("cosine", "dirichlet")])
def test_whiten_inverts_color_and_seeds(basis, bc):
    g = pi.Grid2D(12, bc=bc)
    prior = GaussianRandomField(g, alpha=2.0, tau=3.0, basis=basis)
    xi = torch.randn((3, 1) + prior.coeff_shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert torch.allclose(prior.whiten(prior.color(xi)), xi, atol=1e-9)
    assert torch.equal(prior.sample(2, seed=5), prior.sample(2, seed=5))
    assert not torch.equal(prior.sample(2, seed=5), prior.sample(2, seed=6))
    # log_prob is the Gaussian exponent: -1/2 xi^T xi
    assert torch.allclose(prior.log_prob(prior.color(xi)), -0.5 * xi.pow(2).flatten(1).sum(1))


def test_grf_resolution_independent_law():
    """The same law at several resolutions: the pointwise variance at the 5x5 nodes all grids share converges to the
    continuum law's at the rate of the spectral tail a grid drops, sum_{|k| > K} (|k|^2 + tau^2)^-alpha ~
    K^(d - 2 alpha) = h^2 here (alpha = 2, d = 2); reference: the 257^2 grid."""
    from pdeinv.checks import convergence_order
    from pdeinv.priors.gaussian import pointwise_variance

    def law(n):
        return GaussianRandomField(pi.Grid2D(n), alpha=2.0, tau=3.0, basis="cosine")

    def shared(n):
        return pointwise_variance(law(n)).reshape(n, n)[::(n - 1) // 4, ::(n - 1) // 4]

    # the matrix-free variance is the diagonal of the dense covariance
    assert torch.allclose(pointwise_variance(law(17)).flatten(), law(17).covariance().diagonal(), rtol=1e-12)
    ref = shared(257)
    hs = [1 / 16, 1 / 32, 1 / 64]
    errs = [float(((shared(n) - ref).abs() / ref).max()) for n in (17, 33, 65)]
    assert errs[0] > errs[1] > errs[2], errs
    assert abs(convergence_order(hs, errs) - 2) < 0.2, errs


def test_threshold_gives_darcy_law():
    g = pi.Grid2D(32)
    a = pi.tasks.TASKS["darcy"].sample_m(g, 4, seed=0)
    assert set(torch.unique(a).tolist()) == {3.0, 12.0}
    frac = float((a == 12).double().mean())
    # a = 12 where the zero-mean latent GRF mu >= 0: E[frac] = 1/2, and for jointly Gaussian pixels
    # P(mu_i >= 0, mu_j >= 0) = 1/4 + arcsin(rho_ij) / (2 pi), so Var[frac] = mean_ij arcsin(rho_ij) / (2 pi) / B
    from scipy import stats
    from pdeinv.tasks.elliptic import darcy_latent
    C = darcy_latent(g)[0].covariance()
    sd = C.diagonal().sqrt()
    rho = (C / sd[:, None] / sd[None, :]).clamp(-1, 1)
    se = math.sqrt(float((torch.arcsin(rho) / (2 * math.pi)).mean()) / a.shape[0])
    assert abs(frac - 0.5) < stats.norm.ppf(0.9995) * se, (frac, se)
