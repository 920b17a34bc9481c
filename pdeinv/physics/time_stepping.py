r"""Shared machinery of the time-dependent simulators: record-time schedules and
rollouts with gradient checkpointing.

A simulator advances a *state* (a tuple of tensors) by a one-step map
``step(state, dt) -> state`` and records an output field at chosen times.
:func:`schedule` turns the requested record times into a list of
``(n_steps, dt)`` intervals: each interval between consecutive record times
is split into the smallest number of equal steps not longer than ``dt_max``
(so uniform record times give a uniform step).

:func:`rollout` runs the steps.  With ``checkpoint=k`` the steps are grouped
into blocks of at most ``k`` steps, each block run under
:func:`torch.utils.checkpoint.checkpoint` (non-reentrant): the forward pass
keeps only the block-boundary states, and the backward pass recomputes one
block at a time.  Memory for ``forward + backward`` is then
``O(n_steps / k + k)`` states instead of ``O(n_steps)`` (the minimum,
``O(sqrt(n_steps))``, is at ``k ~ sqrt(n_steps)``, which ``checkpoint="sqrt"``
picks).  The gradient is the same as without checkpointing (the same
operations are replayed), which the tests check.
"""
from __future__ import annotations

import contextlib
import math
from typing import Callable, List, Sequence, Tuple, Union

import torch
from torch.utils.checkpoint import checkpoint as _checkpoint

State = Tuple[torch.Tensor, ...]


def parse_record_times(record_times) -> Tuple[List[float], bool]:
    """``(times, single)``: a float means one final time (``single=True``), a sequence a trajectory."""
    if isinstance(record_times, (int, float)) and not isinstance(record_times, bool):
        times, single = [float(record_times)], True
    else:
        try:
            times = [float(t) for t in record_times]
        except TypeError:
            raise TypeError(f"record_times must be a number (final time) or a sequence of times; "
                            f"got {type(record_times).__name__}") from None
        single = False
    if not times:
        raise ValueError("record_times is empty; give at least one time > 0")
    if not all(math.isfinite(t) for t in times) or times[0] <= 0 or any(b <= a for a, b in zip(times, times[1:])):
        raise ValueError(f"record_times must be finite, positive and strictly increasing; got {times}")
    return times, single


def schedule(times: Sequence[float], dt_max: float) -> List[Tuple[int, float]]:
    """``[(n_steps, dt), ...]`` per interval ``(t_{k-1}, t_k]`` with ``t_0 = 0`` and ``dt <= dt_max``."""
    if not dt_max > 0:
        raise ValueError(f"time step dt must be > 0; got {dt_max}")
    out, t0 = [], 0.0
    for t in times:
        span = t - t0
        n = max(1, math.ceil(span / dt_max - 1e-9))
        out.append((n, span / n))
        t0 = t
    return out


def block_size(checkpoint: Union[None, int, str], n_steps: int) -> int:
    """Steps per checkpointed block (0 = no checkpointing)."""
    if checkpoint in (None, False, 0):
        return 0
    if checkpoint == "sqrt":
        return max(1, int(math.ceil(math.sqrt(n_steps))))
    if isinstance(checkpoint, bool) or not isinstance(checkpoint, int) or checkpoint < 1:
        raise ValueError(f"checkpoint must be None, 'sqrt' or a positive number of steps per block; got {checkpoint!r}")
    return int(checkpoint)


def _run_steps(step: Callable, n: int, dt: float, *state: torch.Tensor) -> State:
    for _ in range(n):
        state = step(state, dt)
    return tuple(state)


def rollout(step: Callable[[State, float], State], state: State, plan: Sequence[Tuple[int, float]],
            record: Callable[[State], torch.Tensor], checkpoint: Union[None, int, str] = None,
            progress=None) -> List[torch.Tensor]:
    """Advance ``state`` through ``plan`` (from :func:`schedule`), returning ``record(state)`` after each interval.

    ``step(state, dt)`` must be a pure function of its inputs (parameters it
    closes over are fine: non-reentrant checkpointing tracks them).
    ``progress`` is an optional tqdm-like object with ``update(k)``.
    """
    state = tuple(state)
    with _few_threads_for_small_cpu_ffts(state):
        return _rollout(step, state, plan, record, checkpoint, progress)


#: spectral steps on grids up to this many points per sample run on one intra-op thread (CPU only)
SMALL_FFT_POINTS = 128 * 128


@contextlib.contextmanager
def _few_threads_for_small_cpu_ffts(state):
    """Thousands of tiny FFTs gain nothing from intra-op threads, and on a busy machine the thread
    hand-offs made a 16² NS solve 500x slower (14 s instead of 0.03 s).  Use one thread for the forward
    rollout of small CPU problems and restore the caller's setting afterwards.  (The backward pass runs
    later, under the caller's setting; ``torch.set_num_threads(1)`` helps there too.)"""
    x = state[0]
    small = x.device.type == "cpu" and x[0].numel() <= SMALL_FFT_POINTS
    n = torch.get_num_threads()
    if not small or n == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def _rollout(step, state, plan, record, checkpoint, progress):
    total = sum(n for n, _ in plan)
    k = block_size(checkpoint, total)
    use_ckpt = k > 0 and torch.is_grad_enabled()
    outs = []
    for n, dt in plan:
        done = 0
        while done < n:
            m = min(k, n - done) if use_ckpt else n - done
            if use_ckpt:
                state = _checkpoint(_run_steps, step, m, dt, *state, use_reentrant=False)
            else:
                state = _run_steps(step, m, dt, *state)
            done += m
            if progress is not None:
                progress.update(m)
        outs.append(record(state))
    return outs


class ParameterSpace:
    """The "grid" of a finite-dimensional unknown (a viscosity, a forcing amplitude): ``m`` is ``(B, 1, n)``.

    Time-dependent problems whose unknown is a scalar set ``problem.grid`` to a
    ``ParameterSpace`` and ``problem.state_grid`` to the spatial grid, so that
    ``ForwardModel`` and ``MAP`` (which build ``m`` as ``(B, C, *grid.shape)``)
    work unchanged; use ``MAP(prior=None, positive=True, m0=...)`` for a
    positive scalar.
    """

    ndim = 1
    bc = "none"

    def __init__(self, n: int = 1, name: str = "parameter"):
        if int(n) != n or n < 1:
            raise ValueError(f"ParameterSpace needs n >= 1 parameters, got {n!r}")
        self.n, self.name = int(n), name

    @property
    def shape(self):
        return (self.n,)

    def check(self, field: torch.Tensor, name: str = "m", channels=None) -> torch.Tensor:
        from pdeinv._validation import check_field
        return check_field(field, self.shape, name=f"{name} ({self.name})", channels=channels)

    def to_dict(self) -> dict:
        return {"kind": "ParameterSpace", "n": self.n, "name": self.name}

    def __repr__(self) -> str:
        return f"ParameterSpace(n={self.n}, name={self.name!r})"


def scalar_per_sample(m: torch.Tensor, name: str) -> torch.Tensor:
    """Accept a per-sample scalar as ``(B,)``, ``(B, 1)`` or ``(B, 1, 1)``; return ``(B,)``."""
    from pdeinv._validation import check_finite
    check_finite(m, name)
    if m.dim() == 0 or m.dim() > 3 or any(s != 1 for s in m.shape[1:]):
        raise ValueError(f"{name} must be one value per sample, (B,), (B, 1) or (B, 1, 1); got {tuple(m.shape)}")
    return m.reshape(m.shape[0])
