"""DAPS warm-started at MAP against MAP and cold DAPS, on the same harness samples, in one run.

    OMP_NUM_THREADS=1 python benchmarks/bench_daps_warm.py --task darcy --n 4 --sigma-starts 0.5,2 --draws 8

Cold DAPS anneals from pure noise at ``sigma_max``.  Warm DAPS (``build("daps", ..., start="map",
sigma_start=s)``) noises the task's converged MAP answer to level ``s`` (normalised units) and anneals
from there: the learned prior corrects what the MAP prior gets wrong (on Darcy: a smooth TV/level-set
answer against a binary law) while the data keep the chains near the MAP basin.  Every row is scored on
the same harness test samples (``n_train=1000``: held out from the shipped priors' training fields):
rel. L2 and pixel error rate (threshold 7.5 on Darcy) of the posterior mean, the mean pixel error of
single draws, network evaluations per draw and seconds per sample (MAP's time included in the warm
rows).  Writes ``benchmarks/results/<name>.{json,md}``.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import md_table, write_results  # noqa: E402


class Cached:
    """An inverse 'solver' that returns a precomputed answer for each data vector (MAP computed once per
    sample, shared by every warm row; its time is added to the rows)."""

    def __init__(self, results):
        self.results = results

    def __call__(self, y, fwd, seed=None):
        return self.results[id(fwd)]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", default="darcy")
    ap.add_argument("--res", type=int, default=64)
    ap.add_argument("--n", type=int, default=4)
    ap.add_argument("--draws", type=int, default=8)
    ap.add_argument("--model", default=None, help="shipped prior (default: the task's daps default)")
    ap.add_argument("--sigma-starts", default="0.5,2", help="comma-separated warm-start noise levels")
    ap.add_argument("--no-cold", action="store_true", help="skip the cold DAPS row")
    ap.add_argument("--opts", default="{}", help="extra DAPS options (JSON)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--first", type=int, default=0, help="first harness test sample (to split a run over processes)")
    ap.add_argument("--map-iter", type=int, default=None, help="MAP's L-BFGS iteration cap (default: the task's)")
    ap.add_argument("--name", default=None)
    ap.add_argument("--merge", nargs="+", default=None, metavar="JSON",
                    help="only merge the per-sample records of earlier runs (results JSONs) into --name")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    if a.merge:
        return merge(a)

    from pdeinv import metrics
    from pdeinv.benchmark.config import BenchConfig
    from pdeinv.benchmark.samples import load_split, make_sample
    from pdeinv.nn import pretrained
    from pdeinv.physics import ForwardModel
    from pdeinv.solvers import build
    from pdeinv.tasks import get_task

    task = get_task(a.task)
    grid, problem = task.make(a.res)
    model = a.model or pretrained.default_for("daps", a.task, a.res)
    cfg = BenchConfig(task=a.task, res=a.res, n_train=1000, n_test=a.first + a.n, verbose=False)
    m_all, u_all = load_split(cfg, "test", a.first + a.n)
    samples = [make_sample(cfg, i, m_all[i:i + 1], u_all[i:i + 1]) for i in range(a.first, a.first + a.n)]
    fwds = [ForwardModel(problem, s.observation, s.noise) for s in samples]
    darcy = a.task == "darcy"
    extra = json.loads(a.opts)

    def chi2(m, s, f):             # ||(y - G(m)) / sigma||^2 / P: about 1 for an answer that fits to the noise
        with torch.no_grad():
            return float(2 * f.misfit(m.reshape(s.m.shape).to(s.y.dtype), s.y)) / s.y.numel()

    def score(m_mean, draws, s, f):
        out = {"index": s.index, "rel_l2": float(metrics.relative_l2(m_mean.reshape(s.m.shape), s.m)),
               "chi2": chi2(m_mean, s, f) if draws is None else float(np.mean([chi2(d, s, f) for d in draws]))}
        if darcy:
            out["pixel"] = float(metrics.error_rate(m_mean.reshape(s.m.shape), s.m))
            if draws is not None:
                out["pixel_draw"] = float(np.mean([float(metrics.error_rate(d.reshape(s.m.shape), s.m))
                                                   for d in draws]))
        return out

    per = {}
    t_map, maps = [], {}
    map_solver = build("map", task, a.res, **({"max_iter": a.map_iter} if a.map_iter else {}))
    map_label = f"MAP (task defaults, L-BFGS <= {map_solver.max_iter} its)"
    for s, f in zip(samples, fwds):
        t0 = time.perf_counter()
        r = map_solver(s.y, f, seed=s.method_seed)
        t_map.append(time.perf_counter() - t0)
        maps[id(f)] = r
        per.setdefault(map_label, []).append({**score(r.m, None, s, f), "s": t_map[-1],
                                              "converged": bool((r.info or {}).get("converged"))})
        print("map", per[map_label][-1], flush=True)

    rows_cfg = [] if a.no_cold else [("DAPS cold (from sigma_max)", {})]
    for ss in [float(v) for v in a.sigma_starts.split(",") if v.strip()]:
        rows_cfg.append((f"DAPS warm from MAP, sigma_start {ss:g}", {"start": Cached(maps), "sigma_start": ss}))
    evals = {}
    for label, opts in rows_cfg:
        solver = build("daps", task, a.res, model=model, n_samples=a.draws, **{**extra, **opts})
        for k, (s, f) in enumerate(zip(samples, fwds)):
            t0 = time.perf_counter()
            r = solver(s.y, f, seed=s.method_seed)
            dt = time.perf_counter() - t0 + (t_map[k] if "start" in opts else 0.0)
            evals[label] = r.info.get("network_evals_per_sample")
            per.setdefault(label, []).append({**score(r.m, r.samples[:, 0], s, f), "s": dt})
            print(label, per[label][-1], flush=True)

    meta = {"task": a.task, "res": a.res, "draws": a.draws, "model": model, "options": extra,
            "command": "OMP_NUM_THREADS=1 python benchmarks/bench_daps_warm.py " + " ".join(argv or sys.argv[1:]),
            "evals": evals}
    write_table(a.name or f"daps_warm-{a.task}", per, meta, a.threads)


def write_table(name, per, meta, threads):
    """The side-by-side table of the per-sample records ``per[label]`` (the first label is the reference)."""
    from pdeinv.benchmark.runner import git_commit, machine_info
    darcy = meta["task"] == "darcy"
    rows = []
    for label, recs in per.items():
        row = {"method": label, "n": len(recs), "rel_l2": float(np.mean([r["rel_l2"] for r in recs])),
               "chi2": float(np.mean([r["chi2"] for r in recs])),
               "s_per_sample": float(np.mean([r["s"] for r in recs])), "evals_per_draw": meta["evals"].get(label)}
        if darcy:
            row["pixel"] = float(np.mean([r["pixel"] for r in recs]))
            if "pixel_draw" in recs[0]:
                row["pixel_draw"] = float(np.mean([r["pixel_draw"] for r in recs]))
        if "converged" in recs[0]:
            row["converged"] = f"{sum(r['converged'] for r in recs)}/{len(recs)}"
        row["per_sample"] = recs
        rows.append(row)
    ref = {x["index"]: x for x in rows[0]["per_sample"]}
    for r in rows:              # ratios and differences against the reference on the row's own samples
        same = [ref[x["index"]] for x in r["per_sample"]]
        for key in ("rel_l2", "pixel") if darcy else ("rel_l2",):
            r[f"ratio_{key}"] = r[key] / float(np.mean([y[key] for y in same]))
            # per-sample differences against the reference: mean and its standard error
            d = np.array([x[key] - y[key] for x, y in zip(r["per_sample"], same)])
            r[f"{key}_diff"] = float(d.mean())
            r[f"{key}_diff_se"] = float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else float("nan")
    cols = [("method", "method", None), ("n", "samples", "{}"), ("rel_l2", "rel. L2 (mean)", "{:.2%}"),
            ("ratio_rel_l2", "ratio to MAP", "{:.3f}"), ("rel_l2_diff", "minus MAP's, per sample", "{:+.2%}"),
            ("rel_l2_diff_se", "± s.e.", "{:.2%}")]
    if darcy:
        cols += [("pixel", "pixel error, posterior mean", "{:.2%}"), ("ratio_pixel", "ratio to MAP", "{:.3f}"),
                 ("pixel_diff", "minus MAP's, per sample (mean)", "{:+.2%}"), ("pixel_diff_se", "± s.e.", "{:.2%}"),
                 ("pixel_draw", "pixel error, one draw", "{:.2%}")]
    cols += [("chi2", "data misfit chi2/P (MAP: its answer; DAPS: per draw)", "{:.2f}"),
             ("converged", "MAP at gtol", None),
             ("evals_per_draw", "network evals / draw", "{:.0f}"), ("s_per_sample", "s / sample", "{:.1f}")]
    mi = machine_info()
    idx = sorted(ref)
    md = (f"# DAPS, cold and warm-started at MAP, beside MAP: {meta['task']} inverse, {meta['res']}², harness test samples "
          f"{idx[0]}-{idx[-1]} (n_train=1000: held out from the prior's training fields)\n\n"
          f"`{meta['command']}`; prior `{meta['model']}`; {meta['draws']} draws per sample; DAPS options: task "
          f"defaults{' + ' + json.dumps(meta['options']) if meta['options'] else ''}.  Machine: {mi.get('cpu')}, "
          f"{threads} thread(s) per process; commit {git_commit()}.\n\n" + md_table(rows, cols) +
          "\n\nThe warm rows' time includes the MAP solve they start from.  sigma_start is in the prior's "
          "normalised units (the data have std sigma_data there).  chi2/P is about 1 for an answer that fits the "
          "data to the noise.\n")
    write_results(name, rows, md, meta=meta)
    print(md)


def merge(a):
    """Merge the per-sample records of several runs of this script (``--first`` splits) into one table."""
    per, meta = {}, None
    for path in a.merge:
        d = json.loads(Path(path).read_text())
        meta = meta or {**d["meta"], "command": " + ".join(json.loads(Path(p).read_text())["meta"]["command"]
                                                            for p in a.merge)}
        meta["evals"] = {**meta.get("evals", {}), **d["meta"].get("evals", {})}
        for row in d["records"]:
            per.setdefault(row["method"], []).extend(row["per_sample"])
    for recs in per.values():
        recs.sort(key=lambda r: r["index"])
    write_table(a.name, per, meta, a.threads)


if __name__ == "__main__":
    main()
