"""DAPS (decoupled annealing posterior sampling, pdeinv.solvers.DAPS) on linear-Gaussian problems with the exact
prior score (AnalyticGaussianDenoiser), so the exact posterior is known.

* Convergence: Poisson inverse (10x10, f ~ GRF law, 8 noisy points of u), m-only prior with GRF noise, data through
  the true simulator: the sample mean and spread approach the exact posterior as the annealing levels grow (two
  budgets); at the large one the mean passes the chi-square test of its sample size and the spread lies in the
  chi-square interval of its sample size.
* Exactness where the Gaussian approximation of p(x0 | x_t) is exact (prior covariance proportional to the GRF
  noise's, Tweedie tempering): the analytic posterior at only 5 levels.
* DiffusionPDE's joint prior (white noise) through the simulator: u = F(m) exactly, the posterior beaten by no
  more than the prior allows; the nonlinear Darcy map: Jacobian refreshes, data fitted.
* The exact-score check of benchmarks/bench_exact_score.py, small and fast: 16^2 poisson and helmholtz inverse,
  3 fields, 64 draws: error ratio to GaussianPosterior <= 1.05 and coverage beside the exact posterior's own.
* build / options / seeds / refusals.
"""
import math

import pytest
import torch

from _diffusion_problems import assert_beats_the_prior, assert_converges, proportional_setup, sample_statistics, setup
from pdeinv.metrics import coverage, relative_l2
from pdeinv.physics import ForwardModel, GaussianNoise, GaussianRandomField, Grid2D, PointObservation
from pdeinv.priors.diffusion import AnalyticGaussianDenoiser, EDMDenoiser, GRFNoise, WhiteNoise
from pdeinv.solvers import DAPS, SOLVERS, build
from pdeinv.tasks import TASKS

N = 10


@pytest.fixture(scope="module")
def prob():
    return setup(n=N, n_obs=8)


def _m_prior(noise, n=N):
    grf = GaussianRandomField(Grid2D(n), alpha=2.0, tau=3.0, basis="cosine")
    return AnalyticGaussianDenoiser((torch.zeros(n * n, dtype=torch.float64), grf.covariance()), noise=noise), grf


def test_converges_to_the_exact_posterior_as_the_levels_grow(prob):
    out = {}
    for name, (S, levels) in (("small", (100, 8)), ("large", (400, 100))):
        prior, _ = _m_prior(GRFNoise())
        res = DAPS(prior, physics="simulator", n_samples=S, num_steps=levels, batch_size=S)(prob["y_inv"], prob["fwd"],
                                                                                            seed=0)
        out[name] = sample_statistics(res.samples.reshape(S, -1), prob["post_inv"])
    assert_converges(out["small"], out["large"], prob["post_inv"], n_large=400)
    info = res.info
    assert info["method"] == "daps" and info["network_evals_per_sample"] == 100      # one call per level
    assert info["guidance"]["affine"] is True and info["guidance"]["jacobians"] == 1   # Poisson: H once


def test_exact_where_the_gaussian_approximation_is_exact():
    """m ~ N(0, a^2 K), independent of u: p(x0 | x_t) = N(D, sigma^2 kappa K) exactly, so DAPS with Tweedie tempering
    samples the analytic posterior at any number of levels (5 here)."""
    p = proportional_setup(GRFNoise())
    S = 400
    prior = AnalyticGaussianDenoiser(p["moments"], noise=GRFNoise(), channels=2)
    res = DAPS(prior, mode="forward", physics="none", tempering="tweedie", n_samples=S, num_steps=5,
               batch_size=S)(p["y"], p["fwd"], seed=0)
    st = sample_statistics(res.samples.reshape(S, -1), p["post"])
    assert st["T"] < st["T_max"] and st["err"] < st["err_bound"], st
    assert st["ratio_interval"][0] < st["ratio"] < st["ratio_interval"][1], st
    assert res.info["guidance"]["kappa_fallbacks"] == 0


