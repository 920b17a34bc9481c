"""PINN inversion (deepxde, PyTorch backend): scalar identification, residuals, global state, bad input."""
import math
import subprocess
import sys

import pytest
import torch

import pdeinv as pi
from pdeinv.solvers.pinn.solver import PINN
from pdeinv.solvers.pinn.residuals import pinn_problem


def _darcy_manufactured(n=33, a_true=2.5, n_obs=60, noise=0.01):
    r"""-a Δu = f with u = sin(πx) sin(πy) and f = 2π² a sin(πx) sin(πy): a is the unknown constant."""
    g = pi.Grid2D(n)
    X, Y = g.mesh()
    f = (2 * math.pi ** 2 * a_true * torch.sin(math.pi * X) * torch.sin(math.pi * Y))[None, None]
    prob = pi.physics.Darcy(g, f=f, g=0.0, unknown="a")
    obs = pi.PointObservation.random(g, n=n_obs, seed=1, exclude_boundary=True)
    fwd = pi.ForwardModel(prob, obs, noise=pi.GaussianNoise(relative=noise))
    y = fwd(torch.full((1, 1, n, n), a_true, dtype=torch.float64), seed=2)
    return g, fwd, y


def test_pinn_identifies_diffusion_coefficient_to_the_cramer_rao_bound():
    """Yardsticks: the Cramer-Rao (Gauss-Newton) standard deviation of the one-parameter fit through the
    finite-difference simulator that made the data, sd = (sum (dA/da / s)^2)^(-1/2); for u, the data's own error
    (the 1 % noise)."""
    a_true = 2.5
    g, fwd, y = _darcy_manufactured(a_true=a_true)
    m_true = torch.full((1, 1, 33, 33), a_true, dtype=torch.float64)
    dA = (fwd.A(m_true + 1e-5) - fwd.A(m_true - 1e-5)) / 2e-5
    sd = float(((dA / fwd.noise_std(y)) ** 2).sum()) ** -0.5
    with torch.no_grad():
        clean = fwd.A(m_true)
    noise_rel = float((y - clean).norm() / clean.norm())
    dtype0 = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)          # the PINN runs in float32 inside and must restore this
    try:
        res = PINN(scalars={"a": 1.0}, layers=(20, 20, 20), adam_iters=400, lbfgs_iters=300, n_domain=400,
                   log_every=50)(y, fwd, seed=0)
        assert torch.get_default_dtype() == torch.float64
    finally:
        torch.set_default_dtype(dtype0)
    a_hat = res.info["scalars"]["a"]
    assert abs(1.0 - a_true) > 100 * sd                                 # the guess is far outside the error bar
    assert abs(a_hat - a_true) < 4 * sd, f"identified a = {a_hat}, true {a_true}, Cramer-Rao sd {sd}"
    # m is the recovered (constant) coefficient on fwd.grid, u the PINN state on the grid
    assert res.m.shape == (1, 1, 33, 33) and torch.allclose(res.m, torch.full_like(res.m, a_hat))
    X, Y = g.mesh()
    u_exact = torch.sin(math.pi * X) * torch.sin(math.pi * Y)
    # the PDE constrains u better than the 60 noisy point values measure it
    assert float((res.u[0, 0] - u_exact).norm() / u_exact.norm()) < 0.5 * noise_rel
    # history: the loss decreased and the scalar trajectory moved from the guess to the truth
    h = res.history
    assert len(h["loss"]) == len(h["a"]) == len(h["step"]) and h["loss"][-1] < 1e-2 * h["loss"][0]
    assert h["a"][0] == pytest.approx(1.0) and abs(h["a"][-1] - a_true) < 4 * sd
    assert h["step"][-1] > 400                     # L-BFGS ran after Adam (maxiter workaround in place)


def _residual(spec, fn, x):
    from pdeinv._deepxde import import_deepxde
    dde = import_deepxde()
    dde.grad.clear()
    x = x.clone().requires_grad_(True)
    res = spec.residual(x, fn(x))
    dde.grad.clear()
    return [r.detach() for r in res]


