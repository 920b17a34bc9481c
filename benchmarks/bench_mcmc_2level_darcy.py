"""Two-level (delayed-acceptance) MCMC where the simulator is dear: log-normal Darcy at 129², ESS/s against pCN.

    OMP_NUM_THREADS=1 python benchmarks/bench_mcmc_2level_darcy.py --first 0 --problems 2 --name P0
    OMP_NUM_THREADS=1 python benchmarks/bench_mcmc_2level_darcy.py --first 2 --problems 2 --name P1
    python benchmarks/bench_mcmc_2level_darcy.py --merge P0 P1 --name mcmc_2level-darcy129

Problem: -div(a grad u) = 1 on the unit square, u = 0 on the boundary, ``--res`` nodes per side (default 129,
128 cells), float64 CG; ``log a ~ N(log 6, sigma^2 (-Lap + 9 I)^-2)`` (cosine basis, sigma 2: the smooth
log-normal law of ``bench_pinn_mcmc.py``, whose pCN chains mix; the task's binary darcy law does not);
``--points`` random interior sensors (fixed per problem), ``--noise`` relative Gaussian noise.

Samplers, all on the same data with the same seeds: single-level pCN on the true model, and pCN screened by
(i) the same PDE on the nested ``--coarse`` grid (every k-th node; pressure interpolated back bilinearly) and
(ii) an FNO trained here on ``--fno-train`` prior pairs on that coarse grid, run on the coarsened coefficient
(``fno@coarse``); both through :class:`pdeinv.physics.resample.Coarsened` (on nested Dirichlet grids: the
coarse nodes' values in, bilinear interpolation out).  Delayed acceptance with the screen's offset correction keeps the chain exact
(:class:`pdeinv.solvers.MCMC`, ``surrogate_fwd=``).  Each sampler adapts its step to 25 % overall acceptance in
burn-in, then freezes it.  Reported: wall time, true-model calls, ESS of the log-likelihood and of the worst
pixel, R-hat, and ESS per second as a ratio to pCN's on the same problem (geometric mean over problems); the
samplers' order rotates from problem to problem, so a drift in machine load does not favour one of them.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pdeinv as pi  # noqa: E402
from benchmarks._common import RESULTS, md_table, write_results  # noqa: E402
from pdeinv.metrics import relative_l2  # noqa: E402
from pdeinv.physics.resample import Coarsened  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_pinn_mcmc import _train_fno  # noqa: E402  (the same law's FNO, trained the same way)


def law(grid, sigma):
    return pi.GaussianRandomField(grid, alpha=2.0, tau=3.0, sigma=sigma, basis="cosine", mean=math.log(6.0))


def train_fno(coarse, sigma, n_train, epochs, seed=0):
    """FNO a -> u on the coarse grid, trained on ``n_train`` law pairs (+100 held out): ``bench_pinn_mcmc``'s."""
    model, info = _train_fno(coarse, law(coarse, sigma), n_train, epochs, seed=seed)
    model.eval()
    return model, {**info, "train_s": info["train_seconds"], "arch": info["arch"] + ", on the coarse grid"}


