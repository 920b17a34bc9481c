"""Prior health of a diffusion checkpoint against its task's law, as JSON (for a manifest's ``health``).

    python benchmarks/prior_health.py CKPT --task ns [--draws 32] [--n-ref 64]

Runs :func:`pdeinv.priors.diffusion.health.check_prior` (kappa > 0 at every noise level of the sampling
schedule; unconditional draws against law draws: mean, std, two-point correlations, and the binary and
interface fractions for Darcy) and prints the summary figures on one line, with the kappa profile (per noise
level: the smallest and median kappa of the probes and how many were <= 0).
"""
from __future__ import annotations

import argparse
import json

import torch


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint")
    p.add_argument("--task", required=True)
    p.add_argument("--res", type=int, default=64)
    p.add_argument("--draws", type=int, default=32)
    p.add_argument("--n-ref", type=int, default=64)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
    from pdeinv.nn.base import load
    from pdeinv.priors.diffusion.health import check_prior
    from pdeinv.tasks import get_task
    torch.set_num_threads(a.threads)
    task = get_task(a.task)
    grid, problem = task.make(a.res)
    model = load(a.checkpoint).eval()
    m = task.sample_m(grid, a.n_ref, seed=4242)
    ref = torch.cat([m, problem(m)], 1) if int(model.config["channels"]) == 2 else m
    binary = tuple(task.attrs.get("binary", ())) or ((3.0, 12.0) if a.task == "darcy" else None)
    rep = check_prior(model, ref.float(), n_draws=a.draws, binary=binary, seed=0)
    out = {"passed": rep.passed, "kappa_ok": rep.kappa_ok, "failures": list(rep.failures), "n_draws": a.draws,
           "n_ref": a.n_ref}
    for key in ("binary_fraction", "interface_fraction"):
        if key in rep.statistics:
            out[key] = rep.statistics[key]["drawn"]
            out[key + "_law"] = rep.statistics[key]["reference"]
    out["kappa_profile"] = rep.kappa           # per noise level: sigma, min and median kappa, probes <= 0
    print(json.dumps(out))


if __name__ == "__main__":
    main()
