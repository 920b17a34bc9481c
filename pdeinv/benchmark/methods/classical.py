"""Classical baselines: MAP on the true simulator (``map``) and the training-mean floor (``mean``)."""
from __future__ import annotations

import torch

from pdeinv.benchmark.config import get_task
from pdeinv.benchmark.methods.base import Identity, Method, module_missing, weighting_noise


class MAPMethod(Method):
    """MAP with the task's classical prior (``task.map_options``) and L-BFGS on the true simulator.

    inverse: ``argmin_m misfit(O F(m), y) - log p(m)``; forward: MAP estimate of
    ``m`` from its sparse values (identity forward map, same prior), then ``u = F(m)``.
    Exact data (``--noise 0``) are weighted as if the noise were 1 % (the misfit
    needs a scale against the prior).  The solver is ``build("map", task, res, max_iter=...)``:
    the task's prior, weight and bounds, the run's ``--map-iter``.
    """

    name = "map"
    parallel = True

    def settings(self, cfg):
        opts = dict(get_task(cfg.task).map_options)
        opts.pop("max_iter", None)     # the run's --map-iter (suite default) decides
        return {"max_iter": cfg.map_iter, **{k: (list(v) if isinstance(v, tuple) else v) for k, v in opts.items()}}

    def available(self, cfg):
        return module_missing("pdeinv.solvers.map")

    def prepare(self, cfg, data):
        return {"n_train": 0, "steps": cfg.map_iter}

    def predict(self, cfg, sample):
        from pdeinv.physics import ForwardModel
        from pdeinv.solvers import build
        task = get_task(cfg.task)
        grid, problem = task.make(cfg.res)
        weighting = weighting_noise(sample)
        # forward mode too is an inverse solve (of m from its own sparse values, identity map): default mode
        solver = build("map", task, cfg.res, max_iter=cfg.map_iter)
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
        return pred.detach().cpu().double(), {"iterations": res.info.get("iterations")}


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
