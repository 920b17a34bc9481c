"""DAPS level by level: the data misfit chi2/P of the chains' x0 before (the denoiser's x0-hat) and after each
level's Langevin run, and the binary fraction of m, for one or more priors on one Darcy harness sample.

    OMP_NUM_THREADS=1 python benchmarks/daps_levels.py --models darcy64-uno /path/darcy64-unet.pt --index 0

A diagnostic of why a prior's DAPS draws do or do not fit the data: chi2/P is about 1 for a state that fits
the data to the noise.  It wraps ``DAPS._langevin`` to measure (one extra simulator solve per chain and
level); the sampler itself is unchanged.  Writes ``benchmarks/results/daps_levels-<task>.{md,json}``.
"""
from __future__ import annotations

import argparse
import sys

import torch

from _common import md_table, write_results


def profile(model, index, draws, opts):
    """Per-level records ``{"level", "r", "chi2_denoised", "chi2_after", "binary"}`` (``r``: the rms prior width
    of the level's Langevin target) and the posterior mean's errors."""
    from pdeinv import metrics
    from pdeinv.benchmark.config import BenchConfig
    from pdeinv.benchmark.samples import load_split, make_sample
    from pdeinv.physics import ForwardModel
    from pdeinv.solvers import build
    from pdeinv.solvers.diffusion.daps import DAPS
    from pdeinv.tasks import get_task
    task = get_task("darcy")
    grid, problem = task.make(64)
    cfg = BenchConfig(task="darcy", res=64, n_train=1000, n_test=index + 1, verbose=False)
    m, u = load_split(cfg, "test", index + 1)
    s = make_sample(cfg, index, m[index:index + 1], u[index:index + 1])
    fwd = ForwardModel(problem, s.observation, s.noise)
    solver = build("daps", task, 64, model=model, n_samples=draws, **opts)
    lo, hi = task.attrs.get("binary", (3.0, 12.0))
    tol = 0.1 * (hi - lo)
    log = []
    original = DAPS._langevin

    def traced(self, predict, x0, r2, y, s2, lin, *args, **kw):
        with torch.no_grad():
            before = float(((y - predict(x0)).pow(2) / s2).mean())
        out = original(self, predict, x0, r2, y, s2, lin, *args, **kw)
        with torch.no_grad():
            after = float(((y - predict(out)).pow(2) / s2).mean())
            a = self.prior.decode(out)[:, self.m_channel]
        binary = float((((a - lo).abs() <= tol) | ((a - hi).abs() <= tol)).double().mean())
        log.append({"level": len(log), "r": float(r2.mean().sqrt()), "chi2_denoised": before, "chi2_after": after,
                    "binary": binary})
        return out

    DAPS._langevin = traced
    try:
        res = solver(s.y, fwd, seed=s.method_seed)
    finally:
        DAPS._langevin = original
    final = {"rel_l2": float(metrics.relative_l2(res.m, s.m)), "pixel": float(metrics.error_rate(res.m, s.m))}
    return log, final


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", required=True, help="shipped prior names or checkpoints")
    ap.add_argument("--index", type=int, default=0, help="harness test sample (n_train=1000)")
    ap.add_argument("--draws", type=int, default=2)
    ap.add_argument("--every", type=int, default=5, help="table: every k-th level (and the last ten)")
    ap.add_argument("--name", default="daps_levels-darcy")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    opts = {"drift": "chord"}
    runs = {}
    for model in a.models:
        runs[model] = profile(model, a.index, a.draws, opts)
    n = len(next(iter(runs.values()))[0])
    keep = [i for i in range(n) if i % a.every == 0 or i >= n - 10]
    rows = []
    for i in keep:
        row = {"level": i, "r": runs[a.models[0]][0][i]["r"]}
        for k, model in enumerate(a.models):
            e = runs[model][0][i]
            row.update({f"d{k}": e["chi2_denoised"], f"a{k}": e["chi2_after"], f"b{k}": e["binary"]})
        rows.append(row)
    cols = [("level", "level", "{}"), ("r", "r (prior width, normalised)", "{:.3f}")]
    for k, model in enumerate(a.models):
        short = model.split("/")[-1]
        cols += [(f"d{k}", f"{short}: chi2/P of x0-hat", "{:.1f}"), (f"a{k}", f"{short}: after Langevin", "{:.1f}"),
                 (f"b{k}", f"{short}: binary fraction", "{:.3f}")]
    finals = "; ".join(f"`{m.split('/')[-1]}` rel. L2 {runs[m][1]['rel_l2']:.2%}, pixel error {runs[m][1]['pixel']:.2%}"
                       for m in a.models)
    md = (f"# DAPS level by level: data fit of the chains (darcy 64², harness test sample {a.index}, {a.draws} "
          f"draws, options {opts})\n\n`OMP_NUM_THREADS=1 python benchmarks/daps_levels.py "
          f"{' '.join(argv or sys.argv[1:])}`\n\nchi2/P of the chains' x0 (mean over chains): the denoiser's x0-hat "
          "at the level's noise, and after the level's Langevin run on N(x0; x0-hat, r² K) p(y | x0); about 1 fits "
          f"the data to the noise.  Final posterior means: {finals}.\n\n" + md_table(rows, cols) + "\n")
    write_results(a.name, {m: {"levels": runs[m][0], "final": runs[m][1]} for m in a.models}, md,
                  meta={"index": a.index, "draws": a.draws, "options": opts, "models": a.models})
    print(md)


if __name__ == "__main__":
    main()
