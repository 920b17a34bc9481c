"""Contract tests driven by the registries: a newly registered task, solver or surrogate is tested here
the moment it is registered."""
import pytest
import torch

from pdeinv.checks import taylor_test
from pdeinv.solvers import SOLVERS, InverseSolver
from pdeinv.tasks import TASKS

RES = 16


@pytest.mark.parametrize("name", sorted(TASKS))
def test_task_contract(name):
    """Seeded law, finite batched solve equal to per-sample solves, and a correct gradient (Taylor rate 2)."""
    task = TASKS[name]
    grid, problem = task.make(RES)
    m = task.sample_m(grid, 2, seed=11)
    assert torch.equal(m, task.sample_m(grid, 2, seed=11)) and not torch.equal(m, task.sample_m(grid, 2, seed=12))
    assert m.dtype == torch.float64 and tuple(m.shape[2:]) == tuple(grid.shape)
    u = problem(m)
    assert torch.isfinite(u).all() and u.shape[0] == 2
    u1 = problem(m[1:2])
    assert torch.allclose(u[1:2], u1, rtol=1e-9, atol=1e-12 * float(u.abs().max()))
    # gradient of a smooth functional of u through the problem: Taylor remainder O(h^2)
    w = torch.randn(u[:1].shape, generator=torch.Generator().manual_seed(0), dtype=u.dtype)
    dm = torch.randn(m[:1].shape, generator=torch.Generator().manual_seed(1), dtype=m.dtype)
    dm = dm * 0.05 * float(m.abs().max())
    J = _memoised(lambda x: _J(problem, w, x))
    m1 = m[:1].clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(J(m1), m1)
    h0, n = 0.5, 4
    rate, res = taylor_test(J, m[:1], dm, h0=h0, n=n, grad=grad, return_residuals=True)
    assert 1.8 < rate < 2.2, (rate, res)
    # wrong-gradient control: the check must see a gradient whose directional derivative is off by 5 %.
    # It does at steps where the correct gradient's remainder (c h^2, c measured above) is below 1/20 of
    # that error; the measured rate must then be ~1 and the check must fail.
    dJ = float((grad * dm).sum())
    eps = 0.05
    bad = grad + eps * dJ / float(dm.pow(2).sum()) * dm
    h_last = h0 * 0.5 ** (n - 1)
    curv = res[-1] / (h_last * abs(dJ))                 # remainder / first-order term at h_last, ~ h
    h0_bad = min(h0, h_last * (eps / 20) / curv)
    rate_bad = taylor_test(J, m[:1], dm, h0=h0_bad, n=n, grad=bad)
    assert abs(rate_bad - 1) < 0.15 and not rate_bad > 1.8, (name, rate_bad, h0_bad)


def _J(problem, w, x):
    u = problem(x)
    return (w * u).sum() + (u ** 2).mean()


def _memoised(f):
    """Cache f's values by the bytes of its (detached) input: the control reuses the solves it shares."""
    cache = {}

    def g(x):
        key = (tuple(x.shape), x.detach().cpu().numpy().tobytes())
        if x.requires_grad or key not in cache:
            val = f(x)
            cache[key] = val.detach()
            return val
        return cache[key]
    return g


@pytest.mark.parametrize("name", sorted(SOLVERS))
def test_solver_registry_contract(name):
    cls = SOLVERS[name]
    assert issubclass(cls, InverseSolver), f"{name} does not follow the solver(y, fwd, seed=) contract"
    assert callable(getattr(cls, "solve", None))


def test_surrogate_registry_contract():
    from pdeinv.surrogates import SURROGATES
    from pdeinv.surrogates.base import Surrogate
    for name, cls in SURROGATES.items():
        assert issubclass(cls, Surrogate), name
        assert callable(getattr(cls, "load", None)), name
