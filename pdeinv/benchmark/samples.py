"""The test cases of a run: datasets from the cache, and one observation set per test sample.

* :func:`load_split` -- ``(m, u)`` of the training or test set, generated once by the task's
  simulator and cached (keyed by recipe and seed); :class:`Data` loads each split once per run.
* :func:`make_sample` -- test sample ``i``: a fresh random point set of ``obs`` x (number of grid
  nodes) drawn from ``derived_seed(seed, i, 1)``, Gaussian noise of ``noise`` x RMS of the clean
  observations from ``derived_seed(seed, i, 2)`` (BENCHMARKS.md).  **inverse** mode observes the
  state ``u`` and recovers ``m``; **forward** mode observes ``m`` and recovers ``u``.
* :func:`node_scatter` -- the sparse baselines' input from such point observations.
"""
from __future__ import annotations

import importlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import numpy as np
import torch

from pdeinv.benchmark.config import BenchConfig, derived_seed, get_task, progress, stable_hash

log = logging.getLogger(__name__)

#: the checkout's dataset recipes (``datasets/<task>.toml``)
RECIPES_DIR = Path(__file__).resolve().parents[2] / "datasets"


def repo_recipe(task: str) -> Optional[Dict[str, Any]]:
    """The repository's ``datasets/<task>.toml`` recipe, if this checkout has one."""
    path = RECIPES_DIR / f"{task}.toml"
    if not path.exists():
        return None
    import tomllib
    try:
        return tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as err:
        log.warning("cannot read %s (%s); using the default recipe", path, err)
        return None


def bench_recipe(cfg: BenchConfig) -> Dict[str, Any]:
    """The dataset recipe of a run: the repository recipe of the task (its seed and problem options) with the
    run's resolution and sizes; data seed = recipe seed + ``cfg.seed``.  Train = samples ``[0, n_train)``, test
    = ``[n_train, n_train + n_test)`` of the task's seeded stream (pdeinv.data.generate's rule)."""
    base = repo_recipe(cfg.task) or {}
    rec = {"task": cfg.task, "res": int(cfg.res), "n_train": int(cfg.n_train), "n_test": int(cfg.n_test),
           "seed": int(base.get("seed", 0)) + int(cfg.seed)}
    if "problem" in base:
        rec["problem"] = base["problem"]
    return rec


