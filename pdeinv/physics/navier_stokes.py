r"""2-D incompressible Navier--Stokes in vorticity form on the periodic unit square.

.. math::
    \partial_t w + \mathbf u\cdot\nabla w = \nu\Delta w - \alpha w + f, \qquad
    \mathbf u = (\partial_y\psi, -\partial_x\psi), \qquad -\Delta\psi = w,

for the vorticity :math:`w(x, y, t)` on :math:`[0, L]^2` (periodic), viscosity
:math:`\nu`, linear drag :math:`\alpha \ge 0` (default 0) and a steady forcing :math:`f(x, y)`.
Units are nondimensional.
The BENCHMARKS.md ``ns`` task (the FNO / DiffusionPDE data) uses
:math:`\nu = 10^{-3}`, :math:`f = 0.1(\sin 2\pi(x+y) + \cos 2\pi(x+y))`,
:math:`w_0 \sim N(0, 7^{1.5}(-\Delta+49I)^{-2.5})` and :math:`T = 1`.

Discretisation (pseudo-spectral, :func:`torch.fft.rfft2`):

* derivatives and the Poisson solve exactly in Fourier space
  (:math:`\hat\psi = \hat w/|k|^2`, :math:`\hat\psi_0 = 0`);
* the advection term :math:`N(w) = -\mathbf u\cdot\nabla w` is formed in
  physical space from 2/3-truncated fields and truncated again (Orszag's 2/3
  rule: modes with :math:`|k_x|` or :math:`|k_y| > (n-1)/3` are dropped), so
  it is alias-free; its mean mode is set to zero (the exact value, since
  :math:`\mathbf u\cdot\nabla w = \nabla\cdot(\mathbf u w)`);
* time stepping, ``stepper="heun"`` (default): Crank--Nicolson for the linear part
  :math:`\nu\Delta w - \alpha w`, Heun (explicit trapezoid) for :math:`N(w) + f` -- an IMEX
  scheme of second order:

.. math::
    w^* &= \frac{(1 - a)\hat w^n + \Delta t\,(\hat N^n + \hat f)}{1 + a}, \qquad
          a = \tfrac12\Delta t\,(\nu|k|^2 + \alpha), \\
    \hat w^{n+1} &= \frac{(1 - a)\hat w^n + \tfrac{\Delta t}{2}(\hat N^n + \hat N(w^*) + 2\hat f)}{1 + a}.

* ``stepper="rk4"``: the integrating-factor (Lawson) RK4 -- the linear part is integrated
  exactly by :math:`E = e^{-(\nu|k|^2 + \alpha)\Delta t/2}` and classical RK4 is applied to
  :math:`\hat g = \hat N + \hat f`; fourth order in time (the viscous decay of a linear solution,
  e.g. Taylor--Green, is exact to round-off):

.. math::
    k_1 &= \hat g(\hat w^n), \quad k_2 = \hat g\big(E(\hat w^n + \tfrac{\Delta t}2 k_1)\big), \quad
    k_3 = \hat g\big(E\hat w^n + \tfrac{\Delta t}2 k_2\big), \quad
    k_4 = \hat g\big(E^2\hat w^n + \Delta t\,E k_3\big), \\
    \hat w^{n+1} &= E^2\hat w^n + \tfrac{\Delta t}{6}\big(E^2 k_1 + 2E(k_2 + k_3) + k_4\big).

The explicit advection needs :math:`\Delta t\,\max|\mathbf u|\,k_{\max} \lesssim 1`
(:math:`k_{\max} = 2\pi (n-1)/3`; ``<= 2`` for RK4, see ``COURANT_LIMITS``); the default ``dt = 1e-3`` is far inside
that for the benchmark law up to 256²; ``dt = 5e-3`` keeps w(T) within about
1e-4 relative of the fine-step answer at 64² with Heun (see docs/time_dependent.md, which
also gives the step each stepper needs for a given accuracy).

Everything is a chain of torch operations, so gradients with respect to the
initial vorticity, the forcing field, its amplitude, the viscosity and the drag (tensors,
one per sample) come from autograd; ``checkpoint=`` bounds the memory
of long rollouts (see :mod:`pdeinv.physics.time_stepping`).

Output layout: ``record_times`` a number ``T`` gives ``w(T)`` as
``(B, 1, n, n)``; a sequence of times gives the trajectory
``(B, T, 1, n, n)`` (the initial field is not included).
"""
from __future__ import annotations

