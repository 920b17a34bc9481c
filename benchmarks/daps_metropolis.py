"""DAPS on Darcy 64² with a trained prior: the Metropolis-adjusted Langevin step against the unadjusted one
(and the Jacobian at the chains' mean against each chain's), beside converged MAP, on the harness's first
test samples.  Writes ``results/daps_metropolis-darcy.{md,json}``.

    OMP_NUM_THREADS=1 python daps_metropolis.py CHECKPOINT --n 2 --draws 8
"""
import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from pdeinv import metrics
from pdeinv.benchmark.config import BenchConfig
from pdeinv.benchmark.samples import load_split, make_sample
from pdeinv.nn.base import load
from pdeinv.physics import ForwardModel
from pdeinv.solvers import build
from pdeinv.tasks import TASKS

VARIANTS = {"metropolis, mean Jacobian": {"metropolis": True, "jacobian_at": "mean"},
            "unadjusted, mean Jacobian": {"metropolis": False, "jacobian_at": "mean"}}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint")
    p.add_argument("--n", type=int, default=2)
    p.add_argument("--draws", type=int, default=8)
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "daps_metropolis-darcy"))
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    task = TASKS["darcy"]
    grid, problem = task.make(64)
    cfg = BenchConfig(task="darcy", res=64, n_train=1000, n_test=a.n, verbose=False)
    m_all, u_all = load_split(cfg, "test", a.n)
    samples = [make_sample(cfg, i, m_all[i:i + 1], u_all[i:i + 1]) for i in range(a.n)]
    fwds = [ForwardModel(problem, s.observation, s.noise) for s in samples]
    rows = []
    t0 = time.perf_counter()
    mp = [build("map", task, 64)(s.y, f, seed=s.method_seed).m.reshape(s.m.shape) for s, f in zip(samples, fwds)]
    rows.append({"method": "map (converged, task defaults)", "seconds_per_sample": (time.perf_counter() - t0) / a.n,
                 "rel_l2": [float(metrics.relative_l2(m, s.m)) for m, s in zip(mp, samples)],
                 "pixel_error": [float(metrics.error_rate(m, s.m)) for m, s in zip(mp, samples)]})
    model = load(a.checkpoint)
    for name, opts in VARIANTS.items():
        kw = dict(opts, n_samples=a.draws)
        if a.steps:
            kw["num_steps"] = a.steps
        solver = build("daps", task, 64, model=model, **kw)
        t0 = time.perf_counter()
        rs = [solver(s.y, f, seed=s.method_seed) for s, f in zip(samples, fwds)]
        g = rs[-1].info.get("guidance", {})
        rows.append({"method": f"daps ({name})", "seconds_per_sample": (time.perf_counter() - t0) / a.n,
                     "rel_l2": [float(metrics.relative_l2(r.m.reshape(s.m.shape), s.m)) for r, s in zip(rs, samples)],
                     "pixel_error": [float(metrics.error_rate(r.m.reshape(s.m.shape), s.m)) for r, s in zip(rs, samples)],
                     "acceptance": (g["accepted"] / g["proposed"]) if g.get("proposed") else None,
                     "network_evals_per_sample": rs[-1].info.get("network_evals_per_sample")})
    meta = {"checkpoint": a.checkpoint, "n": a.n, "draws": a.draws, "steps": a.steps,
            "machine": f"{platform.machine()} {platform.processor() or ''}".strip(), "device": "cpu, 1 thread"}
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    lines = [f"# DAPS on Darcy 64²: Metropolis-adjusted vs unadjusted Langevin\n",
             f"`python benchmarks/daps_metropolis.py {a.checkpoint} --n {a.n} --draws {a.draws}`; {meta['device']}, "
             f"{meta['machine']}; harness test samples 0..{a.n - 1} (125 points, 1 % noise).\n",
             "| method | rel. L2 (mean) | pixel error (mean) | acceptance | s/sample |", "|---|---|---|---|---|"]
    for r in rows:
        acc = "" if r.get("acceptance") is None else f"{r['acceptance']:.2f}"
        lines.append(f"| {r['method']} | {np.mean(r['rel_l2']):.4f} | {np.mean(r['pixel_error']):.4f} | {acc} | "
                     f"{r['seconds_per_sample']:.0f} |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
