r"""One way to build a method for a task: :func:`build`.

``build(name, task, res, model=..., **options) -> InverseSolver`` returns a solver of
``pdeinv.solvers.SOLVERS[name]`` configured with the task's defaults:

==================  ===========================================================================
method              what the task and the model give it
==================  ===========================================================================
``map``             ``task.map_options`` (classical prior, weight, bounds)
``surrogate-map``   a trained *forward* surrogate ``m -> u`` (``model``) + ``task.map_options``
``amortized``       a trained *inverse* operator ``y -> m`` (``model``)
``fundps``,         a trained EDM denoiser of the joint field (``model``); the task's bounds as
``diffusionpde``    ``clip``; ``problem.slice_residual`` as the PDE term where the problem has one
``daps``            a trained EDM denoiser of m or of (m, u) (``model``); the task's bounds as ``clip``
``gaussian``        the task's Gaussian law as prior (linear tasks: poisson, helmholtz; forward mode)
``laplace``         the task's Gaussian MAP prior (and bounds)
``pinn``            the task's bounds as ``field_bounds``
``mcmc``            the Gaussian field behind the task's law and its transform (``task.latent``)
``mcmc-2level``     the same, plus a trained forward surrogate (``model``) as the screen, run on the
                    coarser grid of ``screen_res`` if given (``--opt screen_res=32``)
==================  ===========================================================================

Options given by the caller override the defaults.  The command line (``pdeinv invert
--method NAME --model CKPT --opt KEY=VALUE``), the benchmark harness and the demos all
build their solvers here, so a method is the same object whichever door it is used through.

A method registered in ``SOLVERS`` without an entry in :data:`BUILDERS` is built as
``SOLVERS[name](**options)`` (plus ``load(model)`` when a model is given).
"""
from __future__ import annotations

import logging
import os
from typing import Any, Callable, Dict, Optional

import torch

log = logging.getLogger(__name__)

#: method names that need a trained model, and what kind
NEEDS_MODEL = {
    "surrogate-map": "a trained forward surrogate m -> u (e.g. `pdeinv train fno --mode forward`)",
    "amortized": "a trained inverse operator (e.g. `pdeinv train vito`, `pdeinv train fno --mode inverse --sparse F`, "
                 "`pdeinv train nio`)",
    "fundps": "a trained joint-field denoiser (`pdeinv train diffusion --arch uno`)",
    "diffusionpde": "a trained joint-field denoiser (`pdeinv train diffusion --arch unet`)",
    "daps": "a trained denoiser of m or of the joint field (`pdeinv train diffusion --arch uno`, `-O channels=m`)",
    "mcmc-2level": "a trained forward surrogate m -> u for the screening level",
}

#: names users try that are networks, not methods
_NETWORK_NAMES = {"fno", "deeponet", "vito", "nio", "lepde", "unet", "diffusion", "sparse"}


def _resolve_task(task):
    if task is None or not isinstance(task, str):
        return task
    from pdeinv.tasks import get_task
    return get_task(task)


def load_model(model, device=None, task=None, res=None):
    """A trained network from a checkpoint path (any registered class), a shipped model's name
    (:mod:`pdeinv.nn.pretrained`; refused for another task) or as given."""
    from pdeinv.nn import pretrained
    if isinstance(model, str) and not os.path.exists(model) and model in pretrained.manifest() and task is not None:
        pretrained.check_serves(model, task.name, res)
    return pretrained.resolve(model, device=device)


def default_model(name: str, task, res=None) -> Optional[str]:
    """The shipped model that method ``name`` uses on ``task`` at ``res`` when none is given, or ``None``."""
    if task is None:
        return None
    from pdeinv.nn import pretrained
    found = pretrained.default_for(name, task.name, res or task.default_res)
    if found is not None:
        log.info("method %s on %s: using the shipped model %s (give --model to choose another)", name, task.name,
                 found)
    return found


def _shipped_hint(name: str, task) -> str:
    from pdeinv.nn import pretrained
    names = pretrained.available(method=name)
    return f"; shipped models for {name}: {names} (other tasks or grids)" if names else ""


def _map_defaults(task) -> Dict[str, Any]:
    return dict(task.map_options) if task is not None else {}


def _grid_shape(task, res):
    if task is None:
        return None
    return tuple(task.grid(res or task.default_res).shape)