import logging
import math
from typing import Optional, Sequence, Union

import torch
from torch import nn

from pdeinv._validation import check_field, check_finite
from pdeinv.physics.grid import Grid2D
from pdeinv.physics.time_stepping import ParameterSpace, parse_record_times, rollout, scalar_per_sample, schedule

log = logging.getLogger(__name__)

FORCINGS = ("fno", "none")
STEPPERS = ("heun", "rk4")
STACKED_FFT_MAX = 64 * 33          # Fourier coefficients per field up to which the 4 inverse FFTs are stacked
BATCH_CHUNK = 4 * 256 * 129        # larger batches are cut into chunks of about this many coefficients (CPU
                                   # FFTs of big batches ran 1.6x slower per sample than in chunks of 4 x 256²)
COURANT_MAX = 1.0
#: Courant limit per stepper.  The advection eigenvalues are i u.k with |u.k| <= max|u| sqrt(2) k_max;
#: classical RK4 is stable on the imaginary axis up to 2 sqrt(2), hence 2 (Heun has no such interval: 1)
COURANT_LIMITS = {"heun": COURANT_MAX, "rk4": 2.0}


def fno_forcing(grid: Grid2D, dtype=torch.float64, device=None) -> torch.Tensor:
    r"""The benchmark forcing :math:`0.1(\sin 2\pi(x+y) + \cos 2\pi(x+y))`, ``(1, 1, n, n)``."""
    X, Y = grid.mesh(dtype=dtype, device=device)
    s = 2 * math.pi * (X + Y)
    return (0.1 * (torch.sin(s) + torch.cos(s)))[None, None]


