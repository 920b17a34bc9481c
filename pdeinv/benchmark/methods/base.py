"""What a benchmark method is: the :class:`Method` adapter, the registry :data:`METHODS`, shared helpers.

An adapter says how the harness trains or loads and runs one method; the solver itself is built
by :func:`pdeinv.solvers.build` (the task's defaults) with only the harness's own options (chain
lengths, iteration counts, sampler steps).  A new method is a subclass of :class:`Method`
registered with :func:`register_method`; the order of registration is the order of the tables.
"""
from __future__ import annotations

import importlib
import json
import logging
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import torch

from pdeinv.benchmark.config import MODES, BenchConfig
from pdeinv.benchmark.samples import Data, Sample

log = logging.getLogger(__name__)


class MethodUnavailable(RuntimeError):
    """Raised by an adapter whose module or model is not there; the harness skips the method."""


class Method:
    """Adapter: how the harness trains/loads and runs one method.

    ``available()`` -> None or the reason it cannot run; ``settings(cfg)`` -> the
    JSON-able settings that, with the task/mode/seed, key its cached results;
    ``prepare(cfg, data)`` trains or loads what it needs (called once, in the main
    process) and returns info (``n_train``, ``steps``, ``train_time_s``...);
    ``predict(cfg, sample)`` -> ``(prediction (1, 1, *grid), info)`` of the
    target field (``m`` in inverse mode, ``u`` in forward mode).
    ``parallel=True``: samples may run on Dask workers (each worker calls
    ``prepare`` again, which must then only load from the cache).
    """

    name = "method"
    modes: Tuple[str, ...] = MODES
    parallel = False
    needs_training = False

    def available(self, cfg: BenchConfig) -> Optional[str]:
        return None

    def settings(self, cfg: BenchConfig) -> Dict[str, Any]:
        return {}

    def prepare(self, cfg: BenchConfig, data: Data) -> Dict[str, Any]:
        return {}

    def predict(self, cfg: BenchConfig, sample: Sample) -> Tuple[torch.Tensor, Dict[str, Any]]:  # pragma: no cover
        raise NotImplementedError


class NotAdapted(Method):
    """A method of the package that the harness has no adapter for yet (listed as skipped, with the reason)."""

    def __init__(self, name: str, reason: str):
        self.name, self.reason = name, reason

    def available(self, cfg):
        return self.reason


METHODS: Dict[str, Method] = {}


def register_method(method: Method) -> Method:
    """Add an adapter to :data:`METHODS` (name must be new)."""
    if method.name in METHODS:
        raise ValueError(f"benchmark method {method.name!r} is already registered")
    METHODS[method.name] = method
    return method


def split_methods(text: str) -> list:
    """``"map,fundps[trust=null;tempering=schedule],daps"`` -> the names, split at commas outside brackets."""
    out, depth, cur = [], 0, ""
    for ch in text:
        depth += (ch == "[") - (ch == "]")
        if ch == "," and depth == 0:
            out.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if depth != 0:
        raise ValueError(f"unbalanced brackets in the method list {text!r}")
    out.append(cur.strip())
    return [n for n in out if n]


def parse_variant(name: str) -> Tuple[str, Dict[str, Any]]:
    """``"fundps[trust=null;tempering=schedule]"`` -> ``("fundps", {"trust": None, "tempering": "schedule"})``;
    values are JSON when they parse (``pdeinv invert --opt``'s rule), else strings."""
    name = name.strip()
    if "[" not in name:
        return name, {}
    if not name.endswith("]") or name.index("[") == 0:
        raise ValueError(f"a method variant is NAME[KEY=VALUE;...]; got {name!r}")
    base, body = name[:name.index("[")], name[name.index("[") + 1:-1]
    opts: Dict[str, Any] = {}
    for item in (t.strip() for t in body.split(";")):
        if not item:
            continue
        if "=" not in item or not item.split("=", 1)[0].strip():
            raise ValueError(f"method variant {name!r}: options are KEY=VALUE separated by ';'; got {item!r}")
        k, v = item.split("=", 1)
        try:
            opts[k.strip()] = json.loads(v)
        except json.JSONDecodeError:
            opts[k.strip()] = v.strip()
    return base, opts


def resolve_method(name: str) -> Method:
    """The adapter of ``name``: a registered method, or a variant ``BASE[KEY=VALUE;...]`` of one whose adapter
    takes solver options (``with_options``; the diffusion methods).  ``ValueError`` for an unknown name or option."""
    if name in METHODS:
        return METHODS[name]
    base, opts = parse_variant(name)
    if base not in METHODS:
        raise ValueError(f"unknown benchmark method {base!r}; registered: {sorted(METHODS)}")
    method = METHODS[base]
    if not hasattr(method, "with_options"):
        takes = sorted(k for k, m in METHODS.items() if hasattr(m, "with_options"))
        raise ValueError(f"method {base!r} takes no variant options; methods that do: {takes}")
    return method.with_options(name, opts)


# ----------------------------------------------------------------------------- helpers for adapters
def module_missing(modname: str) -> Optional[str]:
    """None when ``modname`` imports, else the reason (for :meth:`Method.available`)."""
    try:
        importlib.import_module(modname)
        return None
    except ImportError as err:
        return f"{modname} is not available ({err})"


class Identity(torch.nn.Module):
    """``problem(m) = m``: the forward map of forward mode's first step (observe m itself)."""

    def __init__(self, grid):
        super().__init__()
        self.grid = grid

    def forward(self, m):
        return m


def weighting_noise(sample: Sample):
    """The noise model that weights the misfit: the sample's, or for exact data (``--noise 0``) the package's
    rule, relative noise ``DEFAULT_RELATIVE_NOISE`` = 1 % (:func:`pdeinv.physics.noise.weighting_noise`),
    since the misfit needs a scale against the prior."""
    from pdeinv.physics.noise import weighting_noise as _rule
    return _rule(sample.noise)[0]


def target_of(cfg: BenchConfig, res, problem, device):
    """The prediction of a solver result in the benchmark's mode: ``m`` (inverse) or ``u`` (forward)."""
    if cfg.mode == "inverse":
        return res.m
    if res.u is not None and tuple(res.u.shape) == tuple(res.m.shape):
        return res.u
    with torch.no_grad():
        return problem.to(device)(res.m)


def load_cached_model(path: Path, loader, name: str, cfg: BenchConfig, require_meta: bool = False):
    """``(model, info)`` of a finished cached checkpoint ``path`` (+ its ``.json`` metadata), or ``(None, None)``
    when there is none or it is unusable (then the caller trains again).  ``require_meta``: the ``.json`` is
    written last, so only both present mean a finished training."""
    meta_path = path.with_suffix(".json")
    if not path.exists() or (require_meta and not meta_path.exists()):
        return None, None
    try:
        model = loader(path, map_location=cfg.device).eval()
        meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    except ValueError as err:
        log.warning("cached model %s unusable (%s); training again", path, err)
        return None, None
    log.info("%s: reusing trained model %s", name, path)
    return model, {"n_train": meta.get("n_train", cfg.n_train), "steps": meta.get("steps"),
                   "train_time_s": meta.get("train_time_s"), "checkpoint": str(path)}