def test_residuals_vanish_on_exact_solutions():
    """Each continuous residual is ~0 (round-off) on an exact solution, and equals its analytic value (to round-off)
    when a parameter is wrong or f is only known on the grid."""
    torch.manual_seed(0)
    pi_ = math.pi
    x2 = torch.rand(200, 2, dtype=torch.float64)
    g = pi.Grid2D(17)
    # Darcy with a variable coefficient field as the second network output: a = 1 + x² y
    sin = torch.sin
    u = lambda x: sin(pi_ * x[:, :1]) * sin(pi_ * x[:, 1:])                                     # noqa: E731
    a = lambda x: 1 + x[:, :1] ** 2 * x[:, 1:]                                                  # noqa: E731
    def f_exact(X, Y):                                                   # -div(a grad u) for these u, a
        ux, uy = pi_ * torch.cos(pi_ * X) * sin(pi_ * Y), pi_ * sin(pi_ * X) * torch.cos(pi_ * Y)
        return (1 + X ** 2 * Y) * 2 * pi_ ** 2 * sin(pi_ * X) * sin(pi_ * Y) - (2 * X * Y * ux + X ** 2 * uy)

    X, Y = g.mesh()
    f = f_exact(X, Y)
    darcy = pinn_problem(pi.physics.Darcy(g, f=f[None, None], unknown="a"))
    darcy.set_scales(1.0)
    assert darcy.outputs == ["u", "a"]
    xi = x2 * 0.98 + 0.01
    r = _residual(darcy, lambda x: torch.cat([u(x), a(x)], 1), xi)[0][:, 0]
    # f is known on the 17² grid only, interpolated bilinearly: the residual -div(a grad u) - f_h is exactly
    # f - f_h (bilinear interpolant computed independently by PointObservation), to round-off
    f_pts = f_exact(xi[:, 0], xi[:, 1])
    f_h = pi.PointObservation(g, xi)(f[None, None]).reshape(-1)
    tol = 1e-12 * float(f.abs().max())
    assert float((r - (f_pts - f_h)).abs().max()) < tol
    # a wrong coefficient 1.2 a: the residual gains exactly 0.2 * (-div(a grad u)) = 0.2 f
    r_bad = _residual(darcy, lambda x: torch.cat([u(x), 1.2 * a(x)], 1), xi)[0][:, 0]
    assert float((r_bad - (1.2 * f_pts - f_h)).abs().max()) < tol
    # Helmholtz, k = 3 identified as a scalar: u = sin(πx) sin(2πy), f = (k² - 5π²) u
    helm = pinn_problem(pi.physics.Helmholtz(g, k=1.0, f=0.0, unknown="f"), scalars={"k": 1.0})
    k = torch.tensor(3.0, dtype=torch.float64)
    helm.bind_scalars({"k": lambda: k})
    uh = lambda x: sin(pi_ * x[:, :1]) * sin(2 * pi_ * x[:, 1:])                               # noqa: E731
    helm.values["f"] = 0.0
    fh = lambda x: (9 - 5 * pi_ ** 2) * uh(x)                                                  # noqa: E731
    res_h = _residual(helm, uh, x2)[0]
    assert torch.allclose(-res_h, fh(x2), atol=1e-9)           # residual = -(Δu + k²u - f), f = 0 here
    # Burgers: viscous shock u = c - A tanh(A (x - c t) / (2ν)), exact for u_t + u u_x = ν u_xx
    nu, c, A = 0.05, 0.3, 0.8
    uexact = lambda x: c - A * torch.tanh(A * (x[:, :1] - 0.5 - c * x[:, 1:]) / (2 * nu))      # noqa: E731
    from pdeinv.physics.burgers import Burgers1D
    bg = pi.Grid1D(32, bc="periodic")
    burg = pinn_problem(Burgers1D(bg, nu=nu, record_times=[0.5]))
    xt = torch.rand(200, 2, dtype=torch.float64) * torch.tensor([1.0, 0.5], dtype=torch.float64)
    assert float(_residual(burg, uexact, xt)[0].abs().max()) < 1e-10
    burg_bad = pinn_problem(Burgers1D(bg, nu=1.1 * nu, record_times=[0.5]))
    # with viscosity 1.1 nu the residual is exactly -0.1 nu u_xx, u_xx = 2 A (A / 2 nu)^2 sech^2(s) tanh(s)
    s_ = A * (xt[:, :1] - 0.5 - c * xt[:, 1:]) / (2 * nu)
    uxx = 2 * A * (A / (2 * nu)) ** 2 * torch.tanh(s_) / torch.cosh(s_) ** 2
    assert float((_residual(burg_bad, uexact, xt)[0] + 0.1 * nu * uxx).abs().max()) < 1e-12 * float(uxx.abs().max())
    # Navier-Stokes (vorticity-stream function): Taylor-Green vortex, unforced
    from pdeinv.physics.navier_stokes import NavierStokes2D
    nu_ns, kk = 0.01, 2 * pi_
    ng = pi.Grid2D(16, bc="periodic")
    ns = pinn_problem(NavierStokes2D(ng, nu=nu_ns, forcing=None, record_times=0.5))

    def tg(x):
        w = 2 * kk * torch.cos(kk * x[:, :1]) * torch.cos(kk * x[:, 1:2]) * torch.exp(-2 * nu_ns * kk ** 2 * x[:, 2:])
        return torch.cat([w, w / (2 * kk ** 2)], 1)

    xyt = torch.rand(200, 3, dtype=torch.float64) * torch.tensor([1.0, 1.0, 0.5], dtype=torch.float64)
    r_w, r_psi = _residual(ns, tg, xyt)
    assert float(r_w.abs().max()) < 1e-9 and float(r_psi.abs().max()) < 1e-9
    ns_bad = pinn_problem(NavierStokes2D(ng, nu=2 * nu_ns, forcing=None, record_times=0.5))
    # with viscosity 2 nu the vorticity residual is exactly -nu Δw = 2 nu k^2 w
    w = tg(xyt)[:, :1]
    assert float((_residual(ns_bad, tg, xyt)[0] - 2 * nu_ns * kk ** 2 * w).abs().max()) < 1e-12 * float(w.abs().max())


