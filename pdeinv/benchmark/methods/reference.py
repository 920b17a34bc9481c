r"""Reference rows: the best achievable answer of each task, and the cheap posteriors beside it.

* ``bayes`` -- :class:`~pdeinv.solvers.gaussian.GaussianPosterior` (``build("gaussian", task, res)``): the exact
  posterior of the linear-Gaussian tasks (poisson, helmholtz; both modes).  Its mean is the estimator with the
  smallest expected L2 error, the reference of every other row on those tasks.  Forward mode: the posterior of
  ``m`` from its sparse values (identity forward map), then ``u = F(mean)`` -- the exact posterior mean of ``u``,
  ``F`` being linear -- and ``F`` of each draw for the band of ``u``.
* ``laplace`` -- :class:`~pdeinv.solvers.laplace.Laplace` (Newton--CG MAP + low-rank Gauss--Newton Hessian) on
  the same tasks: equal to ``bayes`` there; the row is its cost measured in the same run.
* ``mcmc-ref`` -- a long level-set pCN chain on Darcy: ``a = threshold(mu)``, ``mu`` from the task's GRF
  (``build("mcmc", "darcy", res)`` takes it from ``task.latent``), 4 chains, split-R-hat and ESS of the
  log-likelihood recorded per sample (``converged`` = R-hat < 1.05).  Inverse mode: the posterior mean of ``a``
  (and the pixel error of the thresholded mean and of single draws); forward mode: the posterior mean of
  ``u``, i.e. the mean of ``F(a)`` over the draws (``F`` is nonlinear in ``a``, so not ``F`` of the mean).
  On a task whose law is a Gaussian field seen without a transform and whose forward map is nonlinear (ns),
  ``mcmc-ref`` is gpCN instead (``build("mcmc", task, res, proposal="gpcn")``: pCN preconditioned by the Laplace
  Gaussian at the converged L-BFGS MAP point; 4 chains from independent draws of that Gaussian, 500 adaptation
  and 1000 kept steps), which converges where pCN does not (``benchmarks/results/mcmc_gpcn-ns.md``).
"""
from __future__ import annotations

from typing import Any, Dict

import numpy as np
import torch

from pdeinv.benchmark.config import get_task
from pdeinv.benchmark.methods.base import Identity, Method, module_missing, weighting_noise
from pdeinv.benchmark.stats import chain_converged

#: tasks whose forward map is linear in m with a Gaussian law (the exact posterior exists)
LINEAR_GAUSSIAN_TASKS = ("poisson", "helmholtz")
#: split-R-hat threshold of a converged chain
RHAT_OK = 1.05


def _fwd(cfg, sample, problem, grid):
    from pdeinv.physics import ForwardModel
    return ForwardModel(problem if cfg.mode == "inverse" else Identity(grid), sample.observation,
                        noise=weighting_noise(sample))


def _state_of_draws(problem, draws: torch.Tensor, block: int = 64) -> torch.Tensor:
    """``F`` of every draw ``(S, 1, C, *grid)`` -> ``(S, 1, C, *grid)`` (batched solves)."""
    out = []
    flat = draws.reshape(-1, *draws.shape[2:])
    with torch.no_grad():
        for i in range(0, flat.shape[0], block):
            out.append(problem(flat[i:i + block]))
    return torch.cat(out).reshape(draws.shape[0], draws.shape[1], *out[0].shape[1:])


class BayesMethod(Method):
    """The exact linear-Gaussian posterior (see the module docstring); ``n_draws`` posterior draws per sample."""

    name = "bayes"
    parallel = True
    n_draws = 64

    def available(self, cfg):
        if cfg.task not in LINEAR_GAUSSIAN_TASKS:
            return (f"the exact Gaussian posterior needs a linear forward map and a Gaussian law; task {cfg.task!r} "
                    f"is not one of {LINEAR_GAUSSIAN_TASKS}")
        return module_missing("pdeinv.solvers.gaussian")

    def settings(self, cfg):
        return {"solver": "gaussian", "n_samples": self.n_draws, "version": 1}

    def prepare(self, cfg, data):
        return {"n_train": 0, "steps": 0}

    def solver(self, cfg, task):
        from pdeinv.solvers import build
        return build("gaussian", task, cfg.res, n_samples=self.n_draws, compute_state=False)

    def predict(self, cfg, sample):
        task = get_task(cfg.task)
        grid, problem = task.make(cfg.res)
        res = self.solver(cfg, task)(sample.y, _fwd(cfg, sample, problem, grid), seed=sample.method_seed)
        info: Dict[str, Any] = {}
        std = getattr(res, "pointwise_std", None)
        if cfg.mode == "inverse":
            pred, draws = res.m, res.samples
            if std is not None:
                info["exact_std"] = std
        else:
            with torch.no_grad():
                pred = problem(res.m)                    # F linear: the exact posterior mean of u
            draws = _state_of_draws(problem, res.samples) if res.samples is not None else None
        if draws is not None:
            info["samples"] = draws
        le = res.info.get("log_evidence")
        if isinstance(le, (int, float)):
            info["log_evidence"] = float(le)
        info["rank"] = res.info.get("rank")
        return pred.detach().double().cpu(), info


