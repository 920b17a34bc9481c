"""Burgers on [a, b] with Dirichlet / Neumann / periodic conditions (BurgersBC), and problems on shifted domains.

Reference data: deepxde's Raissi Burgers solution (tests/fixtures/burgers_raissi_frames.npz); manufactured
solutions: Cole-Hopf (exact, with time-dependent Dirichlet data or Neumann data taken from it) and a forced
polynomial/trigonometric solution (source term); Taylor tests for nu, u0 and the boundary data.
"""
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from pdeinv.checks import convergence_order, taylor_test
from pdeinv.physics import BurgersBC, Grid1D, Grid2D, PointObservation, Poisson, Wave2D
from pdeinv.physics.wave import ricker
from pdeinv.tasks import TASKS
from pdeinv.tasks.burgers_bc import RAISSI_NU, raissi_u0

FIXTURE = Path(__file__).parent / "fixtures" / "burgers_raissi_frames.npz"

# Cole-Hopf: phi = 1 + A exp(-nu K^2 t) cos(K x + P) solves phi_t = nu phi_xx, u = -2 nu phi_x / phi
NU, A, K, P = 0.05, 0.8, 2 * math.pi, 0.3
XA, XB, T = -0.7, 0.6, 0.5


def cole_hopf(x, t):
    e = A * math.exp(-NU * K * K * t)
    return 2 * NU * K * e * torch.sin(K * x + P) / (1 + e * torch.cos(K * x + P))


def cole_hopf_x(x, t):
    e = A * math.exp(-NU * K * K * t)
    c = torch.cos(K * x + P)
    return 2 * NU * K * K * e * (c + e) / (1 + e * c) ** 2


def _ends(f):
    ends = torch.tensor([XA, XB], dtype=torch.float64)
    return lambda t: f(ends, t)[None]


def _rel(a, b):
    return float((a - b).norm() / b.norm())


# ----------------------------------------------------------------------------- reference data


def _raissi_error(k, courant=2.0):
    """Relative L2 error over the shipped frames with 255 k + 1 nodes (they contain the reference nodes)."""
    d = np.load(FIXTURE)
    ref, t = torch.tensor(d["u"]), [float(s) for s in d["t"]]
    task = TASKS["burgers_dirichlet"]
    grid, problem = task.make(255 * k + 1, record_times=t[1:], courant=courant)
    u0 = raissi_u0(grid)
    u = torch.cat([u0[:, None], problem(u0)], 1)[0, :, 0]
    idx = list(range(0, grid.n - 1, 2 * k)) + [grid.n - 1]
    assert torch.allclose(grid.coords()[0][idx], torch.tensor(d["x"]), atol=1e-14)
    return _rel(u[:, idx], ref)


def test_dirichlet_burgers_matches_the_raissi_reference():
    """u(+-1) = 0, nu = 0.01/pi, u0 = -sin(pi x): within 1e-4 of the Chebyshev reference at 2041 nodes, and the
    error falls at the scheme's second order from 1021 nodes (so the agreement is convergence, not luck)."""
    e_fine, e_coarse = _raissi_error(8), _raissi_error(4)
    assert e_fine < 1e-4, (e_fine, e_coarse)
    assert math.log2(e_coarse / e_fine) > 1.8, (e_fine, e_coarse)


def test_viscosity_is_identified_from_the_reference_frames_within_one_percent():
    """The misfit to the 10 reference frames after t = 0, through the 1021-node solver, decreases at 0.99 nu
    and increases at 1.01 nu: its minimiser (the MAP estimate without noise) is within 1 % of 0.01/pi
    (Gauss-Newton puts it 0.38 % off at 1021 nodes, 1.4 % at 511: the solver's own error)."""
    d = np.load(FIXTURE)
    ref, t = torch.tensor(d["u"][1:]), [float(s) for s in d["t"][1:]]
    grid = TASKS["burgers_dirichlet"].grid(1021)
    idx = list(range(0, grid.n - 1, 8)) + [grid.n - 1]
    p = BurgersBC(grid, unknown="viscosity", u0=raissi_u0(grid), record_times=t, courant=2.0)
    slopes = []
    for f in (0.99, 1.01):
        nu = torch.tensor([f * RAISSI_NU], dtype=torch.float64, requires_grad=True)
        (0.5 * (p(nu)[0, :, 0][:, idx] - ref).pow(2).sum()).backward()
        slopes.append(float(nu.grad))
    assert slopes[0] < 0 < slopes[1], slopes


