"""``pdeinv demo --task mcmc`` and ``--task pinn``: uncertainty and mesh-free inversion in a few minutes.

``mcmc``  the BENCHMARKS.md Poisson inverse task at 16² (source f from 3 % noisy points of u), sampled
          with preconditioned Crank--Nicolson under the law's GRF prior: the problem is linear-Gaussian,
          so the posterior mean is also compared with the exact one; prints the posterior-mean error,
          the mean pixel spread, the coverage of the 90 % band and R-hat.
``pinn``  a Darcy coefficient identification at 32² with deepxde (Adam then L-BFGS): the permeability is a
          second network bounded to [3, 12]; prints the error rate and relative L2 of the recovered field.
"""
from __future__ import annotations

import os
import time

import torch


def _setting(args, name, default):
    v = getattr(args, name, None)
    return default if v is None else v


def run_mcmc(args) -> dict:
    from pdeinv import metrics, plot
    from pdeinv.physics import ForwardModel, GaussianNoise, PointObservation
    from pdeinv.solvers import build
    from pdeinv.tasks import TASKS

    task = TASKS["poisson"]
    res_ = _setting(args, "res", 16)
    grid, problem = task.make(res_)
    prior, _ = task.latent(grid)
    f_true = prior.sample(1, seed=args.seed)
    obs = PointObservation.random(grid, fraction=args.obs, seed=args.seed + 1)
    fwd = ForwardModel(problem, obs, GaussianNoise(relative=args.noise))
    y = fwd(f_true, seed=args.seed + 2)
    n = _setting(args, "max_iter", 8000)
    t0 = time.perf_counter()
    solver = build("mcmc", task, res_, prior=prior, n_samples=n, n_chains=4, burn_in=n // 2, verbose=not args.quiet)
    res = solver(y, fwd, seed=args.seed)
    dt = time.perf_counter() - t0
    # exact posterior mean of the linear-Gaussian problem, m* = C A^T (A C A^T + S)^-1 y
    N = grid.shape[0] * grid.shape[1]
    A = fwd.A(torch.eye(N, dtype=torch.float64).reshape(N, 1, *grid.shape))[:, 0, :].T
    C = prior.covariance()
    s2 = fwd.noise_std(y).reshape(-1)[0] ** 2
    exact = (C @ A.T @ torch.linalg.solve(A @ C @ A.T + s2 * torch.eye(A.shape[0], dtype=A.dtype), y[0, 0]))
    exact = exact.reshape(1, 1, *grid.shape)
    os.makedirs(args.output, exist_ok=True)
    plot.compare(true=f_true, recovered={"posterior mean": res.m}, extra={"posterior std": res.std},
                 sensors=obs, path=os.path.join(args.output, "poisson_mcmc.png"),
                 title="Poisson source, pCN posterior")
    return {"task": "poisson (mcmc)", "res": grid.shape[0], "chains": 4, "samples_per_chain": n,
            "relative_l2_mean_vs_truth": float(metrics.relative_l2(res.m, f_true)),
            "relative_l2_mean_vs_exact_posterior_mean": float(metrics.relative_l2(res.m, exact)),
            "mean_posterior_std": float(res.std.mean()),
            "coverage_90": float(metrics.coverage(res.samples, f_true, 0.9)),
            "max_rhat": float(torch.as_tensor(res.info["rhat"]).max()), "seconds": dt,
            "note": ("chains have mixed (R-hat < 1.1)" if float(torch.as_tensor(res.info["rhat"]).max()) < 1.1 else
                     "R-hat >= 1.1: the chains have not mixed yet -- pCN slows down as the data become informative; "
                     "run longer (--max-iter) or add noise (--noise)"),
            "files": {"figure": os.path.join(args.output, "poisson_mcmc.png")}}


def run_pinn(args) -> dict:
    from pdeinv import metrics, plot
    from pdeinv.physics import ForwardModel, GaussianNoise, PointObservation
    from pdeinv.solvers import build
    from pdeinv.tasks import TASKS

    task = TASKS["darcy"]
    res_ = _setting(args, "res", 32)
    grid, problem = task.make(res_)
    a_true = task.sample_m(grid, 1, seed=args.seed + 3)
    obs = PointObservation.random(grid, fraction=max(args.obs, 0.05), seed=args.seed + 1)
    fwd = ForwardModel(problem, obs, GaussianNoise(relative=args.noise))
    y = fwd(a_true, seed=args.seed + 2)
    it = _setting(args, "max_iter", 3000)
    t0 = time.perf_counter()
    res = build("pinn", task, res_, adam_iters=it, lbfgs_iters=it // 2, verbose=not args.quiet,
                seed=args.seed)(y, fwd, seed=args.seed)
    dt = time.perf_counter() - t0
    os.makedirs(args.output, exist_ok=True)
    plot.compare(true=a_true, recovered=res.m, sensors=obs, path=os.path.join(args.output, "darcy_pinn.png"),
                 title="Darcy coefficient, PINN")
    return {"task": "darcy (pinn)", "res": grid.shape[0], "n_obs": obs.n_obs,
            "error_rate": float(metrics.error_rate(res.m.to(a_true.dtype), a_true)),
            "relative_l2": float(metrics.relative_l2(res.m.to(a_true.dtype), a_true)), "seconds": dt,
            "files": {"figure": os.path.join(args.output, "darcy_pinn.png")}}
