"""Headline table (issue #8): FunDPS vs DiffusionPDE beside MAP and the sparse FNO/DeepONet baselines.

A driver over the benchmark harness (``pdeinv benchmark``), so the diffusion methods run on exactly
the test samples, point sets and noise draws of every other method, with cached datasets and
denoisers and resumable per-sample results:

* tasks darcy, poisson, helmholtz, ns; modes inverse (observe u, recover m) and forward (observe m,
  recover u); 3.05 % random points (fresh set per sample), 1 % relative noise;
* one joint (m, u) denoiser per task and method, same training pairs and optimiser steps
  (``--denoiser-steps``, batch 16): FunDPS = UNO + GRF noise, DiffusionPDE = U-Net + white noise;
* DiffusionPDE samples with ``--steps`` EDM steps, FunDPS with a quarter of them; ``fundps-obs`` is
  FunDPS without the PDE term (the ablation); PDE guidance = the task's real residual, for ns the
  simulator between the time slices;
* per method: relative L2 (and the Darcy pixel error), 90 % band coverage, seconds and peak memory
  per sample, training pairs/steps/seconds.  ``benchmarks/results/README.md`` gets the headline
  block per task and mode (all rows on the same first n samples) beside the published numbers.

    python benchmarks/bench_diffusion.py                          # the committed CPU run (64^2)
    python benchmarks/bench_diffusion.py --tasks darcy --n-test 100
    python benchmarks/bench_diffusion.py --res 128 --device cuda --suite full   # published scale
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pdeinv.cli.app import main  # noqa: E402

#: test samples of the committed CPU run per task (MAP/FNO/DeepONet rows may have more; the README
#: headline scores every row on the diffusion methods' samples)
CPU_N_TEST = {"darcy": 20, "ns": 20, "poisson": 10, "helmholtz": 10}
METHODS = "diffusionpde,fundps,fundps-obs"


def run(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tasks", default="darcy,poisson,helmholtz,ns")
    p.add_argument("--modes", default="inverse,forward")
    p.add_argument("--n-test", type=int, default=None, help="default: CPU_N_TEST per task (suite quick)")
    p.add_argument("--with-baselines", action="store_true",
                   help="also run map,fno,deeponet,mean on the same samples (otherwise their earlier "
                        "harness records are reused)")
    args, rest = p.parse_known_args(argv)
    methods = METHODS + (",map,fno,deeponet,mean" if args.with_baselines else "")
    for task in args.tasks.split(","):
        n = args.n_test or CPU_N_TEST.get(task, 20)
        rc = main(["benchmark", "--task", task, "--mode", args.modes, "--methods", methods, "--n-test", str(n),
                   "--out", str(ROOT / "benchmarks" / "results"), *rest])
        if rc:
            return rc
    return 0


if __name__ == "__main__":
    sys.exit(run())
