r"""1-D viscous Burgers equation on the periodic interval, pseudo-spectral.

.. math::  \partial_t u + \partial_x(\tfrac12 u^2) = \nu\,\partial_{xx} u, \qquad x \in [0, L) \text{ periodic}.

BENCHMARKS.md ``burgers``: :math:`\nu = 0.01`, :math:`T = 1`,
:math:`u_0 \sim N(0, 625(-\Delta + 25 I)^{-2})`.  In the convention of
:class:`~pdeinv.physics.fields.GaussianRandomField` (and of the FNO MATLAB
generator ``GRF1``, whose ``sigma`` multiplies the *square root* of the
eigenvalues), the covariance is ``sigma**2 (...)^-alpha``, so the law is
``alpha=2, tau=5, sigma=25`` (the FNO generator's comment "FNO paper
setting: tau = 5, sigma = 25"), not ``sigma=625`` (which would give
:math:`|u_0| \sim 10`, shocks of width :math:`\nu/\Delta u \approx 5\cdot10^{-4}`
and needs > 4000 points).  See docs/time_dependent.md.

Discretisation: Fourier collocation with ``rfft``; the flux :math:`\tfrac12u^2`
is formed from the 2/3-truncated field and truncated again (alias-free);
Crank--Nicolson for :math:`\nu u_{xx}`, Heun for the flux (second order,
the same IMEX scheme as :mod:`~pdeinv.physics.navier_stokes`).  The mean of
:math:`u` is conserved exactly (the flux derivative has no mean mode).

Stability: the explicit flux needs the Courant number
:math:`\Delta t\,\max|u|\,k_{\max} \le 1` with :math:`k_{\max} = 2\pi(n-1)/(3L)`.
Viscous Burgers obeys a maximum principle (:math:`\max|u(t)| \le \max|u_0|`),
so ``dt=None`` picks :math:`\Delta t = 0.5/(\max|u_0| k_{\max})` from the
data; an explicit ``dt`` that breaks the bound raises ``ValueError``.

Output: ``record_times`` a number gives ``(B, 1, n)``; a sequence gives ``(B, T, 1, n)``.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence, Union

import torch
from torch import nn

from pdeinv._validation import check_field, check_finite
from pdeinv.physics.grid import Grid1D
from pdeinv.physics.time_stepping import ParameterSpace, parse_record_times, rollout, scalar_per_sample, schedule

COURANT_MAX = 1.0


class Burgers1D(nn.Module):
    r"""``Burgers1D(grid, nu=0.01, record_times=1.0, dt=None, checkpoint=None)``; ``problem(u0) -> u``.

    Parameters
    ----------
    grid : periodic :class:`Grid1D`.
    nu : viscosity > 0 (number or tensor ``(B,)``; with ``unknown="viscosity"`` it is ``m``).
    record_times : number (output ``(B, 1, n)``) or increasing sequence (output ``(B, T, 1, n)``).
    dt : largest time step; ``None`` = from the Courant bound and ``max|u0|`` (``cfl`` * limit).
    unknown : ``"u0"`` (``(B, 1, n)``) or ``"viscosity"`` (``(B,)``, with ``u0=`` fixed).
    checkpoint : ``None``, steps per checkpointed block, or ``"sqrt"``.
    """

    inputs = ("u0", "viscosity")

    def __init__(self, grid: Grid1D, nu=0.01, record_times: Union[float, Sequence[float]] = 1.0,
                 dt: Optional[float] = None, unknown: str = "u0", u0: Optional[torch.Tensor] = None,
                 checkpoint=None, cfl: float = 0.5):
        super().__init__()
        if not isinstance(grid, Grid1D) or grid.bc != "periodic":
            raise ValueError("Burgers1D needs a periodic Grid1D (Grid1D(n, bc='periodic')); for Dirichlet or Neumann "
                             "conditions on [a, b] use pdeinv.physics.BurgersBC(Grid1D.interval(a, b, n), bc=...)")
        if unknown not in self.inputs:
            raise ValueError(f"unknown={unknown!r}; expected one of {self.inputs}")
        if unknown == "viscosity" and u0 is None:
            raise ValueError("unknown='viscosity' needs the initial condition u0=")
        if unknown != "viscosity":
            if torch.is_tensor(nu):
                check_finite(nu, "viscosity nu")
                if not bool((nu > 0).all()):
                    raise ValueError("viscosity nu must be > 0")
            elif not float(nu) > 0:
                raise ValueError(f"viscosity nu must be > 0; got {nu}")
        if dt is not None and not dt > 0:
            raise ValueError(f"dt must be > 0 (or None for automatic); got {dt}")
        if not 0 < cfl <= COURANT_MAX:
            raise ValueError(f"cfl must be in (0, {COURANT_MAX}]; got {cfl}")
        self.state_grid, self.nu, self.unknown, self.u0 = grid, nu, unknown, u0
        # grid of the unknown m (a ParameterSpace for the viscosity); the state lives on state_grid
        self.grid = grid if unknown == "u0" else ParameterSpace(1, "viscosity")
        self.times, self.single = parse_record_times(record_times)
        self.dt, self.checkpoint, self.cfl = dt, checkpoint, float(cfl)

    @property
    def record_times(self):
        return list(self.times)

    @property
    def kmax(self) -> float:
        return 2 * math.pi * ((self.state_grid.n - 1) // 3) / self.state_grid.length

    def _unpack(self, m):
        if self.unknown == "u0":
            check_field(m, self.state_grid.shape, name="m (initial condition u0)", channels=1)
            return m, self.nu
        m = scalar_per_sample(m, "m (viscosity)")
        if not bool((m > 0).all()):
            raise ValueError(f"viscosity must be > 0; got min {float(m.min()):g}")
        u0 = self.u0.to(dtype=m.dtype, device=m.device)
        B = m.shape[0]
        return u0.expand(B, *u0.shape[1:]) if u0.shape[0] != B else u0, m

    def time_step(self, u0: torch.Tensor) -> float:
        """The step used for ``u0``: ``dt`` (checked against the Courant bound) or the automatic one."""
        umax = float(u0.detach().abs().max())
        limit = COURANT_MAX / (umax * self.kmax) if umax > 0 else math.inf
        if self.dt is None:
            return min(self.cfl * limit, max(self.times))
        if self.dt > limit * (1 + 1e-12):
            raise ValueError(
                f"time step dt={self.dt:g} breaks the Courant bound dt*max|u0|*k_max <= {COURANT_MAX} "
                f"(max|u0|={umax:.3g}, k_max={self.kmax:.3g}): use dt <= {limit:.3g} or dt=None")
        return self.dt

    def forward(self, m: torch.Tensor) -> torch.Tensor:
        u0, nu = self._unpack(m)
        plan = schedule(self.times, self.time_step(u0))
        if torch.is_tensor(nu):
            nu = nu.to(u0).reshape(-1, 1, 1)
        return simulate_burgers(self.state_grid, u0, nu, plan, checkpoint=self.checkpoint, single=self.single)

    def residual(self, m: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        r"""Trapezoidal residual between frames :math:`u_0, u(t_1), \dots`:
        :math:`(u_k-u_{k-1})/\Delta t_k - \tfrac12(R(u_k)+R(u_{k-1}))`, :math:`R(u) = -(\tfrac12u^2)_x + \nu u_{xx}`
        (spectral), units of u per time; ``(B, T, 1, n)`` (``(B, 1, n)`` for one record time)."""
        u0, nu = self._unpack(m)
        if torch.is_tensor(nu):
            nu = nu.to(u0).reshape(-1, 1, 1)
        frames = u[:, None] if u.dim() == 3 else u
        if frames.dim() != 4 or frames.shape[1] != len(self.times) or frames.shape[-1] != self.state_grid.n:
            raise ValueError(f"u has shape {tuple(u.shape)}; expected (B, {len(self.times)}, 1, {self.state_grid.n})")
        k = _wavenumbers(self.state_grid, frames.dtype, frames.device)

        def R(v):
            v_h = torch.fft.rfft(v)
            return torch.fft.irfft(-1j * k * torch.fft.rfft(0.5 * v * v) - nu * k ** 2 * v_h, n=self.state_grid.n)

        allu = torch.cat([u0[:, None], frames], 1)
        t = [0.0] + self.times
        out = torch.stack([(allu[:, i] - allu[:, i - 1]) / (t[i] - t[i - 1]) - 0.5 * (R(allu[:, i]) + R(allu[:, i - 1]))
                           for i in range(1, allu.shape[1])], 1)
        return out[:, 0] if u.dim() == 3 else out


def _wavenumbers(grid: Grid1D, dtype, device):
    rdtype = torch.empty(0, dtype=dtype).real.dtype
    return (2 * math.pi / grid.length) * torch.fft.rfftfreq(grid.n, d=1.0 / grid.n, dtype=rdtype, device=device)


def simulate_burgers(grid: Grid1D, u0: torch.Tensor, nu, plan, checkpoint=None, single=False) -> torch.Tensor:
    """Functional core of :class:`Burgers1D`: ``u0`` ``(B, 1, n)``, ``nu`` number or ``(B|1, 1, 1)``."""
    n = grid.n
    k = _wavenumbers(grid, u0.dtype, u0.device)
    mask = (torch.fft.rfftfreq(n, d=1.0 / n, device=u0.device).abs() <= (n - 1) // 3).to(k.dtype)
    ik = 1j * k * mask
    k2 = k ** 2

    def flux(u_h):
        v = torch.fft.irfft(u_h * mask, n=n)
        return -ik * torch.fft.rfft(0.5 * v * v)

    def step(state, dt):
        (u_h,) = state
        a = (0.5 * dt) * nu * k2
        num, den = 1.0 - a, 1.0 / (1.0 + a)
        n0 = flux(u_h)
        u1 = (num * u_h + dt * n0) * den
        return ((num * u_h + (0.5 * dt) * (n0 + flux(u1))) * den,)

    outs = rollout(step, (torch.fft.rfft(u0),), plan, lambda s: torch.fft.irfft(s[0], n=n), checkpoint=checkpoint)
    return outs[-1] if single else torch.stack(outs, 1)
