"""FunDPS (neural-operator denoiser in GRF noise, PDE guidance once sigma <= 1).

Against the analytic Gaussian posterior of the joint Poisson problem (tests/_diffusion_problems.py): where DPS's
scalar Tweedie tempering is exact (one observation; or a prior covariance proportional to the GRF noise's,
many observations, which exercises the correlated O K O^T likelihood), the samples converge to the analytic
posterior -- error shrinking from a small to a large budget, chi-square tests sized by the sample count at the
large one.  With many observations of the correlated joint prior (the DPS gap regime) FunDPS must beat the data-blind
prior and, with 4x fewer steps, DiffusionPDE; guidance through the true simulator; one model at two resolutions.
"""
import pytest
import torch

from _diffusion_problems import (LARGE, SMALL, assert_beats_the_prior, assert_converges, joint_moments,
                                 proportional_setup, sample_statistics, setup)
from pdeinv.physics import ForwardModel, GaussianNoise, GaussianRandomField, Grid2D, PointObservation, Poisson
from pdeinv.priors.diffusion import AnalyticGaussianDenoiser, EDMDenoiser, GRFNoise, WhiteNoise, gaussian_posterior
from pdeinv.solvers import SOLVERS, DiffusionPDE, FunDPS



@pytest.fixture(scope="module")
def prob():
    return setup()


@pytest.mark.parametrize("mode", ["inverse", "forward"])
def test_one_observation_converges_to_the_analytic_posterior(mode):
    """One noisy point of u (inverse: posterior of f) or of f (forward: posterior of u = P f), physics='none'."""
    p = setup(n_obs=1)
    y = p["y_inv"] if mode == "inverse" else p["y_fwd"]
    post = p["post_inv"] if mode == "inverse" else p["post_fwd"]
    out = {}
    for name, budget in (("small", SMALL), ("large", LARGE)):
        prior = AnalyticGaussianDenoiser(p["moments"], noise=GRFNoise(), channels=2)
        res = FunDPS(prior, mode=mode, physics="none", batch_size=400, **budget)(y, p["fwd"], seed=0)
        S = budget["n_samples"]
        out[name] = sample_statistics((res.samples if mode == "inverse" else res.u_samples).reshape(S, -1), post)
    assert_converges(out["small"], out["large"], post)


def test_grf_proportional_prior_many_observations_converges():
    """m ~ N(0, a^2 K) with K the GRF noise covariance, independent of u; 10 noisy points of m (forward mode):
    exact tempering with the correlated likelihood O K O^T; u keeps its prior law."""
    p = proportional_setup(GRFNoise())
    out = {}
    for name, budget in (("small", SMALL), ("large", LARGE)):
        prior = AnalyticGaussianDenoiser(p["moments"], noise=GRFNoise(), channels=2)
        res = FunDPS(prior, mode="forward", physics="none", batch_size=400, **budget)(p["y"], p["fwd"], seed=0)
        S = budget["n_samples"]
        out[name] = sample_statistics(res.samples.reshape(S, -1), p["post"])
        if name == "large":
            u = sample_statistics(res.u_samples.reshape(S, -1), p["prior_u"])
            assert u["T"] < u["T_max"] and u["ratio_interval"][0] < u["ratio"] < u["ratio_interval"][1], u
    assert_converges(out["small"], out["large"], p["post"])


@pytest.mark.parametrize("mode", ["inverse", "forward"])
def test_many_observations_beat_the_prior_and_dpde_with_4x_fewer_steps(prob, mode):
    S = 200
    y = prob["y_inv"] if mode == "inverse" else prob["y_fwd"]
    post = prob["post_inv"] if mode == "inverse" else prob["post_fwd"]
    C, N = prob["moments"][1], 144
    prior_cov = C[:N, :N] if mode == "inverse" else C[N:, N:]
    fun = FunDPS(AnalyticGaussianDenoiser(prob["moments"], noise=GRFNoise(), channels=2), mode=mode,
                 physics="residual", n_samples=S, num_steps=25, batch_size=S)
    r = fun(y, prob["fwd"], seed=0)
    st = assert_beats_the_prior(r.samples if mode == "inverse" else r.u_samples, post, prior_cov)
    dpde = DiffusionPDE(AnalyticGaussianDenoiser(prob["moments"], noise=WhiteNoise(), channels=2), mode=mode,
                        physics="residual", n_samples=S, num_steps=100, batch_size=S)
    rd = dpde(y, prob["fwd"], seed=0)
    st_d = sample_statistics((rd.samples if mode == "inverse" else rd.u_samples).reshape(S, -1), post)
    assert st["err"] <= st_d["err"], (st, st_d)
    assert SOLVERS["fundps"] is FunDPS


def test_guidance_through_the_true_simulator(prob):
    """m-only GRF prior; y = O(F(m)) with F the adjoint finite-difference solver inside the guidance."""
    n, S = 12, 40
    grf = GaussianRandomField(Grid2D(n), alpha=2.0, tau=3.0, basis="cosine")
    prior = AnalyticGaussianDenoiser((torch.zeros(n * n, dtype=torch.float64), grf.covariance()), noise=GRFNoise())
    solver = FunDPS(prior, mode="inverse", physics="simulator", n_samples=S, num_steps=20, batch_size=S)
    r = solver(prob["y_inv"], prob["fwd"], seed=0)
    assert_beats_the_prior(r.samples, prob["post_inv"], grf.covariance(), mean_factor=0.8)
    # u is the simulator's solution of the sampled m
    assert torch.allclose(r.u_samples[0], prob["fwd"].solve(r.samples[0]), atol=1e-10)


