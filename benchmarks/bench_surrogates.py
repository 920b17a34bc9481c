"""Neural-operator surrogates side by side: accuracy, speed against the simulator, sparse baselines.

Three sections, one run, one machine (written to ``benchmarks/results/surrogates.{json,md}``
after each section, so an interrupted run keeps what it finished):

1. **operators** — test relative L2 of FNO (neuraloperator) and DeepONet (deepxde)
   on the darcy forward operator ``a -> u`` and the ns operator ``w0 -> w(T=1)``.
2. **speed** — surrogate vs simulator on darcy: seconds per sample of the forward
   solve (single sample and batched) and of a full MAP inversion (3.05 % points,
   1 % noise, TV prior + sigmoid bounds, the demo's settings), with the accuracy
   cost: MAP through the FNO alone, and FNO-MAP followed by a few L-BFGS steps on
   the simulator (``SurrogateMAP(refine_iter=...)``).
3. **sparse** — the BENCHMARKS.md baseline rows: FNO and DeepONet *trained for
   the sparse setting* (input = values at 3.05 % random nodes, fresh set per
   sample, + the mask), forward (observe m, predict u) and inverse (observe u,
   predict m), on darcy, poisson, helmholtz and ns; published numbers beside.

Test sets are the recipes' test splits (samples ``1000 .. 1099`` of seed 0, as
``datasets/<task>.toml``), training sets their first ``n`` training samples.

    python benchmarks/bench_surrogates.py            # the committed CPU run (sizes in the .md)
    python benchmarks/bench_surrogates.py --quick    # smoke run, 32^2, tiny sizes
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.utils.data import TensorDataset

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import md_table, write_results  # noqa: E402

import pdeinv as pi  # noqa: E402
from pdeinv.data.generate import generate  # noqa: E402
from pdeinv.metrics import error_rate, relative_l2  # noqa: E402
from pdeinv.surrogates import SparseOperator  # noqa: E402
from pdeinv.surrogates.sparse import SparseDataset  # noqa: E402
from pdeinv.surrogates.training import build_operator, operator_pairs, train  # noqa: E402
from pdeinv.tasks import TASKS  # noqa: E402

PUBLISHED = {  # BENCHMARKS.md, relative L2 %, forward / inverse, 3 % points, trained on full fields, 128^2
    ("darcy", "fno"): (28.2, 49.3), ("darcy", "deeponet"): (38.3, 41.1),
    ("poisson", "fno"): (100.9, 232.7), ("poisson", "deeponet"): (155.5, 105.8),
    ("helmholtz", "fno"): (98.2, 218.2), ("helmholtz", "deeponet"): (123.1, 132.8),
    ("ns", "fno"): (101.4, 96.0), ("ns", "deeponet"): (103.2, 97.2),
}
TEST_START = 1000            # the recipes' test split starts at n_train = 1000
FRACTION = 0.0305            # 500 of 128^2; 125 of 64^2


def mean_std(v):
    v = [float(x) for x in v]
    return statistics.fmean(v), (statistics.stdev(v) if len(v) > 1 else 0.0)


_DATA = {}


def data(task: str, res: int, n_train: int, n_test: int):
    """(m_train, u_train, m_test, u_test) float32 from the task's simulator, u at T for time series."""
    key = (task, res)
    have = _DATA.get(key)
    if have is None or have[0].shape[0] < n_train or have[2].shape[0] < n_test:
        t0 = time.perf_counter()
        tr = operator_pairs(generate(task, n_train, res=res, seed=0, verbose=False), "forward")
        te = operator_pairs(generate(task, n_test, res=res, seed=0, start=TEST_START, verbose=False), "forward")
        _DATA[key] = (*tr, *te)
        print(f"  data {task} {res}^2: {n_train} train + {n_test} test in {time.perf_counter() - t0:.0f} s", flush=True)
    m, u, mt, ut = _DATA[key]
    return m[:n_train], u[:n_train], mt[:n_test], ut[:n_test]