def load_split(cfg: BenchConfig, split: str, n: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """``(m, u)`` float64 tensors of the ``split`` ("train" or "test") set, generated once and cached.

    Uses ``pdeinv.data.generate.cached_dataset`` with :func:`bench_recipe` (cache
    keyed by the recipe content and seed, under ``<cache>/datasets``).  Without
    that module, generates with the task's simulator (seed ``cfg.seed`` for
    train, ``cfg.seed + 1`` for test) and caches a ``.pt`` file under
    ``<cache>/bench-data``.
    """
    try:
        gen = importlib.import_module("pdeinv.data.generate")
        cached = getattr(gen, "cached_dataset")
    except (ImportError, AttributeError):
        cached = None
    if cached is not None:
        rec = bench_recipe(cfg)
        if split == "train":
            rec["n_train"] = max(int(n), rec["n_train"])
        ds = cached(rec, split, cache_dir=cfg.cache / "datasets", n=int(n), verbose=cfg.verbose)
        from pdeinv.data.io import dataset_tensors
        return dataset_tensors(ds)
    return _generate_cached(cfg, split, n, cfg.seed + (1 if split == "test" else 0))


def _generate_cached(cfg: BenchConfig, split: str, n: int, data_seed: int):
    from pdeinv.nn.base import atomic_torch_save
    key = stable_hash(dict(task=cfg.task, res=cfg.res, n=n, seed=data_seed, v=1))
    path = cfg.cache / "bench-data" / f"{cfg.task}-{cfg.res}-{split}-{n}-{key}.pt"
    if path.exists():
        try:
            d = torch.load(path, weights_only=True)
            return d["m"], d["u"]
        except Exception as err:  # corrupt cache file: regenerate
            log.warning("cache file %s unreadable (%s); regenerating", path, err)
    task = get_task(cfg.task)
    grid, problem = task.make(cfg.res)
    t0 = time.perf_counter()
    m = task.sample_m(grid, n, seed=data_seed)
    us = []
    for i in progress(range(0, n, 32), cfg.verbose, f"generate {cfg.task} {split}"):
        with torch.no_grad():
            us.append(problem(m[i:i + 32]))
    u = torch.cat(us)
    log.info("generated %d %s samples of %s at %d^2 in %.1f s", n, split, cfg.task, cfg.res, time.perf_counter() - t0)
    atomic_torch_save({"m": m, "u": u}, path)
    return m, u


class Data:
    """Lazy access to the training and test sets of a run (each loaded once)."""

    def __init__(self, cfg: BenchConfig):
        self.cfg = cfg
        self._cache: Dict[Any, Tuple[torch.Tensor, torch.Tensor]] = {}

    def train(self, n: Optional[int] = None):
        n = n or self.cfg.n_train
        if ("train", n) not in self._cache:
            self._cache[("train", n)] = load_split(self.cfg, "train", n)
        return self._cache[("train", n)]

    def test(self):
        if "test" not in self._cache:
            self._cache["test"] = load_split(self.cfg, "test", self.cfg.n_test)
        return self._cache["test"]


@dataclass
class Sample:
    """One test case: truth, the observation operator, the data and the seeds that made them."""

    index: int
    m: torch.Tensor          # (1, 1, *grid) true unknown
    u: torch.Tensor          # (1, 1, *grid) true state
    observation: Any         # PointObservation on the grid of the observed field
    y: torch.Tensor          # (1, 1, P) noisy observations
    noise: Any               # GaussianNoise used to make y (None for exact data)
    obs_seed: int
    noise_seed: int
    method_seed: int

    @property
    def target(self) -> torch.Tensor:
        return self.m if self._mode == "inverse" else self.u

    _mode: str = "inverse"


def is_boundary_task(name: str) -> bool:
    """Tasks whose state is boundary-measurement data (EIT: DtN map), not a field on the grid."""
    return str(name).startswith("eit")


def make_sample(cfg: BenchConfig, index: int, m: torch.Tensor, u: torch.Tensor) -> Sample:
    """Observation set and noisy data of test sample ``index`` (depends only on seed and index)."""
    from pdeinv.physics import GaussianNoise, PointObservation
    task = get_task(cfg.task)
    grid = task.grid(cfg.res)
    observed = u if cfg.mode == "inverse" else m
    obs_seed, noise_seed = derived_seed(cfg.seed, index, 1), derived_seed(cfg.seed, index, 2)
    if cfg.mode == "inverse" and is_boundary_task(cfg.task):
        # EIT: u is the DtN data (1, L, Nb); every flux at every boundary node is observed (--obs unused)
        from pdeinv.physics.eit import DtNObservation
        obs = DtNObservation(observed.shape[-1])
    else:
        obs = PointObservation.random(grid, fraction=cfg.obs, seed=obs_seed)
    y = obs(observed)
    noise = GaussianNoise(relative=cfg.noise) if cfg.noise > 0 else None
    if noise is not None:
        y = noise(y, seed=noise_seed)
    s = Sample(index, m, u, obs, y, noise, obs_seed, noise_seed, derived_seed(cfg.seed, index, 3))
    s._mode = cfg.mode
    return s


def node_scatter(y: torch.Tensor, observation) -> torch.Tensor:
    """Sparse-baseline input ``[values on their nodes, mask]`` ``(B, 2C, *grid)`` from node observations.

    Each point of a ``PointObservation.random`` set sits on a grid node; its
    bilinear weight there is 1 up to round-off (``x / h`` is not always an exact
    integer in floating point), so the node is the one of largest weight.  The same
    input as ``SparseOperator.inputs_from_observations`` (:func:`pdeinv.surrogates.sparse.
    scatter_observations`), built on the CPU.
    """
    from pdeinv.surrogates.sparse import sparse_input
    obs = observation
    if not bool((obs.weight.max(-1).values > 1 - 1e-9).all()):
        raise ValueError("the sparse baselines need observation points on grid nodes")
    idx = obs.index.gather(1, obs.weight.argmax(-1, keepdim=True))[:, 0]
    shape = tuple(obs.grid.shape)
    N = int(np.prod(shape))
    field = torch.zeros(*y.shape[:-1], N, dtype=y.dtype)
    field[..., idx] = y.cpu()
    mask = torch.zeros(N, dtype=torch.bool)
    mask[idx] = True
    return sparse_input(field.reshape(*y.shape[:-1], *shape), mask.reshape(shape))
