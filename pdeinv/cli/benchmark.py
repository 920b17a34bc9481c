"""``pdeinv benchmark --task T --mode M --methods A,B --suite quick``: methods side by side.

Builds one :class:`~pdeinv.benchmark.BenchConfig` per task and mode from the
arguments and runs :func:`~pdeinv.benchmark.run_benchmark` on each.
"""
from __future__ import annotations

import argparse
import logging
import time
from typing import List

import torch

from pdeinv.benchmark import METHODS, SUITES, BenchConfig, default_cache_dir, fmt_pm, run_benchmark
from pdeinv.benchmark.methods import split_methods

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--task", default=None,
                   help="task name(s), comma-separated (darcy, poisson, helmholtz, ns, burgers, ...; default: the "
                        "suite's tasks)")
    p.add_argument("--mode", default=None,
                   help="forward (observe m, recover u), inverse (observe u, recover m), or both comma-separated "
                        "(default: the suite's modes)")
    p.add_argument("--methods", default=None,
                   help="comma-separated methods (registered: " + ",".join(METHODS) + "; default: the suite's -- "
                        "quick: map,fno,deeponet,mean (the others by name); full: all). A diffusion method takes "
                        "solver options as a variant, NAME[KEY=VALUE;...] (the keys of `pdeinv invert --opt`), e.g. "
                        "'fundps[tempering=schedule;trust=null]', 'daps[langevin_steps=16]', "
                        "'fundps[model=diffusion-uno-poisson.pt]' (a denoiser from `pdeinv train diffusion`)")
    p.add_argument("--suite", default="quick", choices=sorted(SUITES),
                   help="size preset: quick (64², CPU), full (published scale, GPU), published (500 points on 128² "
                        "for bayes/map/laplace; files <task>-<mode>-128.json) or darcy-ref (the long pCN Darcy "
                        "reference mcmc-ref at 16² with the methods beside it; files darcy-<mode>-16.json)")
    p.add_argument("--tag", default=None,
                   help="suffix of the result files, <task>-<mode>-<tag>.json (default: the suite's; none for quick)")
    p.add_argument("--res", type=int, default=None, help="grid resolution (default: suite)")
    p.add_argument("--n-test", type=int, default=None,
                   help="number of test samples for every method (default: the suite's, with costly methods -- pinn, "
                        "mcmc, diffusion -- on fewer)")
    p.add_argument("--n-train", type=int, default=None, help="training-set size for learned methods (default: suite)")
    p.add_argument("--epochs", type=int, default=None, help="training epochs for learned methods (default: suite)")
    p.add_argument("--width", type=int, default=None, help="hidden width of FNO/DeepONet baselines (default: suite)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: torch's choice; 1 is fastest on a shared or busy machine)")
    p.add_argument("--map-iter", type=int, default=None,
                   help="iteration cap of L-BFGS MAP (TV + bounds, darcy), which stops at its gradient tolerance "
                        "first when it can (default: suite); Newton-CG MAP on the GRF tasks stops at gtol 1e-8")
    p.add_argument("--steps", type=int, default=None,
                   help="EDM sampler steps of DiffusionPDE; FunDPS takes a quarter (default: suite)")
    p.add_argument("--samples", type=int, default=None,
                   help="posterior draws per test sample of the samplers (diffusion, DAPS; default: suite)")
    p.add_argument("--denoiser-steps", type=int, default=None,
                   help="optimiser steps (batch 16) of each diffusion denoiser (default: suite)")
    p.add_argument("--obs", type=float, default=0.0305, help="fraction of grid nodes observed (default 0.0305)")
    p.add_argument("--noise", type=float, default=0.01, help="noise std relative to the RMS of the data (default 0.01)")
    p.add_argument("--workers", type=int, default=None, help="run per-sample methods on a local Dask cluster of N processes")
    p.add_argument("--scheduler", default=None, help="address of a running Dask scheduler (tcp://host:port)")
    p.add_argument("--cache-dir", default=None, help="dataset/checkpoint cache (default $PDEINV_CACHE or ~/.cache/pdeinv)")
    p.add_argument("--out", default="benchmarks/results", help="results folder (default benchmarks/results)")
    p.add_argument("--no-figures", action="store_true", help="do not draw figures")
    p.add_argument("--report-only", action="store_true",
                   help="compute nothing: write the tables from the samples already recorded (partial runs)")


def configs_from_args(args) -> List[BenchConfig]:
    suite = SUITES[args.suite]
    tasks = args.task.split(",") if args.task else list(suite["tasks"])
    modes = args.mode.split(",") if args.mode else list(suite["modes"])
    from pdeinv.tasks import TASKS
    if args.task is None:
        tasks = [t for t in tasks if t in TASKS]
    out = []
    for t in tasks:
        for mo in modes:
            out.append(BenchConfig(
                task=t.strip(), mode=mo.strip(), res=args.res or suite["res"], n_test=args.n_test or suite["n_test"],
                obs=args.obs, noise=args.noise, seed=args.seed, device=args.device, suite=args.suite,
                n_train=args.n_train or suite["n_train"], epochs=args.epochs or suite["epochs"],
                batch_size=suite["batch_size"], width=args.width or suite["width"], map_iter=args.map_iter or suite["map_iter"],
                steps=args.steps or suite["steps"], samples=getattr(args, "samples", None) or suite["samples"],
                denoiser_steps=args.denoiser_steps or suite["denoiser_steps"],
                cache_dir=str(args.cache_dir or default_cache_dir()), out_dir=args.out,
                figures=not args.no_figures, verbose=not args.quiet, workers=args.workers, scheduler=args.scheduler,
                cap_costly=args.n_test is None,
                tag=args.tag if args.tag is not None else suite.get("tag", "")))
    return out


def main(args) -> int:
    torch.manual_seed(args.seed)
    if args.threads:
        torch.set_num_threads(int(args.threads))
    suite_methods = SUITES[args.suite].get("methods")
    methods = (split_methods(args.methods) if args.methods
               else (list(suite_methods) if suite_methods else None))
    t0 = time.perf_counter()
    for cfg in configs_from_args(args):
        payload = run_benchmark(cfg, methods, report_only=args.report_only)
        for r in payload["records"]:
            extra = (f", pixel error {100 * r['error_rate_mean']:.2f} %" if r.get("error_rate_mean") is not None else "")
            log.info("%s %s: rel. L2 %s %%%s, %.3g s/sample", cfg.name, r["method"],
                     fmt_pm(r["error_mean"], r["error_std"]), extra, r["time_per_sample_s"] or float("nan"))
    log.info("benchmark finished in %.1f s; results in %s", time.perf_counter() - t0, args.out)
    return 0
