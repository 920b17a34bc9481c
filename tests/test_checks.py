"""pdeinv.checks: the Taylor test must tell a correct gradient (rate 2) from a wrong one (rate 1), and must
not report a rate when the first-order term is invisible (zero or round-off remainders)."""
import math

import pytest
import torch

from pdeinv.checks import adjoint_test, convergence_order, taylor_test


def _smooth(n=20, dtype=torch.float64):
    """J(m) = sum(w sin m) + 0.25 sum(m^4) with its hand-written gradient (independent of autograd)."""
    g = torch.Generator().manual_seed(0)
    w = torch.randn(n, generator=g, dtype=dtype)
    m = torch.randn(n, generator=g, dtype=dtype)
    dm = torch.randn(n, generator=g, dtype=dtype)
    J = lambda x: (w * torch.sin(x)).sum() + 0.25 * x.pow(4).sum()      # noqa: E731
    grad = w * torch.cos(m) + m ** 3
    return J, m, dm, grad


def test_constant_functional_fails():
    """All remainders are zero: no rate is measurable, and the result fails both the pass and the
    wrong-gradient comparison (the old code returned inf > 1.9)."""
    m = torch.randn(10, dtype=torch.float64)
    for J in (lambda x: 0.0 * x.sum() + 3.0, lambda x: (0.0 * x).sum()):
        rate = taylor_test(J, m, torch.ones_like(m))
        assert math.isnan(rate), rate
        assert not rate > 1.9 and not rate < 1.2
        rate, res = taylor_test(J, m, torch.ones_like(m), return_residuals=True)
        assert math.isnan(rate) and len(res) == 4


def test_correct_gradient_passes_with_rate_two():
    J, m, dm, grad = _smooth()
    for kw in ({}, {"grad": grad}):                       # autograd and the analytic gradient
        rate, res = taylor_test(J, m, dm, h0=0.1, n=5, return_residuals=True, **kw)
        assert abs(rate - 2) < 0.1, rate
        # remainders shrink by ~factor^2 = 1/4 per halving of h
        for a, b in zip(res, res[1:]):
            assert 0.2 < b / a < 0.3, res


def test_perturbed_gradient_gives_rate_one_and_fails():
    J, m, dm, grad = _smooth()
    dJ = float((grad * dm).sum())
    # directional derivative wrong by 5 %, at steps where the true remainder is far below that error
    bad = grad + 0.05 * dJ / float(dm.pow(2).sum()) * dm
    rate = taylor_test(J, m, dm, h0=1e-3, n=4, grad=bad)
    assert abs(rate - 1) < 0.1, rate
    assert not rate > 1.9
    # a random perturbation of the whole gradient vector (1 % of its norm) is caught too
    e = torch.randn(m.shape, generator=torch.Generator().manual_seed(5), dtype=m.dtype)
    rate = taylor_test(J, m, dm, h0=1e-3, n=4, grad=grad + 0.01 * grad.norm() / e.norm() * e)
    assert abs(rate - 1) < 0.1, rate


def test_linear_functional_remainders_at_round_off_fail():
    """With a correct gradient, a linear functional's remainders are pure round-off: no second-order
    term to see, so no rate (the contract tests add a quadratic term for this reason)."""
    a = torch.randn(30, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    m = torch.randn(30, dtype=torch.float64)
    rate, res = taylor_test(lambda x: (a * x).sum(), m, torch.ones_like(m), return_residuals=True)
    assert math.isnan(rate), (rate, res)
    assert max(res) < 1e-12
    # ... while a wrong gradient of the same linear functional is still seen (rate 1)
    rate = taylor_test(lambda x: (a * x).sum(), m, torch.ones_like(m), grad=1.1 * a)
    assert abs(rate - 1) < 1e-6, rate


def test_steps_too_small_for_the_dtype_fail():
    """The same correct gradient with steps whose remainders fall below round-off: float64 with
    h down to 1e-9 (remainder ~1e-18 << eps |J|), and float32 with h = 1e-4 (remainder ~1e-8 < eps32 |J|)."""
    J, m, dm, grad = _smooth()
    assert abs(taylor_test(J, m, dm, h0=1e-2, factor=0.5, n=4) - 2) < 0.1
    assert math.isnan(taylor_test(J, m, dm, h0=1e-6, factor=0.1, n=4))
    J32, m32, dm32, _ = _smooth(dtype=torch.float32)
    assert math.isnan(taylor_test(J32, m32, dm32, h0=1e-4, n=4))


def test_taylor_test_input_errors():
    m = torch.zeros(3, dtype=torch.float64)
    with pytest.raises(ValueError, match="scalar"):
        taylor_test(lambda x: x * 2, m, torch.ones_like(m))
    with pytest.raises(ValueError, match="n >= 2"):
        taylor_test(lambda x: x.pow(2).sum(), m, torch.ones_like(m), n=1)


def test_adjoint_test_and_convergence_order():
    A = torch.randn(5, 7, generator=torch.Generator().manual_seed(0), dtype=torch.float64)

    class Op:
        def __init__(self, A, At):
            self.A, self.At = A, At

        def __call__(self, x):
            return self.A @ x

        def adjoint(self, y):
            return self.At @ y

    assert adjoint_test(Op(A, A.T), torch.zeros(7, dtype=torch.float64)) < 1e-14
    wrong = A.T.clone()
    wrong[0, 0] += 0.5
    assert adjoint_test(Op(A, wrong), torch.zeros(7, dtype=torch.float64)) > 1e-3
    hs = [1 / 8, 1 / 16, 1 / 32]
    assert convergence_order(hs, [3 * h ** 2 for h in hs]) == pytest.approx(2.0)
