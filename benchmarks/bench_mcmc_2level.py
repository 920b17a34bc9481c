"""Two-level MCMC with a shipped surrogate as the screen, against single-level pCN, where the
simulator is dear: ESS per second on the same problem, in one run.

    python benchmarks/bench_mcmc_2level.py --task ns --model ns64-fno --samples 300 --problems 2

Both samplers come from :func:`pdeinv.solvers.build` (``mcmc`` and ``mcmc-2level``, the task's law
in whitened coordinates, pCN with adaptive step, the same chains, burn-in and seeds).  Delayed
acceptance leaves the posterior exact; it pays when the screen is much cheaper than the simulator
and accepts what the simulator would.  Reported per sampler: wall time, true-model calls, the
acceptance rates, min-over-pixels ESS and log-likelihood ESS, both per second, R-hat of the
log-likelihood, and the ratio of ESS/s to pCN's.  Problems: the harness's test samples (64², 3.05 %
points, 1 % noise, indices after the shipped models' 1000 training samples).  Writes
``benchmarks/results/mcmc_2level-<task>.md/.json``.
"""
from __future__ import annotations

import argparse

import numpy as np
import torch

from _common import md_table, write_results


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--task", default="ns")
    p.add_argument("--model", required=True)
    p.add_argument("--res", type=int, default=64)
    p.add_argument("--samples", type=int, default=300, help="kept samples per chain (burn-in as many)")
    p.add_argument("--chains", type=int, default=2)
    p.add_argument("--problems", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    from pdeinv.benchmark.config import BenchConfig
    from pdeinv.benchmark.samples import load_split, make_sample
    from pdeinv.physics import ForwardModel
    from pdeinv.solvers import build
    from pdeinv.tasks import get_task

    task = get_task(a.task)
    grid, problem = task.make(a.res)
    cfg = BenchConfig(task=a.task, res=a.res, n_train=1000, n_test=a.problems, verbose=False)
    m_all, u_all = load_split(cfg, "test", a.problems)
    opts = dict(n_samples=a.samples, n_chains=a.chains, burn_in=a.samples)
    recs = []
    for i in range(a.problems):
        s = make_sample(cfg, i, m_all[i:i + 1], u_all[i:i + 1])
        fwd = ForwardModel(problem, s.observation, s.noise)
        for name, solver in (("pcn", build("mcmc", task, a.res, **opts)),
                             ("two-level", build("mcmc-2level", task, a.res, model=a.model, **opts))):
            r = solver(s.y, fwd, seed=i)
            info = r.info
            t = info["wall_time"]
            recs.append(dict(problem=i, sampler=name, seconds=t, true_calls=info["n_true_model_calls"],
                             acceptance=info["acceptance"], stage1=info.get("stage1_acceptance"),
                             ess_min=info["ess"], ess_loglik=info["ess_loglik"], ess_min_per_s=info["ess"] / t,
                             ess_loglik_per_s=info["ess_loglik"] / t, rhat_loglik=info["rhat_loglik"]))
            print(recs[-1], flush=True)
    for r in recs:
        ref = next(q for q in recs if q["problem"] == r["problem"] and q["sampler"] == "pcn")
        r["gain_loglik"] = r["ess_loglik_per_s"] / ref["ess_loglik_per_s"]
        r["gain_min"] = r["ess_min_per_s"] / ref["ess_min_per_s"]
    cols = [("problem", "problem", "{}"), ("sampler", "sampler", "{}"), ("seconds", "s", "{:.0f}"),
            ("true_calls", "true-model calls", "{}"), ("acceptance", "acceptance", "{:.2f}"),
            ("stage1", "screen acceptance", "{:.2f}"), ("ess_loglik", "ESS (log-lik)", "{:.1f}"),
            ("ess_min", "ESS (min pixel)", "{:.1f}"), ("ess_loglik_per_s", "ESS/s (log-lik)", "{:.3f}"),
            ("gain_loglik", "ESS/s vs pcn (log-lik)", "{:.2f}×"), ("gain_min", "ESS/s vs pcn (min)", "{:.2f}×"),
            ("rhat_loglik", "R-hat (log-lik)", "{:.3f}")]
    g = [r["gain_loglik"] for r in recs if r["sampler"] == "two-level"]
    md = (f"# Two-level MCMC ({a.model} screen) vs pCN: {a.task} inverse at {a.res}²\n\n"
          f"{a.chains} chains × {a.samples} kept samples (burn-in {a.samples}) per sampler and problem. "
          f"Geometric mean ESS/s gain (log-likelihood): {float(np.exp(np.mean(np.log(g)))):.2f}×.\n\n"
          + md_table(recs, cols) + "\n\nCommand: `python benchmarks/bench_mcmc_2level.py "
          + " ".join(argv if argv is not None else __import__("sys").argv[1:]) + "`\n")
    write_results(f"mcmc_2level-{a.task}", recs, md, meta=vars(a))
    print(md)


if __name__ == "__main__":
    main()
