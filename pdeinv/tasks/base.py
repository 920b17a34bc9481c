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
  ``mu ~ GRF`` is exactly the law; what pCN samples (``None`` when the law is not of that form).

``TASKS`` is the registry (name -> Task); other modules register theirs with
:func:`register_task`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Optional, Tuple

import torch


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

    def make(self, res: Optional[int] = None, **problem_kwargs):
        """``(grid, problem)`` at resolution ``res`` (default ``default_res``)."""
        g = self.grid(res or self.default_res)
        return g, self.problem(g, **problem_kwargs)


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