class SpectralOps2D:
    """Wavenumbers, Laplacian symbol and 2/3 de-aliasing mask for ``rfft2`` on a periodic grid."""

    def __init__(self, grid: Grid2D, dtype, device):
        nx, ny = grid.shape
        Lx, Ly = grid.length
        rdtype = torch.empty(0, dtype=dtype).real.dtype
        kx = torch.fft.fftfreq(nx, d=1.0 / nx, dtype=rdtype, device=device)      # integers
        ky = torch.fft.rfftfreq(ny, d=1.0 / ny, dtype=rdtype, device=device)
        self.kx = (2 * math.pi / Lx) * kx[:, None]                                  # (nx, 1)
        self.ky = (2 * math.pi / Ly) * ky[None, :]                                  # (1, ny//2+1)
        self.lap = self.kx ** 2 + self.ky ** 2                                      # |k|^2 = symbol of -Δ
        inv = torch.where(self.lap > 0, 1.0 / torch.where(self.lap > 0, self.lap, torch.ones_like(self.lap)),
                          torch.zeros_like(self.lap))
        self.inv_lap = inv
        keep = (kx.abs()[:, None] <= (nx - 1) // 3) & (ky.abs()[None, :] <= (ny - 1) // 3)
        self.mask = keep.to(rdtype)
        self.mask_nl = self.mask.clone()
        self.mask_nl[0, 0] = 0.0                                                    # mean of u·∇w is zero
        self.shape = (nx, ny)
        # symbols taking the 2/3-truncated w_hat to (u, v, w_x, w_y): one batched inverse FFT per N(w)
        psi = self.inv_lap * self.mask
        self._grad_symbols = torch.stack(torch.broadcast_tensors(
            1j * self.ky * psi, -1j * self.kx * psi, 1j * self.kx * self.mask, 1j * self.ky * self.mask))
        self._grad_symbols_4d = self._grad_symbols[:, None, None]                  # for w_h (B, 1, nx, ny//2+1)
        self._neg_mask_nl = (-self.mask_nl).to(self._grad_symbols.dtype)           # complex: no cast per call

    def to_physical(self, w_h: torch.Tensor) -> torch.Tensor:
        return torch.fft.irfft2(w_h, s=self.shape)

    def velocity(self, w_h: torch.Tensor):
        """Velocity ``(u, v)`` in physical space from the vorticity's Fourier coefficients."""
        psi = w_h * self.inv_lap
        return self.to_physical(1j * self.ky * psi), self.to_physical(-1j * self.kx * psi)

    def advection(self, w_h: torch.Tensor, plus: Optional[torch.Tensor] = None) -> torch.Tensor:
        r"""De-aliased :math:`-\widehat{\mathbf u\cdot\nabla w}` (Fourier coefficients) ``+ plus`` (e.g. the
        forcing's), ``w_h``: ``(B, 1, nx, ny//2+1)``.  Few, batched operations: this is the cost of a step."""
        if w_h.dim() == 4 and w_h.numel() > BATCH_CHUNK and w_h.shape[0] > 1:
            k = max(1, BATCH_CHUNK // w_h[0].numel())
            p = plus.expand(w_h.shape).split(k) if torch.is_tensor(plus) else [plus] * w_h.shape[0]
            return torch.cat([self.advection(x, q) for x, q in zip(w_h.split(k), p)])
        sym = self._grad_symbols_4d if w_h.dim() == 4 else \
            self._grad_symbols.reshape(4, *([1] * (w_h.dim() - 2)), *self.lap.shape)
        if w_h.numel() <= STACKED_FFT_MAX:        # one stacked inverse FFT: fewer calls for tiny problems
            u, v, wx, wy = self.to_physical(w_h * sym).unbind(0)
        else:                                     # 2-3x faster than stacked from 64² x 4 samples up (CPU)
            u, v, wx, wy = (self.to_physical(w_h * s) for s in sym)
        adv = torch.fft.rfft2(torch.addcmul(u * wx, v, wy))
        return adv * self._neg_mask_nl if plus is None else torch.addcmul(plus, adv, self._neg_mask_nl)


def _as_param(value, name: str, grid: Grid2D, kind: str):
    """Fixed inputs: numbers stay numbers, tensors are checked."""
    if value is None:
        return None
    if torch.is_tensor(value):
        check_finite(value, name)
        if kind == "field":
            if value.dim() != 4 or tuple(value.shape[2:]) != tuple(grid.shape) or value.shape[1] != 1:
                raise ValueError(f"{name} has shape {tuple(value.shape)}; expected (1|B, 1, {grid.shape[0]}, "
                                 f"{grid.shape[1]}) on the problem's grid")
        return value
    return float(value)


class NavierStokes2D(nn.Module):
    r"""``NavierStokes2D(grid, nu=1e-3, forcing="fno", record_times=1.0, dt=1e-3, unknown="w0")``.

    ``problem(m) -> w`` integrates the vorticity equation (module docstring).

    Parameters
    ----------
    grid : periodic :class:`Grid2D` (``bc="periodic"``).
    nu : viscosity :math:`\nu > 0` (number or tensor ``(B,)``/``(1,)``), used unless it is the unknown.
    forcing : ``"fno"`` (the benchmark forcing), ``"none"``/``None``/``0``, a number (constant, which
        changes the mean vorticity linearly in time) or a field ``(1|B, 1, n, n)``.
    amplitude : factor multiplying the forcing (default 1).
    w0 : initial vorticity ``(1|B, 1, n, n)`` when it is not the unknown.
    record_times : a number ``T`` (output ``w(T)``, ``(B, 1, n, n)``) or an increasing sequence of
        times (output ``(B, T, 1, n, n)``).
    dt : largest time step; each interval between record times is cut into equal steps <= dt.
    unknown : what ``m`` is: ``"w0"`` (``(B, 1, n, n)``), ``"forcing"`` (``(B, 1, n, n)``),
        ``"viscosity"`` (``(B,)`` or ``(B, 1)``, > 0), ``"amplitude"`` (forcing amplitude, ``(B,)``/``(B, 1)``)
        or ``"drag"`` (``(B,)``/``(B, 1)``, >= 0).
    drag : linear drag coefficient :math:`\alpha \ge 0` (number or tensor ``(B,)``/``(1,)``; default 0).
    stepper : ``"heun"`` (CN/Heun IMEX, second order, default) or ``"rk4"`` (integrating-factor RK4,
        fourth order, 4 advection evaluations per step instead of 2; see the module docstring).
    checkpoint : ``None`` (keep every step for backward), an int (steps per checkpointed block) or
        ``"sqrt"``.
    verbose : tqdm progress bar over time steps.
    """

    inputs = ("w0", "forcing", "viscosity", "amplitude", "drag")

    def __init__(self, grid: Grid2D, nu=1e-3, forcing: Union[str, float, torch.Tensor, None] = "fno",
                 record_times: Union[float, Sequence[float]] = 1.0, dt: float = 1e-3, unknown: str = "w0",
                 w0: Optional[torch.Tensor] = None, amplitude=1.0, checkpoint=None, verbose: bool = False,
                 drag=0.0, stepper: str = "heun"):
        super().__init__()
        if not isinstance(grid, Grid2D) or grid.bc != "periodic":
            raise ValueError("NavierStokes2D needs a periodic Grid2D (Grid2D(n, bc='periodic'))")
        if unknown not in self.inputs:
            raise ValueError(f"unknown={unknown!r} is not an input of NavierStokes2D; expected one of {self.inputs}")
        self.state_grid, self.unknown = grid, unknown
        # grid of the unknown m (a ParameterSpace for scalar unknowns); the state lives on state_grid
        self.grid = grid if unknown in ("w0", "forcing") else ParameterSpace(1, unknown)
        self.times, self.single = parse_record_times(record_times)
        self.plan = schedule(self.times, dt)
        self.dt, self.checkpoint, self.verbose = float(dt), checkpoint, verbose
        if stepper not in STEPPERS:
            raise ValueError(f"unknown stepper {stepper!r}; expected one of {STEPPERS}")
        self.stepper = stepper
        if isinstance(forcing, str):
            if forcing not in FORCINGS:
                raise ValueError(f"unknown forcing {forcing!r}; expected one of {FORCINGS}, a number or a field")
            forcing = fno_forcing(grid) if forcing == "fno" else None
        self.forcing = _as_param(forcing, "forcing", grid, "field")
        if isinstance(self.forcing, float) and self.forcing == 0.0:
            self.forcing = None
        self.nu = self._check_scalar(nu, "viscosity nu", positive=True) if unknown != "viscosity" else None
        self.amplitude = self._check_scalar(amplitude, "forcing amplitude") if unknown != "amplitude" else None
        self.drag = self._check_scalar(drag, "drag alpha", nonneg=True) if unknown != "drag" else None
        self.w0 = _as_param(w0, "initial vorticity w0", grid, "field")
        if unknown == "amplitude" and self.forcing is None:
            raise ValueError("unknown='amplitude' needs a forcing field (forcing='fno' or a tensor)")

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _check_scalar(v, name, positive=False, nonneg=False):
        if v is None:
            raise ValueError(f"{name} is required")
        if torch.is_tensor(v):
            check_finite(v, name)
            if positive and not bool((v > 0).all()):
                raise ValueError(f"{name} must be > 0; got min {float(v.min()):g}")
            if nonneg and not bool((v >= 0).all()):
                raise ValueError(f"{name} must be >= 0; got min {float(v.min()):g}")
            return v
        v = float(v)
        if not math.isfinite(v) or (positive and not v > 0) or (nonneg and not v >= 0):
            bound = " > 0" if positive else " >= 0" if nonneg else ""
            raise ValueError(f"{name} must be a finite number{bound}; got {v}")
        return v

    @property
    def n_steps(self) -> int:
        return sum(n for n, _ in self.plan)

    @property
    def record_times(self):
        return list(self.times)

    def _per_sample(self, v, B, like, name):
        """Scalar-per-sample input as a ``(B|1, 1, 1, 1)`` tensor (or a float)."""
        if not torch.is_tensor(v):
            return v
        v = v.to(dtype=like.dtype, device=like.device).reshape(-1)
        if v.numel() not in (1, B):
            raise ValueError(f"{name} has {v.numel()} values; expected 1 or one per sample ({B})")
        return v.reshape(-1, 1, 1, 1)

    def _unpack(self, m: torch.Tensor):
        w0, forcing, nu, amp, drag = self.w0, self.forcing, self.nu, self.amplitude, self.drag
        if self.unknown in ("w0", "forcing"):
            check_field(m, self.state_grid.shape, name=f"m ({self.unknown})", channels=1)
            if self.unknown == "w0":
                w0 = m
            else:
                forcing = m
            like = m
        else:
            m = scalar_per_sample(m, f"m ({self.unknown})")
            if self.unknown == "viscosity":
                if not bool((m > 0).all()):
                    raise ValueError(f"viscosity must be > 0; got min {float(m.min()):g}")
                nu = m
            elif self.unknown == "drag":
                if not bool((m >= 0).all()):
                    raise ValueError(f"drag must be >= 0; got min {float(m.min()):g}")
                drag = m
            else:
                amp = m
            like = m
        if w0 is None:
            raise ValueError("the initial vorticity w0 is not set (pass w0= to the problem or use unknown='w0')")
        B = max(t.shape[0] for t in (m, w0) if torch.is_tensor(t) and t.dim() >= 1)
        dtype = like.dtype if like.is_floating_point() else torch.float64
        ref = torch.empty(0, dtype=dtype, device=like.device)
        w0 = w0.to(ref)
        if w0.shape[0] != B:
            w0 = w0.expand(B, *w0.shape[1:])
        if torch.is_tensor(forcing):
            forcing = forcing.to(ref)
        nu = self._per_sample(nu, B, ref, "viscosity")
        amp = self._per_sample(amp, B, ref, "forcing amplitude")
        drag = self._per_sample(drag, B, ref, "drag")
        return w0, forcing, nu, amp, drag

    # ------------------------------------------------------------------ solve
    def forward(self, m: torch.Tensor) -> torch.Tensor:
        """Vorticity at the record times: ``(B, 1, n, n)`` (single time) or ``(B, T, 1, n, n)``."""
        w0, forcing, nu, amp, drag = self._unpack(m)
        self.check_courant(w0)
        return simulate(self.state_grid, w0, nu, forcing, amp, self.plan, checkpoint=self.checkpoint,
                        single=self.single, verbose=self.verbose, drag=drag, stepper=self.stepper)

    def courant(self, w: torch.Tensor) -> float:
        r"""Courant number :math:`\Delta t\,\max|\mathbf u|\,k_{\max}` of the vorticity ``w`` with the largest step."""
        ops = SpectralOps2D(self.state_grid, w.dtype, w.device)
        u, v = ops.velocity(torch.fft.rfft2(w.detach()))
        kmax = 2 * math.pi * max((n - 1) // 3 / L for n, L in zip(self.state_grid.shape, self.state_grid.length))
        return max(d for _, d in self.plan) * float(torch.sqrt(u ** 2 + v ** 2).max()) * kmax

    def check_courant(self, w0: torch.Tensor) -> None:
        """Raise ``ValueError`` if the explicit advection step is unstable for ``w0`` (Courant number above
        ``COURANT_LIMITS[stepper]``: 1 for Heun, 2 for RK4)."""
        cr, lim = self.courant(w0), COURANT_LIMITS[self.stepper]
        if cr > lim:
            raise ValueError(f"time step dt={self.dt:g} is too large for this initial vorticity: Courant number "
                             f"dt*max|u|*k_max = {cr:.3g} > {lim} ({self.stepper}); reduce dt to <= {self.dt * lim / cr:.3g}")

    def slice_residual(self, m: torch.Tensor, u: torch.Tensor, max_substeps: int = 64) -> torch.Tensor:
        r"""Simulator residual between the time slices: :math:`r = u - F(m)` (vorticity units).

        The physics residual to use when the stored frames are far apart (``ns``: ``w0`` and
        ``w(T=1)``), where the one-step :meth:`residual` means nothing -- e.g. as PDE guidance of a
        joint diffusion prior over ``(w0, w(T))``.  Differentiable in both arguments.  A rough
        estimate of ``m`` (a denoiser's early guess) can be faster than the data the time step was
        chosen for; then the step is divided (up to ``max_substeps``) to keep the Courant number
        within ``COURANT_LIMITS`` instead of raising.
        """
        w0, forcing, nu, amp, drag = self._unpack(m)
        cr, lim = self.courant(w0), COURANT_LIMITS[self.stepper]
        plan = self.plan
        if cr > lim:
            k = math.ceil(1.01 * cr / lim)
            if k > max_substeps:
                raise ValueError(f"slice_residual: Courant number {cr:.3g} of m needs {k} substeps per step "
                                 f"(> max_substeps={max_substeps}); m is far outside the data's range")
            plan = schedule(self.times, self.dt / k)
        pred = simulate(self.state_grid, w0, nu, forcing, amp, plan, checkpoint=self.checkpoint, single=self.single,
                        drag=drag, stepper=self.stepper)
        return u - pred

    def rhs(self, w: torch.Tensor, m: Optional[torch.Tensor] = None) -> torch.Tensor:
        r"""Continuous right-hand side :math:`\partial_t w = -\mathbf u\cdot\nabla w + \nu\Delta w - \alpha w + f` (spectral)."""
        if m is None:
            if self.unknown != "w0":
                raise ValueError(f"rhs needs m (the {self.unknown}) when it is the unknown")
            m = w
        w0, forcing, nu, amp, drag = self._unpack(m)
        ops = SpectralOps2D(self.state_grid, w.dtype, w.device)
        w_h = torch.fft.rfft2(w)
        out = ops.advection(w_h) - (nu * ops.lap + drag) * w_h
        if forcing is not None:
            out = out + torch.fft.rfft2(amp * forcing)
        return ops.to_physical(out)

    def residual(self, m: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        r"""Trapezoidal residual of the vorticity equation between stored frames.

        With frames :math:`w_0 = ` the initial vorticity and :math:`w_k = w(t_k)` (``u``),

        .. math:: r_k = \frac{w_k - w_{k-1}}{t_k - t_{k-1}} - \tfrac12\big(R(w_{k-1}) + R(w_k)\big),
                  \qquad R(w) = -\mathbf u\cdot\nabla w + \nu\Delta w - \alpha w + f,

        in units of vorticity per time, ``(B, T, 1, n, n)`` (or ``(B, 1, n, n)`` for a single
        record time).  It is :math:`O((t_k - t_{k-1})^2)` for the exact solution, so it is
        meaningful for closely spaced frames (e.g. as a physics loss), not for one coarse step.
        """
        w0, forcing, nu, amp, drag = self._unpack(m)
        frames = u[:, None] if u.dim() == 4 else u
        if frames.dim() != 5 or frames.shape[1] != len(self.times) or tuple(frames.shape[-2:]) != tuple(self.state_grid.shape):
            raise ValueError(f"u has shape {tuple(u.shape)}; expected (B, {len(self.times)}, 1, *{self.state_grid.shape}) "
                             "(or (B, 1, n, n) for one record time)")
        ops = SpectralOps2D(self.state_grid, frames.dtype, frames.device)
        f_h = torch.fft.rfft2(amp * forcing) if forcing is not None else 0.0

        def R(w):
            w_h = torch.fft.rfft2(w)
            return ops.to_physical(ops.advection(w_h) - (nu * ops.lap + drag) * w_h + f_h)

        allw = torch.cat([w0[:, None], frames], 1)
        t = torch.tensor([0.0] + self.times, dtype=frames.dtype, device=frames.device)
        Rs = [R(allw[:, k]) for k in range(allw.shape[1])]
        res = [(allw[:, k] - allw[:, k - 1]) / (t[k] - t[k - 1]) - 0.5 * (Rs[k] + Rs[k - 1])
               for k in range(1, allw.shape[1])]
        out = torch.stack(res, 1)
        return out[:, 0] if u.dim() == 4 else out


def simulate(grid: Grid2D, w0: torch.Tensor, nu, forcing=None, amplitude=1.0, plan=None, *, times=None,
             dt: float = 1e-3, checkpoint=None, single: bool = False, verbose: bool = False, drag=0.0,
             stepper: str = "heun") -> torch.Tensor:
    r"""Integrate the vorticity equation from ``w0`` (``(B, 1, n, n)``); functional core of :class:`NavierStokes2D`.

    ``nu``, ``drag``: numbers or ``(B|1, 1, 1, 1)`` tensors; ``forcing``: ``None`` or ``(1|B, 1, n, n)``;
    ``stepper``: ``"heun"`` or ``"rk4"`` (module docstring);
    ``plan`` from :func:`~pdeinv.physics.time_stepping.schedule` (or give ``times`` and ``dt``).
    Returns ``(B, T, 1, n, n)``, or ``(B, 1, n, n)`` if ``single``.
    """
    if plan is None:
        if times is None:
            raise ValueError("give plan= or times=")
        plan = schedule(list(times), dt)
    ops = SpectralOps2D(grid, w0.dtype, w0.device)
    if forcing is not None:
        f_h = torch.fft.rfft2(amplitude * forcing)
    else:
        f_h = None
    if stepper not in STEPPERS:
        raise ValueError(f"unknown stepper {stepper!r}; expected one of {STEPPERS}")
    lin = nu * ops.lap + drag                   # symbol of -(nu Laplacian - alpha), (B|1, 1, nx, ny//2+1)

    def g(w_h):
        return ops.advection(w_h, f_h)

    # per step size, closed over by the steps (fine for checkpointing): RK4's integrating factors
    # E = exp(-lin dt/2), E^2 and the weights dt/6 E^2, dt/3 E; Heun's (1 - a) and 1/(1 + a), a = lin dt/2
    # (stored complex, as the state: mixed real-complex products cast on every call)
    def _factors(d):
        if stepper == "rk4":
            E, E2 = torch.exp((-0.5 * d) * lin), torch.exp(-d * lin)
            out = E, E2, (d / 6) * E2, (d / 3) * E
        else:
            a = (0.5 * d) * lin
            out = 1.0 - a, 1.0 / (1.0 + a)
        return tuple(torch.complex(x, torch.zeros_like(x)) for x in out)
    factors = {d: _factors(d) for d in {d for _, d in plan}}

    def step_rk4(state, dt):
        (w_h,) = state
        E, E2, c1, c23 = factors[dt]
        k1 = g(w_h)
        k2 = g(E * torch.add(w_h, k1, alpha=0.5 * dt))
        Ew = E * w_h
        k3 = g(torch.add(Ew, k2, alpha=0.5 * dt))
        k4 = g(E * torch.add(Ew, k3, alpha=dt))
        out = torch.addcmul(E * Ew, c1, k1)           # E^2 w + dt/6 (E^2 k1 + 2 E (k2 + k3) + k4)
        out = torch.addcmul(out, c23, k2 + k3)
        return (torch.add(out, k4, alpha=dt / 6),)

    def step(state, dt):
        (w_h,) = state
        num, den = factors[dt]
        nw = num * w_h
        n0 = g(w_h)
        n1 = g(torch.add(nw, n0, alpha=dt) * den)
        return (torch.add(nw, n0 + n1, alpha=0.5 * dt) * den,)

    bar = None
    if verbose:
        from tqdm.auto import tqdm
        bar = tqdm(total=sum(n for n, _ in plan), desc="navier-stokes", unit="step", leave=False)
    try:
        outs = rollout(step_rk4 if stepper == "rk4" else step, (torch.fft.rfft2(w0),), plan, lambda s: ops.to_physical(s[0]),
                       checkpoint=checkpoint, progress=bar)
    finally:
        if bar is not None:
            bar.close()
    if single:
        return outs[-1]
    return torch.stack(outs, 1)


def taylor_green(grid: Grid2D, t: float, nu: float, k: int = 1, amplitude: float = 1.0,
                 dtype=torch.float64, device=None) -> torch.Tensor:
    r"""Taylor--Green vorticity :math:`w = A\,2\kappa\cos(\kappa x)\cos(\kappa y)\,e^{-2\nu\kappa^2 t}`,
    :math:`\kappa = 2\pi k/L`, an exact steady-shape solution of the unforced equations, ``(1, 1, n, n)``."""
    X, Y = grid.mesh(dtype=dtype, device=device)
    kap = 2 * math.pi * k / grid.length[0]
    return (amplitude * 2 * kap * torch.cos(kap * X) * torch.cos(kap * Y) * math.exp(-2 * nu * kap ** 2 * t))[None, None]