def test_joint_white_noise_prior_through_the_simulator(prob):
    """DiffusionPDE's kind of prior (joint (f, u), white noise): u of every sample is F(m) (the projection), and the
    posterior of f is approached (DPS's own bound in tests/test_diffusionpde.py is 0.5 x the prior's error)."""
    S = 100
    prior = AnalyticGaussianDenoiser(prob["moments"], noise=WhiteNoise(), channels=2)
    solver = DAPS(prior, physics="simulator", n_samples=S, num_steps=50, batch_size=S)
    assert solver.project_state
    res = solver(prob["y_inv"], prob["fwd"], seed=0)
    Cf = prob["moments"][1][:N * N, :N * N]
    st = assert_beats_the_prior(res.samples, prob["post_inv"], Cf, mean_factor=0.3)
    assert st["err"] < 0.2, st
    u = prob["fwd"].solve(res.samples[:, 0])
    assert torch.allclose(res.u_samples[:, 0], u, atol=1e-10)


def test_nonlinear_darcy_map_refreshes_its_jacobian():
    task = TASKS["darcy"]
    grid, problem = task.make(N)
    a = task.sample_m(grid, 1, seed=2)
    obs = PointObservation.random(grid, n=20, seed=3)
    fwd = ForwardModel(problem, obs, noise=GaussianNoise(relative=0.01))
    y = fwd(a, seed=4)
    grf = GaussianRandomField(grid, alpha=2.0, tau=3.0, basis="cosine")
    C = grf.covariance() * (4.5 ** 2 / float(grf.covariance().diagonal().mean()))
    prior = AnalyticGaussianDenoiser((torch.full((N * N,), 7.5, dtype=torch.float64), C), noise=GRFNoise())
    res = DAPS(prior, n_samples=4, num_steps=12, jacobian_every=4, jacobian_at="chain", metropolis=True,
               clip=(3.0, 12.0))(y, fwd, seed=0)
    g = res.info["guidance"]
    assert g["affine"] is False and g["jacobians"] == 3          # levels 0, 4, 8
    assert g["proposed"] == 12 * 8 * 4 and 0 < g["accepted"] < g["proposed"]   # Metropolis-adjusted
    assert float(res.samples.min()) >= 3.0 and float(res.samples.max()) <= 12.0
    # the trivial baseline: the prior mean.  (MAP with this prior fits to 0.006x it; at 12 levels and 8 steps DAPS
    # does not -- measured 0.04-0.4x over 6 problems -- see the DAPS docstring.)
    blind = float(fwd.misfit(torch.full_like(a, 7.5), y))
    assert float(fwd.misfit(res.m, y)) < 0.8 * blind


def _scalar_target(metropolis, B=4000, steps=200, drift="exact"):
    """Step 2 of DAPS on a scalar nonlinear likelihood, ``pi(x) ~ N(x; 0, 1) N(1.5; x + x^3, 0.5^2)``, from
    ``x = 0`` with the Gauss-Newton preconditioner linearised there."""
    from pdeinv.priors.diffusion import WhiteNoise
    prior = AnalyticGaussianDenoiser((torch.zeros(1, dtype=torch.float64), torch.eye(1, dtype=torch.float64)),
                                     noise=WhiteNoise())
    g = lambda z: z.flatten(1) + z.flatten(1) ** 3
    d = DAPS(prior, langevin_steps=steps, step_size=1.0, metropolis=metropolis, drift=drift)
    x0 = torch.zeros(B, 1, 1, dtype=torch.float64)
    lin = d._linearise(g, x0, torch.zeros(B, dtype=torch.long), WhiteNoise(), None)
    st = {"accepted": 0, "proposed": 0}
    z = d._langevin(g, x0, torch.ones(B, dtype=torch.float64), torch.full((B, 1), 1.5, dtype=torch.float64),
                    torch.full((B, 1), 0.25, dtype=torch.float64), lin, math.exp(-1.0), WhiteNoise(),
                    torch.Generator().manual_seed(0), st)
    return lin, z.flatten(), st


