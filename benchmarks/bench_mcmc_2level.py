"""Two-level MCMC with a shipped surrogate as the screen, against single-level pCN, in one run: ESS per second
on the same problems, chains, seeds and starting point.

    python benchmarks/bench_mcmc_2level.py --task ns --model ns64-fno --screens fno fno@32 fno@32:none sim@32 \\
        --burn-in 1000 --samples 1000 --chains 4 --first 0 --problems 2

Samplers (all from :func:`pdeinv.solvers.build`, the task's law in whitened coordinates, pCN with its step
adapted during burn-in to 25 % acceptance, then frozen):

* ``pcn``: single-level pCN on the simulator;
* ``fno``: two-level delayed acceptance screened by ``--model`` at the problem's resolution;
* ``fno@N``: the same network run on an N-point grid (``screen_res=N``: Fourier restriction of w0, the
  network, Fourier interpolation of its output);
* ``sim@N``: the simulator itself on an N-point grid (classical multilevel screen, for comparison);
* a ``:none`` suffix screens with the model as it is; by default it is corrected by its error at the chain's
  state (``screen_correction="offset"``).

Every chain starts at the problem's MAP point (L-BFGS on the simulator, ``--map-iter``; its time is not
charged to any sampler), so burn-in is spent adapting the step, not travelling from a prior draw.  With
``--proposal gpcn`` every sampler (baseline and screened) uses gpCN, whose Gaussian is the Laplace
approximation at that MAP point (computed once per problem, not charged), and its chains start at
independent draws of that Gaussian.  All
samplers use the same chain seeds: where the screen accepts exactly what pCN would, the two-level chain is
pCN's chain, computed with fewer simulator calls.  Reported per sampler and problem: wall time, simulator
and screen calls, acceptance (overall, stage 1, stage 2), ESS and R-hat of the log-likelihood, the smallest
ESS over pixels, both per second, and their ratio to pCN's on the same problem.  Problems: the harness's
test samples (3.05 % points, 1 % noise, indices after the shipped models' 1000 training samples).  Writes
``benchmarks/results/<name>.md/.json`` (default name ``mcmc_2level-<task>``).
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from _common import md_table, write_results


def _sampler(spec, task, res, model, fwd, opts):
    from pdeinv.physics import ForwardModel
    from pdeinv.physics.resample import Coarsened
    from pdeinv.solvers import build
    if spec in ("pcn", "gpcn"):
        return build("mcmc", task, res, **dict(opts, proposal=spec))
    if spec.startswith("gpcn~"):          # gpCN whose Gaussian's Hessian comes from the network (on N² if @N)
        from pdeinv.solvers.factory import load_model
        from pdeinv.surrogates.forward import SurrogateForward
        kind, _, n = spec[5:].partition("@")
        if kind != "fno":
            raise ValueError(f"unknown Gaussian source {spec!r}; use gpcn~fno or gpcn~fno@N")
        net = load_model(model, None, task, res)
        if n:
            net = Coarsened(net, task.grid(int(n)), fwd.grid)
        lf = SurrogateForward(net, fwd.observation, fwd.noise, grid=fwd.grid)
        return build("mcmc", task, res, **dict(opts, proposal="gpcn", laplace_fwd=lf))
    kind, _, corr = spec.partition(":")
    kind, _, n = kind.partition("@")
    o = dict(opts, screen_correction=corr or "offset")
    if kind == "fno":
        if n:
            o["screen_res"] = int(n)
        return build("mcmc-2level", task, res, model=model, **o)
    if kind == "sim":
        gc, pc = task.make(int(n))
        screen = ForwardModel(Coarsened(pc, gc, fwd.grid), fwd.observation, fwd.noise)
        return build("mcmc-2level", task, res, surrogate_fwd=screen, **o)
    raise ValueError(f"unknown screen {spec!r}; use fno, fno@N, sim@N, with an optional :none")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--task", default="ns")
    p.add_argument("--model", required=True)
    p.add_argument("--res", type=int, default=64)
    p.add_argument("--screens", nargs="+", default=["fno", "fno@32", "fno@32:none", "sim@32"])
    p.add_argument("--samples", type=int, default=1000, help="kept samples per chain")
    p.add_argument("--burn-in", type=int, default=1000)
    p.add_argument("--chains", type=int, default=4)
    p.add_argument("--step", type=float, default=0.01, help="initial pCN step")
    p.add_argument("--first", type=int, default=0)
    p.add_argument("--problems", type=int, default=2)
    p.add_argument("--map-iter", type=int, default=2000)
    p.add_argument("--noise", type=float, default=0.01, help="relative noise level of the data (harness: 0.01)")
    p.add_argument("--start", choices=["map", "prior"], default="map",
                   help="start every chain at the MAP point, or each at a prior draw (needed where the law is a "
                        "transformed field, e.g. darcy's threshold)")
    p.add_argument("--proposal", choices=["pcn", "gpcn"], default="pcn",
                   help="the proposal of the baseline and of every screened sampler (gpcn: pCN preconditioned by "
                        "the Laplace Gaussian at the MAP point, computed once per problem and not charged)")
    p.add_argument("--also-pcn", action="store_true", help="with --proposal gpcn, also run plain pCN")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--name", default=None)
    p.add_argument("--merge", nargs="+", default=None, help="merge these results .json files instead of running")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    name = a.name or f"mcmc_2level-{a.task}"
    cmd = "python benchmarks/bench_mcmc_2level.py " + " ".join(argv if argv is not None
                                                                else __import__("sys").argv[1:])
    if a.merge:
        import json
        recs, metas = [], []
        for f in a.merge:
            d = json.load(open(f))
            recs += d["records"]
            metas.append(d.get("meta", {}))
        report(recs, name, cmd, metas[0] | {"merged": a.merge})
        return
    from pdeinv.benchmark.config import BenchConfig
    from pdeinv.benchmark.samples import load_split, make_sample
    from pdeinv.metrics import coverage
    from pdeinv.physics import ForwardModel
    from pdeinv.solvers import build
    from pdeinv.tasks import get_task

    task = get_task(a.task)
    grid, problem = task.make(a.res)
    cfg = BenchConfig(task=a.task, res=a.res, n_train=1000, n_test=a.first + a.problems, noise=a.noise,
                      verbose=False)
    m_all, u_all = load_split(cfg, "test", a.first + a.problems)
    opts = dict(n_samples=a.samples, n_chains=a.chains, burn_in=a.burn_in, step=a.step, compute_state=False,
                proposal=a.proposal)
    recs = []
    for i in range(a.first, a.first + a.problems):
        s = make_sample(cfg, i, m_all[i:i + 1], u_all[i:i + 1])
        fwd = ForwardModel(problem, s.observation, s.noise)
        start, t_map, map_rel = {}, None, None
        if a.start == "map":
            t0 = time.perf_counter()
            m0 = build("map", task, a.res, max_iter=a.map_iter)(s.y, fwd, seed=i).m.detach()
            t_map, map_rel = time.perf_counter() - t0, float((m0 - s.m).norm() / s.m.norm())
            start = dict(m0=m0)
        t_lap = None
        if a.proposal == "gpcn":
            if a.start != "map":
                raise SystemExit("--proposal gpcn centres its Gaussian at the MAP point: use --start map")
            from pdeinv.solvers.laplace import Laplace
            t0 = time.perf_counter()
            lap = Laplace(prior=task.latent(grid)[0], n_samples=0, compute_state=False)(s.y, fwd, m_map=m0)
            t_lap = time.perf_counter() - t0
            start["laplace"] = lap
        base = [a.proposal] + (["pcn"] if a.also_pcn and a.proposal == "gpcn" else [])
        for spec in base + list(a.screens):
            kw = dict(start)
            if spec == "pcn" or spec.startswith("gpcn~"):     # pCN, or gpCN that builds its own Gaussian
                kw.pop("laplace", None)
            r = _sampler(spec, task, a.res, a.model, fwd, opts)(s.y, fwd, seed=i, **kw)
            info = r.info
            t = info["wall_time"]
            rel = float((r.m - s.m).norm() / s.m.norm())
            spread = float(r.samples.var(0).sum().sqrt() / s.m.norm())    # sqrt(tr Cov) / |m|
            cover = float(coverage(r.samples.double(), s.m.double(), 0.9)[0])   # pixels inside the 90 % band
            setup = (t_map or 0.0) + (info["laplace_seconds"] if info.get("laplace_model") == "surrogate"
                                      else t_lap if info.get("proposal") == "gpcn" else 0.0)
            recs.append(dict(problem=i, sampler=spec, seconds=t, map_seconds=t_map, true_calls=info["n_true_model_calls"],
                             screen_calls=info["n_surrogate_calls"], acceptance=info["acceptance"],
                             stage1=info.get("stage1_acceptance"), stage2=info.get("stage2_acceptance"),
                             step=info["step"], ess_min=info["ess"], ess_loglik=info["ess_loglik"],
                             ess_min_per_s=info["ess"] / t, ess_loglik_per_s=info["ess_loglik"] / t,
                             rhat_loglik=info["rhat_loglik"], rhat_max=info["rhat"], rel_l2_mean=rel,
                             rel_spread=spread, coverage90=cover,
                             map_rel_l2=map_rel, laplace_seconds=t_lap, setup_seconds=setup,
                             ess_min_per_s_setup=info["ess"] / (t + setup),
                             ess_loglik_per_s_setup=info["ess_loglik"] / (t + setup)))
            print(recs[-1], flush=True)
    report(recs, name, cmd, vars(a))


def report(recs, name, cmd, meta):
    base = meta.get("proposal", "pcn")
    for r in recs:
        ref = next(q for q in recs if q["problem"] == r["problem"] and q["sampler"] == base)
        r["gain_loglik"] = r["ess_loglik_per_s"] / ref["ess_loglik_per_s"]
        r["gain_min"] = r["ess_min_per_s"] / ref["ess_min_per_s"]
        r["speedup"] = ref["seconds"] / r["seconds"]
        if "setup_seconds" in r:
            r["gain_min_setup"] = r["ess_min_per_s_setup"] / ref["ess_min_per_s_setup"]
    cols = [("problem", "problem", "{}"), ("sampler", "sampler", "{}"), ("seconds", "s", "{:.0f}"),
            ("true_calls", "simulator calls", "{}"), ("acceptance", "acceptance", "{:.3f}"),
            ("stage1", "stage 1", "{:.3f}"), ("stage2", "stage 2", "{:.2f}"), ("ess_loglik", "ESS (log-lik)", "{:.1f}"),
            ("ess_min", "ESS (min pixel)", "{:.1f}"), ("rhat_loglik", "R-hat (log-lik)", "{:.2f}"),
            ("rhat_max", "R-hat (max pixel)", "{:.2f}"),
            ("speedup", f"time vs {base}", "{:.2f}×"), ("gain_loglik", f"ESS/s vs {base} (log-lik)", "{:.3g}×"),
            ("gain_min", f"ESS/s vs {base} (min pixel)", "{:.3g}×")]
    if all("setup_seconds" in r for r in recs):
        cols += [("setup_seconds", "setup s (MAP, Laplace)", "{:.0f}"),
                 ("gain_min_setup", f"ESS/s incl. setup vs {base} (min pixel)", "{:.3g}×"),
                 ("rel_l2_mean", "posterior mean rel. L2", "{:.4f}"), ("map_rel_l2", "MAP rel. L2", "{:.4f}")]
    samplers = list(dict.fromkeys(r["sampler"] for r in recs))
    probs = sorted({r["problem"] for r in recs})
    summary = []
    for sp in samplers:
        rs = [r for r in recs if r["sampler"] == sp]
        g = [r["gain_loglik"] for r in rs]
        gm = [r["gain_min"] for r in rs]
        summary.append(dict(sampler=sp, n=len(rs), gain_loglik=float(np.exp(np.mean(np.log(g)))),
                            gain_min=float(np.exp(np.mean(np.log(gm)))),
                            speedup=float(np.exp(np.mean(np.log([r["speedup"] for r in rs])))),
                            stage2=(float(np.mean([r["stage2"] for r in rs])) if rs[0]["stage2"] is not None
                                    else None),
                            sim_calls=float(np.mean([r["true_calls"] for r in rs])),
                            rhat=float(max(r["rhat_max"] for r in rs)) if "rhat_max" in rs[0] else None,
                            ess=float(np.mean([r["ess_min"] for r in rs])),
                            gain_min_setup=(float(np.exp(np.mean(np.log([r["gain_min_setup"] for r in rs]))))
                                            if "gain_min_setup" in rs[0] else None)))
    scols = [("sampler", "sampler", "{}"), ("n", "problems", "{}"), ("sim_calls", "simulator calls (mean)", "{:.0f}"),
             ("stage2", "stage-2 acceptance", "{:.2f}"), ("speedup", f"time vs {base}", "{:.2f}×"),
             ("gain_loglik", f"ESS/s vs {base} (log-lik), geo. mean", "{:.3g}×"),
             ("gain_min", f"ESS/s vs {base} (min pixel), geo. mean", "{:.3g}×")]
    if summary[0]["rhat"] is not None:
        scols += [("ess", "ESS (min pixel, mean)", "{:.1f}"), ("rhat", "R-hat (max pixel, worst problem)", "{:.2f}")]
    if summary[0]["gain_min_setup"] is not None:
        scols += [("gain_min_setup", f"ESS/s incl. setup vs {base} (min pixel), geo. mean", "{:.3g}×")]
    r0 = recs[0]
    start = ("each started at the problem's MAP point" if meta.get("start", "map") == "map"
             else "each started at its own prior draw")
    prop = ("gpCN (pCN preconditioned by the Laplace Gaussian at the MAP point, Gauss-Newton Hessian through "
            f"the simulator: {r0['laplace_seconds']:.0f} s on problem {r0['problem']}; its chains start at "
            "independent draws of that Gaussian). `pcn`: plain pCN, started at MAP. `gpcn~fno@N`: gpCN whose "
            "Hessian is built through the network on N², at the same MAP point. Setup (MAP, and the Laplace "
            "Hessian where used) is charged only in the 'incl. setup' columns"
            if base == "gpcn" else "pCN")
    md = (f"# Two-level MCMC vs single-level: {meta.get('task')} inverse at {meta.get('res')}², screen "
          f"`{meta.get('model')}`, proposal {base}\n\n"
          f"Proposal of the baseline and the screened samplers: {prop}. "
          f"Problems {probs} (harness test samples, {100 * meta.get('noise', 0.01):g} % noise). "
          f"{meta.get('chains')} chains per sampler, {start}, "
          f"{meta.get('burn_in')} burn-in steps (step adapted to 25 % acceptance, then frozen) "
          f"and {meta.get('samples')} kept. Same chain seeds for every sampler. `fno@N`: the network run on an "
          f"N-point grid; `sim@N`: the simulator on an N-point grid; `:none`: screen not corrected at the chain's "
          f"state." + (f" MAP (the start; `map_rel_l2` in the .json) took {r0['map_seconds']:.0f} s on problem "
                       f"{r0['problem']} (not charged)." if r0.get("map_seconds") is not None else "") + "\n\n"
          + md_table(summary, scols) + "\n\nPer problem:\n\n" + md_table(recs, cols)
          + f"\n\nCommand: `{cmd}`\n")
    write_results(name, recs, md, meta=meta)
    print(md)


if __name__ == "__main__":
    main()
