"""NavierStokes2D(stepper="rk4") and the linear drag -alpha w: measured fourth order, agreement with the
converged Heun answer, analytic decay with drag, gradients through RK4 rollouts, batching."""
import math

import pytest
import torch

from pdeinv.checks import convergence_order, taylor_test
from pdeinv.physics import GaussianRandomField, Grid2D, PointObservation
from pdeinv.physics.navier_stokes import NavierStokes2D, simulate, taylor_green

NS_LAW = dict(alpha=2.5, tau=7.0, sigma=7 ** 1.5, zero_mean_mode=True)


def _rel(a, b):
    return float((a - b).norm() / b.norm())


def _orders(dts, errs):
    return [math.log(errs[i] / errs[i + 1]) / math.log(dts[i] / dts[i + 1]) for i in range(len(errs) - 1)]


def test_forced_taylor_green_with_drag_is_fourth_order_against_the_exact_solution():
    """Forcing f = c * TG keeps the Taylor--Green shape (u.grad w = 0), so
    w(t) = TG * [e^{-lam t} + (c/lam)(1 - e^{-lam t})], lam = 2 nu kappa^2 + alpha.  The explicit forcing
    makes the integrating-factor RK4 inexact: its error must fall as dt^4 (Heun's as dt^2)."""
    grid = Grid2D(16, bc="periodic")
    nu, alpha, c, T = 0.05, 0.5, 3.0, 1.0
    lam = 2 * nu * (2 * math.pi) ** 2 + alpha
    shape = taylor_green(grid, 0.0, nu, amplitude=0.1)
    exact = shape * (math.exp(-lam * T) + c / lam * (1 - math.exp(-lam * T)))
    dts = [0.2, 0.1, 0.05, 0.025]
    errs = {st: [_rel(NavierStokes2D(grid, nu=nu, forcing=c * shape, drag=alpha, record_times=T, dt=dt,
                                     stepper=st)(shape), exact) for dt in dts] for st in ("rk4", "heun")}
    assert min(_orders(dts, errs["rk4"])) > 3.8, errs["rk4"]
    assert convergence_order(dts, errs["rk4"]) > 3.8
    assert min(_orders(dts, errs["heun"])) > 1.9, errs["heun"]       # the baseline really is second order
    assert all(r < h / 5 for r, h in zip(errs["rk4"], errs["heun"]))


def test_taylor_green_with_drag_decays_at_the_exact_rate():
    """Unforced Taylor--Green with drag: w = w0 exp(-(2 nu kappa^2 + alpha) t).  RK4's integrating factor
    is exact (round-off, even at a coarse step); Heun's Crank--Nicolson factor ((1-a)/(1+a))^n,
    a = dt lam / 2, is reproduced to round-off and converges to the exact decay as dt^2.
    Batched with one drag per sample (alpha = 0 is the drag-free case)."""
    grid = Grid2D(16, bc="periodic")
    nu, T, k = 0.01, 0.6, 2
    kap = 2 * math.pi * k
    alphas = torch.tensor([0.0, 0.5, 3.0], dtype=torch.float64)
    w0 = taylor_green(grid, 0.0, nu, k=k, amplitude=0.05).expand(3, 1, 16, 16)
    lam = 2 * nu * kap ** 2 + alphas
    exact = w0 * torch.exp(-lam * T).reshape(3, 1, 1, 1)
    w = NavierStokes2D(grid, nu=nu, forcing=None, drag=alphas, record_times=T, dt=0.1, stepper="rk4")(w0)
    for i in range(3):
        assert _rel(w[i], exact[i]) < 1e-13
        rate = -math.log(float(w[i].norm() / w0[i].norm())) / T
        assert abs(rate - float(lam[i])) < 1e-12 * float(lam[i])
    for dt in (0.02, 0.01):
        wh = NavierStokes2D(grid, nu=nu, forcing=None, drag=alphas, record_times=T, dt=dt)(w0)
        a = 0.5 * dt * lam
        cn = w0 * (((1 - a) / (1 + a)) ** round(T / dt)).reshape(3, 1, 1, 1)
        for i in range(3):
            assert _rel(wh[i], cn[i]) < 1e-12
    # drag changes nothing when alpha = 0 (the default)
    w_default = NavierStokes2D(grid, nu=nu, forcing=None, record_times=T, dt=0.1, stepper="rk4")(w0[:1])
    assert _rel(w_default, w[:1]) < 1e-15


def _random_forced_case(n=32, scale=3.0, seed=3):
    grid = Grid2D(n, bc="periodic")
    w0 = GaussianRandomField(grid, **NS_LAW).sample(2, seed=seed) * scale    # x3: a strongly nonlinear run
    return grid, w0


