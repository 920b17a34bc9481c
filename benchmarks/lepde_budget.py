"""LE-PDE's NS rollout error against its training budget: where the error sits (autoencoder floor, one latent
step, full rollout) after a given number of optimiser steps, and the linear (PCA) floor of the same frames.

    OMP_NUM_THREADS=1 python benchmarks/lepde_budget.py --epochs 20 --tag base20     # the old recipe: 280 steps
    OMP_NUM_THREADS=1 python benchmarks/lepde_budget.py --epochs 100 --tag base100   # 5x the steps

Data: ``ns_long`` at 32² (96 trajectories of the task's law, seed 0: 56 train + 4 validation, test = 64..95),
generated once and cached in ``$PDEINV_CACHE`` (default ``~/.cache/pdeinv``).  Each call appends one record to
``benchmarks/results/lepde_budget.jsonl`` and rewrites ``lepde_budget.md`` from all of them.
"""
import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks._common import RESULTS, md_table, write_results  # noqa: E402
from benchmarks.bench_lepde import lepde_diagnosis, rel  # noqa: E402
from pdeinv.nn.training import train  # noqa: E402
from pdeinv.surrogates import LEPDE  # noqa: E402
from pdeinv.surrogates.lepde import TrajectoryWindows, lepde_loss  # noqa: E402
from pdeinv.tasks import TASKS  # noqa: E402


def trajectories(n, seed, res=32):
    """``ns_long`` trajectories (frame 0 = w0), cached as a .pt file."""
    cache = Path(os.environ.get("PDEINV_CACHE") or Path.home() / ".cache" / "pdeinv") / "lepde_budget"
    path = cache / f"ns_long-{res}-{n}-{seed}.pt"
    if path.exists():
        return torch.load(path)
    task = TASKS["ns_long"]
    grid, problem = task.make(res)
    m = task.sample_m(grid, n, seed=seed)
    with torch.no_grad():
        traj = torch.cat([m[:, None], problem(m)], 1).float()
    cache.mkdir(parents=True, exist_ok=True)
    torch.save(traj, path)
    return traj


def pca_floor(tr, te, ks=(16, 64, 128)):
    """Rel. L2 of the best linear reconstruction of test frames from the top-k principal directions of the
    training frames (the error a k-dimensional *linear* latent cannot beat on average)."""
    a, b = tr.flatten(0, 1).flatten(1).double(), te.flatten(0, 1).flatten(1).double()
    mu = a.mean(0)
    V = torch.linalg.svd(a - mu, full_matrices=False)[2]
    return {k: float((((b - mu) @ V[:k].T @ V[:k] + mu - b).norm(dim=1) / b.norm(dim=1)).mean()) for k in ks}


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--n-train", type=int, default=60)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--in-frames", type=int, default=10)
    ap.add_argument("--horizon", type=int, default=4)
    ap.add_argument("--latent", type=int, default=128)
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--n-down", type=int, default=3)
    ap.add_argument("--wcons", type=float, default=0.1)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--bs", type=int, default=32)
    ap.add_argument("--tag", default="x")
    ap.add_argument("--norm", default="none")
    ap.add_argument("--act", default="gelu")
    ap.add_argument("--sw", default=None)
    ap.add_argument("--report", action="store_true", help="only rewrite the .md/.json from the .jsonl")
    a = ap.parse_args(argv)
    if a.report:
        return report()
    torch.set_num_threads(1)
    traj = trajectories(96, 0)
    if a.n_train > 64:
        raise SystemExit("--n-train <= 64 (test = trajectories 64..95)")
    tr, va, te = traj[:a.n_train - 4], traj[a.n_train - 4:a.n_train], traj[64:96]
    T = traj.shape[1]
    model = LEPDE([32, 32], in_frames=a.in_frames, latent_dim=a.latent, width=a.width, n_down=a.n_down, norm=a.norm, activation=a.act)
    sw = None if a.sw is None else [float(v) for v in a.sw.split(",")]
    model.fit_normalizers(tr)
    ds = TrajectoryWindows(tr, a.in_frames, a.horizon)
    t0 = time.perf_counter()
    h = train(model, ds, TrajectoryWindows(va, a.in_frames, a.horizon),
              loss_fn=lambda mod, b: lepde_loss(mod, b, w_consistency=a.wcons, step_weights=sw), epochs=a.epochs, batch_size=a.bs,
              lr=a.lr, seed=0, verbose=False)
    ttrain = time.perf_counter() - t0
    steps = a.epochs * -(-len(ds) // a.bs)
    model.eval()
    Tin = 10          # frames 10..20 are rolled out, as in bench_lepde.py
    if a.in_frames != Tin:
        raise SystemExit("this study keeps bench_lepde.py's 10 frames in")
    with torch.no_grad():
        pred = model(te[:, Tin - a.in_frames:Tin], T - Tin)
        roll = rel(pred.flatten(0, 1), te[:, Tin:].flatten(0, 1)).reshape(te.shape[0], -1)
    rec, one = lepde_diagnosis(model, te, a.in_frames)
    out = {"tag": a.tag, "steps": steps, "train_s": ttrain, "n_train": tr.shape[0], "params": model.n_parameters(),
           "best_val": h["best_loss"], "rollout": float(roll.mean()), "rollout_by_step": [round(float(v), 4) for v in roll.mean(0)],
           "recon": float(rec.mean()), "one_step": float(one.mean()), "args": vars(a)}

    out["pca_floor"] = {str(k): v for k, v in pca_floor(tr[:, Tin:], te[:, Tin:]).items()}
    with open(RESULTS / "lepde_budget.jsonl", "a") as f:
        f.write(json.dumps(out) + "\n")
    report()


def report():
    """Rewrite ``lepde_budget.md/.json`` from every record of ``lepde_budget.jsonl``."""
    path = RESULTS / "lepde_budget.jsonl"
    recs = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    for r in recs:
        r["pca16"] = r.get("pca_floor", {}).get("16")
    cols = [("tag", "run", None), ("steps", "optimiser steps", "{}"), ("n_train", "train trajectories", "{}"),
            ("rollout", "rollout rel. L2", "{:.2%}"), ("recon", "autoencoder floor", "{:.2%}"),
            ("one_step", "one latent step", "{:.2%}"), ("pca16", "PCA floor, 16 modes", "{:.2%}"),
            ("train_s", "train s", "{:.0f}")]
    md = ("# LE-PDE on ns_long 32²: rollout error against the training budget\n\n"
          "Same network (latent 128, width 16, 3 down-samplings, 1.07 M parameters), same data (56 + 4 trajectories; "
          "test: 32 others), 10 frames in, frames 10..20 rolled out; batch 32, Adam 1e-3 cosine; multi-step horizon "
          "4, latent-consistency weight 0.1.  *autoencoder floor*: decode(encode(true window)) — no evolution; "
          "*one latent step*: from the true previous window.  *PCA floor*: best linear reconstruction from the 16 "
          "leading principal directions of the training frames (64 modes: see the JSON).\n\n"
          + md_table(recs, cols) + "\n\nCommand: `OMP_NUM_THREADS=1 python benchmarks/lepde_budget.py --epochs E --tag T`\n")
    write_results("lepde_budget", recs, md, meta={"res": 32})
    print(md)


if __name__ == "__main__":
    main()