def test_langevin_is_exact_for_a_nonlinear_likelihood():
    """The Metropolis-adjusted step samples the nonlinear target: mean and variance within 4 standard errors
    (from the 4000 independent chains) of quadrature; the unadjusted step blows up on it."""
    xs = torch.linspace(-6, 6, 200001, dtype=torch.float64)
    logp = -0.5 * xs ** 2 - 0.5 * (1.5 - xs - xs ** 3) ** 2 / 0.25
    w = torch.exp(logp - logp.max())
    w = w / w.sum()
    mean = float((w * xs).sum())
    var = float((w * (xs - mean) ** 2).sum())
    lin, z, st = _scalar_target(True)
    assert lin["affine"] is False
    B = z.numel()
    m, v = float(z.mean()), float(z.var())
    assert abs(m - mean) < 4 * math.sqrt(v / B), (m, mean)
    assert abs(v - var) < 4 * math.sqrt(float(((z - m) ** 4).mean() - v * v) / B), (v, var)
    assert 0.05 < st["accepted"] / st["proposed"] < 0.95
    _, z_u, _ = _scalar_target(False, B=200)
    bad = ~torch.isfinite(z_u)
    assert bool(bad.any()) or abs(float(z_u.mean()) - mean) > 0.1
    # the chord drift (true residual through the stale Jacobian): Metropolis-adjusted it samples the same target
    # exactly (a valid proposal, another drift).  (Unadjusted it blows up on this cubic too: the chord step is a
    # stale-derivative Newton step, stable only while the map stays near its linearisation.)
    _, z_c, st_c = _scalar_target(True, drift="chord")
    m, v = float(z_c.mean()), float(z_c.var())
    assert abs(m - mean) < 4 * math.sqrt(v / B), (m, mean)
    assert abs(v - var) < 4 * math.sqrt(float(((z_c - m) ** 4).mean() - v * v) / B), (v, var)


def test_chord_drift_equals_exact_on_an_affine_map(prob):
    """An affine data map: the chord step is the exact one (same draws, same seed)."""
    prior, _ = _m_prior(GRFNoise())
    y, fwd = prob["y_inv"], prob["fwd"]
    a = DAPS(prior, n_samples=3, num_steps=6)(y, fwd, seed=1)
    b = DAPS(prior, n_samples=3, num_steps=6, drift="chord")(y, fwd, seed=1)
    assert torch.allclose(a.samples, b.samples, rtol=0, atol=1e-10)


def test_chord_drift_keeps_navier_stokes_stable():
    """2-D Navier-Stokes (w0 from 40 points of w(T), 1 % noise, the task's own Gaussian law as the exact prior
    score): with the exact gradient the chains blow up on the stale Jacobian and the simulator's Courant check
    stops them; with the chord drift DAPS returns, its draws keep the law's scale (vorticity std within 2x the
    truth's), and its mean fits the data better than the prior mean does (< 0.8x its misfit)."""
    task = TASKS["ns"]
    n = 16
    grid, problem = task.make(n)
    law = task.latent(grid)[0]
    w0 = task.sample_m(grid, 1, seed=5)
    fwd = ForwardModel(problem, PointObservation.random(grid, n=40, seed=6), noise=GaussianNoise(relative=0.01))
    y = fwd(w0, seed=7)
    prior = AnalyticGaussianDenoiser((torch.zeros(n * n, dtype=torch.float64), law.covariance()),
                                     noise=GRFNoise(bc="periodic"))
    opts = dict(n_samples=4, num_steps=12, langevin_steps=4)
    with pytest.raises((RuntimeError, ValueError), match="diverged"):
        DAPS(prior, **opts)(y, fwd, seed=0)
    res = DAPS(prior, drift="chord", **opts)(y, fwd, seed=0)
    ratio = float(res.samples.std(dim=tuple(range(1, res.samples.dim()))).mean() / w0.std())
    assert 0.5 < ratio < 2.0, ratio
    blind = float(fwd.misfit(torch.zeros_like(w0), y))
    assert float(fwd.misfit(res.m, y)) < 0.8 * blind