def test_self_convergence_order_on_random_forced_vorticity():
    """Smooth random w0, FNO forcing, drag, 32^2: dt, dt/2, dt/4 against a dt/16 reference.
    The reference's own error is 16^4 = 65536x below the coarsest step's, and the two successive
    orders agree (the asymptotic regime)."""
    grid, w0 = _random_forced_case()
    T = 0.5
    kw = dict(nu=1e-3, drag=0.1, record_times=T, stepper="rk4")
    dts = [T / 5, T / 10, T / 20]
    ref = NavierStokes2D(grid, dt=dts[0] / 16, **kw)(w0)
    errs = [_rel(NavierStokes2D(grid, dt=dt, **kw)(w0), ref) for dt in dts]
    orders = _orders(dts, errs)
    assert min(orders) > 3.8, (orders, errs)
    assert abs(orders[0] - orders[1]) < 0.15, orders
    assert errs[-1] > 1e3 * 1e-16 * math.sqrt(w0[0].numel())     # far above round-off
    # the solution really moved nonlinearly
    assert _rel(ref, w0) > 0.1


def test_rk4_agrees_with_the_converged_heun_answer():
    """Heun at a small step h/2 has error e ~ |H(h) - H(h/2)| / 3 (Richardson, second order);
    RK4 at a 16x larger step must sit at that distance from it (not further), and the Richardson
    extrapolate (4 H(h/2) - H(h)) / 3 must agree with RK4 far better than e."""
    grid, w0 = _random_forced_case()
    T = 0.5
    kw = dict(nu=1e-3, record_times=T)
    h1 = NavierStokes2D(grid, dt=T / 320, **kw)(w0)
    h2 = NavierStokes2D(grid, dt=T / 640, **kw)(w0)
    r = NavierStokes2D(grid, dt=T / 40, stepper="rk4", **kw)(w0)
    e_heun = _rel(h1, h2) / 3
    ratio = _rel(r, h2) / e_heun
    assert 0.8 < ratio < 1.25, (ratio, e_heun)
    assert _rel(r, (4 * h2 - h1) / 3) < 0.05 * e_heun


def _misfit(problem, m_true, n_points=20, seed=0):
    obs = PointObservation.random(problem.state_grid, n=n_points, seed=seed)
    y = obs(problem(m_true)).detach()
    return lambda m: 0.5 * (obs(problem(m)) - y).pow(2).sum()


@pytest.mark.parametrize("checkpoint", [None, 3])
def test_gradient_wrt_initial_vorticity_through_rk4(checkpoint):
    grid = Grid2D(16, bc="periodic")
    w_true, w_probe, dm = GaussianRandomField(grid, **NS_LAW).sample(3, seed=4).split(1)
    p = NavierStokes2D(grid, record_times=[0.1, 0.2], dt=0.05, drag=0.2, stepper="rk4", checkpoint=checkpoint)
    assert taylor_test(_misfit(p, w_true), w_probe, dm) > 1.9


@pytest.mark.parametrize("checkpoint", [None, 2])
def test_gradient_wrt_drag_through_rk4(checkpoint):
    grid = Grid2D(16, bc="periodic")
    w0 = GaussianRandomField(grid, **NS_LAW).sample(1, seed=6) * 3.0
    p = NavierStokes2D(grid, w0=w0, unknown="drag", record_times=[0.2, 0.4], dt=0.1, stepper="rk4",
                       checkpoint=checkpoint)
    assert p.grid.shape == (1,)
    a_true = torch.full((1, 1, 1), 0.5, dtype=torch.float64)
    assert taylor_test(_misfit(p, a_true), a_true * 0.6, a_true * 0.4) > 1.9


def test_checkpointing_gives_the_same_rk4_gradient():
    grid = Grid2D(16, bc="periodic")
    w_true, w_probe = GaussianRandomField(grid, **NS_LAW).sample(2, seed=5).split(1)
    grads = []
    for ck in (None, 1, "sqrt"):
        p = NavierStokes2D(grid, record_times=[0.1, 0.3], dt=0.05, stepper="rk4", checkpoint=ck)
        m = w_probe.clone().requires_grad_(True)
        grads.append(torch.autograd.grad(_misfit(p, w_true)(m), m)[0])
    for g in grads[1:]:
        assert _rel(g, grads[0]) < 1e-12


