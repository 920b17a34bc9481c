"""Benchmark tasks: a PDE problem, the law of its unknown, and default settings.

``TASKS`` is the registry (name -> :class:`Task`); importing the package registers the
elliptic tasks (darcy, poisson, helmholtz), the time-dependent ones (ns, ns_long,
burgers, wave) and the boundary-data ones (eit, eit_inclusions).
"""
from pdeinv.tasks.base import TASKS, Task, get_task, register_task
from pdeinv.tasks.elliptic import DARCY_LAW, GRF_SOURCE_LAW, sample_darcy_coefficient
from pdeinv.tasks import eit as _eit  # noqa: F401  (registers "eit", "eit_inclusions")
from pdeinv.tasks import time_dependent as _time  # noqa: F401  (registers "ns", "ns_long", "burgers", "wave")
from pdeinv.tasks import burgers_bc as _burgers_bc  # noqa: F401  (registers "burgers_dirichlet")

__all__ = ["TASKS", "Task", "get_task", "register_task", "DARCY_LAW", "GRF_SOURCE_LAW", "sample_darcy_coefficient"]