def test_exact_score_small(prob):
    """The small version of benchmarks/bench_exact_score.py: with the exact score DAPS (100 levels) is within 5 % of the
    exact posterior mean's error on 16^2 poisson and helmholtz inverse, and its 90 % band covers the truth as often
    as the exact posterior's own 64 draws do (within 0.05, averaged over the fields)."""
    for name in ("poisson", "helmholtz"):
        task = TASKS[name]
        grid, problem = task.make(16)
        Cm = task.latent(grid)[0].covariance()
        prior = AnalyticGaussianDenoiser((torch.zeros(256, dtype=torch.float64), Cm), noise=GRFNoise())
        exact = build("gaussian", task, 16, n_samples=64)
        daps = DAPS(prior, n_samples=64, num_steps=100)
        e0, e1, c0, c1 = [], [], [], []
        for i in range(3):
            m = task.sample_m(grid, 1, seed=10_000 + i)
            fwd = ForwardModel(problem, PointObservation.random(grid, fraction=0.0305, seed=20_000 + i),
                               noise=GaussianNoise(relative=0.01))
            y = fwd(m, seed=30_000 + i)
            r0, r1 = exact(y, fwd, seed=i), daps(y, fwd, seed=i)
            e0.append(float(relative_l2(r0.m, m)))
            e1.append(float(relative_l2(r1.m, m)))
            c0.append(float(coverage(r0.samples, m)))
            c1.append(float(coverage(r1.samples, m)))
        ratio = sum(e1) / sum(e0)
        assert ratio <= 1.05, (name, ratio, e0, e1)
        assert abs(sum(c1) / 3 - sum(c0) / 3) < 0.05, (name, c0, c1)


def test_build_options_seeds_and_refusals(prob):
    assert SOLVERS["daps"] is DAPS
    model = EDMDenoiser(channels=1, arch="unet", arch_kwargs=dict(base=8, mults=[1, 2], emb_dim=16), noise="grf")
    model.fit_normalizers(TASKS["poisson"].sample_m(TASKS["poisson"].grid(8), 16, seed=0).float())
    s = build("daps", "poisson", 8, model=model, tempering="tweedie", langevin_steps=3, step_size=0.5, num_steps=4,
              n_samples=2, ode_steps=2, preconditioner="prior", jacobian_every=0)
    assert isinstance(s, DAPS)
    assert (s.tempering, s.langevin_steps, s.step_size, s.num_steps, s.ode_steps, s.preconditioner) == \
        ("tweedie", 3, 0.5, 4, 2, "prior")
    with pytest.raises(ValueError, match="needs --model"):
        build("daps", "poisson", 8)
    prior, _ = _m_prior(GRFNoise())
    a = DAPS(prior, n_samples=3, num_steps=6)(prob["y_inv"], prob["fwd"], seed=5)
    b = DAPS(prior, n_samples=3, num_steps=6)(prob["y_inv"], prob["fwd"], seed=5)
    c = DAPS(prior, n_samples=3, num_steps=6)(prob["y_inv"], prob["fwd"], seed=6)
    assert torch.equal(a.samples, b.samples) and not torch.equal(a.samples, c.samples)
    assert a.samples.shape == (3, 1, 1, N, N) and a.u_samples.shape == (3, 1, 1, N, N)
    for kw, msg in ((dict(physics="residual"), "physics"), (dict(tempering="exact"), "tempering"),
                    (dict(preconditioner="newton"), "preconditioner"), (dict(langevin_steps=0), "langevin_steps"),
                    (dict(step_size=-1.0), "step_size"), (dict(weights={"pde": 1.0}), "weights"),
                    (dict(trust=3.0), "DPS guidance options"), (dict(project_state=True), "project_state")):
        with pytest.raises(ValueError, match=msg):
            DAPS(prior, **kw)
    with pytest.raises(ValueError, match="m-only prior"):
        DAPS(prior, physics="none")