def fit(model, x, y, epochs, batch_size, lr):
    model.fit_normalizers(x if not isinstance(x, SparseDataset) else x.inputs, y)
    ds = x if isinstance(x, SparseDataset) else TensorDataset(x, y)
    t0 = time.perf_counter()
    hist = train(model, ds, epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=1e-4, seed=0, verbose=False)
    return time.perf_counter() - t0, hist


@torch.no_grad()
def predict(model, x, bs=50):
    return torch.cat([model(x[i:i + bs]) for i in range(0, x.shape[0], bs)])


# ----------------------------------------------------------------------------- section 1
def section_operators(a, records, lines, models):
    rows = []
    for task in a.operator_tasks:
        for kind in ("fno", "deeponet"):
            n_train = a.n_fno if kind == "fno" else a.n_deeponet
            epochs = a.epochs_fno if kind == "fno" else a.epochs_deeponet
            m, u, mt, ut = data(task, a.res, max(a.n_fno, a.n_deeponet), a.n_test)
            model = build_operator(kind, 1, 1, m.shape[2:], **(a.fno_cfg if kind == "fno" else a.deeponet_cfg))
            secs, hist = fit(model, m[:n_train], u[:n_train], epochs, a.batch_size, a.lr_fno if kind == "fno" else a.lr_deeponet)
            err = relative_l2(predict(model, mt), ut)
            mu, sd = mean_std(100 * err)
            rec = {"section": "operators", "task": task, "method": kind, "res": a.res, "n_train": n_train,
                   "n_test": int(ut.shape[0]), "epochs": epochs, "parameters": model.n_parameters(),
                   "train_seconds": secs, "rel_l2_mean_pct": mu, "rel_l2_std_pct": sd,
                   "final_train_loss": hist["train_loss"][-1]}
            records.append(rec); rows.append(rec)
            models[(task, kind)] = model
            print(f"  {task} {kind}: {mu:.2f} ± {sd:.2f} % ({secs:.0f} s training)", flush=True)
    lines.append("## 1. Forward operators (full input field)\n")
    lines.append(f"Test relative L2 error (%) on {a.n_test} test samples of the recipe test split, {a.res}², "
                 "trained with Adam + cosine schedule, relative-L2 loss, seed 0.\n")
    lines.append(md_table(rows, [("task", "task", None), ("method", "method", None), ("n_train", "train samples", "{}"),
                                 ("epochs", "epochs", "{}"), ("parameters", "parameters", "{:,}"),
                                 ("train_seconds", "training (s)", "{:.0f}"),
                                 ("rel_l2_mean_pct", "rel. L2 (%)", "{:.2f}"), ("rel_l2_std_pct", "± std", "{:.2f}")]))
    lines.append("")


# ----------------------------------------------------------------------------- section 2
def _per_sample_seconds(fn, x, repeats=1):
    with torch.no_grad():
        fn(x[:1])                                 # warm-up
        t0 = time.perf_counter()
        for _ in range(repeats):
            fn(x)
        return (time.perf_counter() - t0) / (repeats * x.shape[0])