def test_importing_pinn_leaves_torch_defaults_unchanged():
    code = ("import torch; torch.set_default_dtype(torch.float64); "
            "import pdeinv.solvers.pinn.solver as p; p.import_deepxde(); import deepxde; "
            "assert torch.get_default_dtype() == torch.float64, torch.get_default_dtype(); "
            "assert torch.get_default_device() == torch.device('cpu'), torch.get_default_device(); "
            "assert torch.zeros(1).dtype == torch.float64; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-2000:]


def test_bad_input_raises_clear_errors():
    from pdeinv.solvers import SOLVERS
    assert SOLVERS["pinn"] is PINN
    g, fwd, y = _darcy_manufactured(n=9, n_obs=5)
    solver = PINN(scalars={"a": 1.0}, adam_iters=1, lbfgs_iters=0)
    with pytest.raises(ValueError, match="NaN"):
        solver(y * float("nan"), fwd)
    fwd.observation.points = fwd.observation.points + torch.tensor([[1.5, 0.0]], dtype=torch.float64)
    with pytest.raises(ValueError, match="outside the domain"):
        solver(y, fwd)
    with pytest.raises(ValueError, match="cannot identify scalar"):
        PINN(scalars={"nu": 1.0})(y, _darcy_manufactured(n=9, n_obs=5)[1])
    with pytest.raises(ValueError, match="positive finite"):
        PINN(scalars={"a": -1.0})(y, _darcy_manufactured(n=9, n_obs=5)[1])
    with pytest.raises(ValueError, match="lbfgs_iters"):
        PINN(adam_iters=0, lbfgs_iters=0)
