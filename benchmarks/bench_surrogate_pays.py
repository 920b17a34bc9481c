"""Where a surrogate should pay: MAP through a shipped surrogate (+ a few simulator iterations) and
amortised inverse operators, beside MAP on the simulator, on the same test samples, in one run.

    python benchmarks/bench_surrogate_pays.py --task ns --model ns64-fno --n 10
    python benchmarks/bench_surrogate_pays.py --task darcy --amortized darcy64-vito darcy64-fno-sparse --n 50 \
        --name amortized-darcy

Samples: the harness's (``pdeinv.benchmark.samples``: 64², 3.05 % random points, 1 % noise, seed 0)
with ``n_train=1000``, so the test samples (indices 1000, 1001, ...) follow the shipped models'
training data (indices 0..999) and are never among them.  Rows: ``map`` (the task's MAP, L-BFGS to
its gradient tolerance or ``--map-iter``), ``surrogate-map`` (L-BFGS through the surrogate, then
``--refine`` simulator iterations), ``surrogate-only`` (stage 1 alone), one ``amortized`` row per
inverse operator, one ``daps`` row per ``--daps`` option set (the posterior mean of its draws).  Reported: rel. L2 of ``m`` (mean ± std; Darcy: also the pixel error rate at the
threshold 7.5), seconds per sample, simulator solves per sample, network parameters, and the ratios
to ``map``.  Writes ``benchmarks/results/<--name>.md/.json`` (default ``surrogate_pays-<task>``).
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from _common import md_table, write_results


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--task", default="ns")
    p.add_argument("--model", default=None, help="a shipped forward surrogate (pdeinv models); none: no surrogate rows")
    p.add_argument("--amortized", nargs="+", default=[],
                   help="shipped inverse operators (one row each); NAME+N adds N simulator MAP iterations from its answer")
    p.add_argument("--name", default=None, help="results file stem (default surrogate_pays-<task>)")
    p.add_argument("--n", type=int, default=10)
    p.add_argument("--res", type=int, default=64)
    p.add_argument("--map-iter", type=int, default=None, help="MAP iteration cap (default: the task's)")
    p.add_argument("--sur-iter", type=int, default=200)
    p.add_argument("--sur-iters", type=int, nargs="*", default=[],
                   help="extra surrogate-only rows with these L-BFGS iteration counts (the speed-accuracy curve)")
    p.add_argument("--refine", type=int, nargs="*", default=[10, 30])
    p.add_argument("--corrections", type=int, nargs="*", default=[],
                   help="rows surrogate+dcK: K defect corrections (one simulator solve each) after stage 1")
    p.add_argument("--correction-iter", type=int, default=30, help="surrogate L-BFGS iterations per correction")
    p.add_argument("--daps", action="append", default=[], metavar="JSON",
                   help="a DAPS row through the simulator with these solver options (JSON; repeatable), e.g. "
                        "'{\"drift\": \"chord\", \"num_steps\": 50}'; the task's shipped prior unless it names model")
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    from pdeinv import metrics
    from pdeinv.benchmark.config import BenchConfig
    from pdeinv.benchmark.samples import load_split, make_sample
    from pdeinv.physics import ForwardModel
    from pdeinv.solvers import build
    from pdeinv.tasks import get_task

    cfg = BenchConfig(task=a.task, res=a.res, n_train=1000, n_test=a.n, verbose=False)
    task = get_task(a.task)
    grid, problem = task.make(a.res)
    m_all, u_all = load_split(cfg, "test", a.n)
    map_opts = {} if a.map_iter is None else {"max_iter": a.map_iter}
    methods = {"map": lambda: build("map", task, a.res, **map_opts)}
    if a.model:
        methods["surrogate-only"] = lambda: build("surrogate-map", task, a.res, model=a.model, max_iter=a.sur_iter)
        for n in a.sur_iters:
            methods[f"surrogate-only ({n} its)"] = (lambda n=n: build("surrogate-map", task, a.res, model=a.model,
                                                                       max_iter=n))
        for r in a.refine:
            methods[f"surrogate-map+{r}"] = (lambda r=r: build("surrogate-map", task, a.res, model=a.model,
                                                               max_iter=a.sur_iter, refine_iter=r))
        for k in a.corrections:
            methods[f"surrogate+dc{k}"] = (lambda k=k: build("surrogate-map", task, a.res, model=a.model,
                                                             max_iter=a.sur_iter, corrections=k,
                                                             correction_iter=a.correction_iter))
    for spec in a.amortized:      # NAME or NAME+N: N MAP iterations on the simulator from the network's answer
        name, _, n_ref = spec.partition("+")
        methods[f"amortized {spec}"] = (lambda name=name, n_ref=n_ref: build(
            "amortized", task, a.res, model=name, **({"refine_iter": int(n_ref)} if n_ref else {})))
    import json as _json
    for spec in a.daps:
        opts = _json.loads(spec)
        label = "daps " + ", ".join(f"{k}={v}" for k, v in opts.items())
        methods[label] = (lambda opts=opts: build("daps", task, a.res, **opts))
    solvers = {k: f() for k, f in methods.items()}
    params = {k: (v.model.n_parameters() if hasattr(getattr(v, "model", None), "n_parameters") else None)
              for k, v in solvers.items()}
    binary = a.task == "darcy"
    rows = {k: {"err": [], "sec": [], "solves": [], "pix": [], "conv": []} for k in solvers}
    for i in range(a.n):
        s = make_sample(cfg, i, m_all[i:i + 1], u_all[i:i + 1])
        for name, solver in solvers.items():
            counted = _Counting(problem)
            fwd = ForwardModel(counted, s.observation, s.noise)
            t0 = time.perf_counter()
            res = solver(s.y, fwd, seed=s.method_seed)
            rows[name]["sec"].append(time.perf_counter() - t0)
            rows[name]["err"].append(float(metrics.relative_l2(res.m.reshape(s.m.shape).double(), s.m.double())))
            rows[name]["solves"].append(counted.calls)
            if "converged" in res.info:
                rows[name]["conv"].append(bool(res.info["converged"]))
            if binary:
                rows[name]["pix"].append(float(metrics.error_rate(res.m.reshape(s.m.shape).double(), s.m.double())))
    ref = rows["map"]
    recs = []
    for name, r in rows.items():
        e, t = np.array(r["err"]), np.array(r["sec"])
        recs.append({"method": name, "err_mean": 100 * e.mean(), "err_std": 100 * e.std(ddof=1) if len(e) > 1 else 0.0,
                     "sec": t.mean(), "solves": float(np.mean(r["solves"])),
                     "err_ratio": e.mean() / np.mean(ref["err"]), "speedup": np.mean(ref["sec"]) / t.mean(),
                     "errors": r["err"], "seconds": r["sec"], "params": params[name],
                     "converged": f"{sum(r['conv'])}/{len(r['conv'])}" if r["conv"] else ""})
        if binary:
            recs[-1].update(pix_mean=100 * np.mean(r["pix"]), pix_std=100 * np.std(r["pix"], ddof=1) if len(e) > 1 else 0.0,
                            pixel_errors=r["pix"])
    cols = [("method", "method", "{}"), ("err_mean", "rel. L2 % (mean)", "{:.2f}"), ("err_std", "± std", "{:.2f}"),
            ("err_ratio", "error / map", "{:.3f}"), ("sec", "s / sample", "{:.3g}"),
            ("speedup", "speed-up vs map", "{:.1f}×"), ("solves", "simulator solves / sample", "{:.0f}"),
            ("params", "parameters", "{:,}"), ("converged", "converged (gtol)", "{}")]
    if binary:
        cols[3:3] = [("pix_mean", "pixel error % (mean)", "{:.2f}"), ("pix_std", "± std", "{:.2f}")]
    md = (f"# Surrogates against the simulator: {a.task} inverse at {a.res}², {a.n} test samples\n\n"
          f"Forward surrogate `{a.model}` (stage 1: {a.sur_iter} L-BFGS iterations through it), refined by the "
          f"given number of simulator L-BFGS iterations; amortised operators {a.amortized}. Samples: the "
          "harness's (3.05 % random points, 1 % noise, seed 0), indices after the shipped models' 1000 "
          "training samples. Simulator solves count forward solves (each gradient adds one adjoint).\n\n"
          + md_table(recs, cols) + "\n\nCommand: `python benchmarks/bench_surrogate_pays.py "
          + " ".join(argv if argv is not None else __import__("sys").argv[1:]) + "`\n")
    write_results(a.name or f"surrogate_pays-{a.task}", recs, md, meta=vars(a))
    print(md)


class _Counting(torch.nn.Module):
    """The simulator, counting its forward solves (a gradient adds its adjoint solve)."""

    def __init__(self, problem):
        super().__init__()
        self.problem, self.calls = problem, 0

    def __getattr__(self, name):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.problem, name)

    def forward(self, m, *args, **kw):
        self.calls += 1
        return self.problem(m, *args, **kw)

    def solve(self, m, *args, **kw):
        self.calls += 1
        return self.problem.solve(m, *args, **kw)


if __name__ == "__main__":
    main()
