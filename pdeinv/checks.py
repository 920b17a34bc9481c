r"""Verification tools offered to users as a library feature.

``taylor_test`` checks a gradient: for a smooth scalar :math:`J`,

.. math:: r(h) = |J(m + h\,\delta m) - J(m) - h\,\nabla J(m)\cdot\delta m| = O(h^2),

so the observed rate :math:`\log(r_{i+1}/r_i)/\log(h_{i+1}/h_i)` tends to 2
(it stays near 1 if the gradient is wrong).  The rate is only evidence when the
remainders are measured above round-off: for a constant functional, or one whose
first-order change along ``dm`` is lost in round-off, every remainder is zero or
noise and no rate can be observed; ``taylor_test`` then returns ``nan``, which
fails every comparison (``rate > 1.9`` and ``rate < 1.2`` alike).  ``adjoint_test`` checks that a
linear operator and its adjoint satisfy
:math:`\langle A x, y\rangle = \langle x, A^* y\rangle`.
"""
from __future__ import annotations

import logging
import math
from typing import Callable, Optional, Sequence

import torch

log = logging.getLogger(__name__)

#: round-off level of a Taylor remainder, in units of ``eps * |J|`` (``eps`` of ``f``'s dtype)
ROUNDOFF = 1e3


def taylor_test(f: Callable[[torch.Tensor], torch.Tensor], m: torch.Tensor, dm: torch.Tensor,
                h0: Optional[float] = None, n: int = 4, factor: float = 0.5,
                grad: Optional[torch.Tensor] = None, return_residuals: bool = False):
    """Convergence rate of the first-order Taylor remainder of scalar ``f`` at ``m`` along ``dm``.

    ``f`` maps a tensor to a scalar tensor; its gradient is taken with autograd
    (or pass ``grad``).  ``h0`` defaults to ``0.1 * |m| / |dm|`` (norm ratio).
    Returns the minimum of the observed rates (≈ 2 for a correct gradient), and
    optionally the list of remainders.  Use float64.

    The test fails -- the rate is ``nan`` and a warning is logged -- when it cannot
    see the first-order term: when the first-order change ``h * grad . dm`` or any
    remainder is zero or at the round-off level of ``f``'s values
    (:data:`ROUNDOFF` ``* eps * |J|``).  That happens for a constant (or, with a
    correct gradient, a linear) functional, or a step ``h`` so small that the
    remainders are noise; make ``f`` non-linear along ``dm`` or take a larger ``h0``.
    """
    m = m.detach()
    if grad is None:
        mm = m.clone().requires_grad_(True)
        J0 = f(mm)
        if J0.numel() != 1:
            raise ValueError(f"taylor_test needs a scalar function; f returned shape {tuple(J0.shape)}")
        (grad,) = torch.autograd.grad(J0, mm)
        J0 = J0.detach()
    else:
        with torch.no_grad():
            J0 = f(m)
    dJ = float((grad * dm).sum())
    if h0 is None:
        mn, dn = float(m.norm()), float(dm.norm())
        h0 = 0.1 * (mn / dn if mn > 0 and dn > 0 else 1.0)
    if n < 2:
        raise ValueError(f"taylor_test needs n >= 2 step sizes to measure a rate; got n={n}")
    hs = [h0 * factor ** i for i in range(n)]
    J0 = torch.as_tensor(J0)
    eps = torch.finfo(J0.dtype if J0.is_floating_point() else torch.float64).eps
    J0 = float(J0)
    res, floors = [], []
    with torch.no_grad():
        for h in hs:
            Jh = float(f(m + h * dm))
            res.append(abs(Jh - J0 - h * dJ))
            # what round-off (of f's evaluation, e.g. inside a PDE solve) can make of J(m + h dm) - J(m) - h dJ:
            # ROUNDOFF ulps of the largest term
            floors.append(ROUNDOFF * eps * max(abs(J0), abs(Jh), abs(h * dJ)))
    unseen = [i for i in range(n) if not (res[i] > floors[i] and abs(hs[i] * dJ) > floors[i])]
    if not all(math.isfinite(r) for r in res):
        log.warning("taylor_test: non-finite remainders %s; no rate can be measured", res)
        rate = float("nan")
    elif unseen:
        log.warning("taylor_test: the first-order term is not visible above round-off at step(s) %s "
                    "(remainders %s, first-order terms %s, round-off level %s); no rate can be measured -- "
                    "use a functional that is non-linear along dm or a larger h0",
                    [hs[i] for i in unseen], ["%.3g" % r for r in res], ["%.3g" % abs(h * dJ) for h in hs],
                    ["%.3g" % fl for fl in floors])
        rate = float("nan")
    else:
        rate = min(math.log(res[i + 1] / res[i]) / math.log(hs[i + 1] / hs[i]) for i in range(n - 1))
    return (rate, res) if return_residuals else rate


def adjoint_test(op, x: torch.Tensor, y: Optional[torch.Tensor] = None, seed: int = 0) -> float:
    """Relative mismatch ``|<Ax, y> - <x, A*y>| / (|Ax||y|)`` for a linear ``op`` with ``op.adjoint``.

    ``x`` is an example input (its values are replaced by random numbers of the
    same shape, dtype and device); ``y`` random of ``op(x)``'s shape unless given.
    """
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(x.shape, generator=g, dtype=x.dtype).to(x.device)
    Ax = op(x)
    if y is None:
        y = torch.randn(Ax.shape, generator=g, dtype=Ax.dtype).to(Ax.device)
    ATy = op.adjoint(y)
    if ATy.shape != x.shape:
        raise ValueError(f"adjoint returned shape {tuple(ATy.shape)}; expected the input shape {tuple(x.shape)}")
    lhs, rhs = float((Ax * y).sum()), float((x * ATy).sum())
    scale = float(Ax.norm() * y.norm()) or 1.0
    return abs(lhs - rhs) / scale


def convergence_order(resolutions: Sequence[float], errors: Sequence[float]) -> float:
    """Least-squares slope of log(error) against log(h) with ``h = 1/resolution``-like spacings."""
    hs = torch.tensor([float(h) for h in resolutions], dtype=torch.float64).log()
    es = torch.tensor([float(e) for e in errors], dtype=torch.float64).log()
    A = torch.stack([hs, torch.ones_like(hs)], 1)
    sol = torch.linalg.lstsq(A, es[:, None]).solution
    return float(sol[0, 0])