def section_speed(a, records, lines, models):
    from pdeinv.cli.demo import DARCY_MAP
    from pdeinv.solvers import MAP, SurrogateMAP
    task = TASKS["darcy"]
    grid, problem = task.make(a.res)
    model = models.get(("darcy", "fno"))
    if model is None:
        lines.append("## 2. Speed\n\n(skipped: no darcy FNO trained in this run)\n")
        return
    _, _, mt, ut = data("darcy", a.res, 1, a.n_test)
    a64 = mt.double()
    nb = min(a.batch_timing, a64.shape[0])
    sim_single = statistics.fmean(_per_sample_seconds(problem, a64[i:i + 1]) for i in range(3))
    sim_batch = _per_sample_seconds(problem, a64[:nb])
    sur_single = statistics.fmean(_per_sample_seconds(model, a64[i:i + 1], repeats=3) for i in range(3))
    sur_batch = _per_sample_seconds(model, a64[:nb], repeats=2)
    err = relative_l2(predict(model, a64), ut.double())
    rows = [{"what": "forward solve, single sample", "simulator_s": sim_single, "surrogate_s": sur_single,
             "speedup": sim_single / sur_single},
            {"what": f"forward solve, batch of {nb}", "simulator_s": sim_batch, "surrogate_s": sur_batch,
             "speedup": sim_batch / sur_batch}]
    # MAP inversions
    settings = {**DARCY_MAP, "max_iter": a.map_iter}
    stats = {"simulator": [], "surrogate": [], "refined": []}
    for i in range(a.n_map):
        obs = pi.PointObservation.random(grid, fraction=FRACTION, seed=10_000 + i)
        fwd = pi.ForwardModel(problem, obs, pi.GaussianNoise(relative=0.01))
        truth = a64[i:i + 1]
        y = fwd(truth, seed=20_000 + i)
        t0 = time.perf_counter(); r_sim = MAP(**settings)(y, fwd); t_sim = time.perf_counter() - t0
        t0 = time.perf_counter()
        r_sur = SurrogateMAP(model, **{k: v for k, v in settings.items() if k != "max_iter"},
                             max_iter=a.map_iter, refine_iter=0)(y, fwd)
        t_sur = time.perf_counter() - t0
        t0 = time.perf_counter()
        r_ref = SurrogateMAP(model, **{k: v for k, v in settings.items() if k != "max_iter"},
                             max_iter=a.map_iter, refine_iter=a.refine_iter)(y, fwd)
        t_ref = time.perf_counter() - t0
        for name, r, t in (("simulator", r_sim, t_sim), ("surrogate", r_sur, t_sur), ("refined", r_ref, t_ref)):
            stats[name].append((t, float(error_rate(r.m, truth)), float(relative_l2(r.m, truth)),
                                float(fwd.misfit(r.m, y))))
        print(f"  MAP sample {i}: simulator {t_sim:.1f} s, surrogate {t_sur:.1f} s, refined {t_ref:.1f} s", flush=True)
    map_rows = []
    label = {"simulator": f"MAP on the simulator ({a.map_iter} L-BFGS it.)",
             "surrogate": f"MAP through the FNO ({a.map_iter} it.)",
             "refined": f"FNO-MAP ({a.map_iter} it.) + {a.refine_iter} it. on the simulator"}
    for name, v in stats.items():
        t, er, l2, mis = zip(*v)
        map_rows.append({"method": label[name], "seconds": statistics.fmean(t),
                         "error_rate_pct": 100 * statistics.fmean(er), "rel_l2_pct": 100 * statistics.fmean(l2),
                         "misfit": statistics.fmean(mis)})
    records.append({"section": "speed", "task": "darcy", "res": a.res, "forward": rows, "map": map_rows,
                    "n_map": a.n_map, "fno_rel_l2_mean_pct": float(100 * err.mean()),
                    "map_settings": {k: str(v) for k, v in settings.items()}})
    lines.append("## 2. Surrogate versus simulator (darcy)\n")
    lines.append(f"Simulator: 5-point FD + sparse direct solve (float64). Surrogate: the darcy FNO of section 1 "
                 f"(float32), whose forward prediction costs {100 * float(err.mean()):.2f} % relative L2 on the "
                 "test set. Seconds per sample:\n")
    lines.append(md_table(rows, [("what", "", None), ("simulator_s", "simulator (s)", "{:.4f}"),
                                 ("surrogate_s", "FNO (s)", "{:.4f}"), ("speedup", "speed-up", "{:.1f}×")]))
    lines.append(f"\nMAP inversion, mean over {a.n_map} test samples: {a.res}², 3.05 % points (fresh set per "
                 f"sample), 1 % noise, TV prior weight {settings['weight']}, sigmoid bounds {settings['bounds']}; "
                 "misfit = ½‖(A(m) − y)/s‖² evaluated with the simulator (≈ number of points at the noise level):\n")
    lines.append(md_table(map_rows, [("method", "method", None), ("seconds", "s / sample", "{:.1f}"),
                                     ("error_rate_pct", "pixel error rate (%)", "{:.1f}"),
                                     ("rel_l2_pct", "rel. L2 (%)", "{:.1f}"), ("misfit", "simulator misfit", "{:.1f}")]))
    lines.append("")


