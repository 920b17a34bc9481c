"""1-D viscous Burgers (pseudo-spectral): Cole-Hopf exact solution, measured orders, shocks, gradients."""
import math

import pytest
import torch

from pdeinv.checks import convergence_order, taylor_test
from pdeinv.physics import GaussianRandomField, Grid1D, PointObservation
from pdeinv.physics.burgers import Burgers1D



def cole_hopf(grid, t, nu, a=0.5):
    r"""Exact periodic solution u = -2 nu phi_x / phi, phi = 1 + a e^{-4 pi^2 nu t} cos(2 pi x) (heat equation)."""
    x = grid.coords()[0]
    e = a * math.exp(-4 * math.pi ** 2 * nu * t)
    return (4 * math.pi * nu * e * torch.sin(2 * math.pi * x) / (1 + e * torch.cos(2 * math.pi * x)))[None, None]


def _rel(a, b):
    return float((a - b).norm() / b.norm())


def test_cole_hopf_spectral_in_space():
    nu, T = 0.05, 0.2
    errs = []
    for n in (16, 24, 32):
        g = Grid1D(n)
        u = Burgers1D(g, nu=nu, record_times=T, dt=1e-4)(cole_hopf(g, 0, nu))
        errs.append(_rel(u, cole_hopf(g, T, nu)))
    assert errs[-1] < 1e-7, errs
    assert errs[0] / errs[1] > 20 and errs[1] / errs[2] > 20, errs      # geometric decay in n


def test_cole_hopf_second_order_in_time():
    nu, T = 0.05, 0.2
    g = Grid1D(64)
    exact = cole_hopf(g, T, nu)
    dts = [T / 10, T / 20, T / 40, T / 80]
    errs = [_rel(Burgers1D(g, nu=nu, record_times=T, dt=dt)(cole_hopf(g, 0, nu)), exact) for dt in dts]
    order = convergence_order(dts, errs)
    assert order > 1.9, (order, errs)
    assert errs[-1] < 1e-5


def test_shock_forming_initial_condition_stays_bounded_and_conserves_mean():
    """u0 = sin(2 pi x) + 1/2 steepens into a shock at t = 1/(2 pi); nu = 1e-3 is not resolved by 128 points."""
    g = Grid1D(128)
    x = g.coords()[0]
    u0 = (torch.sin(2 * math.pi * x) + 0.5)[None, None]
    times = [0.05 * (i + 1) for i in range(20)]
    u = Burgers1D(g, nu=1e-3, record_times=times)(u0)
    assert torch.isfinite(u).all()
    assert float(u.abs().max()) < 1.25 * float(u0.abs().max())               # no blow-up, bounded Gibbs overshoot
    assert float((u.mean(-1) - 0.5).abs().max()) < 1e-14                     # mean conserved exactly
    energy = torch.cat([u0[:, None], u], 1).pow(2).mean((-2, -1))[0]
    assert bool((energy[1:] < energy[:-1]).all())                            # d/dt |u|^2/2 = -nu |u_x|^2 < 0
    # a shock did form: the steepest slope grew by more than 10x
    slope0 = float((u0.roll(-1, -1) - u0).abs().max()) / g.h
    slope = float((u[:, 5].roll(-1, -1) - u[:, 5]).abs().max()) / g.h
    assert slope > 10 * slope0


def test_benchmark_law_is_resolved_and_stable_at_256():
    g = Grid1D(256)
    u0 = GaussianRandomField(g, alpha=2, tau=5, sigma=25).sample(2, seed=0)
    p = Burgers1D(g, nu=0.01, record_times=[0.5, 1.0])
    u = p(u0)
    assert float(u.abs().max()) <= float(u0.abs().max()) * (1 + 1e-6)       # maximum principle
    spec = torch.fft.rfft(u[:, -1, 0]).abs()
    assert float(spec[:, 80:].max() / spec.max()) < 1e-8                      # spectrum decayed below the 2/3 cut
    assert float((u[:, -1].mean(-1) - u0.mean(-1)).abs().max()) < 1e-14


@pytest.mark.parametrize("checkpoint", [None, 5])
def test_gradients_wrt_initial_condition_and_viscosity(checkpoint):
    g = Grid1D(32)
    grf = GaussianRandomField(g, alpha=2, tau=5, sigma=25)
    u_true, u_probe, du = grf.sample(3, seed=1).split(1)
    obs = PointObservation.random(g, n=8, seed=0)
    p = Burgers1D(g, nu=0.02, record_times=[0.1, 0.2], dt=0.005, checkpoint=checkpoint)
    y = obs(p(u_true)).detach()
    J = lambda m: 0.5 * (obs(p(m)) - y).pow(2).sum()
    assert taylor_test(J, u_probe, du) > 1.9
    pv = Burgers1D(g, unknown="viscosity", u0=u_true, record_times=[0.1, 0.2], dt=0.005, checkpoint=checkpoint)
    assert pv.grid.shape == (1,) and pv.state_grid is g
    nu_true = torch.full((1, 1, 1), 0.02, dtype=torch.float64)
    yv = obs(pv(nu_true)).detach()
    Jv = lambda m: 0.5 * (obs(pv(m)) - yv).pow(2).sum()
    assert taylor_test(Jv, 0.6 * nu_true, 0.4 * nu_true) > 1.9


def test_checkpointing_gives_the_same_gradient():
    g = Grid1D(32)
    u0 = GaussianRandomField(g, alpha=2, tau=5, sigma=25).sample(1, seed=2)
    grads = []
    for ck in (None, 3, "sqrt"):
        p = Burgers1D(g, nu=0.02, record_times=[0.1, 0.3], dt=0.005, checkpoint=ck)
        m = u0.clone().requires_grad_(True)
        grads.append(torch.autograd.grad(p(m).pow(3).sum(), m)[0])
    for gr in grads[1:]:
        assert _rel(gr, grads[0]) < 1e-12


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="periodic"):
        Burgers1D(Grid1D(16, bc="dirichlet"))
    g = Grid1D(64)
    with pytest.raises(ValueError, match="Courant"):
        Burgers1D(g, dt=0.1)(cole_hopf(g, 0, 0.05) * 100)
    with pytest.raises(ValueError, match="shape"):
        Burgers1D(g)(torch.zeros(1, 1, 32, dtype=torch.float64))
    with pytest.raises(ValueError, match="> 0"):
        Burgers1D(g, nu=0.0)


def test_benchmark_law_scale_is_625_as_covariance_factor():
    """N(0, 625 (-Lap + 25 I)^-2): point-wise variance sum_k 625 (4 pi^2 k^2 + 25)^-2 (about 1.35, 1 of it from the
    mean mode), as in FNO's GRF1 with sigma = 25 -- not sigma = 625, which would be 625 times larger."""
    from scipy import stats
    from pdeinv.tasks import get_task
    n, S = 64, 16000
    k = torch.fft.fftfreq(n, 1.0 / n, dtype=torch.float64)
    lam = 625 * (4 * math.pi ** 2 * k ** 2 + 25) ** -2                  # each Fourier mode's share of the variance
    var = float(lam.sum())
    u0 = get_task("burgers").sample_m(Grid1D(n), S, seed=0)
    # the mean of u^2 over one periodic sample has variance 2 sum_k lam_k^2 (circulant covariance); over S samples
    # the relative standard error is sqrt(2 sum lam^2 / S) / var: the estimate is inside its 0.999 normal interval
    se = math.sqrt(2 * float((lam ** 2).sum()) / S) / var
    assert abs(float(u0.var()) / var - 1) < stats.norm.ppf(0.9995) * se, (float(u0.var()) / var, se)