class LaplaceMethod(BayesMethod):
    """Laplace (``build("laplace", task, res)``: Newton--CG MAP + low-rank Gauss--Newton Hessian) on the
    linear-Gaussian tasks, where it is exact: the row measures its cost beside ``bayes`` and ``map``."""

    name = "laplace"
    max_test = {"quick": 20, "published": 3}

    def available(self, cfg):
        return super().available(cfg) or module_missing("pdeinv.solvers.laplace")

    def settings(self, cfg):
        return {"solver": "laplace", "n_samples": self.n_draws, "version": 1}

    def solver(self, cfg, task):
        from pdeinv.solvers import build
        return build("laplace", task, cfg.res, n_samples=self.n_draws, compute_state=False)


class MCMCRefMethod(Method):
    """Long level-set pCN on Darcy (module docstring).  ``chains`` chains of ``burn_in`` adaptation steps and
    ``keep * thin`` kept steps (every ``thin``-th kept), started from prior draws; per record the split-R-hat
    and ESS of the log-likelihood (``rhat_loglik``, ``ess_loglik``), the worst pixel's (``rhat``, ``ess``),
    the acceptance and ``converged`` (R-hat of the log-likelihood < 1.05)."""

    name = "mcmc-ref"
    parallel = True
    max_test = {"darcy-ref": 20, "quick": 20, "full": 100}
    chains, burn_in, keep, thin = 4, 5000, 1000, 25
    gpcn_burn_in, gpcn_keep = 500, 1000     # gpCN (tasks with an untransformed Gaussian law: ns)
    u_draws = 400          # forward mode: F of this many (evenly spaced) pooled draws gives E[u | y]

    @staticmethod
    def _gpcn(cfg) -> bool:
        return cfg.task != "darcy"

    def available(self, cfg):
        if cfg.task in LINEAR_GAUSSIAN_TASKS:
            return "the linear-Gaussian tasks have the exact posterior (bayes)"
        if cfg.task != "darcy":
            task = get_task(cfg.task)
            latent = getattr(task, "latent", None)
            if latent is None or latent(task.grid(cfg.res))[1] is not None:
                return ("mcmc-ref needs the task's law as a Gaussian field (level-set pCN on darcy; gpCN where "
                        f"the field is seen without a transform); {cfg.task} has neither")
        return module_missing("pdeinv.solvers.mcmc")

    def settings(self, cfg):
        if self._gpcn(cfg):
            return {"proposal": "gpcn", "n_chains": self.chains, "burn_in": self.gpcn_burn_in,
                    "n_samples": self.gpcn_keep, "map_iter": cfg.map_iter, "u_draws": self.u_draws, "version": 1}
        return {"n_chains": self.chains, "burn_in": self.burn_in, "n_samples": self.keep, "thin": self.thin,
                "u_draws": self.u_draws, "version": 1}

    def prepare(self, cfg, data):
        if self._gpcn(cfg):
            return {"n_train": 0, "steps": self.gpcn_burn_in + self.gpcn_keep}
        return {"n_train": 0, "steps": self.burn_in + self.keep * self.thin}

    def predict(self, cfg, sample):
        from pdeinv.solvers import build
        task = get_task(cfg.task)
        grid, problem = task.make(cfg.res)
        fwd = _fwd(cfg, sample, problem, grid)
        kw = {}
        if self._gpcn(cfg):     # the Laplace Gaussian at the converged L-BFGS MAP point
            kw["m0"] = build("map", task, cfg.res, max_iter=cfg.map_iter)(sample.y, fwd,
                                                                          seed=sample.method_seed).m.detach()
            solver = build("mcmc", task, cfg.res, proposal="gpcn", n_samples=self.gpcn_keep, n_chains=self.chains,
                           burn_in=self.gpcn_burn_in, compute_state=False)
        else:
            solver = build("mcmc", task, cfg.res, n_samples=self.keep, n_chains=self.chains, burn_in=self.burn_in,
                           thin=self.thin, compute_state=False)
        res = solver(sample.y, fwd, seed=sample.method_seed, **kw)
        draws = res.samples                                           # (S, 1, 1, *grid), chain-major
        if cfg.mode == "inverse":
            pred = res.m
        else:
            idx = torch.linspace(0, draws.shape[0] - 1, min(self.u_draws, draws.shape[0])).round().long()
            draws = _state_of_draws(problem, draws[idx])
            pred = draws.mean(0)
        i = res.info
        rl = float(i["rhat_loglik"])
        info = {"samples": draws, "rhat_loglik": rl, "ess_loglik": float(i["ess_loglik"]),
                "rhat": float(i["rhat"]), "ess": float(i["ess"]), "acceptance": float(np.mean(i["acceptance"])),
                "step": float(np.mean(i["step"])),
                "n_forward_solves": int(i["n_true_model_calls"])}
        info["converged"] = chain_converged(info, RHAT_OK)
        return pred.detach().double().cpu(), info