def run(args):
    grid = pi.Grid2D(args.res)
    coarse = pi.Grid2D(args.coarse)
    prior = law(grid, args.sigma)
    problem = pi.physics.Darcy(grid, f=1.0, method="cg")
    noise = pi.GaussianNoise(relative=args.noise)
    fno, fno_info = train_fno(coarse, args.sigma, args.fno_train, args.fno_epochs)
    for p in fno.parameters():
        p.requires_grad_(False)
    print("FNO", fno_info, flush=True)
    screens = {"pcn": None,
               f"coarse FD {args.coarse}²": Coarsened(pi.physics.Darcy(coarse, f=1.0, method="cg"), coarse, grid),
               f"fno@{args.coarse}": Coarsened(fno, coarse, grid)}
    if args.timing:
        t = timing(args, screens, prior, problem, noise, grid)
        write_results(args.name, [t], "# per chain-state costs\n\n" + json.dumps(t, indent=1),
                      meta={"argv": sys.argv[1:], "threads": torch.get_num_threads()})
        print(t)
        return None, None
    rows = []
    for i in range(args.first, args.first + args.problems):
        log_a = prior.sample(1, seed=500 + i)
        obs = pi.PointObservation.random(grid, n=args.points, seed=600 + i, exclude_boundary=True)
        fwd = pi.ForwardModel(problem, obs, noise=noise)
        y = fwd(torch.exp(log_a), seed=700 + i)
        names = list(screens)
        names = names[i % len(names):] + names[:i % len(names)]   # rotate the order: load drifts hit each alike
        for name in names:
            screen = screens[name]
            sfwd = None if screen is None else pi.ForwardModel(screen, obs, noise=noise)
            solver = pi.solvers.MCMC(prior, n_samples=args.samples, n_chains=args.chains, step=0.2,
                                     surrogate_fwd=sfwd, transform=torch.exp, burn_in=args.burn_in, seed=i)
            r = solver(y, fwd)
            info = r.info
            lo, hi = r.credible_interval(0.9)
            a = torch.exp(log_a)
            rows.append({"problem": i, "sampler": name, "seconds": info["wall_time"],
                         "true_calls": info["n_true_model_calls"], "proposals": info["n_proposals"],
                         "acceptance": info["acceptance"], "stage2": info.get("stage2_acceptance"),
                         "step": info.get("step"), "ess_loglik": info["ess_loglik"], "ess_min": info["ess"],
                         "rhat_loglik": info["rhat_loglik"], "rhat_max": info["rhat"],
                         "coverage90": float(((a >= lo) & (a <= hi)).double().mean()),
                         "rel_l2_mean": float(relative_l2(r.m, a).mean()), "n_obs": obs.n_obs,
                         "ess_loglik_per_1k_calls": 1000 * _scalar(info["ess_loglik"]) / info["n_true_model_calls"]})
            print(rows[-1], flush=True)
    return rows, {"fno": fno_info, "res": args.res, "coarse": args.coarse, "points": args.points,
                  "noise": args.noise, "sigma": args.sigma, "chains": args.chains, "samples": args.samples,
                  "burn_in": args.burn_in, "threads": torch.get_num_threads()}


def timing(args, screens, prior, problem, noise, grid, repeats: int = 30):
    """Per chain-state costs on a quiet machine: the true model, each screen (batches of ``args.chains``
    states, median of ``repeats``), and a pCN step's own work (a short pCN run minus its model calls)."""
    obs = pi.PointObservation.random(grid, n=args.points, seed=600, exclude_boundary=True)
    m = torch.exp(prior.sample(args.chains, seed=1))
    out = {}
    for name, screen in [("true", problem)] + [(k, v) for k, v in screens.items() if v is not None]:
        ts = []
        with torch.no_grad():
            for _ in range(repeats):
                t0 = time.perf_counter()
                screen(m)
                ts.append(time.perf_counter() - t0)
        out[name] = float(np.median(ts)) / args.chains
    fwd = pi.ForwardModel(problem, obs, noise=noise)
    y = fwd(m[:1], seed=7)
    r = pi.solvers.MCMC(prior, n_samples=100, n_chains=args.chains, step=0.2, transform=torch.exp, burn_in=100,
                        seed=0)(y, fwd)
    n = r.info["n_proposals"]
    out["pcn_overhead"] = max(0.0, (r.info["wall_time"] - r.info["n_true_model_calls"] * out["true"]) / n)
    return out


def _scalar(v):
    return float(v[0]) if isinstance(v, (list, tuple)) else (None if v is None else float(v))


