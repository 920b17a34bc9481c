"""Elliptic simulators: manufactured solutions (order 2), adjoint gradients (Taylor), both solve paths."""
import math

import pytest
import torch

import pdeinv as pi
from pdeinv.checks import convergence_order, taylor_test
from pdeinv.physics import Darcy, Helmholtz, Poisson

RES = (17, 33, 65)
METHODS = ("direct", "cg")


def _manufactured(n, kind):
    """Exact u with non-zero boundary values, coefficient a, and the matching source."""
    g = pi.Grid2D(n)
    X, Y = g.mesh()
    s, c = torch.sin, torch.cos
    P = math.pi
    u = s(P * X) * s(2 * P * Y) + X * Y + 0.5
    ux = P * c(P * X) * s(2 * P * Y) + Y
    uy = 2 * P * s(P * X) * c(2 * P * Y) + X
    lap = -5 * P ** 2 * s(P * X) * s(2 * P * Y)
    if kind == "darcy":
        a = 1 + 0.5 * torch.exp(X) * c(Y)
        ax, ay = 0.5 * torch.exp(X) * c(Y), -0.5 * torch.exp(X) * s(Y)
        f = -(ax * ux + ay * uy + a * lap)
        return g, Darcy(g, f=f[None, None], g=u[None, None]), a[None, None], u
    if kind == "poisson":
        return g, Poisson(g, g=u[None, None]), lap[None, None], u
    k = 1.0
    return g, Helmholtz(g, k=k, g=u[None, None]), (lap + k ** 2 * u)[None, None], u


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("kind", ["darcy", "poisson", "helmholtz"])
def test_manufactured_solution_second_order(kind, method):
    errs, hs = [], []
    for n in RES:
        g, prob, m, u_exact = _manufactured(n, kind)
        prob.method = method
        u = prob(m)
        errs.append(float((u[0, 0] - u_exact).abs().max()))
        hs.append(g.h)
    order = convergence_order(hs, errs)
    assert abs(order - 2.0) <= 0.2, (errs, order)


def test_residual_scaled_like_the_pde():
    """residual(m, u_exact) is O(h^2) (not O(1)/h^2), and exactly ~0 for the solver's own solution."""
    res = []
    for n in (33, 65):
        g, prob, m, u_exact = _manufactured(n, "darcy")
        r = prob.residual(m, u_exact[None, None])
        assert r.shape == (1, 1, n - 2, n - 2)
        res.append(float(r.abs().max()))
        u = prob(m)
        assert float(prob.residual(m, u).abs().max()) < 1e-8 * float(prob.fixed("f").abs().max())
        assert float(prob.boundary_residual(m, u).abs().max()) < 1e-12
    assert 3.0 < res[0] / res[1] < 5.0  # second order: factor 4 per halving of h


def test_direct_and_cg_agree_batched():
    g = pi.Grid2D(33)
    prior = pi.GaussianRandomField(g, alpha=2.0, tau=3.0, basis="cosine")
    a = pi.threshold(prior.sample(3, seed=0), 3.0, 12.0)
    u1 = Darcy(g, method="direct")(a)
    u2 = Darcy(g, method="cg")(a)
    assert torch.allclose(u1, u2, rtol=0, atol=1e-10 * float(u1.abs().max()))
    # batching does not change a sample's solution
    assert torch.allclose(Darcy(g)(a[1:2]), u1[1:2], atol=1e-14)
    # float32 on the CG path (the GPU path) agrees to single precision
    u3 = Darcy(g, method="cg")(a.float())
    assert u3.dtype == torch.float32 and torch.allclose(u3.double(), u1, atol=1e-5 * float(u1.abs().max()))


@pytest.mark.parametrize("method", METHODS)
def test_taylor_darcy_gradients(method):
    g = pi.Grid2D(21)
    prior = pi.GaussianRandomField(g, alpha=2.0, tau=3.0, basis="cosine")
    a = torch.exp(prior.sample(2, seed=0))
    obs = pi.PointObservation.random(g, fraction=0.2, seed=0)
    dm = prior.sample(2, seed=1)

    def J(u):
        return (obs(u) ** 2).sum() + (u ** 3).mean()

    assert taylor_test(lambda m: J(Darcy(g, method=method)(m)), a, dm) > 1.9
    pf = Darcy(g, a=a, unknown="f", method=method)
    assert taylor_test(lambda m: J(pf(m)), 1 + dm, prior.sample(2, seed=2)) > 1.9
    pg = Darcy(g, a=a, unknown="g", method=method)
    assert taylor_test(lambda m: J(pg(m)), dm, prior.sample(2, seed=3) + 1) > 1.9
    # a batch-shared coefficient (batch 1) receives the summed gradient of the batch
    pg1 = Darcy(g, a=a[:1], unknown="g", method=method)
    assert taylor_test(lambda m: J(pg1(m)), dm, prior.sample(2, seed=3) + 1) > 1.9


def test_taylor_helmholtz_wavenumber_and_poisson():
    g = pi.Grid2D(21)
    prior = pi.GaussianRandomField(g, alpha=2.0, tau=3.0)
    f = prior.sample(2, seed=0)
    obs = pi.PointObservation.random(g, fraction=0.2, seed=1)
    h = Helmholtz(g)
    k0 = torch.tensor([1.0, 3.0], dtype=torch.float64)
    assert taylor_test(lambda k: (obs(h.solve(f=f, k=k)) ** 2).sum(), k0, torch.tensor([0.7, -0.4], dtype=torch.float64)) > 1.9
    p = Poisson(g, unknown="f")
    assert taylor_test(lambda m: (obs(p(m)) ** 2).sum(), f, prior.sample(2, seed=4)) > 1.9


def test_indefinite_helmholtz():
    g = pi.Grid2D(33)
    f = pi.GaussianRandomField(g, alpha=2.0, tau=3.0).sample(1, seed=0)
    with pytest.raises(ValueError, match="positive definite"):
        Helmholtz(g, k=5.0, method="cg")(f)
    u = Helmholtz(g, k=5.0, method="direct")(f)      # the direct path handles it; check the residual
    assert float(Helmholtz(g, k=5.0).residual(f, u).abs().max()) < 1e-8 * float(f.abs().max())


def test_bad_input_is_refused_clearly():
    g = pi.Grid2D(17)
    a = torch.ones(1, 1, 17, 17, dtype=torch.float64)
    with pytest.raises(ValueError, match="strictly positive"):
        Darcy(g)(a - 2)
    bad = a.clone(); bad[0, 0, 3, 3] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        Darcy(g)(bad)
    with pytest.raises(ValueError, match="expected"):
        Darcy(g)(torch.ones(1, 1, 16, 16, dtype=torch.float64))
    with pytest.raises(ValueError, match="dirichlet"):
        Darcy(pi.Grid2D(16, bc="periodic"))
    with pytest.raises(ValueError, match="unknown"):
        Darcy(g, unknown="k")
    with pytest.raises(ValueError, match="grid mismatch"):
        pi.ForwardModel(Darcy(g), pi.PointObservation.random(pi.Grid2D(33), fraction=0.1, seed=0))
