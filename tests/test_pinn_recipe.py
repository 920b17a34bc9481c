"""The published PINN recipe (Raissi et al. 2019) for Burgers identification: pdeinv.solvers.pinn.identify.

The science test uses an exact solution, the viscous shock u = c - A tanh(A (x - c t) / (2 nu)) of
u_t + u u_x = nu u_xx, so the answer (nu, lambda_1 = 1) is analytic; the tolerance is set against it and
against the error of the initial guess, the trivial baseline.
"""
from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch

from pdeinv.solvers.pinn.identify import RAISSI_BURGERS, burgers_residual, identify_burgers

NU, A, C = 0.1, 0.5, 0.2


def shock(x, t):
    return C - A * np.tanh(A * (x - C * t) / (2 * NU))


def _points(n=300, seed=0):
    rng = np.random.default_rng(seed)
    x, t = rng.uniform(-1, 1, n), rng.uniform(0, 1, n)
    return x, t, shock(x, t)


def test_residual_of_the_exact_shock_vanishes_and_detects_a_wrong_nu():
    """burgers_residual on a network that *is* the shock: zero residual at nu, -0.1 nu u_xx at 1.1 nu."""

    class Exact(torch.nn.Module):
        def forward(self, X):
            return (C - A * torch.tanh(A * (X[:, 0] - C * X[:, 1]) / (2 * NU)))[:, None]

    x, t, _ = _points(50)
    x, t = torch.tensor(x), torch.tensor(t)
    _, f = burgers_residual(Exact(), x, t, 1.0, NU)
    _, f_bad = burgers_residual(Exact(), x, t, 1.0, 1.1 * NU)
    s = A * (x - C * t) / (2 * NU)
    u_xx = 2 * A * (A / (2 * NU)) ** 2 * torch.tanh(s) / torch.cosh(s) ** 2
    assert f.abs().max() < 1e-12
    assert torch.allclose(f_bad, -0.1 * NU * u_xx, atol=1e-12)


def test_identifies_nu_and_lambda1_of_the_exact_shock():
    """From e^-6 (97.5 % off) and lambda_1 = 0, L-BFGS-B on 300 exact points recovers nu within 2 %, and
    within 1/40 of the starting error; lambda_1 within 0.02 of 1."""
    x, t, u = _points()
    dtype0, rng0 = torch.get_default_dtype(), torch.get_rng_state()
    r = identify_burgers(x, t, u, layers=(20, 20, 20), domain=((-1, 1), (0, 1)), maxiter=1500, seed=0)
    start_err = abs(math.exp(RAISSI_BURGERS["log_nu0"]) - NU) / NU
    err = abs(r.nu - NU) / NU
    assert err < 0.02 and err < start_err / 40, (r.nu, r.message)
    assert abs(r.lambda1 - 1.0) < 0.02, r.lambda1
    assert r.history["nu"] and r.n_iter > 0
    # process state untouched: default dtype float32 stays, the global torch RNG was forked
    assert torch.get_default_dtype() == dtype0 and torch.equal(torch.get_rng_state(), rng0)


def test_soft_dirichlet_and_collocation_options_run_and_fixed_lambda1():
    x, t, u = _points(100)
    r = identify_burgers(x, t, u, layers=(10, 10), domain=((-1, 1), (0, 1)), maxiter=10, n_collocation=50,
                         dirichlet=0.0, identify_lambda1=False, nu_param="plain", nu0=0.05, adam_iters=5)
    assert r.lambda1 == 1.0 and math.isfinite(r.nu) and r.n_iter <= 10


@pytest.mark.parametrize("kw, msg", [
    (dict(dtype=torch.float16), "dtype"),
    (dict(nu_param="exp"), "nu_param"),
    (dict(residual_at_data=False), "residual points"),
    (dict(nu0=-1.0), "nu0"),
    (dict(domain=((0, 1), (0, 1))), "outside"),
    (dict(maxiter=0), "iteration"),
])
def test_bad_input_is_a_value_error(kw, msg):
    x, t, u = _points(20)
    with pytest.raises(ValueError, match=msg):
        identify_burgers(x, t, u, layers=(4,), **kw)
    with pytest.raises(ValueError, match="same length"):
        identify_burgers(x, t[:-1], u, layers=(4,))


def test_pinn_solver_dispatches_burgers_viscosity_to_the_recipe():
    """PINN() on a Dirichlet Burgers problem with unknown viscosity, observed at scattered (x, t) points,
    runs the published recipe (recipe='auto'); recipe='raissi' on another problem is a ValueError."""
    import pdeinv as pi
    from pdeinv.physics.spacetime import SpaceTimePointObservation
    from pdeinv.solvers import PINN
    from pdeinv.tasks import get_task
    from pdeinv.tasks.burgers_bc import raissi_u0

    task = get_task("burgers_dirichlet")
    grid = task.grid(65)
    prob = task.problem(grid, unknown="viscosity", u0=raissi_u0(grid), record_times=[0.25, 0.5])
    g = torch.Generator().manual_seed(0)
    pts = torch.stack([2 * torch.rand(40, generator=g, dtype=torch.float64) - 1,
                       0.25 + 0.25 * torch.rand(40, generator=g, dtype=torch.float64)], 1)
    obs = SpaceTimePointObservation.for_problem(prob, pts)
    fwd = pi.ForwardModel(prob, obs)
    y = fwd(torch.full((1, 1, 1), 0.01 / math.pi, dtype=torch.float64))
    state = random.getstate()
    r = PINN(recipe_options=dict(layers=(8, 8), maxiter=20))(y, fwd)
    assert r.info["recipe"] == "raissi" and r.m.shape == (1, 1, 1) and math.isfinite(float(r.m))
    assert random.getstate() == state
    # the generic (deepxde) form of the same problem lives on x in [-1, 1], not [0, 2]
    from pdeinv.solvers.pinn import pinn_problem
    spec = pinn_problem(prob, scalars={"nu": 0.01})
    assert spec.bounds() == ([-1.0], [1.0]) and spec.T == 0.5
    darcy = pi.physics.Darcy(pi.Grid2D(9, 9), f=1.0, unknown="a")
    fwd_d = pi.ForwardModel(darcy, pi.PointObservation.random(darcy.grid, fraction=0.2, seed=0))
    with pytest.raises(ValueError, match="raissi"):
        PINN(recipe="raissi")(torch.zeros(1, 1, fwd_d.observation.n_obs), fwd_d)
    with pytest.raises(ValueError, match="recipe"):
        PINN(recipe="fast")