def test_task_solver_defaults_reach_the_solver_and_yield_to_the_caller():
    """ns asks for the chord drift (the exact one diverges there) and 100 surrogate iterations; the caller's
    options win; a task without defaults keeps the solver's.  (The shipped ns64-uno is the default prior.)"""
    assert TASKS["ns"].solver_defaults["surrogate-map"] == {"max_iter": 100}
    from pdeinv.nn import pretrained
    if "ns64-uno" not in pretrained.available():
        pytest.skip("ns64-uno not shipped")
    assert build("daps", "ns", 64).drift == "chord"
    assert build("daps", "ns", 64, drift="exact").drift == "exact"
    assert TASKS["darcy"].solver_defaults["daps"] == {"drift": "chord"}     # the clamped exact drift misfits
    model = EDMDenoiser(channels=1, arch="unet", arch_kwargs=dict(base=8, mults=[1, 2], emb_dim=16), noise="grf")
    model.fit_normalizers(TASKS["poisson"].sample_m(TASKS["poisson"].grid(8), 16, seed=0).float())
    assert build("daps", "poisson", 8, model=model).drift == "exact"


def test_warm_start_from_another_answer_forgets_it_above_the_posterior_scale(prob):
    """``start=`` + ``sigma_start=``: the chains start at the start solver's answer noised to ``sigma_start`` and anneal
    from there, at the levels below it only.  Started from a wrong answer (the posterior mean flipped in sign) at a
    level above the prior's scale, DAPS still samples the exact posterior (the chi-square tests of its sample size);
    started there at a level far below the posterior's spread, it keeps the wrong answer (the mean test rejects it),
    so the start is used and the level decides how much of it is kept."""
    from types import SimpleNamespace
    S = 400
    mean, _ = prob["post_inv"]
    wrong = SimpleNamespace(m=-mean.reshape(1, 1, N, N), info={"method": "wrong"})
    start = lambda y, fwd, seed=None: wrong                                     # noqa: E731
    prior, _ = _m_prior(GRFNoise())
    cold = DAPS(prior, physics="simulator", n_samples=S, num_steps=100, batch_size=S)(prob["y_inv"], prob["fwd"],
                                                                                        seed=0)
    out = {}
    for label, ss in (("high", 2.0), ("low", 1e-3)):
        res = DAPS(prior, physics="simulator", n_samples=S, num_steps=100, batch_size=S, start=start,
                   sigma_start=ss)(prob["y_inv"], prob["fwd"], seed=0)
        out[label] = (sample_statistics(res.samples.reshape(S, -1), prob["post_inv"]), res.info)
    st, info = out["high"]
    assert st["T"] < st["T_max"] and st["err"] < st["err_bound"], st
    assert st["ratio_interval"][0] < st["ratio"] < st["ratio_interval"][1], st
    assert info["start"]["method"] == "wrong" and info["sigma_start"] == 2.0
    assert 0 < info["network_evals_per_sample"] < cold.info["network_evals_per_sample"]   # the levels below 2 only
    low, _ = out["low"]
    assert low["T"] > low["T_max"], low
    with pytest.raises(ValueError, match="go together"):
        DAPS(prior, start=start)
    with pytest.raises(ValueError, match="sigma_start must be"):
        DAPS(prior, start=start, sigma_start=-1.0)
    model = EDMDenoiser(channels=1, arch="unet", arch_kwargs=dict(base=8, mults=[1, 2], emb_dim=16), noise="grf")
    model.fit_normalizers(TASKS["poisson"].sample_m(TASKS["poisson"].grid(8), 16, seed=0).float())
    warm = build("daps", "poisson", 8, model=model, start="map", sigma_start=0.5)
    assert type(warm.start).__name__ == type(build("map", "poisson", 8)).__name__ and warm.sigma_start == 0.5
    with pytest.raises(ValueError, match="start= takes 'map'"):
        build("daps", "poisson", 8, model=model, start="fundps", sigma_start=1.0)
