"""2-D wave equation (leapfrog FD): measured second order, exact discrete energy, CFL, gradients in c(x)."""
import math

import pytest
import torch

from pdeinv.checks import convergence_order, taylor_test
from pdeinv.physics import Grid2D, PointObservation
from pdeinv.physics.wave import Wave2D, energy, gaussian_pulse, ricker



def standing_mode(grid, t, c):
    """u = sin(pi x) sin(pi y) cos(sqrt(2) pi c t): exact for constant c, u = 0 on the boundary of [0,1]^2."""
    X, Y = grid.mesh()
    return (torch.sin(math.pi * X) * torch.sin(math.pi * Y) * math.cos(math.sqrt(2) * math.pi * c * t))[None, None]


def smooth_speed(grid, low=1.0, high=1.5):
    X, Y = grid.mesh()
    return (low + (high - low) * torch.exp(-((X - 0.6) ** 2 + (Y - 0.4) ** 2) / 0.02))[None, None]


def test_second_order_convergence_constant_speed():
    c, T = 1.0, 0.5
    hs, errs = [], []
    for n in (9, 17, 33, 65):
        g = Grid2D(n)
        dt = 0.5 * g.h / c                                  # fixed Courant ratio: dt ~ h
        p = Wave2D(g, c=c, unknown="u0", record_times=T, dt=dt)
        u = p(standing_mode(g, 0, c))
        hs.append(g.h); errs.append(float((u - standing_mode(g, T, c)).abs().max()))
    order = convergence_order(hs, errs)
    assert 1.9 < order < 2.2, (order, errs)


@pytest.mark.parametrize("variable", [False, True])
def test_discrete_energy_is_conserved(variable):
    g = Grid2D(33)
    c = smooth_speed(g) if variable else torch.ones(1, 1, 33, 33, dtype=torch.float64)
    dt = 0.9 / (float(c.max()) * math.sqrt(2) / g.h)
    N = 120
    p = Wave2D(g, c=c, u0=gaussian_pulse(g, width=0.08), unknown="c", record_times=[dt * (k + 1) for k in range(N)], dt=dt)
    u = p(c)
    E = torch.stack([energy(u[:, k + 1], u[:, k], c, dt, g) for k in range(N - 1)])
    assert float(E.min()) > 0
    assert float((E - E[0]).abs().max() / E[0]) < 1e-12
    assert float(u[:, -1].abs().max()) < 0.9 * float(u[:, 0].abs().max())   # the pulse did travel


def test_cfl_violation_is_refused():
    g = Grid2D(17)
    c = torch.full((1, 1, 17, 17), 2.0, dtype=torch.float64)
    limit = g.h / (2.0 * math.sqrt(2))
    p = Wave2D(g, u0=gaussian_pulse(g), record_times=0.1, dt=1.05 * limit)
    with pytest.raises(ValueError, match="CFL"):
        p(c)
    # just inside the limit it runs: the discrete energy is conserved to round-off and positive, and the step is
    # in the convergent regime -- halving it from there (1, 1/2, 1/4, 1/8 of it, against 1/32) gives order 2
    n_steps = math.ceil(0.5 / (0.99 * limit))
    dt = 0.5 / n_steps
    p = Wave2D(g, u0=gaussian_pulse(g), record_times=[dt, 2 * dt, (n_steps - 1) * dt, n_steps * dt], dt=dt)
    u = p(c)
    E_start, E_end = energy(u[:, 1], u[:, 0], c, dt, g), energy(u[:, 3], u[:, 2], c, dt, g)
    assert float(E_start.min()) > 0
    assert float(((E_end - E_start) / E_start).abs().max()) < 1e-12
    runs = {f: Wave2D(g, u0=gaussian_pulse(g), record_times=[0.5], dt=dt / f)(c) for f in (1, 2, 4, 8, 32)}
    errs = [float((runs[f] - runs[32]).norm()) for f in (1, 2, 4, 8)]
    assert abs(convergence_order([dt / f for f in (1, 2, 4, 8)], errs) - 2) < 0.2, errs
    assert torch.allclose(runs[1][:, 0], u[:, 3])
    with pytest.raises(ValueError, match="> 0"):
        p(-c)
    with pytest.raises(ValueError, match="Dirichlet"):
        Wave2D(Grid2D(16, bc="periodic"), u0=0.0)


def _receiver_misfit(p, c_true, g, ck=None):
    side = torch.linspace(0.1, 0.9, 6, dtype=torch.float64)
    rec = torch.cat([torch.stack([side, torch.full_like(side, 0.1)], 1), torch.stack([side, torch.full_like(side, 0.9)], 1)])
    obs = PointObservation(g, rec)
    y = obs(p(c_true)).detach()
    return lambda c: 0.5 * (obs(p(c)) - y).pow(2).sum()


@pytest.mark.parametrize("checkpoint", [None, 7])
def test_gradient_wrt_wave_speed(checkpoint):
    g = Grid2D(17)
    c_true = smooth_speed(g)
    dt = 0.01
    times = [dt * (k + 1) for k in range(40)]
    p = Wave2D(g, sources=[(0.5, 0.5)], source_time=lambda t: ricker(t, f0=8.0), record_times=times, dt=dt,
               checkpoint=checkpoint)
    J = _receiver_misfit(p, c_true, g)
    X, Y = g.mesh()
    dc = (0.2 * torch.sin(math.pi * X) * torch.cos(2 * math.pi * Y))[None, None]
    assert taylor_test(J, torch.full_like(c_true, 1.2), dc) > 1.9


def test_checkpointing_gives_the_same_gradient():
    g = Grid2D(17)
    c_true = smooth_speed(g)
    grads = []
    for ck in (None, 5, "sqrt"):
        p = Wave2D(g, u0=gaussian_pulse(g, center=(0.3, 0.5), width=0.08), record_times=[0.1 * (k + 1) for k in range(4)],
                   dt=0.01, checkpoint=ck)
        J = _receiver_misfit(p, c_true, g)
        c = torch.full_like(c_true, 1.2).requires_grad_(True)
        grads.append(torch.autograd.grad(J(c), c)[0])
    for gr in grads[1:]:
        assert float((gr - grads[0]).norm() / grads[0].norm()) < 1e-12


def test_residual_vanishes_on_the_schemes_own_frames():
    sizes = []
    for n in (17, 33):
        g = Grid2D(n)
        c = smooth_speed(g)
        dt = 0.2 * g.h
        p = Wave2D(g, u0=gaussian_pulse(g, width=0.1), record_times=[dt * (k + 1) for k in range(round(0.2 / dt))], dt=dt)
        r = p.residual(c, p(c))
        sizes.append(float(r.abs().max()))
    # frames are every step: the residual is the scheme's own (zero up to round-off)
    assert max(sizes) < 1e-8
