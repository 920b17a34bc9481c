"""What a surrogate evaluation costs beside the simulator's, and what that allows two-level MCMC and
surrogate MAP to gain, side by side in one run.

    python benchmarks/bench_surrogate_cost.py --cases ns:64:ns64-fno ns:64:ns64-fno@32 darcy:64:darcy64-fno \
        darcy:128:darcy64-fno darcy:128:darcy64-fno@64

A model written ``NAME@N`` runs on an N-point grid (Fourier or bilinear restriction of ``m``, the network,
interpolation of its output back), as the two-level screen ``screen_res=N`` does.

Per case (task, grid, shipped surrogate) and batch size: seconds per sample of the simulator's forward
solve ``F(m)`` and of the surrogate's ``G(m)`` (no gradient), and of a misfit value with its gradient
(``0.5 ||O F(m) - y||^2``: forward + adjoint; through the surrogate: forward + backward), median of
``--repeats`` timed calls after one warm-up.

Two-level (delayed-acceptance) pCN calls the surrogate at every proposal and the simulator only for the
proposals the screen passes (rate ``a1``).  With a screen that accepts what the simulator would, the
chain is the single-level chain, so its ESS per step is pCN's and the ESS/s gain is at most

    gain <= c_F / (c_G + a1 c_F) = 1 / (c_G / c_F + a1),

``a1`` about pCN's tuned acceptance (0.25).  Surrogate MAP with the same iteration count gains at most
the value-and-gradient cost ratio; anything beyond it must come from needing fewer iterations.
Writes ``benchmarks/results/surrogate_cost.md/.json``.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from _common import md_table, write_results


def _time(fn, repeats):
    fn()                                   # warm-up (plans, caches)
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return statistics.median(out)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", nargs="+", default=["ns:64:ns64-fno", "darcy:64:darcy64-fno", "darcy:128:darcy64-fno"],
                   help="TASK:RES:MODEL (a shipped forward surrogate)")
    p.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--acceptance", type=float, default=0.25, help="screen acceptance a1 of the bound")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--name", default="surrogate_cost")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    from pdeinv.nn import pretrained
    from pdeinv.physics import PointObservation
    from pdeinv.physics.resample import Coarsened
    from pdeinv.tasks import get_task

    dev = torch.device(a.device)
    sync = (lambda: torch.cuda.synchronize()) if dev.type == "cuda" else (lambda: None)
    recs = []
    for case in a.cases:
        task_name, res, model_name = case.split(":")
        res = int(res)
        task = get_task(task_name)
        grid, problem = task.make(res)
        problem = problem.to(dev) if hasattr(problem, "to") else problem
        model_name, _, screen_res = model_name.partition("@")
        net = pretrained.load(model_name, device=dev).eval()
        if screen_res:                              # the network run on a coarser grid (the two-level screen)
            net = Coarsened(net, task.grid(int(screen_res)), grid)
        obs = PointObservation.random(grid, fraction=0.0305, seed=1)
        for B in a.batch:
            m = task.sample_m(grid, B, seed=7).to(dev)
            with torch.no_grad():
                y_sim = obs(problem(m)).detach()

            def run(f, grad):
                def call():
                    if grad:
                        x = m.clone().requires_grad_(True)
                        loss = 0.5 * (obs(f(x)).to(y_sim.dtype) - y_sim).pow(2).sum()
                        loss.backward()
                    else:
                        with torch.no_grad():
                            f(m)
                    sync()
                return _time(call, a.repeats) / B

            sur = lambda x: net(x.float())
            label = model_name + (f" on {screen_res}²" if screen_res else "")
            row = dict(case=f"{task_name} {res}² / {label}", batch=B,
                       sim_fwd=run(problem, False), sur_fwd=run(sur, False),
                       sim_grad=run(problem, True), sur_grad=run(sur, True))
            row["fwd_ratio"] = row["sur_fwd"] / row["sim_fwd"]
            row["grad_ratio"] = row["sur_grad"] / row["sim_grad"]
            row["da_bound"] = 1.0 / (row["fwd_ratio"] + a.acceptance)
            row["map_speedup_same_its"] = 1.0 / row["grad_ratio"]
            recs.append(row)
            print(row, flush=True)
    ms = lambda k: (k, k.replace("_", " ") + " (ms / sample)", "{:.2f}")
    for r in recs:
        for k in ("sim_fwd", "sur_fwd", "sim_grad", "sur_grad"):
            r[k] *= 1e3
    cols = [("case", "case", "{}"), ("batch", "batch", "{}"), ms("sim_fwd"), ms("sur_fwd"), ms("sim_grad"),
            ms("sur_grad"), ("fwd_ratio", "c_G / c_F (forward)", "{:.2f}"),
            ("grad_ratio", "surrogate / simulator (value + gradient)", "{:.2f}"),
            ("da_bound", f"two-level ESS/s gain bound (a1 = {a.acceptance})", "{:.2f}×"),
            ("map_speedup_same_its", "surrogate-MAP speed-up at equal iterations", "{:.2f}×")]
    md = ("# What a surrogate evaluation costs beside the simulator's\n\n"
          f"Device {a.device}, {a.threads} thread(s); median of {a.repeats} calls after a warm-up; 3.05 % observed "
          "points. Two-level bound: 1 / (c_G/c_F + a1) (a screen that accepts what the simulator would, so the ESS "
          "per step is single-level pCN's).\n\n" + md_table(recs, cols)
          + "\n\nCommand: `python benchmarks/bench_surrogate_cost.py "
          + " ".join(argv if argv is not None else __import__("sys").argv[1:]) + "`\n")
    write_results(a.name, recs, md, meta=vars(a), device=a.device)
    print(md)


if __name__ == "__main__":
    main()