def report(rows, meta, name, argv):
    costs = meta.get("costs")
    for r in rows:
        for k in ("acceptance", "stage2", "ess_loglik", "ess_min", "rhat_loglik", "rhat_max", "step"):
            r[k] = _scalar(r.get(k))
        if costs:      # seconds the run would take on the quiet machine: per-state costs x counts
            screen = 0.0 if r["sampler"] == "pcn" else costs[r["sampler"]]
            r["model_s"] = r["proposals"] * (costs["pcn_overhead"] + screen) + r["true_calls"] * costs["true"]
    for r in rows:
        base = next(b for b in rows if b["problem"] == r["problem"] and b["sampler"] == "pcn")
        r["time_vs_pcn"] = base["seconds"] / r["seconds"]
        r["ess_s_vs_pcn_loglik"] = (r["ess_loglik"] / r["seconds"]) / (base["ess_loglik"] / base["seconds"])
        r["ess_s_vs_pcn_min"] = (r["ess_min"] / r["seconds"]) / (base["ess_min"] / base["seconds"])
        if costs:
            r["model_ess_s_vs_pcn_loglik"] = (r["ess_loglik"] / r["model_s"]) / (base["ess_loglik"] / base["model_s"])
            r["model_speedup"] = base["model_s"] / r["model_s"]
    samplers = list(dict.fromkeys(r["sampler"] for r in rows))
    summ = []
    for s in samplers:
        rs = [r for r in rows if r["sampler"] == s]

        def geo(k):
            return float(np.exp(np.mean(np.log([r[k] for r in rs]))))
        summ.append({"sampler": s, "problems": len(rs), "true_calls": float(np.mean([r["true_calls"] for r in rs])),
                     "stage2": None if s == "pcn" else float(np.mean([r["stage2"] for r in rs])),
                     "time_vs_pcn": geo("time_vs_pcn"), "ess_s_vs_pcn_loglik": geo("ess_s_vs_pcn_loglik"),
                     "ess_s_vs_pcn_min": geo("ess_s_vs_pcn_min"),
                     "rhat_loglik_max": max(r["rhat_loglik"] for r in rs),
                     **({"model_speedup": geo("model_speedup"), "model_ess_s_vs_pcn_loglik": geo("model_ess_s_vs_pcn_loglik")}
                        if costs else {}),
                     "coverage90": float(np.mean([r["coverage90"] for r in rs]))})
    f = meta["fno"]
    md = (f"# Two-level MCMC where the simulator is dear: log-normal Darcy at {meta['res']}²\n\n"
          f"log a ~ N(log 6, {meta['sigma'] ** 2:g} (-Lap + 9 I)^-2) (cosine basis), f = 1, u = 0 on the boundary, "
          f"CG in float64 on {meta['res']}x{meta['res']} nodes; {rows[0]['n_obs']} random sensors per problem, "
          f"{100 * meta['noise']:g} % relative noise.  {meta['chains']} chains x {meta['samples']} kept samples "
          f"(+ {meta['burn_in']} burn-in, step adapted to 25 % acceptance, then frozen) per sampler, same seeds.  "
          f"Screens: the PDE on the nested {meta['coarse']}² grid, and an FNO trained here on {f['n_train']} "
          f"law pairs at {meta['coarse']}² ({f['epochs']} epochs, {f['train_s']:.0f} s, held-out rel. L2 "
          f"{100 * f['val_rel_l2']:.2f} %; training not charged), both fed the coarsened coefficient and "
          f"interpolated back.  One CPU thread per process.\n\n"
          + md_table(summ, [("sampler", "sampler", None), ("problems", "problems", None),
                            ("true_calls", "simulator calls (mean)", "{:.0f}"), ("stage2", "stage-2 acceptance", "{:.2f}"),
                            ("time_vs_pcn", "time vs pcn (speed-up)", "{:.2f}×"),
                            ("ess_s_vs_pcn_loglik", "ESS/s vs pcn (log-lik), geo. mean", "{:.2f}×"),
                            ("ess_s_vs_pcn_min", "ESS/s vs pcn (worst pixel), geo. mean", "{:.2f}×"),
                            ("rhat_loglik_max", "max R-hat (log-lik)", "{:.3f}"),
                            ("coverage90", "90 % pixel coverage", "{:.2f}")]
                     + ([("model_speedup", "cost-model speed-up", "{:.2f}×"),
                         ("model_ess_s_vs_pcn_loglik", "cost-model ESS/s vs pcn (log-lik)", "{:.2f}×")] if costs else []))
          + (f"\n\nCost model (`--timing` on a quiet machine, seconds per chain-state): true model "
             f"{costs['true']:.2e}, " + ", ".join(f"{k} {v:.2e}" for k, v in costs.items()
                                                 if k not in ("true", "pcn_overhead"))
             + f", pCN's own work per step {costs['pcn_overhead']:.2e}; modelled time = proposals x (own work + "
             "screen) + simulator calls x true model.  The measured wall times above come from runs that shared "
             "the 2 cores with other jobs whose number changed during the runs." if costs else "")
          + "\n\nPer problem:\n\n"
          + md_table(rows, [("problem", "problem", None), ("sampler", "sampler", None), ("seconds", "s", "{:.0f}"),
                            ("true_calls", "simulator calls", None), ("acceptance", "acceptance", "{:.3f}"),
                            ("stage2", "stage 2", "{:.2f}"), ("ess_loglik", "ESS (log-lik)", "{:.0f}"),
                            ("ess_min", "ESS (worst pixel)", "{:.0f}"), ("rhat_loglik", "R-hat (log-lik)", "{:.3f}"),
                            ("rhat_max", "R-hat (worst pixel)", "{:.3f}"),
                            ("ess_loglik_per_1k_calls", "ESS (log-lik) per 1000 simulator calls", "{:.1f}"),
                            ("ess_s_vs_pcn_loglik", "ESS/s vs pcn (log-lik)", "{:.2f}×"),
                            ("ess_s_vs_pcn_min", "ESS/s vs pcn (worst pixel)", "{:.2f}×"),
                            ("model_ess_s_vs_pcn_loglik", "cost-model ESS/s vs pcn (log-lik)", "{:.2f}×"),
                            ("rel_l2_mean", "posterior mean rel. L2", "{:.3f}")])
          + f"\n\nCommand: `python benchmarks/bench_mcmc_2level_darcy.py {' '.join(argv)}`\n")
    write_results(name, rows, md, meta={**meta, "summary": summ, "argv": argv})
    print(md)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--res", type=int, default=129)
    ap.add_argument("--coarse", type=int, default=33)
    ap.add_argument("--points", type=int, default=16, help="random sensors per problem")
    ap.add_argument("--noise", type=float, default=0.05)
    ap.add_argument("--sigma", type=float, default=2.0, help="amplitude of the log-permeability GRF")
    ap.add_argument("--chains", type=int, default=4)
    ap.add_argument("--samples", type=int, default=1500)
    ap.add_argument("--burn-in", type=int, default=1500)
    ap.add_argument("--fno-train", type=int, default=400)
    ap.add_argument("--fno-epochs", type=int, default=25)
    ap.add_argument("--first", type=int, default=0)
    ap.add_argument("--problems", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--timing", action="store_true", help="only measure the per-call costs (on a quiet machine)")
    ap.add_argument("--costs", default=None, help="with --merge: a --timing results stem, for cost-modelled ESS/s")
    ap.add_argument("--merge", nargs="+", default=None, help="combine these results files (stems) into --name")
    ap.add_argument("--name", default="mcmc_2level-darcy129")
    args = ap.parse_args(argv)
    argv = list(argv if argv is not None else sys.argv[1:])
    torch.set_num_threads(args.threads)
    if args.merge:
        parts = [json.loads((RESULTS / f"{m}.json").read_text()) for m in args.merge]
        rows = [r for p in parts for r in p["records"]]
        meta = {k: v for k, v in parts[0]["meta"].items() if k not in ("summary", "argv")}
        meta["parts"] = [p["meta"].get("argv") for p in parts]
        if args.costs:
            meta["costs"] = json.loads((RESULTS / f"{args.costs}.json").read_text())["records"][0]
        return report(rows, meta, args.name, argv)
    rows, meta = run(args)
    if rows is not None:
        report(rows, meta, args.name, argv)


if __name__ == "__main__":
    main()
