"""``pdeinv demo``: a real inversion on a laptop CPU (Darcy at 64²: under a minute, 28 s measured on a
busy shared machine; ``--task ns``, ``mcmc``, ``pinn``: a few minutes, longer on a loaded machine).

Default task (``--task darcy``): the BENCHMARKS.md Darcy inverse problem at
64² -- binary permeability a in {3, 12}, pressure observed at 3 % random
points with 1 % noise -- recovered by MAP (smoothed TV prior, sigmoid
parametrisation between 3 and 12, L-BFGS with adjoint gradients).  Prints the
pixel error rate and relative L2 error, writes the result as netCDF, the
observations as netCDF (the format ``pdeinv invert --obs`` reads) and a PNG
figure (true / recovered / error / sensors).  With ``--n-samples N`` every
problem is saved: the result file holds all N, the observations and figure of
problem ``i >= 1`` go to ``observations_<i>.nc`` and ``darcy_inverse_<i>.png``.

Other tasks are registered in ``DEMOS`` (name -> "module:function"); each
function takes the parsed arguments and returns a dict of metrics.
"""
from __future__ import annotations

import importlib
import json
import logging
import os
import time

import torch

log = logging.getLogger(__name__)

#: Darcy demo settings = the darcy task's MAP defaults (TV weight chosen on seeds disjoint from the demo's, see
#: benchmarks/bench_map_darcy.py) with 300 iterations; the demo builds its solver with pdeinv.solvers.build
DARCY_MAP = dict(prior="tv", weight=10.0, bounds=(3.0, 12.0), max_iter=300)

DEMOS = {
    "darcy": "pdeinv.cli.demo:run_darcy",
    "ns": "pdeinv.cli.demo_ns:run_demo",
    "mcmc": "pdeinv.cli.demo_methods:run_mcmc",
    "pinn": "pdeinv.cli.demo_methods:run_pinn",
}


def add_arguments(p) -> None:
    p.add_argument("--task", default="darcy",
                   help=f"which demo to run (default darcy, under a minute at 64²; registered: {', '.join(DEMOS)}; "
                        "ns, mcmc and pinn take a few minutes)")
    p.add_argument("--res", type=int, default=None, help="grid resolution (default: the task's, 64 for darcy)")
    p.add_argument("--n-samples", type=int, default=1,
                   help="number of independent test problems, each with its own sensors (darcy, ns; default 1); "
                        "every one is saved")
    p.add_argument("--obs", type=float, default=0.0305, help="fraction of grid nodes observed (default 0.0305 = 3 %%)")
    p.add_argument("--noise", type=float, default=0.01,
                   help="relative noise level (default 0.01); 0 = exact data, which the misfit weights as 1 %% "
                        "noise (see docs/concepts.md, 'Exact data')")
    p.add_argument("--max-iter", type=int, default=None, help="optimiser iterations (MCMC: samples per chain)")
    p.add_argument("-o", "--output", default="pdeinv_demo",
                   help="output folder (default ./pdeinv_demo); files of an earlier run in it need --overwrite")
    p.add_argument("--overwrite", action="store_true", help="replace the files of an earlier run in the folder")


def run_darcy(args) -> dict:
    """Darcy inverse demo; returns the metrics dict (also written to ``metrics.json``)."""
    from pdeinv import metrics, plot
    from pdeinv.cli.observations import save_observations
    from pdeinv.physics import ForwardModel, GaussianNoise, PointObservation
    from pdeinv.solvers import build
    from pdeinv.tasks import TASKS

    device = torch.device(args.device)
    task = TASKS["darcy"]
    grid, problem = task.make(args.res or 64)
    problem = problem.to(device)
    a_true = task.sample_m(grid, args.n_samples, seed=args.seed).to(device)
    solver = build("map", task, grid.shape[0], verbose=not args.quiet,
                   max_iter=args.max_iter or DARCY_MAP["max_iter"])
    os.makedirs(args.output, exist_ok=True)
    rows, results, files, assumed, t0 = [], [], {}, None, time.perf_counter()
    for i in range(args.n_samples):
        obs = PointObservation.random(grid, fraction=args.obs, seed=args.seed + 1000 + i)
        fwd = ForwardModel(problem, obs.to(device), GaussianNoise(relative=args.noise))
        y = fwd(a_true[i:i + 1], seed=args.seed + 2000 + i)
        ts = time.perf_counter()
        result = solver(y, fwd)
        dt = time.perf_counter() - ts
        assumed = result.info.get("noise_assumed", assumed)
        er = float(metrics.error_rate(result.m, a_true[i:i + 1], threshold=7.5))
        l2 = float(metrics.relative_l2(result.m, a_true[i:i + 1]))
        rows.append({"sample": i, "error_rate": er, "relative_l2": l2, "seconds": dt})
        results.append(result)
        log.info("sample %d: error rate %.4f, relative L2 %.4f, %.1f s", i, er, l2, dt)
        sfx = "" if i == 0 else f"_{i}"
        obs_path = os.path.join(args.output, f"observations{sfx}.nc")
        save_observations(obs_path, obs.points, y, grid=grid, task="darcy", noise_relative=args.noise, sample=i)
        plot.compare(true=a_true[i:i + 1], recovered=result.m, sensors=obs,
                     path=os.path.join(args.output, f"darcy_inverse{sfx}.png"),
                     title=f"Darcy inverse, MAP-TV: error rate {100 * er:.1f} %, rel. L2 {100 * l2:.1f} %")
        files.setdefault("observations", obs_path)
        files.setdefault("figure", os.path.join(args.output, "darcy_inverse.png"))
    files["result"] = save_results(results, a_true, os.path.join(args.output, "darcy_inverse.nc"))
    n = len(rows)
    out = {"task": "darcy", "res": grid.shape[0], "n_samples": n, "obs_fraction": args.obs, "noise": args.noise,
           "error_rate": sum(r["error_rate"] for r in rows) / n, "relative_l2": sum(r["relative_l2"] for r in rows) / n,
           "seconds_per_sample": (time.perf_counter() - t0) / n, "device": str(device), "samples": rows,
           "files": {k: files[k] for k in ("result", "figure", "observations")}}
    if assumed:
        out["noise_assumed"] = assumed
    return out


