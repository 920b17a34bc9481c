"""Inversion through time with MAP: initial vorticity, viscosity, forcing amplitude, wave speed."""

import pytest
import torch

from pdeinv.checks import adjoint_test
from pdeinv.metrics import relative_l2
from pdeinv.physics import (ForwardModel, GaussianNoise, GaussianRandomField, Grid2D, MaskObservation,
                            PointObservation)
from pdeinv.physics.navier_stokes import NavierStokes2D
from pdeinv.physics.timeobs import TimeSliceObservation
from pdeinv.physics.wave import Wave2D, ricker
from pdeinv.solvers.map import MAP
from pdeinv.tasks import get_task
from pdeinv.tasks.time_dependent import NS_LAW, LawPrior



def test_w0_from_dense_noise_free_observations_of_w_at_small_T():
    """Baseline: the identity guess w0 = w(T) (the dense observation itself), ~14 % off at T = 0.2."""
    task = get_task("ns")
    grid = task.grid(16)
    w_true = task.sample_m(grid, 2, seed=0)
    problem = task.problem(grid, record_times=0.2, dt=0.02)          # the benchmark flow, short horizon
    fwd = ForwardModel(problem, MaskObservation(grid, torch.ones(16, 16, dtype=torch.bool)))
    y = fwd(w_true)
    identity = relative_l2(y.reshape(w_true.shape), w_true)
    result = MAP(prior=None, max_iter=60)(y, fwd)
    err = relative_l2(result.m, w_true)
    # exact data of a well-conditioned map: recovered to optimiser tolerance, 1000x below the identity's error
    assert bool((err < 1e-3 * identity).all()), (err, identity)
    # with 1 % noise, the task's own MAP options (GRF prior of the law) still recover it: at least halves the error
    # of the identity guess on the noisy data
    fwd = ForwardModel(problem, MaskObservation(grid, torch.ones(16, 16, dtype=torch.bool)), GaussianNoise(relative=0.01))
    y = fwd(w_true, seed=1)
    identity = relative_l2(y.reshape(w_true.shape), w_true)
    err = relative_l2(MAP(**{**task.map_options, "max_iter": 60})(y, fwd).m, w_true)
    assert bool((err < 0.5 * identity).all()), (err, identity)


@pytest.mark.parametrize("unknown,true,start", [("viscosity", 0.01, 0.003), ("amplitude", 1.0, 0.2)])
def test_scalar_from_sparse_observations_over_time(unknown, true, start):
    grid = Grid2D(16, bc="periodic")
    w0 = GaussianRandomField(grid, **NS_LAW).sample(1, seed=3)
    times = [0.2, 0.4, 0.6, 0.8, 1.0]
    problem = NavierStokes2D(grid, w0=w0, unknown=unknown, record_times=times, dt=0.02)
    # 5 % of the nodes, observed at the last three record times only
    obs = TimeSliceObservation.at_times(PointObservation.random(grid, fraction=0.05, seed=0), [0.6, 0.8, 1.0], times)
    fwd = ForwardModel(problem, obs, GaussianNoise(relative=0.01))
    m_true = torch.full((1, 1, 1), true, dtype=torch.float64)
    y = fwd(m_true, seed=2)
    assert y.shape == (1, 3, 1, obs.n_obs)
    solver = MAP(prior=None, positive=(unknown == "viscosity"), m0=torch.full((1, 1, 1), start, dtype=torch.float64),
                 max_iter=30)
    est = float(solver(y, fwd).m)
    # analytic yardstick: the Cramer-Rao (Gauss-Newton) standard deviation of a one-parameter fit,
    # sd = (sum (dA/dm / s)^2)^(-1/2) at the truth; the estimate lies within 4 sd, the start hundreds of sd away
    h = 1e-4 * true
    dA = (fwd.A(m_true + h) - fwd.A(m_true - h)) / (2 * h)
    sd = float(((dA / fwd.noise_std(y)) ** 2).sum()) ** -0.5
    assert abs(start - true) > 100 * sd, (start, sd)
    assert abs(est - true) < 4 * sd, (est, true, sd)


def test_wave_speed_from_receiver_traces():
    n = 17
    grid = Grid2D(n)
    X, Y = grid.mesh()
    c_true = (1.0 + 0.5 * torch.exp(-((X - 0.55) ** 2 + (Y - 0.45) ** 2) / 0.02))[None, None]
    shots = [(0.25, 0.25), (0.75, 0.75), (0.25, 0.75), (0.75, 0.25)]
    T, N = 1.0, 60
    problem = Wave2D(grid, u0=torch.zeros(1, 4, n, n, dtype=torch.float64), sources=shots,
                     source_time=lambda t: ricker(t, f0=5.0), record_times=[T * (k + 1) / N for k in range(N)],
                     dt=T / N, checkpoint="sqrt")
    s = torch.linspace(0.125, 0.875, 7, dtype=torch.float64)
    ring = torch.cat([torch.stack([s, torch.full_like(s, 0.125)], 1), torch.stack([s, torch.full_like(s, 0.875)], 1),
                      torch.stack([torch.full_like(s, 0.125), s], 1)[1:-1], torch.stack([torch.full_like(s, 0.875), s], 1)[1:-1]])
    fwd = ForwardModel(problem, PointObservation(grid, ring), GaussianNoise(relative=0.01))
    y = fwd(c_true, seed=0)                                             # traces (1, 60, 4, 24)
    m0 = torch.ones_like(c_true)
    prior = LawPrior(lambda k: Grid2D(k), transform="log", alpha=2.0, tau=3.0, sigma=1.5, basis="cosine")
    result = MAP(prior=prior, bounds=(0.5, 2.0), m0=m0, max_iter=80)(y, fwd)
    # baseline: the best homogeneous model (an oracle constant, the mean of c_true), better than the start c = 1
    best_const = float(relative_l2(torch.full_like(c_true, float(c_true.mean())), c_true))
    err = float(relative_l2(result.m, c_true))
    assert err < 0.5 * best_const, (err, best_const)
    # the anomaly is found where it is: the recovered maximum lies within two cells of the true one
    i, j = divmod(int(result.m.flatten().argmax()), n)
    it, jt = divmod(int(c_true.flatten().argmax()), n)
    assert abs(i - it) <= 2 and abs(j - jt) <= 2


def test_time_slice_observation_is_linear_with_its_adjoint():
    grid = Grid2D(8, bc="periodic")
    obs = TimeSliceObservation(PointObservation.random(grid, n=5, seed=0), [1, 3, 3], n_frames=4)
    assert adjoint_test(obs, torch.zeros(2, 4, 1, 8, 8, dtype=torch.float64)) < 1e-14
    with pytest.raises(ValueError, match="record time"):
        TimeSliceObservation.at_times(obs.spatial, [0.3], [0.2, 0.4])


def test_law_prior_is_the_task_law_at_any_resolution():
    prior = get_task("ns").map_options["prior"]
    for n in (8, 16):
        grid = Grid2D(n, bc="periodic")
        grf = GaussianRandomField(grid, **NS_LAW)
        m = grf.sample(2, seed=n)
        assert torch.allclose(prior.log_prob(m), grf.log_prob(m), rtol=1e-13)