#: config entries that tie a network to one grid (its input or output size is built in)
FIXED_GRID_KEYS = ("grid_shape", "out_size")


def _trained_grid(model):
    """``(shape, fixed, where)``: the grid the model was trained on, whether it is tied to it, and where
    that was read; ``(None, False, None)`` when the model records no grid."""
    cfg = getattr(model, "config", None)
    if isinstance(cfg, dict):
        for key in FIXED_GRID_KEYS:
            if cfg.get(key) is not None:
                v = cfg[key]
                shape = tuple(int(s) for s in (v if isinstance(v, (list, tuple)) else (v, v)))
                return shape, True, f"its config ({key})"
    rec = getattr(model, "trained_on", None)
    g = rec.get("grid") if isinstance(rec, dict) else None
    if isinstance(g, dict) and g.get("n") is not None:
        n = g["n"]
        return tuple(int(s) for s in (n if isinstance(n, (list, tuple)) else (n,))), False, "its training record"
    return None, False, None


def check_model_grid(model, task, res) -> Optional[str]:
    """Compare the grid a trained network was trained on with the task's grid at ``res``.

    A network tied to its grid (a ``grid_shape`` or ``out_size`` in its config: the sparse baselines,
    DeepONet, NIO, ViTO, U-Net) is refused on another grid (``ValueError``).  Otherwise the grid comes
    from the checkpoint's training record (``model.trained_on``, written by ``pdeinv train``): a
    resolution-free operator (FNO, the UNO denoiser) may run on another grid, which is logged as a
    warning and returned as a note (``build`` puts it in ``result.info["model_grid"]``).  ``None``
    when the grids agree or the model records none.
    """
    shape = _grid_shape(task, res)
    if shape is None:
        return None
    trained, fixed, where = _trained_grid(model)
    if trained is None or trained == shape:
        return None
    name = type(model).__name__
    if fixed:
        raise ValueError(f"the model {name} was trained on a {trained} grid ({where}); the task's grid at "
                         f"res={res} is {shape}. Give --res {trained[0]} or a model trained at this resolution")
    note = (f"the model {name} was trained on a {trained} grid and runs on {shape} (res={res}): a "
            "resolution-free operator, but expect larger errors than on its training grid")
    log.warning(note)
    return note


# ----------------------------------------------------------------------------- per-method builders
def _build_map(task, res, mode, model, options):
    from pdeinv.solvers.map import MAP
    return MAP(**{**_map_defaults(task), **options})


def _build_surrogate_map(task, res, mode, model, options):
    from pdeinv.solvers.surrogate_map import SurrogateMAP
    d = {k: v for k, v in _map_defaults(task).items() if k in ("prior", "weight", "bounds", "positive", "max_iter")}
    return SurrogateMAP(model, **{**d, **options})


def _build_amortized(task, res, mode, model, options):
    from pdeinv.solvers.amortized import Amortized
    d = {k: v for k, v in _map_defaults(task).items() if k in ("prior", "weight", "bounds", "positive")}
    return Amortized(model, map_args=d, **options)


#: options of a solver that are not the caller's to give (the network itself)
_NOT_OPTIONS = ("self", "args", "kwargs", "prior", "map_args")

#: flat spellings of the guidance weights (``--opt pde_weight=0`` = ``--opt weights={"pde": 0}``)
WEIGHT_ALIASES = {"obs_weight": "obs", "pde_weight": "pde"}


def solver_options(cls) -> list:
    """The keyword options of solver class ``cls``: its constructor's parameters and those of the bases it passes
    ``**kwargs`` on to (FunDPS -> DiffusionPosteriorSolver), less those it refuses (``cls.refused_options``)."""
    import inspect
    names = []
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        params = inspect.signature(init).parameters
        names += [p for p in params if p not in _NOT_OPTIONS and p not in names]
        if not any(v.kind is inspect.Parameter.VAR_KEYWORD for v in params.values()):
            break
    refused = set(getattr(cls, "refused_options", ()))
    return [n for n in names if n not in refused]