def test_batch_equals_single_solves_with_per_sample_drag():
    grid = Grid2D(16, bc="periodic")
    w0 = GaussianRandomField(grid, **NS_LAW).sample(3, seed=0)
    alphas = torch.tensor([0.0, 0.3, 1.0], dtype=torch.float64)
    wb = NavierStokes2D(grid, record_times=[0.1, 0.2], dt=0.05, drag=alphas, stepper="rk4")(w0)
    assert wb.shape == (3, 2, 1, 16, 16)
    for i in range(3):
        wi = NavierStokes2D(grid, record_times=[0.1, 0.2], dt=0.05, drag=float(alphas[i]), stepper="rk4")(w0[i:i + 1])
        assert _rel(wi, wb[i:i + 1]) < 1e-13
    # the drag acts: from the same w0, a larger alpha leaves a smaller enstrophy
    same = NavierStokes2D(grid, record_times=0.2, dt=0.05, drag=alphas, stepper="rk4")(w0[:1].expand(3, -1, -1, -1))
    ens = same.pow(2).mean((-3, -2, -1))
    assert bool((ens[1:] < ens[:-1]).all())


def test_bad_stepper_drag_and_step_raise():
    grid = Grid2D(16, bc="periodic")
    with pytest.raises(ValueError, match="stepper"):
        NavierStokes2D(grid, stepper="rk5")
    with pytest.raises(ValueError, match="drag"):
        NavierStokes2D(grid, drag=-0.1)
    with pytest.raises(ValueError, match="drag"):
        NavierStokes2D(grid, drag=torch.tensor([0.1, -0.2]))
    p = NavierStokes2D(grid, w0=taylor_green(grid, 0.0, 0.01), unknown="drag", stepper="rk4")
    with pytest.raises(ValueError, match="drag"):
        p(torch.tensor([-1.0], dtype=torch.float64))
    # the explicit-advection step check applies to RK4 as to Heun
    w0 = taylor_green(grid, 0.0, 0.01)          # max|u| = 1
    with pytest.raises(ValueError, match="Courant"):
        NavierStokes2D(grid, forcing=None, record_times=1.0, dt=0.5, stepper="rk4")(w0)


def test_rk4_is_stable_up_to_its_courant_limit_where_heun_is_not():
    """RK4 is stable on the imaginary axis up to 2 sqrt(2), hence its Courant limit 2 (Heun: 1).  A weakly
    viscous, strongly nonlinear unforced run at Courant 1.9 for 200 steps: RK4's enstrophy decreases at
    every step (as the exact flow's does); Heun at the same step is refused, and run anyway it blows up."""
    grid = Grid2D(32, bc="periodic")
    w0 = GaussianRandomField(grid, **NS_LAW).sample(2, seed=1) * 10.0
    nu, steps = 1e-4, 200
    dt = 1.9 / NavierStokes2D(grid, forcing=None, record_times=1.0, dt=1.0).courant(w0)
    times = [dt * (i + 1) for i in range(steps)]
    p = NavierStokes2D(grid, nu=nu, forcing=None, record_times=times, dt=dt, stepper="rk4")
    assert 1.8 < p.courant(w0) < 2.0
    w = p(w0)
    ens = torch.cat([w0[:, None], w], 1).pow(2).mean((-3, -2, -1))
    assert bool((ens[:, 1:] < ens[:, :-1]).all())
    assert _rel(w[:, -1], w0) > 0.3                                   # it evolved
    with pytest.raises(ValueError, match="Courant"):
        NavierStokes2D(grid, nu=nu, forcing=None, record_times=times, dt=dt)(w0)
    wh = simulate(grid, w0, nu, None, 1.0, p.plan, single=True)     # Heun, bypassing the check
    assert not bool(torch.isfinite(wh).all()) or float(wh.pow(2).mean()) > float(ens[:, 0].max())


def test_batch_chunking_of_large_batches_changes_nothing(monkeypatch):
    """Large batches are advected in chunks (faster CPU FFTs); forcing one chunk per 2 samples at 16²
    must give the one-call answer, with the forcing, the drag and the gradient."""
    import pdeinv.physics.navier_stokes as ns
    grid = Grid2D(16, bc="periodic")
    w0 = GaussianRandomField(grid, **NS_LAW).sample(5, seed=8).requires_grad_(True)
    p = NavierStokes2D(grid, record_times=0.2, dt=0.05, drag=0.1, stepper="rk4")
    w = p(w0)
    (g,) = torch.autograd.grad(w.pow(2).sum(), w0)
    monkeypatch.setattr(ns, "BATCH_CHUNK", 2 * 16 * 9)
    wc = p(w0)
    (gc,) = torch.autograd.grad(wc.pow(2).sum(), w0)
    assert _rel(wc.detach(), w.detach()) < 1e-13 and _rel(gc, g) < 1e-13
