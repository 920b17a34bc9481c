"""Classical baselines: MAP on the true simulator (``map``) and the training-mean floor (``mean``)."""
from __future__ import annotations

import torch

from pdeinv.benchmark.config import get_task
from pdeinv.benchmark.methods.base import Identity, Method, module_missing, weighting_noise
from pdeinv.benchmark.methods.reference import LINEAR_GAUSSIAN_TASKS


#: bumped when the MAP adapter's solver or settings change, so that older per-sample records are not reused
#: (1: L-BFGS capped at --map-iter in raw coordinates; 2: run to tolerance, Newton-CG in whitened coordinates)
MAP_VERSION = 2
#: relative gradient tolerances: Newton-CG on the whitened GRF tasks, L-BFGS on TV + bounds (darcy)
GTOL_NEWTON, GTOL_LBFGS = 1e-8, 1e-5
#: Newton steps are few (4-6 measured at 64² and 128²): a safety cap only
NEWTON_MAX_ITER = 100
#: L-BFGS tolerance for a Gaussian prior seen through a nonlinear forward map (ns inverse): there every
#: Hessian-vector product of Newton-CG costs a linearised and an adjoint solve (421 s per NS sample at 64²,
#: ns-inverse-ref.md, against L-BFGS's 30 s for the same answer, amortized-ns.md: 20/20 reach this tolerance)
GTOL_LBFGS_NONLINEAR = 1e-6


def _gaussian_map_prior(task) -> bool:
    """True when the task's MAP prior is a Gaussian field MAP can whiten (no bounds): Newton-CG applies."""
    opts = task.map_options
    prior = opts.get("prior")
    return not isinstance(prior, str) and prior is not None and "bounds" not in opts


class MAPMethod(Method):
    """MAP with the task's classical prior (``task.map_options``) on the true simulator, run to its tolerance.

    inverse: ``argmin_m misfit(O F(m), y) - log p(m)``; forward: MAP estimate of
    ``m`` from its sparse values (identity forward map, same prior), then ``u = F(m)``.
    Exact data (``--noise 0``) are weighted as if the noise were 1 % (the misfit
    needs a scale against the prior).  The solver is ``build("map", task, res, ...)``: the task's prior,
    weight and bounds, and the stopping rule ``|grad J| <= gtol |grad J(x0)|``:

    * a Gaussian prior without bounds and a linear map (poisson, helmholtz; every forward mode): whitened
      coordinates and inexact Newton--CG, ``gtol = 1e-8`` (L-BFGS stalls near 1e-7--1e-8 there, docs/map.md);
      the iteration cap is a safety net;
    * a Gaussian prior and a nonlinear map (ns inverse): L-BFGS, ``gtol = 1e-6``, capped at ``--map-iter``;
    * TV + bounds (darcy): L-BFGS, ``gtol = 1e-5``, capped at ``--map-iter`` (suite default 1000).

    Every record stores ``converged``, ``iterations``, ``grad_norm_relative`` and ``stop_reason``; the tables
    mark the rows whose records did not all converge.
    """

    name = "map"
    parallel = True

    def solver_options(self, cfg):
        task = get_task(cfg.task)
        if _gaussian_map_prior(task):
            if cfg.mode == "inverse" and cfg.task not in LINEAR_GAUSSIAN_TASKS:
                return {"method": "lbfgs", "gtol": GTOL_LBFGS_NONLINEAR, "max_iter": int(cfg.map_iter)}
            return {"method": "newton-cg", "gtol": GTOL_NEWTON, "max_iter": NEWTON_MAX_ITER}
        return {"method": "lbfgs", "gtol": GTOL_LBFGS, "max_iter": int(cfg.map_iter)}

    def settings(self, cfg):
        opts = dict(get_task(cfg.task).map_options)
        opts.pop("max_iter", None)     # the adapter's stopping rule decides
        return {"version": MAP_VERSION, **self.solver_options(cfg),
                **{k: (list(v) if isinstance(v, tuple) else v) for k, v in opts.items()}}

    def available(self, cfg):
        return module_missing("pdeinv.solvers.map")

    def prepare(self, cfg, data):
        return {"n_train": 0, "steps": self.solver_options(cfg)["max_iter"]}

    def predict(self, cfg, sample):
        from pdeinv.physics import ForwardModel
        from pdeinv.solvers import build
        task = get_task(cfg.task)
        grid, problem = task.make(cfg.res)
        weighting = weighting_noise(sample)
        # forward mode too is an inverse solve (of m from its own sparse values, identity map): default mode
        solver = build("map", task, cfg.res, **self.solver_options(cfg))
        device = torch.device(cfg.device)
        y = sample.y.to(device)
        if cfg.mode == "inverse":
            fwd = ForwardModel(problem, sample.observation, noise=weighting).to(device)
            res = solver(y, fwd, seed=sample.method_seed)
            pred = res.m
        else:
            fwd = ForwardModel(Identity(grid), sample.observation, noise=weighting).to(device)
            res = solver(y, fwd, seed=sample.method_seed)
            with torch.no_grad():
                pred = problem.to(device)(res.m)
        i = res.info
        return pred.detach().cpu().double(), {
            "iterations": i.get("iterations"), "converged": bool(i.get("converged")),
            "grad_norm_relative": float(i.get("grad_norm_relative")), "stop_reason": i.get("stop_reason"),
            "optimizer": i.get("optimizer"), "cg_iterations": i.get("cg_iterations")}


class MeanMethod(Method):
    """Reference floor: predict the training-set mean of the target field, ignoring the data."""

    name = "mean"
    needs_training = True

    def settings(self, cfg):
        return {"n_train": cfg.n_train}

    def prepare(self, cfg, data):
        m, u = data.train()
        self._mean = (m if cfg.mode == "inverse" else u).mean(0, keepdim=True)
        return {"n_train": int(m.shape[0]), "steps": 0}

    def predict(self, cfg, sample):
        return self._mean.clone(), {}
