"""MAP (smoothed TV + sigmoid, L-BFGS with adjoint gradients) on the BENCHMARKS.md Darcy inverse task.

64² grid, a in {3, 12}, pressure at 3.05 % random nodes (a fresh point set per
sample from a recorded seed), 1 % relative Gaussian noise.  Reports the pixel
error rate (threshold 7.5) and relative L2, mean ± std over the test samples,
and seconds per sample.  Optionally sweeps the TV weight on *validation* seeds
(disjoint from the test seeds) to show how the demo's default was chosen.

    python benchmarks/bench_map_darcy.py --n 50            # the committed run
    python benchmarks/bench_map_darcy.py --n 8 --sweep     # weight sweep on validation seeds
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import md_table, write_results  # noqa: E402

import pdeinv as pi  # noqa: E402
from pdeinv.cli.demo import DARCY_MAP  # noqa: E402
from pdeinv.solvers import MAP  # noqa: E402


def run(n: int, res: int, weight: float, max_iter: int, seed0: int, device: str):
    task = pi.tasks.TASKS["darcy"]
    grid, prob = task.make(res)
    prob = prob.to(device)
    a = task.sample_m(grid, n, seed=seed0).to(device)
    rows = []
    for i in range(n):
        obs = pi.PointObservation.random(grid, fraction=0.0305, seed=seed0 + 10_000 + i).to(device)
        fwd = pi.ForwardModel(prob, obs, pi.GaussianNoise(relative=0.01))
        y = fwd(a[i:i + 1], seed=seed0 + 20_000 + i)
        t0 = time.perf_counter()
        r = MAP(**{**DARCY_MAP, "weight": weight, "max_iter": max_iter})(y, fwd)
        dt = time.perf_counter() - t0
        rows.append({"sample": i, "error_rate": float(pi.metrics.error_rate(r.m, a[i:i + 1])),
                     "relative_l2": float(pi.metrics.relative_l2(r.m, a[i:i + 1])), "seconds": dt,
                     "iterations": r.info["iterations"]})
    return rows


def summary(rows):
    def ms(k):
        v = [r[k] for r in rows]
        return statistics.mean(v), (statistics.stdev(v) if len(v) > 1 else 0.0)
    er, l2, sec = ms("error_rate"), ms("relative_l2"), ms("seconds")
    return {"n": len(rows), "error_rate_mean": er[0], "error_rate_std": er[1], "relative_l2_mean": l2[0],
            "relative_l2_std": l2[1], "seconds_mean": sec[0], "seconds_std": sec[1]}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=50)
    p.add_argument("--res", type=int, default=64)
    p.add_argument("--max-iter", type=int, default=DARCY_MAP["max_iter"])
    p.add_argument("--sweep", action="store_true", help="sweep the TV weight on validation seeds")
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    records, lines = [], []
    if args.sweep:
        for w in (0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0):
            s = summary(run(args.n, args.res, w, args.max_iter, seed0=7_000, device=args.device))
            records.append({"split": "validation", "weight": w, **s})
        lines.append("TV-weight sweep on validation seeds (disjoint from the test seeds):\n")
        lines.append(md_table(records, [("weight", "TV weight", "{:g}"), ("n", "samples", "{}"),
                                        ("error_rate_mean", "error rate", "{:.4f}"),
                                        ("relative_l2_mean", "rel. L2", "{:.4f}"),
                                        ("seconds_mean", "s/sample", "{:.1f}")]))
    else:
        rows = run(args.n, args.res, DARCY_MAP["weight"], args.max_iter, seed0=0, device=args.device)
        s = summary(rows)
        records = [{"method": "MAP (TV + sigmoid, L-BFGS)", "res": args.res, "obs_fraction": 0.0305, "noise": 0.01,
                    "weight": DARCY_MAP["weight"], "max_iter": args.max_iter, **s, "per_sample": rows}]
        lines.append(f"Darcy inverse task, {args.res}², 3.05 % points (fresh set per sample), 1 % noise, "
                     f"{s['n']} test samples (seeds 0..{s['n'] - 1} of the test law):\n")
        lines.append(md_table(records, [("method", "method", None), ("n", "samples", "{}"),
                                        ("error_rate_mean", "error rate (mean)", "{:.4f}"),
                                        ("error_rate_std", "± std", "{:.4f}"),
                                        ("relative_l2_mean", "rel. L2 (mean)", "{:.4f}"),
                                        ("relative_l2_std", "± std", "{:.4f}"),
                                        ("seconds_mean", "s/sample", "{:.1f}")]))
        lines.append("\nPublished Darcy inverse numbers (BENCHMARKS.md; 128², 500 points, 50,000 training pairs): "
                     "DiffusionPDE 3.2 % (own paper) / 7.87 % (re-run by FunDPS), FunDPS 5.18 %. BENCHMARKS.md files "
                     "them under relative L2; for the binary coefficient DiffusionPDE evaluates the thresholded pixel "
                     "error, so set them beside our error-rate column with that caveat. MAP needs no training data.")
    write_results("map_darcy" + ("_sweep" if args.sweep else ""), records, "\n".join(lines), device=args.device,
                  meta=vars(args))


if __name__ == "__main__":
    main()
