"""Benchmark tasks: a PDE problem, the law of its unknown, and default settings.

A :class:`Task` ties together what the CLI (``generate``, ``invert``, ``demo``,
``benchmark``) and the benchmark harness need to know about a problem:

* ``grid(res)`` -- the grid at a resolution;
* ``problem(grid)`` -- the forward problem ``problem(m) -> u``;
* ``sample_m(grid, n, seed)`` -- draws of the unknown from the task's law
  (BENCHMARKS.md), ``(n, 1, *grid.shape)`` float64;
* ``attrs`` -- PDE parameters and the law, written into dataset attrs;
* ``map_options`` -- the classical MAP defaults (prior, weight, bounds);
* ``latent(grid)`` -- ``(GaussianRandomField, transform)``: the Gaussian field behind the law
  and the map from it to ``m`` (``None`` = identity), so that ``m = transform(mu)``,
  ``mu ~ GRF`` is exactly the law; what pCN samples (``None`` when the law is not of that form);
* ``unknowns`` -- the unknowns ``pdeinv invert --unknown`` accepts (:class:`Unknown`: the task's field
  ``m_name`` and scalar parameters such as a viscosity); :meth:`Task.setup` builds the problem for one of
  them or for a field plus scalars (:class:`JointProblem`).

``TASKS`` is the registry (name -> Task); other modules register theirs with
:func:`register_task`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch
from torch import nn

from pdeinv.physics.time_stepping import ParameterSpace

LOG10 = 2.302585092994046


@dataclass
class Unknown:
    """One unknown a task can recover from the command line (``pdeinv invert TASK --unknown NAME``).

    name : the CLI name (``"u0"``, ``"nu"``, ``"k"``).  kind : ``"field"`` (the task's ``m_name``, on the grid)
    or ``"scalar"`` (one number per sample, ``m`` of shape ``(B, 1, 1)`` on a ``ParameterSpace``).
    description : one line with the unit/meaning.  problem_kwargs : keyword arguments that make
    ``task.problem`` recover this scalar (e.g. ``{"unknown": "viscosity"}``), or ``build(grid, given,
    **kw) -> problem`` where the physics has no such option.  given : the field the scalar alone needs fixed
    (read from the observation file's variable of that name) and the problem keyword it goes to
    (``given_kw``, default the same name).  attr : the problem attribute holding the scalar, which lets it be
    recovered together with the field (``--unknown u0,nu``).  start : the starting guess (the task's nominal
    value) and the centre of the joint prior; positive : the scalar is > 0.
    """

    name: str
    description: str
    kind: str = "field"
    problem_kwargs: Dict[str, Any] = field(default_factory=dict)
    build: Optional[Callable[..., nn.Module]] = None
    given: Optional[str] = None
    given_kw: Optional[str] = None
    attr: Optional[str] = None
    start: float = 1.0
    positive: bool = True

    def __post_init__(self):
        if self.kind not in ("field", "scalar"):
            raise ValueError(f"Unknown.kind must be 'field' or 'scalar'; got {self.kind!r}")


@dataclass
class Task:
    name: str
    grid: Callable[[int], Any]
    problem: Callable[..., torch.nn.Module]
    sample_m: Callable[..., torch.Tensor]
    m_name: str = "m"
    u_name: str = "u"
    attrs: Dict[str, Any] = field(default_factory=dict)
    default_res: int = 64
    map_options: Dict[str, Any] = field(default_factory=dict)
    description: str = ""
    latent: Optional[Callable[[Any], Tuple[Any, Optional[Callable]]]] = None
    unknowns: Dict[str, Unknown] = field(default_factory=dict)
    #: per-method solver options this task needs by default (the caller's options win), e.g. ns:
    #: ``{"daps": {"drift": "chord"}}`` -- the exact drift diverges there (docs/daps.md)
    solver_defaults: Dict[str, Dict[str, Any]] = field(default_factory=dict)

    def make(self, res: Optional[int] = None, **problem_kwargs):
        """``(grid, problem)`` at resolution ``res`` (default ``default_res``)."""
        g = self.grid(res or self.default_res)
        return g, self.problem(g, **problem_kwargs)

    @property
    def unknown_names(self) -> List[str]:
        """The names ``--unknown`` accepts; the first is the default (the task's field ``m_name``)."""
        return list(self.unknowns) or [self.m_name]

    def setup(self, unknown: Optional[str] = None, res: Optional[int] = None, given: Optional[dict] = None) -> Setup:
        """The problem and MAP defaults for ``unknown`` (``"nu"``, ``"u0,nu"``, ...; default: the field).

        ``given``: the inputs a scalar unknown needs fixed (e.g. ``{"u0": tensor (1, 1, n)}``).  See
        :func:`pdeinv.tasks.unknowns.setup_unknowns`; a ``ValueError`` names the valid unknowns.
        """
        return setup_unknowns(self, unknown, res, given or {})


TASKS: Dict[str, Task] = {}


def register_task(task: Task) -> Task:
    if task.name in TASKS:
        raise ValueError(f"task {task.name!r} is already registered")
    TASKS[task.name] = task
    return task


def get_task(name: str) -> Task:
    try:
        return TASKS[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r}; registered tasks: {sorted(TASKS)}") from None


# ----------------------------------------------------------------------------- unknowns from the CLI
@dataclass
class Setup:
    """What :meth:`Task.setup` returns: the spatial ``grid``, the ``problem`` (whose ``grid`` is that of ``m``),
    the MAP defaults for this unknown, the field's name (or ``None``) and the scalars' names."""

    grid: Any
    problem: nn.Module
    map_options: Dict[str, Any]
    field: Optional[str]
    scalars: List[str]

    def split(self, m: torch.Tensor) -> Dict[str, torch.Tensor]:
        """``m`` in physical terms: ``{field: (B, 1, *grid)}`` and/or ``{scalar: (B,)}``."""
        if isinstance(self.problem, JointProblem):
            return self.problem.split(m)
        if self.field is not None:
            return {self.field: m}
        return {self.scalars[0]: m.reshape(m.shape[0])}


class JointPrior:
    """Standard normal on every entry of the joint unknown (whitened field coefficients and scalar offsets)."""

    def log_prob(self, m: torch.Tensor) -> torch.Tensor:
        return -0.5 * m.pow(2).flatten(1).sum(1)


class JointProblem(nn.Module):
    r"""A field and scalar parameters recovered together: ``m`` ``(B, 1, K + S)`` on a ``ParameterSpace``.

    .. math::  \text{field} = \mu + C^{1/2} z, \qquad s_i = s_i^{0}\, 10^{x_i} \;(\text{or } s_i^0 + x_i),
               \qquad m = (z_1..z_K, x_1..x_S),

    with :math:`C` the covariance of the task's Gaussian law (its ``latent`` field) and :math:`s^0` the
    scalars' nominal values, so that ``JointPrior`` (standard normal on ``m``) is the task's law on the field
    and a one-decade log-normal on each positive scalar.  ``problem(m)`` sets each scalar on ``base``
    (attribute ``Unknown.attr``) and solves for the field.  :meth:`split` gives the physical values.
    """

    def __init__(self, base: nn.Module, law, field_name: str, scalars: List[Unknown]):
        super().__init__()
        self.base, self.law, self.field_name, self.scalars = base, law, field_name, list(scalars)
        self.coeff_shape = tuple(law.coeff_shape)
        self.n_coeff = 1
        for s in self.coeff_shape:
            self.n_coeff *= int(s)
        self.grid = ParameterSpace(self.n_coeff + len(self.scalars), f"{field_name} coefficients + "
                                   + ", ".join(u.name for u in self.scalars))
        self.state_grid = getattr(base, "state_grid", None) or base.grid
        for key in ("record_times", "single"):
            if hasattr(base, key):
                setattr(self, key, getattr(base, key))

    def split(self, m: torch.Tensor) -> Dict[str, torch.Tensor]:
        self.grid.check(m, "m", channels=1)
        B = m.shape[0]
        out = {self.field_name: self.law.color(m[:, :, :self.n_coeff].reshape(B, 1, *self.coeff_shape))}
        for i, u in enumerate(self.scalars):
            x = m[:, 0, self.n_coeff + i]
            out[u.name] = u.start * torch.pow(10.0, x) if u.positive else u.start + x
        return out

    def join(self, parts: Dict[str, torch.Tensor]) -> torch.Tensor:
        """The inverse of :meth:`split` (the field projected on the law's modes)."""
        z = self.law.whiten(parts[self.field_name]).flatten(1)
        xs = []
        for u in self.scalars:
            v = torch.as_tensor(parts[u.name], dtype=z.dtype, device=z.device).reshape(-1).expand(z.shape[0])
            xs.append(torch.log10(v / u.start) if u.positive else v - u.start)
        return torch.cat([z, torch.stack(xs, 1)], 1)[:, None]

    def forward(self, m: torch.Tensor) -> torch.Tensor:
        parts = self.split(m)
        old = {u.attr: getattr(self.base, u.attr) for u in self.scalars}
        try:
            for u in self.scalars:
                setattr(self.base, u.attr, parts[u.name])
            return self.base(parts[self.field_name])
        finally:
            for k, v in old.items():
                setattr(self.base, k, v)


def setup_unknowns(task, spec: Optional[str], res: Optional[int], given: Dict[str, torch.Tensor]) -> Setup:
    """Build :class:`Setup` for ``spec``: one name of ``task.unknowns`` or a field and scalars, comma-separated."""
    valid = task.unknown_names
    names = [s.strip() for s in (spec or valid[0]).split(",") if s.strip()]
    hint = f"task {task.name!r} accepts --unknown one of {valid}"
    fields = [u for u in task.unknowns.values() if u.kind == "field"]
    if any(u.kind == "scalar" and u.attr for u in task.unknowns.values()) and fields:
        hint += f", or the field with scalars, e.g. {fields[0].name},{next(u.name for u in task.unknowns.values() if u.kind == 'scalar' and u.attr)}"
    if not names:
        raise ValueError(f"--unknown is empty; {hint}")
    bad = [n for n in names if n not in valid]
    if bad:
        raise ValueError(f"unknown {bad[0]!r} is not supported; {hint}")
    if len(set(names)) != len(names):
        raise ValueError(f"--unknown {spec!r} names an unknown twice; {hint}")
    grid = task.grid(res or task.default_res)
    if not task.unknowns or (len(names) == 1 and task.unknowns[names[0]].kind == "field"):
        return Setup(grid, task.problem(grid), dict(task.map_options), names[0], [])
    chosen = [task.unknowns[n] for n in names]
    fld = [u for u in chosen if u.kind == "field"]
    sc = [u for u in chosen if u.kind == "scalar"]
    if len(names) == 1:
        u = sc[0]
        kw = dict(u.problem_kwargs)
        if u.given is not None:
            if u.given not in given:
                raise ValueError(f"--unknown {u.name} recovers {u.description} with {u.given!r} known: give it as "
                                 f"the variable {u.given!r} on the grid in the netCDF observation file "
                                 f"(or recover both: --unknown {u.given},{u.name})")
            kw[u.given_kw or u.given] = given[u.given]
        problem = u.build(grid, **kw) if u.build is not None else task.problem(grid, **kw)
        opts = dict(prior=None, positive=u.positive, m0=float(u.start), max_iter=50)
        return Setup(grid, problem, opts, None, [u.name])
    if len(fld) != 1:
        raise ValueError(f"--unknown {spec!r}: a combination needs exactly one field ({[f.name for f in fields]}) "
                         f"and scalars; {hint}")
    no_attr = [u.name for u in sc if not u.attr]
    law = task.latent(grid) if task.latent is not None else None
    if no_attr or law is None or law[1] is not None:
        why = (f"{no_attr} cannot be set on the field's problem" if no_attr else
               f"the law of {fld[0].name} is not a Gaussian field")
        raise ValueError(f"--unknown {spec!r} is not supported on task {task.name!r} ({why}); {hint}")
    problem = JointProblem(task.problem(grid), law[0], fld[0].name, sc)
    m0 = problem.join({fld[0].name: torch.zeros(1, 1, *grid.shape, dtype=torch.float64),
                       **{u.name: torch.tensor([u.start], dtype=torch.float64) for u in sc}})
    opts = dict(prior=JointPrior(), m0=m0, max_iter=int(task.map_options.get("max_iter", 200)))
    return Setup(grid, problem, opts, fld[0].name, [u.name for u in sc])
