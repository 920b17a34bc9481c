"""What defines a benchmark run: the suites, :class:`BenchConfig`, derived seeds and result keys.

Also the small helpers every other module of the package uses: the task registry lookup,
the default cache folder, atomic text writes and progress bars.

Seeds: observation points of test sample ``i`` come from ``SeedSequence([seed, i, 1])``, its
noise from ``SeedSequence([seed, i, 2])`` and a stochastic method's randomness from
``SeedSequence([seed, i, 3])`` (:func:`derived_seed`), so a sample's data do not depend on the
method, the order of execution, the number of Dask workers or ``--n-test``.

Keys: a per-sample record is reused when the hash (:func:`stable_hash`) of
:meth:`BenchConfig.common_key` plus the method's name and settings matches; bump
:data:`HARNESS_VERSION` only when old records must no longer be reused.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional

import numpy as np

HARNESS_VERSION = 1
MODES = ("forward", "inverse")

SUITES: Dict[str, Dict[str, Any]] = {
    # fits in <= 30 min on 2 CPU cores (see docs/benchmarks.md for the measured time)
    "quick": dict(tasks=("darcy", "poisson", "helmholtz"), modes=("inverse", "forward"), res=64, n_test=100,
                  n_train=500, epochs=15, batch_size=32, width=16, map_iter=1000, steps=40, samples=8,
                  denoiser_steps=1000, methods=("bayes", "map", "laplace", "fno", "deeponet", "mean")),
    # the published-scale configuration, for a GPU
    "full": dict(tasks=("darcy", "poisson", "helmholtz", "ns"), modes=("inverse", "forward"), res=128,
                 n_test=1000, n_train=50000, epochs=500, batch_size=64, width=64, map_iter=500, steps=2000, samples=32,
                 denoiser_steps=200000, methods=None),   # None: every registered method
    # the published protocol at equal information: 500 random points (3.05 %) on 128², for the methods that are
    # cheap enough on a CPU (the exact posterior, converged MAP, Laplace); files <task>-<mode>-128.json
    "published": dict(tasks=("poisson", "helmholtz"), modes=("inverse", "forward"), res=128, n_test=10,
                      n_train=500, epochs=15, batch_size=32, width=16, map_iter=1000, steps=40, samples=64,
                      denoiser_steps=1000, methods=("bayes", "map", "laplace"), tag="128"),
    # the Darcy reference (mcmc-ref: long level-set pCN) at the resolution a CPU affords (16², 8 points): the
    # methods beside it run on the same samples; files darcy-<mode>-16.json (docs/benchmarks.md: the cost at 64²)
    "darcy-ref": dict(tasks=("darcy",), modes=("inverse", "forward"), res=16, n_test=100, n_train=500, epochs=15,
                      batch_size=32, width=16, map_iter=1000, steps=40, samples=64, denoiser_steps=1000,
                      methods=("mcmc-ref", "map", "mcmc", "fno", "deeponet", "mean"), tag="16"),
}


def default_cache_dir() -> Path:
    """``$PDEINV_CACHE``, else ``~/.cache/pdeinv``: datasets, trained models, figure predictions."""
    return Path(os.environ.get("PDEINV_CACHE", Path.home() / ".cache" / "pdeinv"))


def get_task(name: str):
    """The registered :class:`pdeinv.tasks.Task` called ``name`` (imported on first use)."""
    from pdeinv.tasks import get_task as _get
    return _get(name)


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
    map_iter: int = 1000      # iteration cap of L-BFGS MAP (TV + bounds); MAP stops at its gtol before it
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
    tag: str = ""             # suffix of the result files (``<task>-<mode>-<tag>.json``): another setting's table

    def common_key(self) -> Dict[str, Any]:
        """What makes a per-sample result or a trained model reusable (not n_test, not the output folder).

        ``n_train`` is part of it because the test samples follow the training ones in the seeded stream.
        The device type is part of it off the CPU (``device="cuda"``): a GPU run's timings, float results and
        models are its own; CPU keys stay those of earlier runs."""
        law = {k: str(v) for k, v in sorted(get_task(self.task).attrs.items())}   # a change of law invalidates
        key = dict(harness=HARNESS_VERSION, task=self.task, mode=self.mode, res=self.res, obs=self.obs,
                   noise=self.noise, seed=self.seed, n_train=self.n_train, law=law)
        dev = str(self.device).split(":")[0]
        if dev != "cpu":
            key["device"] = dev
        return key

    @property
    def cache(self) -> Path:
        return Path(self.cache_dir) if self.cache_dir else default_cache_dir()

    @property
    def name(self) -> str:
        return f"{self.task}-{self.mode}" + (f"-{self.tag}" if self.tag else "")


def stable_hash(obj) -> str:
    """16 hex digits of the SHA-256 of ``obj`` as sorted-key JSON: the key of cached records and models."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def derived_seed(seed: int, index: int, purpose: int) -> int:
    """A 31-bit seed for (run seed, sample index, purpose); purpose 1 = points, 2 = noise, 3 = method."""
    return int(np.random.SeedSequence([int(seed), int(index), int(purpose)]).generate_state(1)[0] & 0x7FFFFFFF)


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file next to ``path``, then rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    from pdeinv._validation import file_mode
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.chmod(tmp, file_mode())          # mkstemp makes 0600; a results file is readable like any other
    os.replace(tmp, path)


def progress(it, verbose: bool, desc: str, total: Optional[int] = None):
    """``it`` wrapped in a tqdm bar when ``verbose``."""
    if not verbose:
        return it
    from tqdm.auto import tqdm
    return tqdm(it, desc=desc, total=total, leave=False)
