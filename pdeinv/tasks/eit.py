"""The ``eit`` task: Calderón problem (electrical impedance tomography) on the unit square.

``m`` is the conductivity ``sigma`` ``(B, 1, n, n)``; the state ``u`` is the
Dirichlet-to-Neumann data ``(B, L, 4(n-1))`` (flux of each of the ``L``
boundary patterns at the boundary nodes), see :mod:`pdeinv.physics.eit`.
Two conductivity laws: ``"trig"`` (smooth, default) and ``"inclusions"``
(piecewise constant discs); ``EIT_LAW`` below selects the task's default.
"""
from __future__ import annotations

from pdeinv.physics import Grid2D
from pdeinv.physics.eit import EIT, EIT_LAWS, inclusion_conductivity, trig_conductivity
from pdeinv.tasks.base import Task, Unknown, register_task

EIT_PATTERNS = 16


def sample_eit_conductivity(grid, n: int, seed: int = 0, law: str = "trig"):
    """Draws of the conductivity from law ``"trig"`` or ``"inclusions"`` (float64 ``(n, 1, *grid)``)."""
    if law not in EIT_LAWS:
        raise ValueError(f"unknown EIT conductivity law {law!r}; expected one of {sorted(EIT_LAWS)}")
    return EIT_LAWS[law](grid, n, seed=seed)


register_task(Task(
    name="eit", grid=lambda res: Grid2D(res),
    problem=lambda g, **kw: EIT(g, n_patterns=kw.pop("n_patterns", EIT_PATTERNS), **kw),
    sample_m=sample_eit_conductivity, m_name="sigma", u_name="dtn",
    attrs={"equation": "-div(sigma grad u_l) = 0, u_l = g_l on boundary; data = sigma du_l/dn on boundary",
           "patterns": f"{EIT_PATTERNS} perimeter Fourier modes cos/sin(pi k s / 2), s = arclength in [0, 4)",
           "law": "sigma = exp(sum_{k,l<=4} c_kl/(k^2+l^2) sin(pi k x) sin(pi l y)), c_kl ~ U(-1, 1)",
           "state_layout": "u[sample, u_channel = pattern, x_u = boundary arclength s in [0, 4)]"},
    default_res=32,
    map_options=dict(prior="h1", positive=True),
    description="Calderon / EIT: conductivity from the Dirichlet-to-Neumann map (16 patterns)",
    unknowns={"sigma": Unknown("sigma", "the conductivity field sigma(x, y)")},
))
register_task(Task(
    name="eit_inclusions", grid=lambda res: Grid2D(res),
    problem=lambda g, **kw: EIT(g, n_patterns=kw.pop("n_patterns", EIT_PATTERNS), **kw),
    sample_m=lambda grid, n, seed=0: inclusion_conductivity(grid, n, seed=seed), m_name="sigma", u_name="dtn",
    attrs={"equation": "-div(sigma grad u_l) = 0, u_l = g_l on boundary; data = sigma du_l/dn on boundary",
           "patterns": f"{EIT_PATTERNS} perimeter Fourier modes cos/sin(pi k s / 2), s = arclength in [0, 4)",
           "law": "background 1 with 1-3 discs, centre U[0.2,0.8]^2, radius U[0.08,0.2], value U[2,5] or U[0.2,0.5]",
           "state_layout": "u[sample, u_channel = pattern, x_u = boundary arclength s in [0, 4)]"},
    default_res=32,
    map_options=dict(prior="tv", positive=True),
    description="EIT with piecewise-constant inclusions",
    unknowns={"sigma": Unknown("sigma", "the conductivity field sigma(x, y)")},
))
