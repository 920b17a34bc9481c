"""``pdeinv demo --task ns``: recover the initial vorticity of a 2-D Navier--Stokes flow.

The BENCHMARKS.md ``ns`` inverse problem: w0 drawn from the law
N(0, 7^1.5 (-Δ + 49 I)^-2.5), the flow run to T = 1 (ν = 1e-3, forcing
0.1(sin 2π(x+y) + cos 2π(x+y))), w(T) observed at 3 % random nodes with 1 %
noise; MAP with the law's GRF prior and L-BFGS, gradients by autograd through
the 100 pseudo-spectral time steps.  At 64² this takes one to three minutes on
two CPU cores (``--res 32`` for a quicker run).

Writes into ``args.output``: ``ns_inverse.nc`` (the results of all ``--n-samples``
problems, with ``m_true``), ``observations_ns.nc`` (what ``pdeinv invert ns --obs`` reads)
and ``ns_inverse.png`` (true / recovered / error / sensors); problem ``i >= 1`` of
``--n-samples`` has its own ``observations_ns_<i>.nc`` and ``ns_inverse_<i>.png``.
"""
from __future__ import annotations

import logging
import os
import time

import torch

log = logging.getLogger(__name__)

#: MAP settings of the demo (iterations bounded so that the demo stays short)
NS_DEMO_ITER = 150


def run_demo(args) -> dict:
    """Run the ns inverse demo; returns a dict of metrics (relative L2 per sample and mean, seconds)."""
    from pdeinv import metrics, plot
    from pdeinv.cli.demo import save_results
    from pdeinv.cli.observations import save_observations
    from pdeinv.physics import ForwardModel, GaussianNoise, PointObservation
    from pdeinv.solvers import build
    from pdeinv.tasks import get_task

    device = torch.device(getattr(args, "device", "cpu"))
    res = getattr(args, "res", None) or 64
    n_samples = int(getattr(args, "n_samples", 1) or 1)
    fraction = float(getattr(args, "obs", 0.0305))
    noise = float(getattr(args, "noise", 0.01))
    seed = int(getattr(args, "seed", 0))
    out_dir = getattr(args, "output", "pdeinv_demo")
    max_iter = getattr(args, "max_iter", None) or NS_DEMO_ITER
    verbose = not getattr(args, "quiet", False)

    task = get_task("ns")
    grid, problem = task.make(res)
    problem = problem.to(device)
    w_true = task.sample_m(grid, n_samples, seed=seed).to(device)
    solver = build("map", task, res, verbose=verbose, max_iter=max_iter)
    os.makedirs(out_dir, exist_ok=True)
    rows, results, assumed, t0 = [], [], None, time.perf_counter()
    for i in range(n_samples):
        obs = PointObservation.random(grid, fraction=fraction, seed=seed + 1000 + i)
        fwd = ForwardModel(problem, obs.to(device), GaussianNoise(relative=noise))
        y = fwd(w_true[i:i + 1], seed=seed + 2000 + i)
        ts = time.perf_counter()
        result = solver(y, fwd)
        dt = time.perf_counter() - ts
        l2 = float(metrics.relative_l2(result.m, w_true[i:i + 1]))
        # how well the recovered w0 predicts the final state everywhere (not only at the sensors)
        with torch.no_grad():
            l2_state = float(metrics.relative_l2(result.u, problem(w_true[i:i + 1])))
        rows.append({"sample": i, "relative_l2": l2, "relative_l2_wT": l2_state, "seconds": dt,
                     "iterations": result.info.get("iterations")})
        results.append(result)
        assumed = result.info.get("noise_assumed", assumed)
        log.info("sample %d: relative L2 of w0 %.4f (of w(T) %.4f), %.1f s", i, l2, l2_state, dt)
        sfx = "" if i == 0 else f"_{i}"
        save_observations(os.path.join(out_dir, f"observations_ns{sfx}.nc"), obs.points, y, grid=grid, task="ns",
                          noise_relative=noise, sample=i)
        plot.compare(true=w_true[i:i + 1], recovered=result.m, sensors=obs, grid=grid, cmap="RdBu_r",
                     path=os.path.join(out_dir, f"ns_inverse{sfx}.png"),
                     title=f"NS inverse (w0 from 3 % points of w(T=1)), MAP-GRF: rel. L2 {100 * l2:.1f} %")
    save_results(results, w_true, os.path.join(out_dir, "ns_inverse.nc"))
    n = len(rows)
    return {"task": "ns", "res": grid.shape[0], "n_samples": n, "obs_fraction": fraction, "noise": noise,
            "relative_l2": sum(r["relative_l2"] for r in rows) / n,
            "relative_l2_wT": sum(r["relative_l2_wT"] for r in rows) / n,
            "seconds_per_sample": (time.perf_counter() - t0) / n, "max_iter": max_iter, "device": str(device),
            "samples": rows, **({"noise_assumed": assumed} if assumed else {}),
            "files": {"result": os.path.join(out_dir, "ns_inverse.nc"),
                      "figure": os.path.join(out_dir, "ns_inverse.png"),
                      "observations": os.path.join(out_dir, "observations_ns.nc")}}
