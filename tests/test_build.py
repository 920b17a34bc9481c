"""``pdeinv.solvers.build``: the one way to build a method for a task (CLI, harness and demos use it).

Parametrised over the registries, so a newly registered solver or task is checked at once:
every solver has a builder or builds from its constructor, methods that need a trained model
say so, and the task's defaults reach the solver.
"""
import pytest
import torch

from pdeinv.physics import ForwardModel, GaussianNoise, GaussianRandomField, PointObservation
from pdeinv.solvers import BUILDERS, NEEDS_MODEL, SOLVERS, build
from pdeinv.solvers.map import MAP
from pdeinv.tasks import TASKS


@pytest.mark.parametrize("name", sorted(SOLVERS))
def test_every_solver_builds_or_asks_for_its_model(name):
    task = TASKS["poisson"]
    if name in NEEDS_MODEL:
        with pytest.raises(ValueError, match="needs --model"):
            build(name, task, 16)
        return
    solver = build(name, task, 16)
    assert isinstance(solver, SOLVERS[name])


def test_every_registered_solver_is_known_to_the_builder():
    missing = [n for n in SOLVERS if n not in BUILDERS]
    # a solver without a builder is built from its constructor alone; the package's own all have one
    assert not missing, f"solvers without a builder in pdeinv.solvers.factory.BUILDERS: {missing}"


@pytest.mark.parametrize("task_name", sorted(TASKS))
def test_map_gets_the_task_defaults(task_name):
    task = TASKS[task_name]
    solver = build("map", task_name, None, max_iter=3)
    ref = MAP(**{**task.map_options, "max_iter": 3})
    assert solver.max_iter == 3
    for key in ("weight", "bounds", "positive"):
        if hasattr(ref, key):
            assert getattr(solver, key) == getattr(ref, key), key


@pytest.mark.parametrize("task_name", [n for n in sorted(TASKS) if TASKS[n].latent is not None])
def test_mcmc_prior_is_the_task_law(task_name):
    """m = transform(mu), mu ~ the GRF that build gives MCMC, has the law of task.sample_m (same seed, same draw)."""
    task = TASKS[task_name]
    res = 16 if task_name != "burgers" else 64
    solver = build("mcmc", task, res, n_samples=4)
    grid = task.grid(res)
    mu = solver.prior.sample(2, seed=5)
    m = solver.transform(mu) if solver.transform is not None else mu
    assert torch.allclose(m, task.sample_m(grid, 2, seed=5))


def test_mcmc_without_a_gaussian_law_is_refused_clearly():
    with pytest.raises(ValueError, match="Gaussian prior"):
        build("mcmc", "eit", 16)


def test_same_solver_through_build_and_by_hand():
    """The builder adds nothing hidden: MAP built for darcy equals MAP(**task.map_options) on the same data."""
    task = TASKS["darcy"]
    grid, problem = task.make(12)
    a = task.sample_m(grid, 1, seed=1)
    obs = PointObservation.random(grid, fraction=0.3, seed=2)
    fwd = ForwardModel(problem, obs, GaussianNoise(relative=0.01))
    y = fwd(a, seed=3)
    r1 = build("map", task, 12, max_iter=15)(y, fwd)
    r2 = MAP(**{**task.map_options, "max_iter": 15})(y, fwd)
    assert torch.equal(r1.m, r2.m)


def test_unknown_method_and_network_names():
    with pytest.raises(ValueError, match="surrogate-map"):
        build("fno", "darcy", 16)
    with pytest.raises(ValueError, match="available"):
        build("nonsense", "darcy", 16)
    with pytest.raises(ValueError, match="takes no trained model"):
        build("map", "darcy", 16, model=torch.nn.Linear(1, 1))
    with pytest.raises(ValueError, match="its options are"):
        build("map", "darcy", 16, max_iterr=3)


@pytest.mark.parametrize("operator", ["fno", "deeponet"])
def test_model_on_another_grid_is_refused(operator):
    """The sparse baselines are tied to the grid of their mask: another grid is refused, the same one builds."""
    from pdeinv.surrogates import SparseOperator
    opts = dict(modes=4, width=4, layers=1) if operator == "fno" else dict(width=4, layers=2)
    model = SparseOperator(operator, 1, 1, [16, 16], options=opts)
    with pytest.raises(ValueError, match="trained on a"):
        build("amortized", "darcy", 32, model=model)
    assert isinstance(build("amortized", "darcy", 16, model=model), SOLVERS["amortized"])


def test_two_level_screen_res_runs_the_model_on_the_coarse_grid():
    """``screen_res=N``: the bound screen is the model on the N-point grid (Fourier restriction, the model,
    Fourier interpolation) -- here an identity 'model', so the screen returns the band-limited projection of m."""
    from pdeinv.physics import ForwardModel, PointObservation
    from pdeinv.physics.resample import resample

    class Ident(torch.nn.Module):
        def forward(self, m):
            self.seen = tuple(m.shape[-2:])
            return m

    task = TASKS["ns"]
    grid, problem = task.make(32)
    fwd = ForwardModel(problem, PointObservation.random(grid, fraction=0.1, seed=0))
    net = Ident()
    solver = build("mcmc-2level", task, 32, model=net, screen_res=16, n_samples=4)
    screen = solver.surrogate_fwd.bind(fwd)
    m = task.sample_m(grid, 1, seed=3)
    got = screen.solve(m)
    assert net.seen == (16, 16)
    assert torch.allclose(got, resample(resample(m, grid, task.grid(16)), task.grid(16), grid), atol=1e-6)
    assert float((got - m).norm() / m.norm()) > 1e-4          # the high modes really are dropped
    with pytest.raises(ValueError, match="not both"):
        build("mcmc-2level", task, 32, surrogate_fwd=fwd, screen_res=16)


def test_mcmc_gpcn_from_the_factory_is_exact_on_a_linear_task():
    """Poisson inverse is linear-Gaussian, so gpCN's Laplace Gaussian is the posterior: every proposal is
    accepted.  A law seen through a transform (darcy's threshold) is refused."""
    import pdeinv as pi
    task = TASKS["poisson"]
    grid, problem = task.make(16)
    obs = pi.PointObservation.random(grid, n=12, seed=0, exclude_boundary=True)
    fwd = pi.ForwardModel(problem, obs, noise=pi.GaussianNoise(sigma=0.01))
    y = fwd(task.sample_m(grid, 1, seed=1), seed=2)
    res = build("mcmc", task, 16, proposal="gpcn", n_samples=50, n_chains=2, compute_state=False)(y, fwd)
    assert res.info["proposal"] == "gpcn" and res.info["acceptance"] > 0.999
    with pytest.raises(ValueError, match="transform"):
        build("mcmc", "darcy", 16, proposal="gpcn")
