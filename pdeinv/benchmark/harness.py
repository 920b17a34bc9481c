r"""The benchmark harness: every method on the same tasks, side by side, reproducibly.

``pdeinv benchmark --task darcy --mode inverse --methods map,fno --suite quick``

For one task and mode the harness

1. gets the test set (and, for learned methods, the training set) from the
   dataset cache (generated once, keyed by recipe and seed -- see
   :func:`load_split`);
2. builds one observation set per test sample: a fresh random point set of
   ``obs`` x (number of grid nodes) drawn from a recorded seed, and Gaussian noise
   of ``noise`` x RMS of the clean observations from another recorded seed
   (BENCHMARKS.md).  **inverse** mode observes the state ``u`` and recovers the
   unknown ``m``; **forward** mode observes ``m`` and recovers ``u``;
3. runs each method of :data:`METHODS` on identical samples -- training or
   reusing the models it needs (cached checkpoints) -- and records per sample the
   relative L2 error :math:`\|\hat x - x\|_2/\|x\|_2` (and the pixel error
   rate after thresholding at 7.5 for the Darcy coefficient), the wall time and
   the peak memory;
4. appends every finished sample to ``<out>/<task>-<mode>.jsonl`` at once (a
   killed run resumes where it stopped and ends with the same table), then
   writes ``<out>/<task>-<mode>.json`` and ``.md``, a figure
   ``<out>/figures/<task>-<mode>.png`` (true / each method / error / sensors)
   and regenerates ``<out>/README.md`` (:func:`write_readme`).

Seeds: observation points of sample ``i`` come from
``SeedSequence([seed, i, 1])``, its noise from ``SeedSequence([seed, i, 2])``
and a stochastic method's randomness from ``SeedSequence([seed, i, 3])``; so a
sample's data do not depend on the method, the order of execution, the number
of Dask workers or ``--n-test``.

Per-sample methods (MAP, PINN, MCMC, diffusion samplers) can run on Dask:
``--workers N`` starts a local cluster of N one-thread processes,
``--scheduler ADDRESS`` uses a running one; results are written as each task
finishes.

Methods are adapters (:class:`Method`) in :data:`METHODS`; an adapter whose
module is missing is skipped with a message, not an error.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import importlib
import json
import logging
import math
import os
import platform
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch

log = logging.getLogger(__name__)

HARNESS_VERSION = 1
MODES = ("forward", "inverse")


# ============================================================================ configuration
SUITES: Dict[str, Dict[str, Any]] = {
    # fits in <= 30 min on 2 CPU cores (see docs/benchmarks.md for the measured time)
    "quick": dict(tasks=("darcy", "poisson", "helmholtz"), modes=("inverse", "forward"), res=64, n_test=100,
                  n_train=500, epochs=15, batch_size=32, width=16, map_iter=100, steps=40, samples=8,
                  denoiser_steps=1000, methods=("map", "fno", "deeponet", "mean")),
    # the published-scale configuration, for a GPU
    "full": dict(tasks=("darcy", "poisson", "helmholtz", "ns"), modes=("inverse", "forward"), res=128,
                 n_test=1000, n_train=50000, epochs=500, batch_size=64, width=64, map_iter=500, steps=2000, samples=32,
                 denoiser_steps=200000, methods=None),   # None: every registered method
}


def default_cache_dir() -> Path:
    return Path(os.environ.get("PDEINV_CACHE", Path.home() / ".cache" / "pdeinv"))


@dataclass
class BenchConfig:
    """Everything that defines one benchmark run of one task and mode (picklable, JSON-able)."""

    task: str = "darcy"
    mode: str = "inverse"
    res: int = 64
    n_test: int = 100
    obs: float = 0.0305
    noise: float = 0.01
    seed: int = 0
    device: str = "cpu"
    suite: str = "quick"
    n_train: int = 500
    epochs: int = 15
    batch_size: int = 32
    width: int = 16           # hidden width of the learned baselines
    map_iter: int = 100
    steps: int = 40           # EDM sampler steps of DiffusionPDE (FunDPS takes steps // 4)
    samples: int = 8          # posterior samples for samplers
    denoiser_steps: int = 1000  # optimiser steps (batch 16) of each diffusion denoiser
    cache_dir: str = ""
    out_dir: str = "benchmarks/results"
    figures: bool = True
    verbose: bool = True
    workers: Optional[int] = None
    scheduler: Optional[str] = None
    cap_costly: bool = True   # costly methods run on their ``max_test`` samples (off when --n-test is given)

    def common_key(self) -> Dict[str, Any]:
        """What makes a per-sample result reusable (not n_test, not the device, not the output folder).

        ``n_train`` is part of it because the test samples follow the training ones in the seeded stream."""
        law = {k: str(v) for k, v in sorted(_task(self.task).attrs.items())}   # a change of law invalidates
        return dict(harness=HARNESS_VERSION, task=self.task, mode=self.mode, res=self.res, obs=self.obs,
                    noise=self.noise, seed=self.seed, n_train=self.n_train, law=law)

    @property
    def cache(self) -> Path:
        return Path(self.cache_dir) if self.cache_dir else default_cache_dir()

    @property
    def name(self) -> str:
        return f"{self.task}-{self.mode}"


def _hash(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def derived_seed(seed: int, index: int, purpose: int) -> int:
    """A 31-bit seed for (run seed, sample index, purpose); purpose 1 = points, 2 = noise, 3 = method."""
    return int(np.random.SeedSequence([int(seed), int(index), int(purpose)]).generate_state(1)[0] & 0x7FFFFFFF)


# ============================================================================ data
def _task(name: str):
    from pdeinv.tasks import get_task
    return get_task(name)


def repo_recipe(task: str) -> Optional[Dict[str, Any]]:
    """The repository's ``datasets/<task>.toml`` recipe, if this checkout has one."""
    path = Path(__file__).resolve().parent.parent / "datasets" / f"{task}.toml"
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
    key = _hash(dict(task=cfg.task, res=cfg.res, n=n, seed=data_seed, v=1))
    path = cfg.cache / "bench-data" / f"{cfg.task}-{cfg.res}-{split}-{n}-{key}.pt"
    if path.exists():
        try:
            d = torch.load(path, weights_only=True)
            return d["m"], d["u"]
        except Exception as err:  # corrupt cache file: regenerate
            log.warning("cache file %s unreadable (%s); regenerating", path, err)
    task = _task(cfg.task)
    grid, problem = task.make(cfg.res)
    t0 = time.perf_counter()
    m = task.sample_m(grid, n, seed=data_seed)
    us = []
    for i in _progress(range(0, n, 32), cfg.verbose, f"generate {cfg.task} {split}"):
        with torch.no_grad():
            us.append(problem(m[i:i + 32]))
    u = torch.cat(us)
    log.info("generated %d %s samples of %s at %d^2 in %.1f s", n, split, cfg.task, cfg.res, time.perf_counter() - t0)
    _atomic_torch_save({"m": m, "u": u}, path)
    return m, u


