"""2-D Navier-Stokes (vorticity, pseudo-spectral): exact solutions, measured orders, invariants, gradients."""
import math

import pytest
import torch

from pdeinv.checks import convergence_order, taylor_test
from pdeinv.physics import GaussianRandomField, Grid2D, PointObservation
from pdeinv.physics.navier_stokes import NavierStokes2D, SpectralOps2D, fno_forcing, taylor_green


NS_LAW = dict(alpha=2.5, tau=7.0, sigma=7 ** 1.5, zero_mean_mode=True)


def _rel(a, b):
    return float((a - b).norm() / b.norm())


@pytest.mark.parametrize("k", [1, 2])
def test_taylor_green_decays_at_exact_rate(k):
    grid = Grid2D(16, bc="periodic")
    nu, T = 0.005, 0.5
    w0 = taylor_green(grid, 0.0, nu, k=k)
    w = NavierStokes2D(grid, nu=nu, forcing=None, record_times=[0.25, T], dt=1e-3)(w0)
    for i, t in enumerate([0.25, T]):
        assert _rel(w[:, i], taylor_green(grid, t, nu, k=k)) < 1e-6
    # the decay really is exp(-2 nu kappa^2 t): measured rate against the exact one
    kap = 2 * math.pi * k
    rate = -math.log(float(w[:, 1].norm() / w0.norm())) / T
    assert abs(rate - 2 * nu * kap ** 2) < 1e-6 * 2 * nu * kap ** 2


def test_spectral_accuracy_in_space():
    """Analytic data: the error falls geometrically with n (faster than any power)."""
    ref_grid = Grid2D(48, bc="periodic")

    def w0_on(grid):
        X, Y = grid.mesh()
        return (torch.sin(2 * math.pi * X) * torch.exp(torch.cos(2 * math.pi * Y)))[None, None]

    ref = NavierStokes2D(ref_grid, nu=0.01, forcing=None, record_times=0.2, dt=5e-3)(w0_on(ref_grid))
    errs = []
    for n in (12, 16, 24):
        g = Grid2D(n, bc="periodic")
        w = NavierStokes2D(g, nu=0.01, forcing=None, record_times=0.2, dt=5e-3)(w0_on(g))
        s = 48 // n
        errs.append(_rel(w, ref[..., ::s, ::s]))
    # the 2/3 rule keeps |k| <= (n-1)//3 modes: the error is the data's spectral tail, ~ 1/(2^k k!)
    assert errs[2] < 1e-7, errs
    assert errs[0] / errs[1] > 50 and errs[1] / errs[2] > 50, errs   # geometric decay
    # an algebraic fit would need an absurd order: spectral, not finite-difference, accuracy
    assert -convergence_order([12, 16, 24], errs) > 10


def test_second_order_in_time():
    grid = Grid2D(32, bc="periodic")
    w0 = GaussianRandomField(grid, **NS_LAW).sample(2, seed=3)
    T = 0.5
    ref = NavierStokes2D(grid, nu=1e-3, record_times=T, dt=T / 320)(w0)
    dts = [T / 5, T / 10, T / 20, T / 40]
    errs = [_rel(NavierStokes2D(grid, nu=1e-3, record_times=T, dt=dt)(w0), ref) for dt in dts]
    order = convergence_order(dts, errs)
    assert order > 1.9, (order, errs)


def test_unforced_field_keeps_zero_mean_and_enstrophy_decreases():
    grid = Grid2D(32, bc="periodic")
    w0 = GaussianRandomField(grid, **NS_LAW).sample(2, seed=1) * 10.0   # strong nonlinearity
    times = [0.1 * (i + 1) for i in range(20)]
    w = NavierStokes2D(grid, nu=1e-3, forcing=None, record_times=times, dt=0.01)(w0)
    assert float(w.mean((-2, -1)).abs().max()) < 1e-14 * float(w.abs().max())
    ens = torch.cat([w0[:, None], w], 1).pow(2).mean((-3, -2, -1))   # (B, T+1)
    d = ens[:, 1:] - ens[:, :-1]
    assert bool((d <= 1e-12 * ens[:, :-1]).all()), d
    # the field really evolved nonlinearly (not just a viscous decay)
    assert _rel(w[:, -1], w0) > 0.3