def check_diffusion_options(name: str, options: Dict[str, Any]) -> Dict[str, Any]:
    """``options`` of diffusion method ``name`` with the weight aliases folded into ``weights``; ``ValueError``
    naming the valid options for an unknown key."""
    from pdeinv.solvers.registry import SOLVERS
    valid = solver_options(SOLVERS[name])
    aliases = [a for a in WEIGHT_ALIASES if not (name == "daps" and a == "pde_weight")]
    bad = sorted(k for k in options if k not in valid and k not in aliases)
    if bad:
        raise ValueError(f"unknown option(s) {bad} for method {name!r}; its options are {sorted(valid)} "
                         f"(and {aliases}, shorthands for weights={{...}})")
    out = dict(options)
    for alias, key in WEIGHT_ALIASES.items():
        if alias in out:
            w = out.pop(alias)
            if isinstance(w, bool) or not isinstance(w, (int, float)):
                raise ValueError(f"{alias} must be a number; got {w!r}")
            out["weights"] = {**(out.get("weights") or {}), key: float(w)}
    return out


def _diffusion_builder(name: str):
    def builder(task, res, mode, model, options):
        from pdeinv.solvers.registry import SOLVERS
        options = check_diffusion_options(name, options)
        d: Dict[str, Any] = {"mode": mode}
        if task is not None:
            if "bounds" in task.map_options:
                d["clip"] = tuple(task.map_options["bounds"])
            problem = task.make(res)[1]
            if hasattr(problem, "slice_residual") and name != "daps":     # DAPS has no PDE term: fwd is the physics
                d["residual"] = problem.slice_residual
        if isinstance(options.get("start"), str):     # DAPS warm start by name: the task's own solver of that name
            if options["start"] != "map":
                raise ValueError(f"start= takes 'map' (the task's MAP) or a solver object; got {options['start']!r}")
            options = {**options, "start": build("map", task, res, mode=mode)}
        return SOLVERS[name](model, **{**d, **options})
    return builder


def _gaussian_prior_of(task):
    """The task's Gaussian MAP prior (a ``LawPrior``/GRF object), or None where it has a TV/H1 prior."""
    prior = task.map_options.get("prior") if task is not None else None
    return None if prior is None or isinstance(prior, str) else prior


def _build_gaussian(task, res, mode, model, options):
    from pdeinv.solvers.gaussian import GaussianPosterior
    d = {}
    prior = _gaussian_prior_of(task)
    if prior is not None:
        d["prior"] = prior       # a task without a Gaussian law (darcy: TV) is refused when called
    return GaussianPosterior(**{**d, **options})


def _build_laplace(task, res, mode, model, options):
    from pdeinv.solvers.laplace import Laplace
    d: Dict[str, Any] = {}
    prior = _gaussian_prior_of(task)
    if prior is not None:
        d["prior"] = prior
        if "bounds" in task.map_options:
            d["bounds"] = tuple(task.map_options["bounds"])
    return Laplace(**{**d, **options})


def _build_pinn(task, res, mode, model, options):
    from pdeinv.solvers.pinn import PINN
    d = {}
    if task is not None and "bounds" in task.map_options:
        d["field_bounds"] = tuple(task.map_options["bounds"])
    return PINN(**{**d, **options})


def _mcmc_builder(two_level: bool):
    def builder(task, res, mode, model, options):
        from pdeinv.solvers.mcmc import MCMC, TwoLevelMCMC
        d: Dict[str, Any] = {}
        if "prior" not in options:
            if task is None or task.latent is None:
                raise ValueError("MCMC needs a Gaussian prior: give prior=GaussianRandomField(...), or a task whose law "
                                 f"is a transformed Gaussian field (task {getattr(task, 'name', None)!r} has none)")
            prior, transform = task.latent(task.grid(res or task.default_res))
            d["prior"] = prior
            if transform is not None:
                d["transform"] = transform
        if two_level:
            from pdeinv.surrogates.forward import SurrogateForward
            screen = options.pop("surrogate_fwd", None)
            screen_res = options.pop("screen_res", None)
            if screen is None:
                coarse = None
                if screen_res is not None:
                    if task is None:
                        raise ValueError("screen_res needs a task (to build the coarse grid)")
                    coarse = task.grid(int(screen_res))
                screen = _LazySurrogateForward(SurrogateForward, model, coarse)
            elif screen_res is not None:
                raise ValueError("give surrogate_fwd or screen_res, not both")
            return TwoLevelMCMC(surrogate_fwd=screen, **{**d, **options})
        return MCMC(**{**d, **options})
    return builder


