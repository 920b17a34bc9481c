r"""Generate datasets ``(m, u)`` with a task's simulator: serially, or on Dask; resumable.

``generate(task, n, res, seed)`` draws ``n`` unknowns ``m`` from the task's law
(:data:`pdeinv.tasks.TASKS`), solves ``u = problem(m)`` in chunks of
``batch_size`` and returns an ``xarray.Dataset`` in the ``pdeinv.dataset/1``
schema (:mod:`pdeinv.data.io`).

Seeding rule
------------
Sample ``i`` (``i = start, ..., start + n - 1``) is drawn by
``task.sample_m(grid, 1, seed=sample_seed(seed, i))`` where
:func:`sample_seed` hashes the pair ``(seed, i)`` with NumPy's
``SeedSequence``.  Each sample therefore depends only on ``(seed, i)``: the
dataset is the same whatever the batch size, the number of Dask workers or
the order in which chunks finish, a dataset of ``n`` samples is the prefix of
one of ``n' > n``, and the test split of a recipe (indices ``n_train ...``)
never overlaps its training split.  (Solves are per sample for the direct
elliptic path, so ``u`` is bitwise independent of the batching too; for
batched iterative or spectral solvers it is equal to round-off.)

Scale-out and resume
--------------------
With ``out`` given, every finished chunk is written at once to
``<out>.parts/part-<start>-<stop>.nc`` beside a ``manifest.json`` naming the
settings; a killed run started again with the same settings skips the chunks
already there.  When all chunks exist they are assembled into ``out``
atomically (netCDF, or zarr when ``out`` ends in ``.zarr`` — appended part by
part, so memory stays bounded by one chunk), and the part folder is removed.
``workers=N`` starts a ``dask.distributed.LocalCluster`` of ``N`` processes
with one thread each; ``scheduler="tcp://host:port"`` uses an existing
cluster.  Workers only compute; the client writes the parts, so workers need
no shared filesystem (they need pdeinv installed).

Recipes
-------
``datasets/<name>.toml`` fixes a benchmark dataset::

    task = "darcy"
    res = 64
    n_train = 1000
    n_test = 100
    seed = 0

:func:`load_recipe` reads and checks one; :func:`cached_dataset` generates a
split once into ``$PDEINV_CACHE`` (default ``~/.cache/pdeinv``) keyed by the
recipe's content, and reuses it afterwards.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any, Dict, Optional, Union

import numpy as np
import torch

from pdeinv.data.io import (SCHEMA, build_dataset, concat_datasets, consolidate, encode_attrs, load_dataset, open_raw,
                            save_dataset)

log = logging.getLogger(__name__)

RECIPE_KEYS = {"task": str, "res": int, "n_train": int, "n_test": int, "seed": int}
OPTIONAL_RECIPE_KEYS = {"batch_size": int, "description": str, "problem": dict, "name": str, "published": dict}
SEED_RULE = "sample i drawn by task.sample_m(grid, 1, seed=SeedSequence([seed, i]).generate_state(2)) (63-bit)"


# ----------------------------------------------------------------------------- seeding
def sample_seed(seed: int, index: int) -> int:
    """The seed of sample ``index`` of a dataset with seed ``seed`` (a 63-bit integer)."""
    if int(seed) < 0 or int(index) < 0:
        raise ValueError(f"seed and sample index must be non-negative; got seed={seed}, index={index}")
    w = np.random.SeedSequence([int(seed), int(index)]).generate_state(2, dtype=np.uint32)
    return (int(w[0]) << 31) ^ int(w[1])  # < 2**63


def draw_unknowns(task, grid, seed: int, start: int, stop: int) -> torch.Tensor:
    """``m`` for samples ``start..stop-1`` by the seeding rule, ``(stop-start, C, *grid.shape)``."""
    return torch.cat([task.sample_m(grid, 1, seed=sample_seed(seed, i)) for i in range(start, stop)], 0)


def _resolve_task(task):
    from pdeinv.tasks import get_task
    return get_task(task) if isinstance(task, str) else task


def _solve_chunk(task, res: int, seed: int, start: int, stop: int, device: str = "cpu",
                 problem_kwargs: Optional[dict] = None, threads: Optional[int] = None):
    """Draw and solve samples ``start..stop-1``; returns ``(m, u)`` as CPU tensors (runs on workers too)."""
    if threads:
        torch.set_num_threads(int(threads))
    task = _resolve_task(task)
    grid = task.grid(res)
    problem = task.problem(grid, **(problem_kwargs or {})).to(device)
    m = draw_unknowns(task, grid, seed, start, stop)
    with torch.no_grad():
        u = problem(m.to(device))
    return m.cpu(), u.detach().cpu()


def _chunks(start: int, n: int, batch_size: int):
    return [(s, min(s + batch_size, start + n)) for s in range(start, start + n, batch_size)]


# ----------------------------------------------------------------------------- metadata
def _dataset_meta(task, res: int, seed: int, problem_kwargs: Optional[dict]):
    task = _resolve_task(task)
    grid = task.grid(res)
    problem = task.problem(grid, **(problem_kwargs or {}))
    attrs = dict(task.attrs)
    law = attrs.pop("law", task.description or "see task")
    attrs.update(res=int(res), seed_rule=SEED_RULE, generator="pdeinv.data.generate")
    if problem_kwargs:
        attrs["problem_kwargs"] = dict(problem_kwargs)
    try:
        from pdeinv import __version__
        attrs["pdeinv_version"] = __version__
    except ImportError:  # pragma: no cover
        pass
    times = getattr(problem, "record_times", None)
    if torch.is_tensor(times):
        times = times.detach().cpu().tolist()
    return dict(grid=grid, state_grid=getattr(problem, "state_grid", None), task=task.name, law=law,
                m_name=task.m_name, u_name=task.u_name, attrs=attrs, times=times)


def _to_dataset(meta, m, u, seed, start):
    return build_dataset(m, u, meta["grid"], task=meta["task"], law=meta["law"], seed=seed,
                         m_name=meta["m_name"], u_name=meta["u_name"], state_grid=meta["state_grid"],
                         times=meta["times"], attrs=meta["attrs"], sample_offset=start)


def _parts_dir(out: Path) -> Path:
    return out.parent / (out.name + ".parts")


def _part_path(parts: Path, start: int, stop: int) -> Path:
    return parts / f"part-{start:09d}-{stop:09d}.nc"


def _manifest(task_name, res, seed, start, n, batch_size, problem_kwargs):
    return {"schema": SCHEMA, "task": task_name, "res": int(res), "seed": int(seed), "start": int(start),
            "n": int(n), "batch_size": int(batch_size), "problem_kwargs": problem_kwargs or {}}


def _prepare_parts(out: Path, manifest: dict) -> Path:
    parts = _parts_dir(out)
    mf = parts / "manifest.json"
    if mf.exists():
        old = json.loads(mf.read_text())
        if old != manifest:
            diff = {k: (old.get(k), v) for k, v in manifest.items() if old.get(k) != v}
            raise ValueError(f"{parts} holds parts of a different generation run (differs in {diff}); "
                             "run again with the same settings to resume, or delete that folder")
        return parts
    parts.mkdir(parents=True, exist_ok=True)
    tmp = parts / "manifest.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=1))
    os.replace(tmp, mf)
    return parts


def _part_done(path: Path) -> bool:
    if not path.exists():
        return False
    try:
        open_raw(path, lazy=True).close()
        return True
    except ValueError:
        log.warning("part %s is unreadable; it will be generated again", path)
        path.unlink()
        return False


# ----------------------------------------------------------------------------- assembly
def _assemble(out: Path, part_files, verbose: bool):
    """Write the parts into ``out`` atomically; netCDF via a lazy concat, zarr by appending."""
    tmp = out.parent / f".{out.name}.assemble.tmp"
    if tmp.exists():
        shutil.rmtree(tmp) if tmp.is_dir() else tmp.unlink()
    if str(out).endswith(".zarr"):
        for k, pf in enumerate(part_files):
            ds = open_raw(pf)
            ds.attrs = encode_attrs(ds.attrs)
            for v in ds.variables:
                ds[v].attrs = encode_attrs(ds[v].attrs)
            if k == 0:
                ds.to_zarr(tmp, mode="w", consolidated=False)
            else:
                ds.to_zarr(tmp, append_dim="sample", consolidated=False)
        consolidate(tmp)
        if out.exists():
            old = out.parent / f".{out.name}.old"
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
        return
    parts = [open_raw(pf) for pf in part_files]
    save_dataset(concat_datasets(parts), out)


# ----------------------------------------------------------------------------- main entry
def generate(task_name, n: int, res: Optional[int] = None, seed: int = 0, device: str = "cpu",
             batch_size: int = 32, verbose: bool = True, workers: Optional[int] = None,
             scheduler: Optional[str] = None, out: Union[str, Path, None] = None, start: int = 0,
             problem_kwargs: Optional[dict] = None, keep_parts: bool = False):
    """Generate ``n`` pairs ``(m, u)`` of a task; returns the ``xarray.Dataset``.

    Parameters
    ----------
    task_name : a name in :data:`pdeinv.tasks.TASKS` (or a ``Task``).
    n, res : number of samples, grid resolution (default: the task's).
    seed : dataset seed; sample ``i`` uses :func:`sample_seed` ``(seed, i)``.
    device : torch device for the solves (data are stored from the CPU).
    batch_size : samples per chunk (one solve call, one part file, one Dask task).
    verbose : tqdm progress bar.
    workers : start a local Dask cluster of this many single-thread processes.
    scheduler : address of an existing Dask scheduler (``tcp://...``).
    out : file to write (``.nc`` netCDF4 or ``.zarr``); enables resumable parts.
    start : index of the first sample (a recipe's test split starts at ``n_train``).
    problem_kwargs : extra arguments of ``task.problem(grid, ...)`` (e.g. ``method``).
    keep_parts : keep the part folder after assembly.
    """
    from tqdm.auto import tqdm

    task = _resolve_task(task_name)
    res = int(res or task.default_res)
    n, batch_size, start = int(n), int(batch_size), int(start)
    if n < 1:
        raise ValueError(f"n must be >= 1; got {n}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1; got {batch_size}")
    if workers is not None and scheduler is not None:
        raise ValueError("give workers= (local cluster) or scheduler= (existing cluster), not both")
    if workers is not None and (isinstance(workers, bool) or int(workers) != workers or workers < 1):
        raise ValueError(f"workers must be an integer >= 1 (processes of a local Dask cluster); got {workers!r}")
    if out is not None and Path(out).is_dir() and not str(out).rstrip("/").endswith(".zarr"):
        raise ValueError(f"out={str(out)!r} is a folder; give a file name ending in .nc (netCDF) or .zarr")
    meta = _dataset_meta(task, res, seed, problem_kwargs)
    chunks = _chunks(start, n, batch_size)
    t0 = time.perf_counter()

    parts_dir = None
    results: Dict[tuple, Any] = {}
    todo = chunks
    if out is not None:
        out = Path(out)
        parts_dir = _prepare_parts(out, _manifest(task.name, res, seed, start, n, batch_size, problem_kwargs))
        todo = [c for c in chunks if not _part_done(_part_path(parts_dir, *c))]
        if len(todo) < len(chunks):
            log.info("resuming: %d of %d chunks already done in %s", len(chunks) - len(todo), len(chunks), parts_dir)

    def finish(c, m, u):
        if parts_dir is not None:
            save_dataset(_to_dataset(meta, m, u, seed, c[0]), _part_path(parts_dir, *c), validate=False)
        else:
            results[c] = (m, u)

    bar = tqdm(total=n, initial=n - sum(b - a for a, b in todo), desc=f"generate {task.name} {res}",
               unit="sample", disable=not verbose)
    try:
        if todo and (workers is not None or scheduler is not None):
            _run_dask(task, res, seed, device, problem_kwargs, todo, workers, scheduler, finish, bar)
        else:
            for c in todo:
                m, u = _solve_chunk(task, res, seed, c[0], c[1], device, problem_kwargs)
                finish(c, m, u)
                bar.update(c[1] - c[0])
    finally:
        bar.close()

    if out is None:
        m = torch.cat([results[c][0] for c in chunks])
        u = torch.cat([results[c][1] for c in chunks])
        ds = _to_dataset(meta, m, u, seed, start)
    else:
        _assemble(out, [_part_path(parts_dir, *c) for c in chunks], verbose)
        if not keep_parts:
            shutil.rmtree(parts_dir, ignore_errors=True)
        ds = load_dataset(out, lazy=str(out).endswith(".zarr"))
    log.info("generated %d %s samples at %d in %.1f s", n, task.name, res, time.perf_counter() - t0)
    return ds


def _run_dask(task, res, seed, device, problem_kwargs, todo, workers, scheduler, finish, bar):
    from dask.distributed import Client, LocalCluster, as_completed
    cluster = None
    if scheduler is not None:
        client = Client(scheduler)
    else:
        cluster = LocalCluster(n_workers=int(workers), threads_per_worker=1, processes=True,
                               dashboard_address=None, silence_logs=logging.WARNING)
        client = Client(cluster)
    try:
        # tasks registered in pdeinv ship by name; others (e.g. defined in a script) by value (cloudpickle)
        from pdeinv.tasks import TASKS
        ref = task.name if TASKS.get(task.name) is task else task
        futs = {client.submit(_solve_chunk, ref, res, seed, a, b, device, problem_kwargs, 1, pure=False): (a, b)
                for a, b in todo}
        for fut in as_completed(futs):
            c = futs[fut]
            m, u = fut.result()
            finish(c, m, u)
            bar.update(c[1] - c[0])
            fut.release()
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


# ----------------------------------------------------------------------------- recipes and cache
def load_recipe(path_or_dict) -> Dict[str, Any]:
    """Read a dataset recipe (TOML file or dict) and check its keys; returns a dict."""
    if isinstance(path_or_dict, dict):
        rec, where = dict(path_or_dict), "recipe"
    else:
        import tomllib
        p = Path(path_or_dict)
        if not p.exists():
            raise FileNotFoundError(f"no such recipe: {p}")
        try:
            rec = tomllib.loads(p.read_text())
        except tomllib.TOMLDecodeError as err:
            raise ValueError(f"recipe {p} is not valid TOML: {err}") from err
        rec.setdefault("name", p.stem)
        where = f"recipe {p}"
    missing = [k for k in RECIPE_KEYS if k not in rec]
    if missing:
        raise ValueError(f"{where} lacks the keys {missing} (required: {list(RECIPE_KEYS)})")
    for k, typ in {**RECIPE_KEYS, **OPTIONAL_RECIPE_KEYS}.items():
        if k in rec and not isinstance(rec[k], typ):
            raise ValueError(f"{where}: {k} = {rec[k]!r} should be of type {typ.__name__}")
    unknown = set(rec) - set(RECIPE_KEYS) - set(OPTIONAL_RECIPE_KEYS)
    if unknown:
        raise ValueError(f"{where}: unknown keys {sorted(unknown)}; allowed: "
                         f"{sorted(set(RECIPE_KEYS) | set(OPTIONAL_RECIPE_KEYS))}")
    from pdeinv.tasks import TASKS
    if rec["task"] not in TASKS:
        raise ValueError(f"{where}: unknown task {rec['task']!r}; registered tasks: {sorted(TASKS)}")
    for k in ("res", "n_train", "n_test"):
        if rec[k] < 1:
            raise ValueError(f"{where}: {k} must be >= 1; got {rec[k]}")
    return rec


def split_range(recipe: Dict[str, Any], split: str):
    """``(start, n)`` of a recipe split: train = ``[0, n_train)``, test = ``[n_train, n_train + n_test)``."""
    if split == "train":
        return 0, recipe["n_train"]
    if split == "test":
        return recipe["n_train"], recipe["n_test"]
    raise ValueError(f"unknown split {split!r}; expected 'train' or 'test'")


def recipe_key(recipe: Dict[str, Any], split: str) -> str:
    """Content hash of the recipe fields that determine the data (not ``name``/``description``)."""
    keep = {k: recipe[k] for k in sorted(recipe) if k in RECIPE_KEYS or k == "problem"}
    keep.update(split=split, schema=SCHEMA)
    # the task's law and equation are part of the key: a change of law in the code invalidates old caches
    from pdeinv.tasks import TASKS
    task = TASKS.get(recipe.get("task"))
    if task is not None:
        keep["task_attrs"] = {k: str(v) for k, v in sorted(task.attrs.items())}
    return hashlib.sha256(json.dumps(keep, sort_keys=True).encode()).hexdigest()[:16]


def cache_root(path=None) -> Path:
    """``path``, else ``$PDEINV_CACHE``, else ``~/.cache/pdeinv``."""
    return Path(path or os.environ.get("PDEINV_CACHE") or Path.home() / ".cache" / "pdeinv")


def cached_dataset(recipe, split: str = "train", cache_dir: Optional[Union[str, Path]] = None, *,
                   device: str = "cpu", verbose: bool = False, workers: Optional[int] = None,
                   scheduler: Optional[str] = None, n: Optional[int] = None):
    """The ``split`` of a recipe, generated once into the cache and reused afterwards.

    ``recipe``: path to a TOML recipe or a dict.  ``n`` optionally takes only
    the first ``n`` samples of the split (a prefix, by the seeding rule; the
    cached file holds the whole split).  The cache file is
    ``<cache>/<task>-<res>-<split>-<hash>.nc`` where the hash covers the recipe
    content that determines the data (task, res, sizes, seed, problem options).
    """
    rec = load_recipe(recipe)
    start, n_split = split_range(rec, split)
    path = cache_root(cache_dir) / f"{rec['task']}-{rec['res']}-{split}-{recipe_key(rec, split)}.nc"
    ds = None
    if path.exists():
        try:
            ds = load_dataset(path)
            log.info("using cached dataset %s", path)
        except ValueError as err:
            log.warning("cached dataset %s is unusable (%s); generating it again", path, err)
    if ds is None:
        ds = generate(rec["task"], n_split, rec["res"], rec["seed"], device=device,
                      batch_size=rec.get("batch_size", 32), verbose=verbose, workers=workers, scheduler=scheduler,
                      out=path, start=start, problem_kwargs=rec.get("problem"))
    if n is not None:
        if n > n_split:
            raise ValueError(f"asked for {n} samples; the {split} split of the recipe has {n_split}")
        ds = ds.isel(sample=slice(0, int(n)))
    return ds