def test_batch_equals_single_solves_and_float32_follows():
    grid = Grid2D(16, bc="periodic")
    w0 = GaussianRandomField(grid, **NS_LAW).sample(3, seed=0)
    p = NavierStokes2D(grid, record_times=[0.1, 0.2], dt=0.02)
    wb = p(w0)
    assert wb.shape == (3, 2, 1, 16, 16) and wb.dtype == torch.float64
    for i in range(3):
        assert _rel(p(w0[i:i + 1]), wb[i:i + 1]) < 1e-13
    w32 = p(w0.float())
    assert w32.dtype == torch.float32 and _rel(w32.double(), wb) < 1e-5


def test_residual_is_second_order_in_frame_spacing():
    grid = Grid2D(16, bc="periodic")
    w0 = GaussianRandomField(grid, **NS_LAW).sample(1, seed=2)
    sizes = []
    for tau in (0.04, 0.02):
        times = [tau * (i + 1) for i in range(round(0.2 / tau))]
        p = NavierStokes2D(grid, record_times=times, dt=tau / 8)
        sizes.append(float(p.residual(w0, p(w0)).abs().max()))
    assert 3.5 < sizes[0] / sizes[1] < 4.5, sizes


def _misfit_problem(problem, m_true, m_probe, n_points=20, seed=0):
    grid = problem.state_grid
    obs = PointObservation.random(grid, n=n_points, seed=seed)
    y = obs(problem(m_true)).detach()
    return lambda m: 0.5 * (obs(problem(m)) - y).pow(2).sum()


@pytest.mark.parametrize("checkpoint", [None, 3])
def test_gradient_wrt_initial_vorticity(checkpoint):
    grid = Grid2D(16, bc="periodic")
    prior = GaussianRandomField(grid, **NS_LAW)
    w_true, w_probe, dm = prior.sample(3, seed=4).split(1)
    p = NavierStokes2D(grid, record_times=[0.1, 0.2], dt=0.02, checkpoint=checkpoint)
    J = _misfit_problem(p, w_true, w_probe)
    assert taylor_test(J, w_probe, dm) > 1.9


def test_checkpointing_gives_the_same_gradient():
    grid = Grid2D(16, bc="periodic")
    prior = GaussianRandomField(grid, **NS_LAW)
    w_true, w_probe = prior.sample(2, seed=5).split(1)
    grads = []
    for ck in (None, 1, 4, "sqrt"):
        p = NavierStokes2D(grid, record_times=[0.1, 0.3], dt=0.02, checkpoint=ck)
        J = _misfit_problem(p, w_true, w_probe)
        m = w_probe.clone().requires_grad_(True)
        grads.append(torch.autograd.grad(J(m), m)[0])
    for g in grads[1:]:
        assert _rel(g, grads[0]) < 1e-12


@pytest.mark.parametrize("unknown,value,checkpoint", [("viscosity", 0.02, None), ("viscosity", 0.02, 2),
                                                      ("amplitude", 1.5, None), ("amplitude", 1.5, 2)])
def test_gradient_wrt_scalars(unknown, value, checkpoint):
    grid = Grid2D(16, bc="periodic")
    w0 = GaussianRandomField(grid, **NS_LAW).sample(1, seed=6)
    p = NavierStokes2D(grid, w0=w0, unknown=unknown, record_times=[0.2, 0.4], dt=0.04, checkpoint=checkpoint)
    assert p.grid.shape == (1,) and p.state_grid is grid
    m_true = torch.full((1, 1, 1), value, dtype=torch.float64)
    J = _misfit_problem(p, m_true, None)
    rate = taylor_test(J, m_true * 0.7, m_true * 0.3)
    assert rate > 1.9