class _LazySurrogateForward:
    """A surrogate forward model completed with the observation and noise of the true ``fwd`` at solve time;
    with ``coarse_grid``, the surrogate runs there (:class:`~pdeinv.physics.resample.Coarsened`)."""

    def __init__(self, cls, surrogate, coarse_grid=None):
        self.cls, self.surrogate, self.coarse_grid = cls, surrogate, coarse_grid

    def bind(self, fwd):
        sur = self.surrogate
        if self.coarse_grid is not None:
            from pdeinv.physics.resample import Coarsened
            sur = Coarsened(sur, self.coarse_grid, fwd.grid)
        return self.cls(sur, fwd.observation, fwd.noise, grid=fwd.grid)


BUILDERS: Dict[str, Callable] = {
    "map": _build_map,
    "surrogate-map": _build_surrogate_map,
    "amortized": _build_amortized,
    "fundps": _diffusion_builder("fundps"),
    "diffusionpde": _diffusion_builder("diffusionpde"),
    "daps": _diffusion_builder("daps"),
    "gaussian": _build_gaussian,
    "laplace": _build_laplace,
    "pinn": _build_pinn,
    "mcmc": _mcmc_builder(False),
    "mcmc-2level": _mcmc_builder(True),
}


def build(name: str, task=None, res: Optional[int] = None, *, mode: str = "inverse", model=None, device=None,
          **options):
    """The solver ``name`` configured for ``task`` at resolution ``res``.

    Parameters
    ----------
    name : a key of ``pdeinv.solvers.SOLVERS`` (``map``, ``surrogate-map``, ``amortized``, ...).
    task : a :class:`pdeinv.tasks.Task` or its name; ``None`` builds with the solver's own defaults.
    res : grid resolution the solver will see (default: the task's ``default_res``).
    mode : ``"inverse"`` (observe ``u``, recover ``m``) or ``"forward"`` (observe ``m``; joint samplers
        then also return ``u``).
    model : a trained network (checkpoint path or module) for the methods in :data:`NEEDS_MODEL`.
    device : where a loaded model goes.
    options : keyword arguments of the solver's constructor; they override the task defaults
        (``task.map_options``, and ``task.solver_defaults[name]``).

    Raises ``ValueError`` for an unknown method (naming the registered ones, and the right method
    when ``name`` is a network such as ``fno``), a missing or wrong ``model``, or a model trained
    on another grid that cannot run on this one.
    """
    from pdeinv.solvers.registry import SOLVERS
    if mode not in ("inverse", "forward"):
        raise ValueError(f"mode must be 'inverse' or 'forward'; got {mode!r}")
    if name not in SOLVERS:
        hint = ""
        if name in _NETWORK_NAMES:
            hint = (f" ({name!r} is a network, not a method: use --method surrogate-map --model CKPT for a "
                    f"forward surrogate, or --method amortized --model CKPT for an inverse operator)")
        raise ValueError(f"unknown method {name!r}{hint}; available: {sorted(SOLVERS)}")
    task = _resolve_task(task)
    if name in NEEDS_MODEL and model is None and not (name == "mcmc-2level" and "surrogate_fwd" in options):
        model = default_model(name, task, res)
        if model is None:
            raise ValueError(f"method {name!r} needs --model: {NEEDS_MODEL[name]}"
                             + _shipped_hint(name, task))
    if model is not None and name not in NEEDS_MODEL:
        raise ValueError(f"method {name!r} takes no trained model; methods that do: {sorted(NEEDS_MODEL)}")
    model = load_model(model, device, task, res)
    grid_note = check_model_grid(model, task, res) if model is not None else None
    builder = BUILDERS.get(name)
    options = dict(options)
    if task is not None:          # the task's defaults for this method (Task.solver_defaults); the caller's win
        options = {**getattr(task, "solver_defaults", {}).get(name, {}), **options}
    if builder is None:
        cls = SOLVERS[name]
        solver = cls(model, **options) if model is not None else cls(**options)
    else:
        try:
            solver = builder(task, res, mode, model, options)
        except TypeError as err:     # a wrong option name: say which are valid
            params = solver_options(SOLVERS[name])
            raise ValueError(f"bad option for method {name!r}: {err}; its options are {params}") from None
    if grid_note:
        solver.model_grid = grid_note          # InverseSolver.__call__ records it in result.info
    return solver