def test_task_defaults_and_law():
    task = TASKS["burgers_dirichlet"]
    grid, problem = task.make()
    assert grid.bounds == (-1.0, 1.0) and grid.n == 1021 and problem.nu == RAISSI_NU
    assert problem.record_times[0] == 0.01 and problem.record_times[-1] == 0.99
    m = task.sample_m(grid, 64, seed=0)
    assert float(m[..., [0, -1]].abs().max()) < 1e-12                     # the law satisfies u(+-1) = 0
    assert abs(float(m.std()) - float(raissi_u0(grid).std())) < 0.1       # pointwise std ~ that of -sin(pi x)


# ----------------------------------------------------------------------------- manufactured solutions


def _space_orders(bc, ns=(33, 65, 129, 257)):
    errs = []
    for n in ns:
        g = Grid1D.interval(XA, XB, n)
        x = g.coords()[0]
        data = _ends(cole_hopf if bc == "dirichlet" else cole_hopf_x)
        u = BurgersBC(g, nu=NU, bc=bc, boundary=data, record_times=T)(cole_hopf(x, 0)[None, None])
        errs.append(_rel(u[0, 0], cole_hopf(x, T)))
    hs = [(XB - XA) / (n - 1) for n in ns]
    return convergence_order(hs[-3:], errs[-3:]), errs


@pytest.mark.parametrize("bc", ["dirichlet", "neumann"])
def test_cole_hopf_second_order_in_space(bc):
    """Exact solution on [-0.7, 0.6]; Dirichlet data u(a, t), u(b, t) (time-dependent) or Neumann data u_x from
    it; dt = h / max|u| shrinks with h, so the third-order time error is below the spatial one."""
    order, errs = _space_orders(bc)
    assert 1.9 < order < 2.2, (order, errs)
    assert errs[-1] < 2e-3, errs


def test_periodic_finite_difference_second_order():
    nu, errs, ns = 0.05, [], (32, 64, 128)

    def exact(x, t):
        e = 0.5 * math.exp(-4 * math.pi ** 2 * nu * t)
        return 4 * math.pi * nu * e * torch.sin(2 * math.pi * x) / (1 + e * torch.cos(2 * math.pi * x))
    for n in ns:
        g = Grid1D(n, bc="periodic", origin=-0.3)
        x = g.coords()[0]
        errs.append(_rel(BurgersBC(g, nu=nu, bc="periodic", record_times=T)(exact(x, 0)[None, None])[0, 0],
                         exact(x, T)))
    order = convergence_order([1 / n for n in ns], errs)
    assert 1.9 < order < 2.2, (order, errs)


@pytest.mark.parametrize("bc", ["dirichlet", "neumann"])
def test_time_order_of_the_imex_scheme(bc):
    """ARS(3,4,3) is third order; with time-dependent boundary data some order reduction is allowed (> 2.5)."""
    g = Grid1D.interval(XA, XB, 129)
    x = g.coords()[0]
    data = _ends(cole_hopf if bc == "dirichlet" else cole_hopf_x)

    def run(dt):
        return BurgersBC(g, nu=NU, bc=bc, boundary=data, record_times=T, dt=dt)(cole_hopf(x, 0)[None, None])
    ref = run(T / 1920)
    dts = [T / 60, T / 120, T / 240]
    errs = [_rel(run(dt), ref) for dt in dts]
    order = convergence_order(dts, errs)
    assert order > 2.5, (order, errs)


def test_source_term_manufactured_solution():
    r"""u = e^{-t} sin(pi x) + x t on [-1, 1] with f = u_t + u u_x - nu u_xx; u(+-1, t) = +-t."""
    nu, T1, errs, ns = 0.02, 0.5, [], (33, 65, 129)

    def exact(x, t):
        return math.exp(-t) * torch.sin(math.pi * x) + x * t

    def source(x, t):
        e = math.exp(-t)
        u = exact(x, t)
        ux = math.pi * e * torch.cos(math.pi * x) + t
        return -e * torch.sin(math.pi * x) + x + u * ux + nu * math.pi ** 2 * e * torch.sin(math.pi * x)
    for n in ns:
        g = Grid1D.interval(-1.0, 1.0, n)
        x = g.coords()[0]
        p = BurgersBC(g, nu=nu, boundary=lambda t: torch.tensor([[-t, t]], dtype=torch.float64),
                      record_times=T1, source=source)
        errs.append(_rel(p(exact(x, 0)[None, None])[0, 0], exact(x, T1)))
    order = convergence_order([2 / (n - 1) for n in ns], errs)
    assert 1.9 < order < 2.2, (order, errs)