# ----------------------------------------------------------------------------- section 3
def section_sparse(a, records, lines):
    rows = []
    for task in a.sparse_tasks:
        m, u, mt, ut = data(task, a.res, a.n_sparse, a.n_test)
        for mode in ("forward", "inverse"):
            x, y, xt, yt = (m, u, mt, ut) if mode == "forward" else (u, m, ut, mt)
            train_ds = SparseDataset(x, y, fraction=FRACTION, seed=1)
            test_ds = SparseDataset(xt, yt, fraction=FRACTION, seed=2)      # fresh points per test sample
            for kind in ("fno", "deeponet"):
                cfg = a.sparse_fno_cfg if kind == "fno" else a.deeponet_cfg
                model = SparseOperator(kind, 1, 1, list(x.shape[2:]), options=cfg)
                epochs = a.sparse_epochs_fno if kind == "fno" else a.sparse_epochs_deeponet
                secs, _ = fit(model, train_ds, y, epochs, a.batch_size, a.lr_fno if kind == "fno" else a.lr_deeponet)
                pred = predict(model, test_ds.inputs)
                mu, sd = mean_std(100 * relative_l2(pred, yt))
                rec = {"section": "sparse", "task": task, "mode": mode, "method": kind, "res": a.res,
                       "n_train": int(x.shape[0]), "n_test": int(xt.shape[0]), "epochs": epochs,
                       "train_seconds": secs, "rel_l2_mean_pct": mu, "rel_l2_std_pct": sd,
                       "published_pct": PUBLISHED[(task, kind)][0 if mode == "forward" else 1]}
                if task == "darcy" and mode == "inverse":
                    rec["error_rate_pct"] = 100 * float(error_rate(pred, yt).mean())
                records.append(rec); rows.append(rec)
                print(f"  sparse {task} {mode} {kind}: {mu:.1f} ± {sd:.1f} % ({secs:.0f} s)", flush=True)
    lines.append("## 3. Sparse-observation baselines (BENCHMARKS.md rows)\n")
    lines.append(f"Input: the observed field at {FRACTION * 100:.2f} % random nodes (a fresh set per sample, train "
                 "and test) scattered on the grid + the mask; trained for this setting. Noise-free. Relative L2 (%) "
                 f"on {a.n_test} test samples, mean ± std; 'published' = the FNO/DeepONet rows of BENCHMARKS.md "
                 "(128², trained on full fields, 50,000 pairs, fed sparse inputs).\n")
    lines.append(md_table(rows, [("task", "task", None), ("mode", "mode", None), ("method", "method", None),
                                 ("n_train", "train samples", "{}"), ("epochs", "epochs", "{}"),
                                 ("rel_l2_mean_pct", "rel. L2 (%)", "{:.1f}"), ("rel_l2_std_pct", "± std", "{:.1f}"),
                                 ("published_pct", "published (%)", "{:.1f}"), ("error_rate_pct", "pixel error (%)", "{:.1f}"),
                                 ("train_seconds", "training (s)", "{:.0f}")]))
    lines.append("")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="smoke run: 32^2, tiny sizes")
    p.add_argument("--sections", default="operators,speed,sparse")
    p.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a shared 2-core box)")
    p.add_argument("--keep", action="store_true",
                   help="keep the records and tables of the sections not run from the existing results file")
    p.add_argument("--n-sparse", type=int, default=None, help="override the sparse training-set size")
    p.add_argument("--sparse-epochs-fno", type=int, default=None)
    p.add_argument("--sparse-epochs-deeponet", type=int, default=None)
    a = p.parse_args(argv)
    overrides = {k: getattr(a, k) for k in ("n_sparse", "sparse_epochs_fno", "sparse_epochs_deeponet")
                 if getattr(a, k) is not None}
    torch.set_num_threads(a.threads)
    full = dict(res=64, n_test=100, n_fno=300, epochs_fno=10, n_deeponet=1000, epochs_deeponet=30,
                n_sparse=200, sparse_epochs_fno=5, sparse_epochs_deeponet=20, n_map=3, map_iter=100, refine_iter=20,
                batch_timing=32, batch_size=20, lr_fno=5e-3, lr_deeponet=1e-3,
                fno_cfg=dict(modes=12, width=20, layers=4), sparse_fno_cfg=dict(modes=12, width=16, layers=4),
                deeponet_cfg=dict(width=32, layers=3))
    quick = dict(full, res=32, n_test=20, n_fno=60, epochs_fno=3, n_deeponet=60, epochs_deeponet=5, n_sparse=40,
                 sparse_epochs_fno=2, sparse_epochs_deeponet=3, n_map=1, map_iter=20, refine_iter=5, batch_timing=8,
                 fno_cfg=dict(modes=8, width=8, layers=2), sparse_fno_cfg=dict(modes=8, width=8, layers=2),
                 deeponet_cfg=dict(width=8, layers=2))
    for k, v in {**(quick if a.quick else full), **overrides}.items():
        setattr(a, k, v)
    a.operator_tasks = [t for t in ("darcy", "ns") if t in TASKS]
    a.sparse_tasks = [t for t in ("darcy", "poisson", "helmholtz", "ns") if t in TASKS]
    name = "surrogates-quick" if a.quick else "surrogates"
    records, lines, models = [], [], {}
    meta = {k: v for k, v in vars(a).items() if k not in ("sections",)}
    kept_md = []
    if a.keep:
        import json
        import re
        from _common import RESULTS
        run = set(a.sections.split(","))
        headers = {"operators": "## 1.", "speed": "## 2.", "sparse": "## 3."}
        old = json.loads((RESULTS / f"{name}.json").read_text())
        records = [r for r in old["records"] if r.get("section") not in run]
        meta["kept_from"] = {"commit": old.get("commit"), "date": old["machine"]["date"],
                             "meta": {k: v for k, v in old.get("meta", {}).items() if k != "kept_from"}}
        text = (RESULTS / f"{name}.md").read_text()
        blocks = re.split(r"(?m)^(?=## \d\.)", text)
        for sec, h in headers.items():
            if sec not in run:
                kept_md += [b.split("\nTotal wall time")[0].rstrip() + "\n" for b in blocks if b.startswith(h)]
        if kept_md:
            kept_md[-1] += f"\n(Sections above kept from the run of {old['machine']['date']}.)\n"
        lines[:0] = kept_md
    t_start = time.perf_counter()
    head = (f"# Neural-operator surrogates ({'quick smoke run' if a.quick else 'CPU run'})\n\n"
            f"Reduced from the issue's 1,000 training samples where noted: this CPU run shares 2 cores with other "
            f"jobs ({a.threads} torch thread), where one FNO epoch over 1,000 samples at 64² costs minutes. Sizes, "
            "epochs and wall times are in each table. Published FNO results (~1 % on Darcy) train for 500 epochs "
            "on a GPU; these short runs are far from converged, so read the numbers as CPU-budget results.\n")
    for sec in a.sections.split(","):
        t0 = time.perf_counter()
        print(f"[{sec}]", flush=True)
        if sec == "operators":
            section_operators(a, records, lines, models)
        elif sec == "speed":
            section_speed(a, records, lines, models)
        elif sec == "sparse":
            section_sparse(a, records, lines)
        else:
            raise SystemExit(f"unknown section {sec!r}")
        meta[f"{sec}_seconds"] = time.perf_counter() - t0
        meta["total_seconds"] = time.perf_counter() - t_start
        write_results(name, records, head + "\n" + "\n".join(lines) +
                      f"\nTotal wall time so far: {meta['total_seconds'] / 60:.1f} min.\n", meta=meta)
    return 0


if __name__ == "__main__":
    sys.exit(main())
