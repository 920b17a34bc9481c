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
    rate = taylor_test(lambda x: (w * problem(x)).sum() + (problem(x) ** 2).mean(), m[:1], dm, h0=0.5, n=4)
    assert rate > 1.8, rate


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