# ----------------------------------------------------------------------------- gradients and batches


def _J(problem, w):
    def J(m):
        u = problem(m)
        return (w * u).sum() + (u ** 4).sum()          # strongly non-linear: a clean h^2 remainder
    return J


def _taylor(problem, m, dm):
    w = torch.randn(problem(m).shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    J = _J(problem, w)
    mm = m.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(J(mm), mm)
    return taylor_test(J, m, dm, h0=0.5, n=4, grad=grad)


def _small(bc="dirichlet", **kw):
    g = Grid1D.interval(-1.0, 2.0, 49)
    x = g.coords()[0]
    u0 = (torch.sin(math.pi * (x + 1) / 3) + 0.3 * torch.cos(2 * x))[None, None]
    return g, u0, dict(nu=0.05, bc=bc, record_times=[0.2, 0.4], **kw)


@pytest.mark.parametrize("bc", ["dirichlet", "neumann"])
def test_taylor_viscosity(bc):
    g, u0, kw = _small(bc, boundary=(0.2, -0.1))
    p = BurgersBC(g, unknown="viscosity", u0=u0, dt=0.02, **kw)
    rate = _taylor(p, torch.tensor([0.05], dtype=torch.float64), torch.tensor([0.03], dtype=torch.float64))
    assert 1.8 < rate < 2.2, rate


@pytest.mark.parametrize("bc", ["dirichlet", "neumann"])
def test_taylor_initial_condition(bc):
    g, u0, kw = _small(bc, boundary=(0.2, -0.1))
    p = BurgersBC(g, dt=0.02, **kw)
    dm = 0.3 * torch.cos(3 * g.coords()[0])[None, None]
    rate = _taylor(p, u0, dm)
    assert 1.8 < rate < 2.2, rate


@pytest.mark.parametrize("bc", ["dirichlet", "neumann"])
def test_taylor_boundary_data(bc):
    """Time-dependent data tabulated at 4 knots (linear in between): m is (B, 2, 4)."""
    g, u0, kw = _small(bc)
    knots = [0.0, 0.1, 0.25, 0.4]
    p = BurgersBC(g, unknown="boundary", boundary_times=knots, u0=u0, dt=0.02, **kw)
    assert tuple(p.grid.shape) == (4,)
    m = torch.tensor([[[0.0, 0.3, 0.5, 0.2], [0.4, 0.1, -0.2, 0.0]]], dtype=torch.float64)
    dm = torch.tensor([[[0.5, -0.3, 0.4, 0.6], [0.2, 0.5, -0.4, 0.3]]], dtype=torch.float64)
    rate = _taylor(p, m, dm)
    assert 1.8 < rate < 2.2, rate


def test_a_batch_gives_each_sample_its_own_answer():
    """Different amplitudes give different automatic steps; viscosities and data differ per sample."""
    g, u0, _ = _small()
    u0s = torch.cat([u0, 3 * u0], 0)
    f64 = dict(dtype=torch.float64)
    p = BurgersBC(g, nu=torch.tensor([0.05, 0.02], **f64), boundary=torch.tensor([[0.1, 0.0], [-0.2, 0.3]], **f64),
                  record_times=[0.2, 0.4])
    u = p(u0s)
    for b in range(2):
        pb = BurgersBC(g, nu=[0.05, 0.02][b], boundary=[[0.1, 0.0], [-0.2, 0.3]][b], record_times=[0.2, 0.4])
        assert torch.allclose(u[b:b + 1], pb(u0s[b:b + 1]), rtol=1e-12, atol=1e-13)
    assert u.shape == (2, 2, 1, g.n)
    assert torch.allclose(u[:, -1, 0, 0], torch.tensor([0.1, -0.2], dtype=torch.float64))   # Dirichlet ends


def test_bad_input_is_refused_clearly():
    g, u0, kw = _small()
    with pytest.raises(ValueError, match="Courant"):
        BurgersBC(g, dt=1.0, **kw)(u0)
    with pytest.raises(ValueError, match="node layout"):
        BurgersBC(Grid1D(48, bc="periodic"), bc="dirichlet")
    with pytest.raises(ValueError, match="no boundary data"):
        BurgersBC(Grid1D(48), bc="periodic", unknown="boundary", u0=torch.zeros(1, 1, 48))
    with pytest.raises(ValueError, match="bc="):
        BurgersBC(g, bc="robin")
    with pytest.raises(ValueError, match="boundary_times"):
        BurgersBC(g, boundary=torch.zeros(1, 2, 3))
    with pytest.raises(ValueError, match="viscosity"):
        BurgersBC(g, nu=-1.0)


# ----------------------------------------------------------------------------- other problems on shifted domains


def test_elliptic_manufactured_solution_on_a_shifted_square():
    r"""Lap u = f (Poisson's sign convention) on [-1, 1]^2 with u = e^{x} sin(pi (y + 1) / 2) + x y (data
    without a symmetry that would hide a wrong origin): measured order 2."""
    errs, ns = [], (17, 33, 65)
    for n in ns:
        g = Grid2D.rectangle((-1.0, 1.0), (-1.0, 1.0), n)
        X, Y = g.mesh()
        s = torch.sin(math.pi * (Y + 1) / 2)
        u = (torch.exp(X) * s + X * Y)[None, None]
        f = (torch.exp(X) * s - (math.pi / 2) ** 2 * torch.exp(X) * s)[None, None]   # Poisson: Lap u = f
        uh = Poisson(g, g=u)(f)
        errs.append(float((uh - u).abs().max() / u.abs().max()))
    order = convergence_order([2 / (n - 1) for n in ns], errs)
    assert 1.9 < order < 2.1, (order, errs)


def test_wave_on_a_shifted_domain_is_the_translated_problem():
    """Wave2D on [-0.5, 0.5] x [2, 3] with a shot at (0.1, 2.3) equals the problem on the unit square with the shot
    at (0.6, 0.3), node for node; receivers given in the shifted coordinates read the same values."""
    n, times = 33, [0.1, 0.2, 0.3]
    c = 1.0 + 0.5 * torch.rand(1, 1, n, n, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    ref_grid = Grid2D(n)
    grid = Grid2D.rectangle((-0.5, 0.5), (2.0, 3.0), n)
    kw = dict(source_time=lambda t: ricker(t, f0=8.0), record_times=times, dt=0.01)
    u_ref = Wave2D(ref_grid, sources=[(0.6, 0.3)], **kw)(c)
    u = Wave2D(grid, sources=[(0.1, 2.3)], **kw)(c)
    assert float(u_ref.abs().max()) > 0 and torch.equal(u, u_ref)
    pts = torch.tensor([[0.25, 0.75], [0.5, 0.125]], dtype=torch.float64)
    shift = torch.tensor([[-0.5, 2.0]], dtype=torch.float64)
    assert torch.allclose(PointObservation(grid, pts + shift)(u), PointObservation(ref_grid, pts)(u_ref))
    with pytest.raises(ValueError, match="outside the domain"):
        Wave2D(grid, sources=[(0.6, 0.3)], **kw)
    with pytest.raises(ValueError, match="outside the domain"):
        PointObservation(grid, pts)


@pytest.mark.parametrize("bc", ["dirichlet", "neumann"])
def test_residual_of_the_exact_solution(bc):
    """The trapezoidal residual of exact Cole-Hopf frames is O(dt^2 + h^2) at interior nodes (frames dt ~ h);
    at Dirichlet ends it is u - g = 0; at Neumann ends the ghost closure's local truncation is O(h)."""
    inner, ends, ns = [], [], (65, 129, 257)
    for n in ns:
        g = Grid1D.interval(XA, XB, n)
        x = g.coords()[0]
        times = [0.8 / (n - 1) * k for k in range(1, 4)]
        p = BurgersBC(g, nu=NU, bc=bc, boundary=_ends(cole_hopf if bc == "dirichlet" else cole_hopf_x),
                      record_times=times)
        r = p.residual(cole_hopf(x, 0)[None, None], torch.stack([cole_hopf(x, t) for t in times])[None, :, None])
        assert r.shape == (1, 3, 1, n)
        inner.append(float(r[..., 1:-1].abs().max()))
        ends.append(float(r[..., [0, -1]].abs().max()))
    hs = [1 / (n - 1) for n in ns]
    assert convergence_order(hs, inner) > 1.8, inner
    if bc == "dirichlet":
        assert max(ends) < 1e-14, ends
    else:
        assert 0.9 < convergence_order(hs, ends) < 1.2, ends


def test_checkpointed_gradient_is_the_same():
    g, u0, kw = _small("neumann", boundary=(0.2, -0.1))
    grads = []
    for ck in (None, 3):
        nu = torch.tensor([0.05], dtype=torch.float64, requires_grad=True)
        (BurgersBC(g, unknown="viscosity", u0=u0, dt=0.02, checkpoint=ck, **kw)(nu) ** 2).sum().backward()
        grads.append(nu.grad)
    assert torch.allclose(grads[0], grads[1], rtol=1e-12)
