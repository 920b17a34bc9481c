"""NIO vs DeepONet / stacked FNO / encoder-decoder vs MAP on EIT (Calderón), side by side in one run.

    python benchmarks/bench_nio.py [--task eit|eit_inclusions] [--res 32] [--quick] [--n-train N] [--epochs E]

Data: an EIT task of ``pdeinv.tasks`` -- ``eit`` (smooth trigonometric
conductivity, nearly the training mean) or ``eit_inclusions`` (background 1 with
1-3 discs of conductivity 2-5 or 0.2-0.5) -- drawn with the task's law and
simulated by the package's EIT solver: 16 perimeter-Fourier Dirichlet patterns,
DtN flux at the 4(n-1) boundary nodes of an n x n grid.  Results go to
``benchmarks/results/nio-<task>-<res>.{md,json}``.
Every network is trained with pdeinv's training harness on the same pairs
(NIO with randomised batching over the number of measurements).  Metrics as in
the NIO paper: median relative L1 (and relative L2) error of the conductivity
over the test set, with 0/1/5/10 % multiplicative noise y(1 + eps*eta),
eta ~ N(0, 1), on the fluxes, and with fewer measurements than trained on (NIO
only: the baselines take a fixed number).  MAP (L-BFGS with the adjoint of the
EIT solver, H1 prior, sigma = exp(z)) runs on the first test samples for the
speed/accuracy comparison.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torch.utils.data import TensorDataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import md_table, write_results  # noqa: E402
from pdeinv.physics import ForwardModel, GaussianNoise, Grid2D  # noqa: E402
from pdeinv.physics.eit import EIT, DtNObservation  # noqa: E402
from pdeinv.solvers import MAP, Amortized  # noqa: E402
from pdeinv.tasks import TASKS  # noqa: E402
from pdeinv.surrogates.nio import NIO, EncoderDecoder, StackedDeepONet, StackedFNO, eit_measurements, nio_loss  # noqa: E402
from pdeinv.nn.training import relative_l2_loss, train  # noqa: E402

PUBLISHED = ("NIO paper (Molinaro et al., ICML 2023), Table 1: on the Calderon problem with trigonometric "
             "coefficients NIO has the lowest median relative L1 error of NIO / DeepONet / FNO / fully convolutional "
             "baselines (errors of a few per cent, GPU-trained on thousands of samples at 70x70); Table 6: robust "
             "to 1-10 % noise; NIO also works with fewer measurements than trained on and is orders of magnitude "
             "faster than PDE-constrained optimisation.  (Exact table values not reproduced here: we could not "
             "check them offline.)")


def rel(pred, true, p):
    d = (pred - true).flatten(1)
    return (d.norm(p=p, dim=1) / true.flatten(1).norm(p=p, dim=1))


def noisy(dtn, eps, seed):
    if eps == 0:
        return dtn
    g = torch.Generator().manual_seed(seed)
    return dtn * (1 + eps * torch.randn(dtn.shape, generator=g, dtype=dtn.dtype))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes (a smoke run)")
    ap.add_argument("--task", choices=("eit", "eit_inclusions"), default="eit",
                    help="conductivity law: smooth trigonometric (eit) or piecewise-constant discs (eit_inclusions)")
    ap.add_argument("--res", type=int, default=32)
    ap.add_argument("--hidden", type=int, default=16, help="FNO width (NIO and stacked FNO)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--nio-lr", type=float, default=3e-3,
                    help="NIO's own learning rate (3e-3 collapsed NIO to a constant output before its lift was "
                         "initialised variance-preservingly; now 3e-3 trains fastest)")
    ap.add_argument("--lift-channels", type=int, default=8, help="NIO: fields per measurement in the lift")
    ap.add_argument("--patterns", type=int, default=16)
    ap.add_argument("--n-train", type=int, default=None)
    ap.add_argument("--n-test", type=int, default=None)
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--map-samples", type=int, default=None)
    ap.add_argument("--map-iter", type=int, default=60)
    ap.add_argument("--map-weight", type=float, default=1e3, help="MAP prior weight (the task's prior: H1 or TV)")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args(argv)
    t_start = time.perf_counter()
    if args.threads:
        torch.set_num_threads(args.threads)
    n_train = args.n_train or (96 if args.quick else 288)
    n_test = args.n_test or (32 if args.quick else 100)
    epochs = args.epochs or (8 if args.quick else 20)
    n_map = args.map_samples if args.map_samples is not None else (2 if args.quick else 6)
    name = f"nio-{args.task}-{args.res}" + ("-quick" if args.quick else "")
    task = TASKS[args.task]

    grid = Grid2D(args.res)
    problem = EIT(grid, n_patterns=args.patterns)
    L, nb = problem.n_patterns, problem.n_boundary
    t0 = time.perf_counter()
    s_train = task.sample_m(grid, n_train, seed=1)
    s_test = task.sample_m(grid, n_test, seed=2)
    with torch.no_grad():
        d_train, d_test = problem(s_train), problem(s_test)
    t_data = time.perf_counter() - t0
    x_train = eit_measurements(problem, d_train, difference=True).float()
    ytr = s_train.float()
    n_val = max(4, n_train // 10)
    tr = TensorDataset(x_train[:-n_val], ytr[:-n_val])
    va = TensorDataset(x_train[-n_val:], ytr[-n_val:])
    modes = (min(8, args.res // 2),) * 2
    models = {
        "NIO": NIO(nb, out_size=args.res, n_measurements=L, difference=True, n_modes=modes, hidden_channels=args.hidden,
                   n_layers=4, lift_channels=args.lift_channels),
        "DeepONet (stacked)": StackedDeepONet(nb, out_size=args.res, n_measurements=L, difference=True),
        "FNO (stacked)": StackedFNO(nb, out_size=args.res, n_measurements=L, difference=True, n_modes=modes,
                                    hidden_channels=args.hidden),
        "Encoder-decoder": EncoderDecoder(nb, out_size=args.res, n_measurements=L, difference=True),
    }
    records = []
    fnet = ForwardModel(problem, DtNObservation(nb))
    for label, model in models.items():
        print(f"training {label} ({model.n_parameters()} parameters) ...", flush=True)
        model.fit_normalizers(x_train[:-n_val], ytr[:-n_val])
        t1 = time.perf_counter()
        hist = train(model, tr, va, loss_fn=nio_loss if isinstance(model, NIO) else relative_l2_loss,
                     val_loss_fn=relative_l2_loss, epochs=epochs, batch_size=args.batch_size,
                     lr=args.nio_lr if isinstance(model, NIO) else args.lr,
                     weight_decay=0.0 if isinstance(model, NIO) else 1e-4,   # Adam's L2 term collapsed NIO
                     scheduler="cosine", seed=0, verbose=False)
        t_train = time.perf_counter() - t1
        solver = Amortized(model)
        for eps in (0.0, 0.01, 0.05, 0.1):
            y = noisy(d_test, eps, seed=10)
            t2 = time.perf_counter()
            res = solver(y, fnet)
            t_inf = time.perf_counter() - t2
            records.append({"method": label, "noise": eps, "measurements": L, "rel_l1_median": float(rel(res.m, s_test, 1).median()),
                            "rel_l2_median": float(rel(res.m, s_test, 2).median()),
                            "rel_l2_mean": float(rel(res.m, s_test, 2).mean()),
                            "time_per_sample_s": t_inf / n_test, "params": model.n_parameters(),
                            "train_s": t_train, "epochs": epochs, "n_train": len(tr),
                            "best_val_rel_l2": hist["best_loss"]})
        if isinstance(model, NIO):
            for k in (8, 4, 2, 1):
                if k >= L:
                    continue
                pk = EIT(grid, patterns=problem.patterns[:k])
                res = solver(d_test[:, :k], ForwardModel(pk, DtNObservation(nb)))
                records.append({"method": label, "noise": 0.0, "measurements": k,
                                "rel_l1_median": float(rel(res.m, s_test, 1).median()),
                                "rel_l2_median": float(rel(res.m, s_test, 2).median()),
                                "rel_l2_mean": float(rel(res.m, s_test, 2).mean()),
                                "params": model.n_parameters(), "epochs": epochs, "n_train": len(tr)})
    # trivial reference: the training-set mean conductivity
    mean_pred = ytr[:-n_val].double().mean(0, keepdim=True).expand_as(s_test)
    records.append({"method": "training mean (reference)", "noise": 0.0, "measurements": 0,
                    "rel_l1_median": float(rel(mean_pred, s_test, 1).median()),
                    "rel_l2_median": float(rel(mean_pred, s_test, 2).median()),
                    "rel_l2_mean": float(rel(mean_pred, s_test, 2).mean())})
    # the background conductivity 1 everywhere (both laws are 1 on the boundary; most of an inclusion field is 1)
    ones = torch.ones_like(s_test)
    records.append({"method": "background sigma = 1 (reference)", "noise": 0.0, "measurements": 0,
                    "rel_l1_median": float(rel(ones, s_test, 1).median()),
                    "rel_l2_median": float(rel(ones, s_test, 2).median()),
                    "rel_l2_mean": float(rel(ones, s_test, 2).mean())})
    # MAP on the first test samples, 1 % noise (and the same samples for NIO)
    if n_map > 0:
        eps = 0.01
        y = noisy(d_test[:n_map], eps, seed=10)
        fwd = ForwardModel(problem, DtNObservation(nb), noise=GaussianNoise(relative=eps))
        t3 = time.perf_counter()
        prior = task.map_options.get("prior", "h1")
        res = MAP(prior=prior, weight=args.map_weight, positive=True, max_iter=args.map_iter)(y, fwd)
        t_map = time.perf_counter() - t3
        records.append({"method": f"MAP ({prior.upper()}, w={args.map_weight:g}, L-BFGS {args.map_iter} it.)",
                        "noise": eps, "measurements": L,
                        "rel_l1_median": float(rel(res.m, s_test[:n_map], 1).median()),
                        "rel_l2_median": float(rel(res.m, s_test[:n_map], 2).median()),
                        "rel_l2_mean": float(rel(res.m, s_test[:n_map], 2).mean()),
                        "time_per_sample_s": t_map / n_map, "n_samples": n_map})
        res_nio = Amortized(models["NIO"])(y, fnet)
        records.append({"method": "NIO on the MAP samples", "noise": eps, "measurements": L,
                        "rel_l1_median": float(rel(res_nio.m, s_test[:n_map], 1).median()),
                        "rel_l2_median": float(rel(res_nio.m, s_test[:n_map], 2).median()),
                        "rel_l2_mean": float(rel(res_nio.m, s_test[:n_map], 2).mean()),
                        "time_per_sample_s": res_nio.info["time_per_sample"], "n_samples": n_map})
    wall = time.perf_counter() - t_start
    cols = [("method", "method", None), ("noise", "noise", "{:.0%}"), ("measurements", "L", None),
            ("rel_l1_median", "median rel. L1", "{:.2%}"), ("rel_l2_median", "median rel. L2", "{:.2%}"),
            ("time_per_sample_s", "s / sample", "{:.2e}"), ("params", "parameters", "{:,}"),
            ("train_s", "train s", "{:.0f}")]
    md = (f"# NIO on EIT (Calderón), task `{args.task}` — CPU scale\n\n"
          f"Law: {task.attrs['law']}.  "
          f"Grid {args.res}x{args.res}, {L} Dirichlet patterns (perimeter Fourier modes), {nb} boundary nodes; "
          f"training set {len(tr)} (+{n_val} validation), test set {n_test}, {epochs} epochs, batch {args.batch_size}, "
          f"Adam {args.lr:g}, weight decay 1e-4 (NIO: {args.nio_lr:g}, no weight decay, {args.lift_channels} lift "
          f"channels), cosine, FNO width {args.hidden}, {modes[0]} modes; "
          f"data generation {t_data:.0f} s, whole run {wall / 60:.1f} min ({torch.get_num_threads()} thread(s)).  Noise is multiplicative on the fluxes; the networks take difference data (flux minus the flux of "
          f"sigma = 1, computed once), MAP the raw fluxes.  "
          f"Rows with L < {L} are the same NIO given only the first (lowest-frequency) L patterns (trained with randomised batching "
          f"over 1..{L}); the baselines accept exactly {L}.  MAP: {n_map} test samples, 1 % noise.\n\n"
          + md_table(records, cols) + f"\n\nPublished claim: {PUBLISHED}\n")
    write_results(name, records, md, meta={"task": args.task, "res": args.res, "argv": sys.argv[1:], "patterns": L, "n_train": len(tr), "n_test": n_test,
                                            "epochs": epochs, "data_seconds": t_data,
                                            "wall_seconds": wall})
    print(md)


if __name__ == "__main__":
    main()