def test_two_resolutions_consistent_with_one_prior():
    """One resolution-free prior (GRF law, GRF noise) sampled at 9x9 and 17x17 (coarse nodes are fine
    nodes); same sensors: each resolution beats the data-blind prior against its analytic posterior, and the fine
    posterior mean of u restricted to the coarse nodes differs from the coarse one by less than either differs from
    its analytic posterior (changing the resolution moves the answer less than the method's own error)."""
    prior = AnalyticGaussianDenoiser(lambda sp: joint_moments(sp)[:2], noise=GRFNoise(), channels=2)
    pts = PointObservation.random(Grid2D(9), n=8, seed=3).points
    f_true = lambda g: GaussianRandomField(g, alpha=2.0, tau=3.0, basis="cosine").sample(1, seed=0)
    out, errs = {}, {}
    for n in (9, 17):
        g = Grid2D(n)
        obs = PointObservation(g, pts)
        fwd = ForwardModel(Poisson(g), obs, noise=GaussianNoise(sigma=0.02))
        ftrue9 = f_true(Grid2D(9))
        y = ftrue9.reshape(-1)[PointObservation(Grid2D(9), pts).index[:, 0]].reshape(1, 1, -1) + 0.0
        solver = FunDPS(prior, mode="forward", physics="residual", n_samples=100, num_steps=25, batch_size=100)
        r = solver(y, fwd, seed=1)
        mu, C, Cf, P = joint_moments((n, n))
        H = obs(torch.eye(n * n, dtype=torch.float64).reshape(n * n, 1, n, n))[:, 0].T
        mf, Cpf = gaussian_posterior(torch.zeros(n * n, dtype=torch.float64), Cf, H, y.reshape(-1), 0.02 ** 2)
        st = assert_beats_the_prior(r.u_samples, (P @ mf, P @ Cpf @ P.T), P @ Cf @ P.T)
        errs[n] = st["err"]
        out[n] = r.u.reshape(n, n)
    coarse_of_fine = out[17][::2, ::2]
    assert float((coarse_of_fine - out[9]).norm() / out[9].norm()) < min(errs.values()), errs


def test_uno_model_two_resolutions_seeded_and_tuned_weights_saved(tmp_path):
    """A tiny UNO denoiser (trained briefly at 16^2) sampled by FunDPS at 16^2 and 24^2: reproducible
    with a seed, the observed values are honoured at both resolutions, and tuned guidance weights are
    recorded in the checkpoint."""
    from pdeinv.solvers.diffusion import tune_guidance
    from pdeinv.priors.diffusion.training import train_denoiser
    g16 = Grid2D(16)
    f = GaussianRandomField(g16, alpha=2.0, tau=3.0, basis="cosine").sample(64, seed=0)
    u = Poisson(g16)(f)
    model = EDMDenoiser(channels=2, arch="uno", arch_kwargs=dict(hidden=8, modes=4, lifting=16), noise="grf",
                        channel_names=["f", "u"], seed=0)
    train_denoiser(model, torch.cat([f, u], 1).float(), epochs=1, batch_size=16, lr=2e-3, seed=0, scheduler=None,
                   resolutions=[12, 16])
    for n in (16, 24):
        g = Grid2D(n)
        ft = GaussianRandomField(g, alpha=2.0, tau=3.0, basis="cosine").sample(1, seed=5)
        obs = PointObservation.random(g, fraction=0.05, seed=2)
        fwd = ForwardModel(Poisson(g), obs, noise=GaussianNoise(relative=0.01))
        y = fwd.noise(obs(ft), seed=3)
        solver = FunDPS(model, mode="forward", physics="none", n_samples=4, num_steps=8)
        a, b = solver(y, fwd, seed=11), solver(y, fwd, seed=11)
        assert torch.equal(a.samples, b.samples)
        assert a.samples.shape == (4, 1, 1, n, n) and a.u_samples.shape == (4, 1, 1, n, n)
        fit = (obs(a.m) - y).pow(2).mean().sqrt()
        blind = (obs(torch.zeros_like(a.m)) - y).pow(2).mean().sqrt()      # the data-blind prior mean's misfit
        assert float(fit) < 0.1 * float(blind), (n, float(fit), float(blind))
    best = tune_guidance(solver, [(y, fwd, Poisson(g)(ft))], grid={"obs": [0.5, 1.0]})
    assert model.guidance_weights["forward/none"]["obs"] == best["obs"]
    path = tmp_path / "uno.pt"
    model.save(path)
    again = FunDPS.load(path, mode="forward", physics="none")
    assert again.weights["obs"] == best["obs"]


def test_residual_callable_and_physical_clip(prob):
    """``residual=`` replaces fwd.problem.residual (same samples when it is the same function),
    and the returned samples of m respect ``clip``."""
    calls = []

    def residual(m, u):
        calls.append(1)
        return prob["fwd"].problem.residual(m, u)

    def run(**kw):
        solver = FunDPS(AnalyticGaussianDenoiser(prob["moments"], noise=GRFNoise(), channels=2), mode="inverse",
                        physics="residual", n_samples=4, num_steps=6, batch_size=4, clip=(-0.3, 0.3),
                        weights={"pde": 1.0}, **kw)
        return solver(prob["y_inv"], prob["fwd"], seed=0)

    a, b = run(), run(residual=residual)
    assert calls
    assert torch.equal(a.samples, b.samples)
    assert float(a.samples.min()) >= -0.3 and float(a.samples.max()) <= 0.3
    assert float(a.samples.abs().max()) == pytest.approx(0.3)     # the clip is active on this problem
    with pytest.raises(ValueError, match="callable"):
        run(residual=1.0)