def _atomic_torch_save(obj, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


class Data:
    """Lazy access to the training and test sets of a run (each loaded once)."""

    def __init__(self, cfg: BenchConfig):
        self.cfg = cfg
        self._cache: Dict[str, Tuple[torch.Tensor, torch.Tensor]] = {}

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
    task = _task(cfg.task)
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


# ============================================================================ methods
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


def _module_missing(modname: str) -> Optional[str]:
    try:
        importlib.import_module(modname)
        return None
    except ImportError as err:
        return f"{modname} is not available ({err})"


class _Identity(torch.nn.Module):
    """``problem(m) = m``: the forward map of forward mode's first step (observe m itself)."""

    def __init__(self, grid):
        super().__init__()
        self.grid = grid

    def forward(self, m):
        return m


class MAPMethod(Method):
    """MAP with the task's classical prior (``task.map_options``) and L-BFGS on the true simulator.

    inverse: ``argmin_m misfit(O F(m), y) - log p(m)``; forward: MAP estimate of
    ``m`` from its sparse values (identity forward map, same prior), then ``u = F(m)``.
    Exact data (``--noise 0``) are weighted as if the noise were 1 % (the misfit
    needs a scale against the prior).
    """

    name = "map"
    parallel = True

    def settings(self, cfg):
        opts = dict(_task(cfg.task).map_options)
        opts.pop("max_iter", None)     # the run's --map-iter (suite default) decides
        return {"max_iter": cfg.map_iter, **{k: (list(v) if isinstance(v, tuple) else v) for k, v in opts.items()}}

    def available(self, cfg):
        return _module_missing("pdeinv.solvers.map")

    def prepare(self, cfg, data):
        return {"n_train": 0, "steps": cfg.map_iter}

    def predict(self, cfg, sample):
        from pdeinv.physics import ForwardModel, GaussianNoise
        from pdeinv.solvers.map import MAP
        task = _task(cfg.task)
        grid, problem = task.make(cfg.res)
        weighting = sample.noise if sample.noise is not None else GaussianNoise(relative=0.01)
        solver = MAP(**{**task.map_options, "max_iter": cfg.map_iter})
        device = torch.device(cfg.device)
        y = sample.y.to(device)
        if cfg.mode == "inverse":
            fwd = ForwardModel(problem, sample.observation, noise=weighting).to(device)
            res = solver(y, fwd, seed=sample.method_seed)
            pred = res.m
        else:
            fwd = ForwardModel(_Identity(grid), sample.observation, noise=weighting).to(device)
            res = solver(y, fwd, seed=sample.method_seed)
            with torch.no_grad():
                pred = problem.to(device)(res.m)
        return pred.detach().cpu().double(), {"iterations": res.info.get("iterations")}


class MeanMethod(Method):
    """Reference floor: predict the training-set mean of the target field, ignoring the data."""

    name = "mean"
    needs_training = True

    def settings(self, cfg):
        return {"n_train": cfg.n_train}

    def prepare(self, cfg, data):
        m, u = data.train()
        self._mean = (m if cfg.mode == "inverse" else u).mean(0, keepdim=True)
        return {"n_train": int(m.shape[0]), "steps": 0}

    def predict(self, cfg, sample):
        return self._mean.clone(), {}


def node_scatter(y: torch.Tensor, observation) -> torch.Tensor:
    """Sparse-baseline input ``[values on their nodes, mask]`` ``(B, 2C, *grid)`` from node observations.

    Each point of a ``PointObservation.random`` set sits on a grid node; its
    bilinear weight there is 1 up to round-off (``x / h`` is not always an exact
    integer in floating point), so the node is the one of largest weight.
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


class SparseBaseline(Method):
    """FNO / DeepONet trained for the sparse setting they are tested in (``pdeinv.surrogates.sparse``).

    Input: the observed field scattered on the grid (zero elsewhere) + the mask;
    a fresh random mask per training sample at the benchmark's fraction; target:
    the full field.  Trained by ``pdeinv.surrogates.training.train`` (Adam, cosine
    schedule, relative L2 loss, 10 % of the training set held out for validation
    and best-epoch restore) on ``cfg.n_train`` pairs for ``cfg.epochs`` epochs;
    the checkpoint is cached under ``<cache>/models`` keyed by task, mode, sizes
    and seed, and reused by later runs.  At test time the noisy point data of each
    sample are scattered with its own observation set.
    """

    needs_training = True
    lr = 1e-3

    def __init__(self, operator: str):
        self.operator = operator
        self.name = operator
        self._model = None

    def available(self, cfg):
        if is_boundary_task(cfg.task):
            return f"the sparse baselines take interior grid-node observations; task {cfg.task!r} observes the DtN map"
        return _module_missing("pdeinv.surrogates.sparse") or _module_missing("pdeinv.surrogates.training")

    def options(self, cfg):
        return dict(modes=12, width=int(cfg.width), layers=4, seed=cfg.seed)

    def settings(self, cfg):
        return {"operator": self.operator, "n_train": cfg.n_train, "epochs": cfg.epochs,
                "batch_size": cfg.batch_size, "lr": self.lr, "options": self.options(cfg), "fraction": cfg.obs}

    def _paths(self, cfg):
        key = _hash({**cfg.common_key(), **self.settings(cfg)})
        stem = cfg.cache / "models" / f"{cfg.task}-{cfg.res}-{cfg.mode}-sparse-{self.operator}-{key}"
        return Path(str(stem) + ".pt"), Path(str(stem) + ".train.pt")

    def prepare(self, cfg, data):
        from pdeinv.surrogates import load
        final, ckpt = self._paths(cfg)
        if final.exists():
            try:
                self._model = load(final, map_location=cfg.device).eval()
                meta = json.loads(final.with_suffix(".json").read_text()) if final.with_suffix(".json").exists() else {}
                log.info("%s: reusing trained model %s", self.name, final)
                return {"n_train": meta.get("n_train", cfg.n_train), "steps": meta.get("steps"),
                        "train_time_s": meta.get("train_time_s"), "checkpoint": str(final)}
            except ValueError as err:
                log.warning("cached model %s unusable (%s); training again", final, err)
        from pdeinv.surrogates.sparse import SparseDataset
        from pdeinv.nn.training import train
        m, u = data.train()
        x, y = (u, m) if cfg.mode == "inverse" else (m, u)
        x, y = x.float(), y.float()
        n_val = max(1, int(round(0.1 * x.shape[0])))
        train_ds = SparseDataset(x[:-n_val], y[:-n_val], fraction=cfg.obs, seed=cfg.seed)
        val_ds = SparseDataset(x[-n_val:], y[-n_val:], fraction=cfg.obs, seed=cfg.seed + 1)
        model = self.build_model(cfg, x, y)
        model.fit_normalizers(train_ds.inputs, y[:-n_val])
        t0 = time.perf_counter()
        hist = train(model, train_ds, val_ds, epochs=cfg.epochs, batch_size=cfg.batch_size, lr=self.lr,
                     weight_decay=1e-4, scheduler="cosine", checkpoint=ckpt, resume=True, seed=cfg.seed,
                     device=cfg.device, verbose=cfg.verbose)
        wall = time.perf_counter() - t0
        steps = cfg.epochs * math.ceil(len(train_ds) / cfg.batch_size)
        model.save(final)
        meta = {"n_train": len(train_ds), "n_val": n_val, "steps": steps, "train_time_s": wall,
                "best_val_loss": hist.get("best_loss"), "best_epoch": hist.get("best_epoch")}
        _atomic_write_text(final.with_suffix(".json"), json.dumps(meta))
        self._model = model.eval()
        return {**meta, "checkpoint": str(final)}

    def build_model(self, cfg, x, y):
        """The untrained network for observed field ``x`` ``(N, C, *grid)`` and target ``y``."""
        from pdeinv.surrogates.sparse import SparseOperator
        return SparseOperator(self.operator, x.shape[1], y.shape[1], list(x.shape[2:]), options=self.options(cfg))

    def predict(self, cfg, sample):
        x = node_scatter(sample.y, sample.observation).float().to(cfg.device)
        with torch.no_grad():
            pred = self._model(x)
        return pred.double().cpu(), {}


def _target_of(cfg, res, problem, device):
    """The prediction of a solver result in the benchmark's mode: ``m`` (inverse) or ``u`` (forward)."""
    if cfg.mode == "inverse":
        return res.m
    if res.u is not None and tuple(res.u.shape) == tuple(res.m.shape):
        return res.u
    with torch.no_grad():
        return problem.to(device)(res.m)


class MCMCMethod(Method):
    """pCN MCMC (``pdeinv.solvers.MCMC``) on the white-noise coefficients of the task's Gaussian field.

    Darcy: the chain runs on the Gaussian field mu of the law and maps it by the
    law's threshold (a = 12 where mu >= 0 else 3), so the prior is exactly the
    data law; the GRF tasks use their GRF directly.  Forward mode: the chain
    targets m given its sparse values (identity forward map); the prediction is
    u of the posterior-mean m.  The prediction is the posterior mean; the record
    also holds the 90 % band coverage and the mean pixel std.  Costly: the quick
    suite runs it on the first ``max_test`` samples only.
    """

    name = "mcmc"
    parallel = True
    max_test = {"quick": 10, "full": 100}

    def available(self, cfg):
        if is_boundary_task(cfg.task):
            return f"MCMC adapter has no prior/residual for task {cfg.task!r} (boundary data); use map or nio"
        if cfg.task not in ("darcy", "poisson", "helmholtz"):
            return f"the MCMC adapter has priors for darcy, poisson and helmholtz only, not {cfg.task!r}"
        return _module_missing("pdeinv.solvers.mcmc")

    def settings(self, cfg):
        n = 200 if cfg.suite == "quick" else 2000
        return {"n_samples": n, "n_chains": 2 if cfg.suite == "quick" else 4, "burn_in": n}

    def prepare(self, cfg, data):
        st = self.settings(cfg)
        return {"n_train": 0, "steps": st["n_samples"] + st["burn_in"]}

    def predict(self, cfg, sample):
        from pdeinv.physics import ForwardModel, GaussianNoise, GaussianRandomField, threshold
        from pdeinv.solvers.mcmc import MCMC
        from pdeinv.tasks import DARCY_LAW, GRF_SOURCE_LAW
        task = _task(cfg.task)
        grid, problem = task.make(cfg.res)
        if cfg.task == "darcy":
            law = DARCY_LAW
            prior = GaussianRandomField(grid, alpha=law["alpha"], tau=law["tau"], sigma=law["sigma"], basis=law["basis"],
                                        zero_mean_mode=law["zero_mean_mode"])
            transform = lambda mu: threshold(mu, low=law["low"], high=law["high"])  # noqa: E731
        elif cfg.task in ("poisson", "helmholtz"):
            prior = GaussianRandomField(grid, basis="cosine" if cfg.task == "poisson" else "sine",
                                        zero_mean_mode=cfg.task == "poisson", **GRF_SOURCE_LAW)
            transform = None
        else:
            raise MethodUnavailable(f"no MCMC prior for task {cfg.task!r} in the harness")
        weighting = sample.noise if sample.noise is not None else GaussianNoise(relative=0.01)
        fwd_problem = problem if cfg.mode == "inverse" else _Identity(grid)
        fwd = ForwardModel(fwd_problem, sample.observation, noise=weighting)
        st = self.settings(cfg)
        res = MCMC(prior, n_samples=st["n_samples"], n_chains=st["n_chains"], burn_in=st["burn_in"],
                   transform=transform, compute_state=False)(sample.y, fwd, seed=sample.method_seed)
        pred = _target_of(cfg, res, problem, "cpu")
        info = {"acceptance": float(np.mean(res.info.get("acceptance", np.nan)))}
        if cfg.mode == "inverse":
            info["samples"] = res.samples
        return pred.detach().double(), info


class PINNMethod(Method):
    """PINN inversion on deepxde (``pdeinv.solvers.PINN``): one network fit per test sample.

    Inverse mode only (observe u, recover m); Darcy's coefficient is kept in
    [3, 12] by the PINN's sigmoid map.  Costly on a CPU: the quick suite runs it
    on the first ``max_test`` samples with a short schedule.
    """

    name = "pinn"
    modes = ("inverse",)
    parallel = True
    max_test = {"quick": 5, "full": 100}

    def available(self, cfg):
        if is_boundary_task(cfg.task):
            return f"the PINN adapter has no prior/residual for task {cfg.task!r} (boundary data); use map or nio"
        return _module_missing("pdeinv.solvers.pinn.solver")

    def settings(self, cfg):
        if cfg.suite == "quick":
            return {"adam_iters": 1000, "lbfgs_iters": 500, "n_domain": 1000, "n_boundary": 200}
        return {"adam_iters": 10000, "lbfgs_iters": 5000, "n_domain": 4000, "n_boundary": 400}

    def prepare(self, cfg, data):
        st = self.settings(cfg)
        return {"n_train": 0, "steps": st["adam_iters"] + st["lbfgs_iters"]}

    def predict(self, cfg, sample):
        from pdeinv.physics import ForwardModel
        from pdeinv.solvers.pinn.solver import PINN
        task = _task(cfg.task)
        grid, problem = task.make(cfg.res)
        kw = {"field_bounds": tuple(task.map_options["bounds"])} if "bounds" in task.map_options else {}
        fwd = ForwardModel(problem, sample.observation, noise=sample.noise)
        res = PINN(**self.settings(cfg), seed=sample.method_seed, **kw)(sample.y, fwd, seed=sample.method_seed)
        return res.m.detach().double().cpu(), {}


class DiffusionMethod(Method):
    """FunDPS / DiffusionPDE: a joint (m, u) EDM denoiser trained on the training set, then guided sampling.

    FunDPS: neural-operator (UNO) denoiser with Gaussian-random-field noise;
    DiffusionPDE: U-Net denoiser with white noise (``pdeinv.priors.diffusion``).
    Both denoisers see the same ``cfg.n_train`` joint fields for the same number
    of optimiser steps (``cfg.denoiser_steps``, batch 16), have comparable sizes
    (``cfg.width``: U-Net base channels / UNO hidden channels) and are cached under
    ``<cache>/models`` (training resumes from ``.train.pt`` if killed).  One
    denoiser per task serves both modes.  Each test sample then gets
    ``cfg.samples`` posterior samples; DiffusionPDE takes ``cfg.steps`` EDM steps,
    FunDPS ``cfg.steps // 4`` (its claim: as accurate with 4x fewer steps).

    Physics in the guidance (``physics``): ``"auto"`` is the problem's real PDE
    residual for the elliptic tasks and, for ``ns``, the differentiable simulator
    between the two time slices, ``u - F(m)`` (``NavierStokes2D.slice_residual``;
    the one-step residual between t=0 and t=T means nothing); ``"none"`` guides by the observations only (the ablation
    ``fundps-obs``); ``"simulator"`` (``fundps-sim``) guides the ``m`` channel through the
    true simulator, ``y = O(F(m))``, and takes ``u = F(m)`` of each sample.  The prediction is the posterior mean; the 90 % band coverage
    of the target is recorded in both modes.
    """

    needs_training = True
    parallel = True
    max_test = {"quick": 20, "full": 1000}
    batch_size = 16

    def __init__(self, name: str, solver: str, arch: str, noise: str, physics: str = "auto", step_divisor: int = 1):
        self.name, self.solver, self.arch, self.noise = name, solver, arch, noise
        self.physics, self.step_divisor = physics, int(step_divisor)
        self._model = None

    def available(self, cfg):
        if is_boundary_task(cfg.task):
            return f"the diffusion samplers adapter has no prior/residual for task {cfg.task!r} (boundary data); use map or nio"
        if self.physics == "simulator" and cfg.task.startswith("ns"):
            return ("on ns the simulator already guides fundps/diffusionpde (u - F(w0) as the PDE term); the "
                    "m-only simulator guidance is for the elliptic tasks")
        if len(_task(cfg.task).grid(cfg.res).shape) != 2:
            return f"task {cfg.task!r} is not 2-D; the harness's denoisers are 2-D"
        return _module_missing(f"pdeinv.solvers.{self.solver}") or _module_missing("pdeinv.priors.diffusion.training")

    def arch_kwargs(self, cfg):
        w = int(cfg.width)
        if self.arch == "uno":
            return {"hidden": w, "modes": 12, "lifting": 2 * w}
        return {"base": w, "mults": [1, 2, 2]}

    def physics_for(self, cfg):
        return "residual" if self.physics == "auto" else self.physics

    def train_settings(self, cfg):
        return {"arch": self.arch, "noise": self.noise, "arch_kwargs": self.arch_kwargs(cfg), "n_train": cfg.n_train,
                "denoiser_steps": cfg.denoiser_steps, "batch_size": self.batch_size}

    def sampling_steps(self, cfg):
        return max(1, int(cfg.steps) // self.step_divisor)

    def settings(self, cfg):
        return {**self.train_settings(cfg), "samples": cfg.samples, "steps": self.sampling_steps(cfg),
                "physics": self.physics_for(cfg)}

    def _path(self, cfg):
        key = _hash({**cfg.common_key(), "mode": "joint", **self.train_settings(cfg)})
        return cfg.cache / "models" / f"{cfg.task}-{cfg.res}-denoiser-{self.arch}-{self.noise}-{key}.pt"

    def prepare(self, cfg, data):
        from pdeinv.priors.diffusion.denoisers import EDMDenoiser
        path = self._path(cfg)
        meta_path = path.with_suffix(".json")
        if path.exists() and meta_path.exists():     # the .json is written last: both present = finished
            try:
                self._model = EDMDenoiser.load(path, map_location=cfg.device).eval()
                meta = json.loads(meta_path.read_text())
                return {"n_train": meta.get("n_train", cfg.n_train), "steps": meta.get("steps"),
                        "train_time_s": meta.get("train_time_s"), "checkpoint": str(path)}
            except ValueError as err:
                log.warning("cached denoiser %s unusable (%s); training again", path, err)
        from pdeinv.priors.diffusion.training import train_denoiser
        m, u = data.train()
        joint = torch.cat([m, u], 1).float()
        task = _task(cfg.task)
        model = EDMDenoiser(channels=2, arch=self.arch, arch_kwargs=self.arch_kwargs(cfg), noise=self.noise,
                            channel_names=[task.m_name, task.u_name], seed=cfg.seed)
        per_epoch = math.ceil(joint.shape[0] / self.batch_size)
        epochs = max(1, math.ceil(cfg.denoiser_steps / per_epoch))
        ckpt = Path(str(path)[:-3] + ".train.pt")
        t0 = time.perf_counter()
        train_denoiser(model, joint, epochs=epochs, batch_size=self.batch_size, seed=cfg.seed, device=cfg.device,
                       verbose=cfg.verbose, checkpoint=ckpt, resume=ckpt.exists())
        model.save(path)
        meta = {"n_train": int(joint.shape[0]), "steps": epochs * per_epoch, "epochs": epochs,
                "train_time_s": time.perf_counter() - t0, "parameters": int(model.n_parameters())}
        _atomic_write_text(meta_path, json.dumps(meta))
        self._model = model.eval()
        return {**meta, "checkpoint": str(path)}

    def predict(self, cfg, sample):
        from pdeinv.physics import ForwardModel
        from pdeinv.solvers import SOLVERS
        task = _task(cfg.task)
        grid, problem = task.make(cfg.res)
        kw = {"clip": tuple(task.map_options["bounds"])} if "bounds" in task.map_options else {}
        if hasattr(problem, "slice_residual"):
            kw["residual"] = problem.slice_residual
        solver = SOLVERS[self.solver](self._model, mode=cfg.mode, physics=self.physics_for(cfg), n_samples=cfg.samples,
                                      num_steps=self.sampling_steps(cfg), **kw)
        fwd = ForwardModel(problem, sample.observation, noise=sample.noise).to(cfg.device)
        res = solver(sample.y.to(cfg.device), fwd, seed=sample.method_seed)
        pred, draws = (res.m, res.samples) if cfg.mode == "inverse" else (res.u, res.u_samples)
        info = {"samples": draws.cpu()} if draws is not None else {}
        return pred.detach().double().cpu(), info


class ViTOSparse(SparseBaseline):
    """ViTO (``pdeinv.surrogates.vito``) as an amortised inverse solver on the harness's sparse points.

    The harness observes random grid nodes, not a coarse square grid, so ViTO is
    trained exactly like the sparse FNO/DeepONet baselines (:class:`SparseBaseline`):
    input ``[M * u, M]`` (observed values scattered on the grid + the mask, a fresh
    random mask per training sample at the run's fraction), target the full ``m``;
    ``out_size`` = the task's grid, so the super-resolution step of ViTO is the
    identity here.  Same training recipe, cache and test-time scattering as the
    baselines.  Inverse mode only (ViTO is an inverse operator).
    """

    modes = ("inverse",)

    def __init__(self):
        super().__init__("vito")

    def available(self, cfg):
        if is_boundary_task(cfg.task):
            return f"ViTO takes interior grid-node observations; task {cfg.task!r} observes the DtN map (use nio)"
        return _module_missing("pdeinv.surrogates.vito") or _module_missing("pdeinv.surrogates.training")

    def options(self, cfg):
        return dict(width=16, depth=3, patch_size=1, embed_dim=64, n_heads=4, n_layers=2, seed=cfg.seed)

    def build_model(self, cfg, x, y):
        from pdeinv.surrogates.vito import ViTO
        return ViTO(2 * x.shape[1], y.shape[1], out_size=list(y.shape[2:]), **self.options(cfg))


class NIOMethod(SparseBaseline):
    """NIO (``pdeinv.surrogates.nio``) as an amortised inverse solver on the EIT tasks (``eit*``).

    The sample's data are the noisy DtN fluxes of all ``L`` patterns at every boundary node
    (:func:`make_sample`); NIO takes them as difference data stacked with the patterns
    (:func:`pdeinv.surrogates.nio.eit_measurements`) and returns the conductivity.  Trained on
    ``cfg.n_train`` pairs (10 % held out) for ``cfg.epochs`` epochs with randomised batching over
    the number of measurements (:func:`~pdeinv.surrogates.nio.nio_loss`), as in
    ``benchmarks/bench_nio.py``; cached like the sparse baselines.  Other tasks observe interior
    points of a field, which is not NIO's input: the harness skips it there with that reason.
    """

    modes = ("inverse",)
    lr = 2e-3

    def __init__(self):
        super().__init__("nio")

    def available(self, cfg):
        if not is_boundary_task(cfg.task):
            return (f"NIO maps boundary measurement operators (EIT / DtN data, tasks eit*), not the sparse interior "
                    f"points of task {cfg.task!r}; see benchmarks/bench_nio.py")
        return _module_missing("pdeinv.surrogates.nio") or _module_missing("pdeinv.surrogates.training")

    def options(self, cfg):
        return dict(n_modes=[min(8, cfg.res // 2)] * 2, hidden_channels=int(cfg.width), n_layers=4, seed=cfg.seed)

    def settings(self, cfg):
        return {"operator": "nio", "n_train": cfg.n_train, "epochs": cfg.epochs, "batch_size": cfg.batch_size,
                "lr": self.lr, "options": self.options(cfg)}

    def prepare(self, cfg, data):
        from pdeinv.surrogates import load
        from torch.utils.data import TensorDataset

        from pdeinv.surrogates.nio import NIO, eit_measurements, nio_loss
        from pdeinv.nn.training import relative_l2_loss, train
        final, ckpt = self._paths(cfg)
        self._problem = _task(cfg.task).make(cfg.res)[1]
        if final.exists():
            try:
                self._model = load(final, map_location=cfg.device).eval()
                meta = json.loads(final.with_suffix(".json").read_text()) if final.with_suffix(".json").exists() else {}
                return {"n_train": meta.get("n_train", cfg.n_train), "steps": meta.get("steps"),
                        "train_time_s": meta.get("train_time_s"), "checkpoint": str(final)}
            except ValueError as err:
                log.warning("cached model %s unusable (%s); training again", final, err)
        m, u = data.train()
        x = eit_measurements(self._problem, u.double(), difference=True).float()
        y = m.float()
        n_val = max(1, int(round(0.1 * x.shape[0])))
        L, nb = x.shape[1], x.shape[-1]
        model = NIO(nb, out_size=list(y.shape[2:]), n_measurements=L, difference=True, **self.options(cfg))
        model.fit_normalizers(x[:-n_val], y[:-n_val])
        t0 = time.perf_counter()
        hist = train(model, TensorDataset(x[:-n_val], y[:-n_val]), TensorDataset(x[-n_val:], y[-n_val:]),
                     loss_fn=nio_loss, val_loss_fn=relative_l2_loss, epochs=cfg.epochs, batch_size=cfg.batch_size,
                     lr=self.lr, weight_decay=0.0, scheduler="cosine", checkpoint=ckpt, resume=True, seed=cfg.seed,
                     device=cfg.device, verbose=cfg.verbose)
        wall = time.perf_counter() - t0
        model.save(final)
        meta = {"n_train": x.shape[0] - n_val, "n_val": n_val,
                "steps": cfg.epochs * math.ceil((x.shape[0] - n_val) / cfg.batch_size), "train_time_s": wall,
                "best_val_loss": hist.get("best_loss"), "best_epoch": hist.get("best_epoch")}
        _atomic_write_text(final.with_suffix(".json"), json.dumps(meta))
        self._model = model.eval()
        return {**meta, "checkpoint": str(final)}

    def predict(self, cfg, sample):
        from pdeinv.surrogates.nio import eit_measurements
        x = eit_measurements(self._problem, sample.y.double(), difference=True).float().to(cfg.device)
        with torch.no_grad():
            pred = self._model(x)
        return pred.double().cpu(), {}


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


register_method(MAPMethod())
register_method(SparseBaseline("fno"))
register_method(SparseBaseline("deeponet"))
register_method(PINNMethod())
register_method(MCMCMethod())
register_method(DiffusionMethod("fundps", "fundps", "uno", "grf", step_divisor=4))
register_method(DiffusionMethod("diffusionpde", "diffusionpde", "unet", "white"))
register_method(DiffusionMethod("fundps-obs", "fundps", "uno", "grf", physics="none", step_divisor=4))
register_method(DiffusionMethod("fundps-sim", "fundps", "uno", "grf", physics="simulator", step_divisor=4))
register_method(NIOMethod())
register_method(ViTOSparse())
register_method(MeanMethod())


# ============================================================================ measurement
class PeakMemory:
    """Peak memory of a block, in MiB: CUDA allocator peak on a GPU; on the CPU the peak
    resident set size above the level at entry, sampled every 5 ms by a thread."""

    def __init__(self, device: str = "cpu"):
        self.device = torch.device(device)
        self.peak_mb = 0.0

    def __enter__(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
            return self
        self._stop = threading.Event()
        self._base = self._rss()
        self._peak = self._base
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    @staticmethod
    def _rss() -> int:
        try:
            with open("/proc/self/statm") as fh:
                return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError):
            import resource
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    def _poll(self):
        while not self._stop.wait(0.005):
            self._peak = max(self._peak, self._rss())

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak_mb = (torch.cuda.max_memory_allocated(self.device) - self._base) / 2 ** 20
        else:
            self._stop.set()
            self._thread.join()
            self._peak = max(self._peak, self._rss())
            self.peak_mb = (self._peak - self._base) / 2 ** 20
        return False


def sample_errors(cfg: BenchConfig, pred: torch.Tensor, sample: Sample) -> Dict[str, float]:
    from pdeinv.metrics import error_rate, relative_l2
    true = sample.target
    if tuple(pred.shape) != tuple(true.shape):
        raise ValueError(f"method returned a prediction of shape {tuple(pred.shape)}; expected {tuple(true.shape)}")
    if not bool(torch.isfinite(pred).all()):
        return {"rel_l2": float("nan")}
    out = {"rel_l2": float(relative_l2(pred.double(), true.double())[0])}
    if cfg.task == "darcy" and cfg.mode == "inverse":
        out["error_rate"] = float(error_rate(pred.double(), true.double(), threshold=7.5)[0])
    return out


def run_one(cfg: BenchConfig, method: Method, sample: Sample, key: str) -> Tuple[Dict[str, Any], torch.Tensor]:
    """Run ``method`` on ``sample``: the JSONL record and the prediction."""
    t0 = time.perf_counter()
    with PeakMemory(cfg.device) as mem:
        pred, info = method.predict(cfg, sample)
        if torch.device(cfg.device).type == "cuda":
            torch.cuda.synchronize()
    wall = time.perf_counter() - t0
    pred = pred.detach().cpu().double()
    info = dict(info or {})
    samples = info.pop("samples", None)
    if samples is not None and samples.shape[0] >= 2:   # samplers: 90 % band coverage and spread of the truth
        from pdeinv.metrics import coverage
        samples = samples.detach().cpu().double().reshape(samples.shape[0], *sample.target.shape)
        info["coverage90"] = float(coverage(samples, sample.target.double(), 0.9)[0])
        info["posterior_std"] = float(samples.std(0).mean())
    rec = {"method": method.name, "index": sample.index, "key": key, **sample_errors(cfg, pred, sample),
           "time_s": wall, "peak_mem_mb": mem.peak_mb, "obs_seed": sample.obs_seed, "noise_seed": sample.noise_seed,
           "n_obs": sample.observation.n_obs}
    rec.update({k: v for k, v in info.items() if isinstance(v, (int, float, str, bool, type(None)))})
    return rec, pred


# worker-side cache of prepared methods (one per process)
_PREPARED: Dict[str, Method] = {}


def _remote_run(cfg: BenchConfig, method_name: str, key: str, index: int):
    """Dask task: rebuild sample ``index`` from the cached test set and run one method on it.

    Runs with one torch thread (workers are one-thread processes); the previous
    setting is restored, so an in-process (threaded) cluster leaves the client alone."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _remote_run_inner(cfg, method_name, key, index)
    finally:
        torch.set_num_threads(threads)


def _remote_run_inner(cfg: BenchConfig, method_name: str, key: str, index: int):
    tag = f"{method_name}:{key}"
    if tag not in _PREPARED:
        method = METHODS[method_name]
        method.prepare(cfg, Data(cfg))
        _PREPARED[tag] = method
    m, u = Data(cfg).test()
    sample = make_sample(cfg, index, m[index:index + 1], u[index:index + 1])
    return run_one(cfg, _PREPARED[tag], sample, key)


# ============================================================================ results files
class ResultLog:
    """Append-only JSONL of per-sample records; tolerant of a truncated last line."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def load(self) -> List[Dict[str, Any]]:
        if not self.path.exists():
            return []
        out = []
        with open(self.path) as fh:
            for n, line in enumerate(fh):
                line = line.strip()
                if not line:
                    continue
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:
                    log.warning("%s line %d is incomplete (interrupted write); ignoring it", self.path, n + 1)
        return out

    def append(self, rec: Dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a+b") as fh:
            fh.seek(0, os.SEEK_END)
            if fh.tell() > 0:  # a killed writer may have left a partial line: start a fresh one
                fh.seek(-1, os.SEEK_END)
                if fh.read(1) != b"\n":
                    fh.write(b"\n")
            fh.write((json.dumps(rec) + "\n").encode())
            fh.flush()
            os.fsync(fh.fileno())


def _atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


def git_commit() -> str:
    for cwd in (Path(__file__).resolve().parent.parent, Path.cwd()):
        try:
            return subprocess.check_output(["git", "rev-parse", "--short", "HEAD"], cwd=cwd,
                                           stderr=subprocess.DEVNULL, text=True).strip()
        except Exception:
            continue
    return "unknown"


def machine_info(device: str = "cpu") -> Dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    dev = str(device)
    if dev.startswith("cuda") and torch.cuda.is_available():
        dev = f"{dev} ({torch.cuda.get_device_name(torch.device(dev))})"
    return {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "python": platform.python_version(), "device": dev,
            "date": time.strftime("%Y-%m-%d %H:%M:%S")}


def summarize(cfg: BenchConfig, method: Method, recs: List[Dict[str, Any]], info: Dict[str, Any],
              key: str, settings: Dict[str, Any], n_test: Optional[int] = None) -> Dict[str, Any]:
    """One JSON record per method from its per-sample records (sorted by index)."""
    recs = sorted(recs, key=lambda r: r["index"])
    err = np.array([r["rel_l2"] for r in recs], dtype=float)
    out = {"method": method.name, "status": "ok" if len(recs) == (n_test or cfg.n_test) else "partial",
           "n_test": len(recs), "error": "relative L2", "error_mean": float(np.mean(err)) if len(err) else None,
           "error_std": float(np.std(err)) if len(err) else None, "errors": [float(e) for e in err],
           "indices": [int(r["index"]) for r in recs]}
    if recs and "error_rate" in recs[0]:
        er = np.array([r["error_rate"] for r in recs], dtype=float)
        out.update(error_rate_mean=float(er.mean()), error_rate_std=float(er.std()), error_rates=er.tolist())
    t = np.array([r["time_s"] for r in recs], dtype=float)
    out.update(time_per_sample_s=float(t.mean()) if len(t) else None, time_std_s=float(t.std()) if len(t) else None,
               peak_mem_mb=float(max(r["peak_mem_mb"] for r in recs)) if recs else None,
               device=cfg.device, res=cfg.res, grid=_task(cfg.task).grid(cfg.res).to_dict(),
               n_train=info.get("n_train"), steps=info.get("steps"), train_time_s=info.get("train_time_s"),
               seed=cfg.seed, obs_fraction=cfg.obs, n_obs=recs[0]["n_obs"] if recs else None, noise=cfg.noise,
               settings=settings, key=key, commit=git_commit())
    for k in ("coverage90", "posterior_std", "acceptance"):
        if recs and k in recs[0]:
            vals = [float(r.get(k, np.nan)) for r in recs]
            out[k + "_mean"] = float(np.nanmean(vals))
            out[k + "_values"] = vals
    if recs and "iterations" in recs[0]:
        out["mean_iterations"] = float(np.mean([r["iterations"] or 0 for r in recs]))
    return out


# ============================================================================ the run
def _progress(it, verbose: bool, desc: str, total: Optional[int] = None):
    if not verbose:
        return it
    from tqdm.auto import tqdm
    return tqdm(it, desc=desc, total=total, leave=False)


@contextlib.contextmanager
def _dask_client(cfg: BenchConfig):
    if not cfg.workers and not cfg.scheduler:
        yield None
        return
    from dask.distributed import Client, LocalCluster
    if cfg.scheduler:
        client = Client(cfg.scheduler)
        try:
            yield client
        finally:
            client.close()
        return
    cluster = LocalCluster(n_workers=int(cfg.workers), threads_per_worker=1, processes=True,
                           dashboard_address=None, silence_logs=logging.WARNING)
    client = Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()


def run_benchmark(cfg: BenchConfig, methods: Optional[List[str]] = None, *, _stop_after: Optional[int] = None,
                  write_readme_file: bool = True, report_only: bool = False) -> Dict[str, Any]:
    """Run ``methods`` (names in :data:`METHODS`; default all) on one task and mode; return the JSON payload.

    ``report_only``: compute nothing; write the JSON/README from the samples already recorded in the
    JSONL (e.g. of a run stopped early: its methods are marked ``partial`` with their sample count).

    ``_stop_after`` (tests): raise ``KeyboardInterrupt`` after that many newly
    computed samples, to simulate a killed run.
    """
    if cfg.mode not in MODES:
        raise ValueError(f"unknown mode {cfg.mode!r}; expected one of {MODES}")
    _task(cfg.task)  # unknown task: clear error before any work
    if not 0 < cfg.obs <= 1:
        raise ValueError(f"--obs is the fraction of grid nodes observed, in (0, 1]; got {cfg.obs}")
    if cfg.noise < 0:
        raise ValueError(f"--noise is a relative noise level >= 0; got {cfg.noise}")
    if cfg.n_test < 1:
        raise ValueError(f"--n-test must be >= 1; got {cfg.n_test}")
    names = list(methods) if methods else list(METHODS)
    unknown = [n for n in names if n not in METHODS]
    if unknown:
        raise ValueError(f"unknown benchmark method(s) {unknown}; registered: {sorted(METHODS)}")
    out_dir = Path(cfg.out_dir)
    jsonl = ResultLog(out_dir / f"{cfg.name}.jsonl")
    data = Data(cfg)
    m_test, u_test = data.test()
    done_all = jsonl.load()
    fig_dir = cfg.cache / "bench" / cfg.name
    records, skipped = [], []
    preds_for_figure: Dict[str, torch.Tensor] = {}
    new_count = 0
    with _dask_client(cfg) as client:
        for name in names:
            method = METHODS[name]
            reason = method.available(cfg) if cfg.mode in method.modes else f"not defined for {cfg.mode} mode"
            if reason is None:
                try:
                    settings = method.settings(cfg)
                    key = _hash({**cfg.common_key(), "method": name, "settings": settings})
                    if report_only and not any(r.get("method") == name and r.get("key") == key for r in done_all):
                        continue      # nothing recorded: nothing to report, and nothing is computed
                    t0 = time.perf_counter()
                    info = method.prepare(cfg, data) or {}
                    info.setdefault("train_time_s", time.perf_counter() - t0 if method.needs_training else 0.0)
                except MethodUnavailable as err:
                    reason = str(err)
            if reason is not None:
                log.warning("benchmark: skipping %s on %s: %s", name, cfg.name, reason)
                skipped.append({"method": name, "status": "skipped", "reason": reason})
                continue
            have = {r["index"]: r for r in done_all if r.get("method") == name and r.get("key") == key}
            n_test = (min(cfg.n_test, getattr(method, "max_test", {}).get(cfg.suite, cfg.n_test)) if cfg.cap_costly
                      else cfg.n_test)
            todo = [] if report_only else [i for i in range(n_test) if i not in have]
            log.info("%s on %s: %d samples cached, %d to run", name, cfg.name, n_test - len(todo), len(todo))
            fig_path = fig_dir / f"{name}-{key}-0.pt"

            def finish(rec, pred):
                nonlocal new_count
                jsonl.append(rec)
                have[rec["index"]] = rec
                if rec["index"] == 0:
                    _atomic_torch_save(pred, fig_path)
                new_count += 1
                if _stop_after is not None and new_count >= _stop_after:
                    raise KeyboardInterrupt(f"simulated interruption after {new_count} samples")

            if client is not None and method.parallel and todo:
                from dask.distributed import as_completed
                futures = [client.submit(_remote_run, cfg, name, key, i, pure=False) for i in todo]
                for fut in _progress(as_completed(futures), cfg.verbose, f"{name} {cfg.name}", len(futures)):
                    finish(*fut.result())
            else:
                for i in _progress(todo, cfg.verbose, f"{name} {cfg.name}"):
                    sample = make_sample(cfg, i, m_test[i:i + 1], u_test[i:i + 1])
                    finish(*run_one(cfg, method, sample, key))
            recs = [have[i] for i in range(n_test) if i in have]
            records.append(summarize(cfg, method, recs, info, key, settings, n_test))
            if fig_path.exists():
                preds_for_figure[name] = torch.load(fig_path, weights_only=True)
    payload = write_run(cfg, records, skipped)
    if cfg.figures and preds_for_figure:
        try:
            sample0 = make_sample(cfg, 0, m_test[:1], u_test[:1])
            fig_out = out_dir / "figures" / f"{cfg.name}.png"
            try:   # the package's plotting helper (true / each method / error / sensors)
                from pdeinv.plot import compare
                import matplotlib.pyplot as plt
                fig_out.parent.mkdir(parents=True, exist_ok=True)
                plt.close(compare(true=sample0.target, recovered=preds_for_figure, sensors=sample0.observation,
                                  path=fig_out, title=f"{cfg.name}, test sample 0"))
            except ImportError:
                figure(sample0, preds_for_figure, fig_out, title=cfg.name)
        except Exception as err:  # a figure must never lose the numbers
            log.warning("figure for %s failed: %s", cfg.name, err)
    if write_readme_file:
        write_readme(out_dir)
    return payload


def write_run(cfg: BenchConfig, records: List[Dict[str, Any]], skipped: List[Dict[str, Any]]) -> Dict[str, Any]:
    """Write ``<task>-<mode>.json`` / ``.md``, keeping records of other methods from earlier runs of the same setup."""
    out_dir = Path(cfg.out_dir)
    path = out_dir / f"{cfg.name}.json"
    common = _hash(cfg.common_key())
    keep = []
    if path.exists():
        try:
            old = json.loads(path.read_text())
            if old.get("common_key") == common:
                ran = {r["method"] for r in records} | {s["method"] for s in skipped}
                keep = [r for r in old.get("records", []) if r["method"] not in ran]
        except (json.JSONDecodeError, KeyError):
            pass
    order = list(METHODS)
    all_recs = sorted(keep + records, key=lambda r: order.index(r["method"]) if r["method"] in order else 99)
    payload = {"benchmark": cfg.name, "harness": HARNESS_VERSION, "common_key": common,
               "config": {k: v for k, v in dataclasses.asdict(cfg).items() if k not in ("verbose",)},
               "machine": machine_info(cfg.device), "commit": git_commit(), "records": all_recs,
               "skipped": skipped}
    _atomic_write_text(path, json.dumps(payload, indent=1, default=str))
    _atomic_write_text(out_dir / f"{cfg.name}.md", run_markdown(payload))
    return payload


# ============================================================================ tables
PUBLISHED = {  # relative L2 % (forward, inverse), 3 % points, 128^2 -- BENCHMARKS.md
    "source": "DiffusionPDE (Huang et al., NeurIPS 2024) and FunDPS (NeurIPS 2025), as tabulated in BENCHMARKS.md",
    "columns": ["DiffusionPDE (paper)", "DiffusionPDE (FunDPS re-run)", "FunDPS", "FNO", "DeepONet", "PINN"],
    "darcy": [(2.5, 3.2), (6.07, 7.87), (2.49, 5.18), (28.2, 49.3), (38.3, 41.1), (48.8, 59.7)],
    "poisson": [(4.5, 20.0), (4.88, 21.10), (1.99, 20.47), (100.9, 232.7), (155.5, 105.8), (128.1, 130.0)],
    "helmholtz": [(8.8, 22.6), (12.64, 19.07), (2.13, 17.16), (98.2, 218.2), (123.1, 132.8), (142.3, 160.0)],
    "ns": [(6.9, 10.4), (3.78, 9.63), (3.32, 8.48), (101.4, 96.0), (103.2, 97.2), (142.7, 146.8)],
}
PUBLISHED_FOR_METHOD = {"diffusionpde": "DiffusionPDE (paper)", "fundps": "FunDPS", "fno": "FNO",
                        "deeponet": "DeepONet", "pinn": "PINN"}


def published(task: str, mode: str, column: str) -> Optional[float]:
    rows = PUBLISHED.get(task)
    if rows is None or column not in PUBLISHED["columns"]:
        return None
    return rows[PUBLISHED["columns"].index(column)][0 if mode == "forward" else 1]


def _fmt_pm(mean, std, scale=100.0, digits=2):
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "n/a"
    return f"{scale * mean:.{digits}f} ± {scale * std:.{digits}f}"


def _fmt(v, f="{:.3g}"):
    return "" if v is None else f.format(v)


def run_markdown(payload: Dict[str, Any]) -> str:
    cfg = payload["config"]
    task, mode = cfg["task"], cfg["mode"]
    m = payload["machine"]
    lines = ["<!-- generated by pdeinv benchmark (pdeinv/bench.py); do not edit -->",
             f"### {task} — {mode} mode",
             "",
             f"{cfg['res']}² grid, {cfg['n_test']} test samples, {100 * cfg['obs']:.2f} % random points per "
             f"sample (fresh set per sample), noise {100 * cfg['noise']:g} % of RMS, seed {cfg['seed']}, suite "
             f"`{cfg['suite']}`. Machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']}, device "
             f"{m['device']}; commit {payload['commit']}; {m['date']}.",
             "",
             "| method | rel. L2 error % (mean ± std) | " + ("pixel error rate % | " if task == "darcy" and mode == "inverse" else "")
             + "published rel. L2 % | time / sample (s) | peak mem (MiB) | n_train | steps | train time (s) |",
             "|---|---|" + ("---|" if task == "darcy" and mode == "inverse" else "") + "---|---|---|---|---|---|"]
    for r in payload["records"]:
        pub = PUBLISHED_FOR_METHOD.get(r["method"])
        pv = published(task, mode, pub) if pub else None
        row = [r["method"] + ("" if r["status"] == "ok" else f" ({r['status']}, {r['n_test']})"),
               _fmt_pm(r["error_mean"], r["error_std"])]
        if task == "darcy" and mode == "inverse":
            row.append(_fmt_pm(r.get("error_rate_mean"), r.get("error_rate_std")))
        row += ["" if pv is None else f"{pv:g}", _fmt(r["time_per_sample_s"]), _fmt(r["peak_mem_mb"], "{:.0f}"),
                _fmt(r.get("n_train"), "{}"), _fmt(r.get("steps"), "{}"), _fmt(r.get("train_time_s"), "{:.0f}")]
        lines.append("| " + " | ".join(row) + " |")
    for s in payload.get("skipped", []):
        lines.append(f"\nSkipped `{s['method']}`: {s['reason']}")
    fig = Path("figures") / f"{task}-{mode}.png"
    lines += ["", f"Figure: [{fig}]({fig}) (true / each method / error / sensors, test sample 0)."]
    return "\n".join(lines) + "\n"


def write_readme(results_dir="benchmarks/results") -> Path:
    """Regenerate ``README.md`` in ``results_dir``: the harness table (ours beside the published numbers),
    then every other ``*.md`` result file of the folder as its own section."""
    results_dir = Path(results_dir)
    runs = []
    for p in sorted(results_dir.glob("*.json")):
        try:
            d = json.loads(p.read_text())
        except (json.JSONDecodeError, OSError):
            continue
        if d.get("harness") and "config" in d:
            runs.append(d)
    out = ["# Benchmark results", "",
           "<!-- generated by `python benchmarks/make_readme.py` (also run by `pdeinv benchmark`); do not edit -->",
           "",
           "Relative L2 error in % (mean ± std over the test set; for the Darcy coefficient in inverse mode also "
           "the pixel error rate after thresholding at 7.5, which BENCHMARKS.md names as the Darcy coefficient "
           "metric). Peak memory on a CPU is the rise of the process's resident set during the call (0 = the call "
           "fit in memory the process already held). "
           "Published numbers: " + PUBLISHED["source"] + "; they are at 128² with 50,000 training pairs and one "
           "fixed mask for all samples, ours use a fresh random point set per sample and the sizes stated per "
           "row. Reproduce with `pdeinv benchmark --suite quick` (see docs/benchmarks.md).", ""]
    if runs:
        out += ["## Harness: all methods side by side", "",
                "| task | mode | grid | method | ours: rel. L2 % | ours: pixel error % | published (same method) | "
                "best published (FunDPS) | time / sample (s) | peak mem (MiB) | device | n_test | n_train | commit |",
                "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for d in sorted(runs, key=lambda d: (d["config"]["task"], d["config"]["mode"])):
            cfg = d["config"]
            for r in d["records"]:
                pub = PUBLISHED_FOR_METHOD.get(r["method"])
                pv = published(cfg["task"], cfg["mode"], pub) if pub else None
                best = published(cfg["task"], cfg["mode"], "FunDPS")
                out.append("| " + " | ".join([
                    cfg["task"], cfg["mode"], f"{r['res']}²", r["method"] + ("" if r["status"] == "ok" else " (partial)"),
                    _fmt_pm(r["error_mean"], r["error_std"]),
                    _fmt_pm(r.get("error_rate_mean"), r.get("error_rate_std")) if "error_rate_mean" in r else "",
                    "" if pv is None else f"{pv:g}", "" if best is None else f"{best:g}",
                    _fmt(r["time_per_sample_s"]), _fmt(r["peak_mem_mb"], "{:.0f}"), str(r["device"]),
                    str(r["n_test"]), _fmt(r.get("n_train"), "{}"), str(r.get("commit", ""))]) + " |")
            skipped = ", ".join(f"{s['method']} ({s['reason']})" for s in d.get("skipped", []))
            if skipped:
                out.append(f"| {cfg['task']} | {cfg['mode']} | | skipped: {skipped} | | | | | | | | | | |")
            seen = {r["method"] for r in d["records"]} | {s["method"] for s in d.get("skipped", [])}
            not_run = [m for m in METHODS if m not in seen]
            if not_run:
                out.append(f"| {cfg['task']} | {cfg['mode']} | | not run in this configuration: "
                           f"{', '.join(not_run)} | | | | | | | | | | |")
        out += headline_table(runs)
        out += ["", "Published reference table (relative L2 %, forward / inverse, 3 % points, 128²):", "",
                "| task | " + " | ".join(PUBLISHED["columns"]) + " |", "|---|" + "---|" * len(PUBLISHED["columns"])]
        for t in ("darcy", "poisson", "helmholtz", "ns"):
            out.append(f"| {t} | " + " | ".join(f"{a:g} / {b:g}" for a, b in PUBLISHED[t]) + " |")
        out.append("")
        for d in sorted(runs, key=lambda d: (d["config"]["task"], d["config"]["mode"])):
            md = results_dir / f"{d['benchmark']}.md"
            if md.exists():
                out += [md.read_text().split("\n", 1)[1].strip(), ""]
    others = [p for p in sorted(results_dir.glob("*.md"))
              if p.name != "README.md" and not _is_harness_json(results_dir / (p.stem + ".json"))]
    if others:
        out += ["## Per-method benchmark scripts", ""]
        for p in others:
            body = "\n".join(("###" + line) if line.startswith("#") else line   # keep their headings below ours
                             for line in p.read_text().strip().splitlines())
            out += [f"### {p.stem} (`benchmarks/results/{p.name}`)", "", body, ""]
    path = results_dir / "README.md"
    _atomic_write_text(path, "\n".join(out).rstrip() + "\n")
    return path


HEADLINE_METHODS = ("fundps", "diffusionpde", "fundps-obs", "fundps-sim", "map", "fno", "deeponet", "pinn", "mcmc", "nio", "vito",
                    "mean")


def headline_table(runs: List[Dict[str, Any]]) -> List[str]:
    """Diffusion posteriors beside the other methods on the *same* test samples.

    For every task and mode with a diffusion record, the methods are scored on the
    first ``n`` test samples, ``n`` = the fewest the diffusion methods ran (the
    per-sample errors are stored in index order), so the rows compare like with
    like; methods run on fewer samples (PINN, MCMC) get a second block over the
    first ``k`` samples that every method ran."""
    out, summary = [], []
    order_t = ("darcy", "poisson", "helmholtz", "ns")
    for d in sorted(runs, key=lambda d: (order_t.index(d["config"]["task"]) if d["config"]["task"] in order_t else 9,
                                         d["config"]["mode"])):
        recs = {r["method"]: _first_consecutive(r) for r in d["records"] if r.get("errors")}
        diff = [m for m in ("fundps", "diffusionpde") if m in recs]
        if not diff:
            continue
        cfg = d["config"]
        if not out:
            out += ["", "## Headline: diffusion posteriors (FunDPS, DiffusionPDE) beside MAP and the sparse baselines",
                    "",
                    "Every row of a block is scored on the same first *n* test samples (same fields, same random "
                    "point sets and noise). FunDPS samples with a quarter of DiffusionPDE's EDM steps; both "
                    "denoisers see the same training pairs for the same number of optimiser steps. `fundps-obs`: "
                    "FunDPS with observation guidance only (no PDE term); `fundps-sim`: the FunDPS prior of m guided through the true simulator (y = O(F(m)), u = F(m)). Physics in the guidance: the real PDE "
                    "residual (elliptic tasks) or the simulator between the time slices, u - F(w0) (ns). "
                    "Coverage: fraction of the true field's pixels inside the pixel-wise 90 % band of the "
                    "posterior samples (goal 0.8-0.95). Published: BENCHMARKS.md, 128², 50,000 pairs."]
        order = [m for m in HEADLINE_METHODS if m in recs] + [m for m in recs if m not in HEADLINE_METHODS]
        n = min(len(recs[m]["errors"]) for m in diff)
        summary.append((cfg["task"], cfg["mode"], n, {m: float(np.mean(recs[m]["errors"][:n])) for m in order
                                                      if len(recs[m]["errors"]) >= n}))
        blocks = [(n, [m for m in order if len(recs[m]["errors"]) >= n])]
        k = min(len(recs[m]["errors"]) for m in order)
        if k < n:
            blocks.append((k, order))
        for nn, methods in blocks:
            out += ["", f"### {cfg['task']} — {cfg['mode']} ({d['records'][0]['res']}², n = {nn})", "",
                    "| method | rel. L2 % | pixel error % | 90 % coverage | sampler steps | s / sample | peak MiB | "
                    "train pairs | train steps | train s | published % |",
                    "|---|---|---|---|---|---|---|---|---|---|---|"]
            out += [_headline_row(cfg, recs[m], nn) for m in methods]
    if summary:     # one line per task and mode, right under the section's introduction
        cols = [m for m in HEADLINE_METHODS if any(m in row[3] for row in summary)]
        table = ["", "Relative L2 % of the posterior mean / estimate, same first n samples per row (details below):",
                 "", "| task | mode | n | " + " | ".join(cols) + " |", "|---|---|---|" + "---|" * len(cols)]
        for task, mode, n, errs in summary:
            best = min(errs.values())
            table.append(f"| {task} | {mode} | {n} | " + " | ".join(
                "" if m not in errs else (f"**{100 * errs[m]:.1f}**" if errs[m] == best else f"{100 * errs[m]:.1f}")
                for m in cols) + " |")
        out[4:4] = table
    return out


def _first_consecutive(r: Dict[str, Any]) -> Dict[str, Any]:
    """The record restricted to test samples 0, 1, ..., k-1 (the longest such run it has), so that "the
    first n samples" are the same samples for every method even after a run with gaps."""
    idx = r.get("indices") or list(range(len(r["errors"])))
    k = 0
    while k < len(idx) and idx[k] == k:
        k += 1
    out = dict(r)
    for key in ("errors", "error_rates", "coverage90_values"):
        if out.get(key):
            out[key] = out[key][:k]
    return out


def _headline_row(cfg: Dict[str, Any], r: Dict[str, Any], n: int) -> str:
    mname = r["method"]
    e = np.array(r["errors"][:n], dtype=float)
    er = np.array(r["error_rates"][:n], dtype=float) if r.get("error_rates") else None
    cov = r.get("coverage90_values")
    cov = f"{np.nanmean(cov[:n]):.2f}" if cov else (f"{r['coverage90_mean']:.2f}" if r.get("coverage90_mean")
                                                     is not None else "")
    st = r.get("settings", {}) or {}
    pub = PUBLISHED_FOR_METHOD.get(mname)
    pv = published(cfg["task"], cfg["mode"], pub) if pub else None
    return "| " + " | ".join([
        mname, _fmt_pm(float(e.mean()), float(e.std())),
        _fmt_pm(float(er.mean()), float(er.std())) if er is not None else "", cov,
        str(st.get("steps", "")) if "denoiser_steps" in st else "",
        _fmt(r["time_per_sample_s"]), _fmt(r["peak_mem_mb"], "{:.0f}"), _fmt(r.get("n_train"), "{}"),
        _fmt(r.get("steps"), "{}") if r.get("n_train") else "", _fmt(r.get("train_time_s"), "{:.0f}"),
        "" if pv is None else f"{pv:g}"]) + " |"


def _is_harness_json(path: Path) -> bool:
    try:
        return bool(json.loads(path.read_text()).get("harness"))
    except (OSError, json.JSONDecodeError):
        return False


# ============================================================================ figure
def figure(sample: Sample, preds: Dict[str, torch.Tensor], path: Path, title: str = "") -> Path:
    """True field / each method's recovery / its error, and the sensor locations (one test sample)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    true = sample.target[0, 0].double().numpy()
    n = len(preds)
    fig, axes = plt.subplots(2, n + 1, figsize=(2.6 * (n + 1), 5.2), squeeze=False)
    vmin, vmax = float(true.min()), float(true.max())
    ax = axes[0, 0]
    ax.imshow(true.T, origin="lower", extent=(0, 1, 0, 1), vmin=vmin, vmax=vmax, cmap="viridis")
    ax.set_title("true")
    pts = sample.observation.points.numpy()
    ax2 = axes[1, 0]
    observed = sample.u if sample._mode == "inverse" else sample.m
    ax2.imshow(observed[0, 0].double().numpy().T, origin="lower", extent=(0, 1, 0, 1), cmap="gray")
    ax2.scatter(pts[:, 0], pts[:, 1], s=4, c="red")
    ax2.set_title(f"sensors ({len(pts)}) on {'u' if sample._mode == 'inverse' else 'm'}")
    emax = max(float((p[0, 0].double().numpy() - true).__abs__().max()) for p in preds.values()) or 1.0
    for j, (name, p) in enumerate(preds.items(), start=1):
        pv = p[0, 0].double().numpy()
        axes[0, j].imshow(pv.T, origin="lower", extent=(0, 1, 0, 1), vmin=vmin, vmax=vmax, cmap="viridis")
        err = np.linalg.norm(pv - true) / max(np.linalg.norm(true), 1e-30)
        axes[0, j].set_title(f"{name} ({100 * err:.1f} %)")
        axes[1, j].imshow(np.abs(pv - true).T, origin="lower", extent=(0, 1, 0, 1), vmin=0, vmax=emax, cmap="magma")
        axes[1, j].set_title(f"|error| {name}")
    for a in axes.ravel():
        a.set_xticks([]); a.set_yticks([])
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.stem + ".", suffix=".png")
    os.close(fd)
    fig.savefig(tmp, dpi=90)
    plt.close(fig)
    os.replace(tmp, path)
    return path