def test_forcing_field_gradient_and_benchmark_forcing():
    grid = Grid2D(16, bc="periodic")
    w0 = GaussianRandomField(grid, **NS_LAW).sample(1, seed=7)
    f = fno_forcing(grid)
    # the benchmark forcing is 0.1 (sin 2pi(x+y) + cos 2pi(x+y)): check two nodes by hand
    assert abs(float(f[0, 0, 0, 0]) - 0.1) < 1e-15
    assert abs(float(f[0, 0, 2, 1]) - 0.1 * (math.sin(2 * math.pi * 3 / 16) + math.cos(2 * math.pi * 3 / 16))) < 1e-15
    p = NavierStokes2D(grid, w0=w0, unknown="forcing", record_times=0.3, dt=0.03)
    J = _misfit_problem(p, f, None)
    dm = GaussianRandomField(grid, **NS_LAW).sample(1, seed=8)
    assert taylor_test(J, 0.5 * f, dm) > 1.9


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="periodic"):
        NavierStokes2D(Grid2D(16))
    grid = Grid2D(16, bc="periodic")
    with pytest.raises(ValueError, match="unknown"):
        NavierStokes2D(grid, unknown="pressure")
    with pytest.raises(ValueError, match="increasing"):
        NavierStokes2D(grid, record_times=[0.5, 0.2])
    with pytest.raises(ValueError, match="> 0"):
        NavierStokes2D(grid, nu=-1.0)
    p = NavierStokes2D(grid, record_times=0.1, dt=0.05)
    with pytest.raises(ValueError, match="shape"):
        p(torch.zeros(1, 1, 8, 8, dtype=torch.float64))
    with pytest.raises(ValueError, match="NaN"):
        p(torch.full((1, 1, 16, 16), float("nan"), dtype=torch.float64))
    with pytest.raises(ValueError, match="Courant"):
        p(taylor_green(grid, 0, 0.0, k=1, amplitude=1e3) + taylor_green(grid, 0, 0, k=3) * 0)
    sp = NavierStokes2D(grid, unknown="viscosity", w0=torch.zeros(1, 1, 16, 16, dtype=torch.float64))
    with pytest.raises(ValueError, match="viscosity must be > 0"):
        sp(torch.tensor([[-1e-3]], dtype=torch.float64))


def test_velocity_is_divergence_free_and_inverts_vorticity():
    grid = Grid2D(16, bc="periodic")
    w = GaussianRandomField(grid, **NS_LAW).sample(1, seed=9)
    ops = SpectralOps2D(grid, torch.float64, None)
    w = ops.to_physical(torch.fft.rfft2(w) * ops.mask)   # resolved modes (no Nyquist mode)
    u, v = ops.velocity(torch.fft.rfft2(w))
    uh, vh = torch.fft.rfft2(u), torch.fft.rfft2(v)
    div = ops.to_physical(1j * ops.kx * uh + 1j * ops.ky * vh)
    curl = ops.to_physical(1j * ops.kx * vh - 1j * ops.ky * uh)   # v_x - u_y = w
    assert float(div.abs().max()) < 1e-13 and _rel(curl, w) < 1e-13


def test_benchmark_law_matches_the_fno_generator_variance():
    """FNO's GaussianRF: coefficients sqrt(2) * 7^1.5 * (4 pi^2 |k|^2 + 49)^(-5/4) * N(0,1)_C, mean mode 0;
    its point-wise variance is sum_{k != 0} 7^3 (4 pi^2 |k|^2 + 49)^(-2.5) -- the task's law must match it."""
    from pdeinv.tasks import get_task
    n = 16
    grid = Grid2D(n, bc="periodic")
    k = torch.fft.fftfreq(n, 1.0 / n, dtype=torch.float64)
    K2 = 4 * math.pi ** 2 * (k[:, None] ** 2 + k[None, :] ** 2)
    lam = 7 ** 3 * (K2 + 49) ** -2.5
    lam[0, 0] = 0
    w = get_task("ns").sample_m(grid, 4000, seed=0)
    assert abs(float(w.var()) / float(lam.sum()) - 1) < 0.05
    assert float(w.mean((-2, -1)).abs().max()) < 1e-14              # zero-mean mode dropped


def test_ns_long_dataset_is_a_time_series_of_the_simulator():
    from pdeinv.data.generate import generate, sample_seed
    from pdeinv.tasks import get_task
    task = get_task("ns_long")
    fast = dict(dt=0.05)                                            # 400 steps instead of 2000 (test time)
    ds = generate("ns_long", n=2, res=16, seed=3, verbose=False, problem_kwargs=fast)
    assert ds["u"].dims == ("sample", "time", "x", "y")
    assert ds["time"].values.tolist() == [float(t) for t in range(1, 21)]
    grid, problem = task.make(16, **fast)
    m = task.sample_m(grid, 1, seed=sample_seed(3, 1))
    w = problem(m)
    assert float(abs(ds["m"].values[1] - m[0, 0].numpy()).max()) == 0
    assert float(abs(ds["u"].values[1] - w[0, :, 0].numpy()).max()) < 1e-12


