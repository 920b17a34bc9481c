"""``pdeinv demo``: a real inversion in a couple of minutes on a laptop CPU.

Default task (``--task darcy``): the BENCHMARKS.md Darcy inverse problem at
64² -- binary permeability a in {3, 12}, pressure observed at 3 % random
points with 1 % noise -- recovered by MAP (smoothed TV prior, sigmoid
parametrisation between 3 and 12, L-BFGS with adjoint gradients).  Prints the
pixel error rate and relative L2 error, writes the result as netCDF, the
observations as netCDF (the format ``pdeinv invert --obs`` reads) and a PNG
figure (true / recovered / error / sensors).

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
    p.add_argument("--task", default="darcy", help=f"which demo to run (default darcy; registered: {', '.join(DEMOS)})")
    p.add_argument("--res", type=int, default=None, help="grid resolution (default: the task's, 64 for darcy)")
    p.add_argument("--n-samples", type=int, default=1, help="number of independent test problems (default 1)")
    p.add_argument("--obs", type=float, default=0.0305, help="fraction of grid nodes observed (default 0.0305 = 3 %%)")
    p.add_argument("--noise", type=float, default=0.01, help="relative noise level (default 0.01)")
    p.add_argument("--max-iter", type=int, default=None, help="optimiser iterations (MCMC: samples per chain)")
    p.add_argument("-o", "--output", default="pdeinv_demo", help="output folder (default ./pdeinv_demo)")


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
    rows, t0 = [], time.perf_counter()
    for i in range(args.n_samples):
        obs = PointObservation.random(grid, fraction=args.obs, seed=args.seed + 1000 + i)
        fwd = ForwardModel(problem, obs.to(device), GaussianNoise(relative=args.noise))
        y = fwd(a_true[i:i + 1], seed=args.seed + 2000 + i)
        ts = time.perf_counter()
        result = solver(y, fwd)
        dt = time.perf_counter() - ts
        er = float(metrics.error_rate(result.m, a_true[i:i + 1], threshold=7.5))
        l2 = float(metrics.relative_l2(result.m, a_true[i:i + 1]))
        rows.append({"sample": i, "error_rate": er, "relative_l2": l2, "seconds": dt})
        log.info("sample %d: error rate %.4f, relative L2 %.4f, %.1f s", i, er, l2, dt)
        if i == 0:
            save_observations(os.path.join(args.output, "observations.nc"), obs.points, y, task="darcy",
                              noise_relative=args.noise, res=grid.shape[0])
            ds = result.to_xarray()
            ds["m_true"] = (ds["m"].dims, a_true[:1].cpu().numpy().reshape(ds["m"].shape))
            from pdeinv.data.io import save_dataset
            save_dataset(ds, os.path.join(args.output, "darcy_inverse.nc"), validate=False)
            plot.compare(true=a_true[:1], recovered=result.m, sensors=obs,
                         path=os.path.join(args.output, "darcy_inverse.png"),
                         title=f"Darcy inverse, MAP-TV: error rate {100 * er:.1f} %, rel. L2 {100 * l2:.1f} %")
    n = len(rows)
    out = {"task": "darcy", "res": grid.shape[0], "n_samples": n, "obs_fraction": args.obs, "noise": args.noise,
           "error_rate": sum(r["error_rate"] for r in rows) / n, "relative_l2": sum(r["relative_l2"] for r in rows) / n,
           "seconds_per_sample": (time.perf_counter() - t0) / n, "device": str(device), "samples": rows,
           "files": {"result": os.path.join(args.output, "darcy_inverse.nc"),
                     "figure": os.path.join(args.output, "darcy_inverse.png"),
                     "observations": os.path.join(args.output, "observations.nc")}}
    return out


def main(args) -> int:
    if args.task not in DEMOS:
        raise ValueError(f"unknown demo task {args.task!r}; available: {sorted(DEMOS)}")
    torch.manual_seed(args.seed)
    mod, fn = DEMOS[args.task].split(":")
    out = getattr(importlib.import_module(mod), fn)(args)
    os.makedirs(args.output, exist_ok=True)
    with open(os.path.join(args.output, f"metrics_{args.task}.json"), "w") as fh:
        json.dump(out, fh, indent=2, default=str)
    print(f"pdeinv demo ({args.task}): " + ", ".join(
        f"{k} = {v:.4g}" if isinstance(v, float) else f"{k} = {v}"
        for k, v in out.items() if k not in ("samples", "files")))
    for k, v in (out.get("files") or {}).items():
        print(f"  {k}: {v}")
    return 0