def save_results(results, m_true, path) -> str:
    """All problems of a demo in one netCDF file: ``m`` and ``m_true`` ``(sample, x, y)``, per-problem
    histories padded to the longest run (NaN), the solver's info of problem 0 as attrs."""
    import numpy as np
    import xarray as xr
    from pdeinv.data.io import save_dataset
    parts = []
    for i, r in enumerate(results):
        ds = r.to_xarray()
        ds["m_true"] = (ds["m"].dims, m_true[i:i + 1].detach().cpu().numpy().reshape(ds["m"].shape))
        for dim in [d for d in ds.dims if str(d).startswith("iteration")]:
            ds = ds.assign_coords({dim: np.arange(ds.sizes[dim])})
        hist = [v for v in ds.data_vars if str(v).startswith("history_")]
        ds = ds.assign({v: ds[v].expand_dims(sample=[i]) for v in hist})
        parts.append(ds.assign_coords(sample=[i]))
    ds = xr.concat(parts, dim="sample", join="outer", combine_attrs="override", data_vars="minimal")
    save_dataset(ds, path, validate=False)
    return path


def outputs(args):
    """The files ``pdeinv demo`` writes into ``--output`` for ``--task`` (what ``--overwrite`` is needed for)."""
    n = max(1, int(args.n_samples or 1))
    extra = {"darcy": ["darcy_inverse.nc"] + [f"darcy_inverse{'' if i == 0 else f'_{i}'}.png" for i in range(n)]
             + [f"observations{'' if i == 0 else f'_{i}'}.nc" for i in range(n)],
             "ns": ["ns_inverse.nc"] + [f"ns_inverse{'' if i == 0 else f'_{i}'}.png" for i in range(n)]
             + [f"observations_ns{'' if i == 0 else f'_{i}'}.nc" for i in range(n)],
             "mcmc": ["poisson_mcmc.png"], "pinn": ["darcy_pinn.png"]}.get(args.task, [])
    return [os.path.join(args.output, f) for f in extra + [f"metrics_{args.task}.json"]]


def check_outputs(args) -> None:
    """Refuse before any work: ``-o`` naming a file, earlier results in the folder without ``--overwrite``."""
    from pdeinv.cli._checks import check_output
    check_output(args.output, folder=True, allow_existing=True, what="demo's output")
    if not args.overwrite:
        found = [os.path.basename(f) for f in outputs(args) if os.path.exists(f)]
        if found:
            raise ValueError(f"the output folder {args.output!r} holds results of an earlier run ({', '.join(found)}); "
                             "pass --overwrite to replace them, or give another folder with -o")
    if args.task in ("mcmc", "pinn") and int(args.n_samples or 1) != 1:
        raise ValueError(f"demo --task {args.task} solves one problem; --n-samples is for the darcy and ns demos")


def _write_json(path: str, obj) -> None:
    """Atomic JSON write (temporary file, then rename), with the umask's mode."""
    import tempfile
    from pdeinv._validation import file_mode
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), prefix=f".{os.path.basename(path)}.")
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(obj, fh, indent=2, default=str)
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def interrupted(args) -> str:
    """What ``pdeinv demo`` says on Ctrl-C."""
    return f"the demo stopped before it finished; files already in {args.output} are from this run or earlier " \
           "ones: run it again with --overwrite"


def main(args) -> int:
    if args.task not in DEMOS:
        raise ValueError(f"unknown demo task {args.task!r}; available: {sorted(DEMOS)}")
    check_outputs(args)
    torch.manual_seed(args.seed)
    mod, fn = DEMOS[args.task].split(":")
    out = getattr(importlib.import_module(mod), fn)(args)
    os.makedirs(args.output, exist_ok=True)
    _write_json(os.path.join(args.output, f"metrics_{args.task}.json"), out)
    print(f"pdeinv demo ({args.task}): " + ", ".join(
        f"{k} = {v:.4g}" if isinstance(v, float) else f"{k} = {v}"
        for k, v in out.items() if k not in ("samples", "files")))
    for k, v in (out.get("files") or {}).items():
        print(f"  {k}: {v}")
    return 0