def test_slice_residual_against_exact_solutions_and_substeps_fast_fields():
    """u - F(m) between distant slices, checked against quantities slice_residual does not compute:

    * the exact Taylor-Green pair (w0, w(T)): the residual is the scheme's O(dt^2) time error only -- far
      below the field, and 4x smaller when dt halves; the exact w(T) of a wrong viscosity gives a residual
      equal to the analytic difference of the two exact solutions;
    * a state perturbed by a known field d: the residual is d (unit coefficient on u, right sign);
    * a GRF field (nonlinear advection active) against a reference run at dt/16: the residual is the
      scheme's time error and falls at second order;
    * a correct gradient in m (Taylor rate 2, with a non-constant offset so that the first-order term is
      visible), and a field too fast for the step is sub-stepped (same answer as a finer step) instead of raising.
    """
    grid = Grid2D(16, bc="periodic")
    nu, T = 0.01, 0.2
    tg = NavierStokes2D(grid, nu=nu, forcing=None, record_times=T, dt=0.02)
    w0, wT = taylor_green(grid, 0.0, nu), taylor_green(grid, T, nu)
    # the advection of Taylor-Green vanishes; Crank-Nicolson multiplies the mode by R(z) = (1 - z/2)/(1 + z/2),
    # z = 2 nu kappa^2 dt, per step instead of exp(-z): r = w(T) - R^N w0 = w(T) (1 - R^N e^{Nz})
    for dt in (0.02, 0.01):
        z, N = 2 * nu * (2 * math.pi) ** 2 * dt, round(T / dt)
        predicted = abs(1 - ((1 - z / 2) / (1 + z / 2)) ** N * math.exp(N * z))
        r = NavierStokes2D(grid, nu=nu, forcing=None, record_times=T, dt=dt).slice_residual(w0, wT)
        assert abs(float(r.norm() / wT.norm()) / predicted - 1) < 0.01, (float(r.norm() / wT.norm()), predicted)
    r_exact = tg.slice_residual(w0, wT)
    wrong = taylor_green(grid, T, 2 * nu)                                     # exact solution, other viscosity
    assert _rel(tg.slice_residual(w0, wrong), wrong - wT) < 1e-3
    d = GaussianRandomField(grid, **NS_LAW).sample(1, seed=3)
    assert torch.allclose(tg.slice_residual(w0, wT + d) - r_exact, d, atol=1e-12 * float(d.abs().max()))

    w0, dw = GaussianRandomField(grid, **NS_LAW).sample(2, seed=7).split(1)
    p = NavierStokes2D(grid, record_times=T, dt=0.02)
    ref = NavierStokes2D(grid, record_times=T, dt=0.02 / 16)(w0)              # ~ the exact w(T)
    r1 = p.slice_residual(w0, ref)
    r2 = NavierStokes2D(grid, record_times=T, dt=0.01).slice_residual(w0, ref)
    # far below the residual of a state that ignores the dynamics (u = w0), and second order in dt
    assert 0 < float(r1.norm()) < 1e-3 * float(p.slice_residual(w0, w0).norm())
    assert 3.0 < float(r1.norm() / r2.norm()) < 5.0, float(r1.norm() / r2.norm())
    u = p(w0)
    J = lambda m: 0.5 * p.slice_residual(m, u + 0.3 * d).pow(2).sum()     # noqa: E731
    assert abs(taylor_test(J, w0, dw) - 2) < 0.1
    fast = w0 * (2.0 / p.courant(w0))          # Courant number 2
    with pytest.raises(ValueError, match="Courant"):
        p(fast)
    k = math.ceil(1.01 * p.courant(fast))
    fine = NavierStokes2D(grid, record_times=T, dt=0.02 / k)
    assert p.slice_residual(fast, fine(fast)).abs().max() < 1e-10
    with pytest.raises(ValueError, match="max_substeps"):
        p.slice_residual(fast, u, max_substeps=1)
