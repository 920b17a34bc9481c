"""Per-sample fits: pCN MCMC on the task's own law (``mcmc``) and PINN inversion (``pinn``).

Both are costly: the quick suite runs them on their first ``max_test`` test samples only.
"""
from __future__ import annotations

import numpy as np

from pdeinv.benchmark.config import get_task
from pdeinv.benchmark.methods.base import Identity, Method, module_missing, target_of, weighting_noise
from pdeinv.benchmark.samples import is_boundary_task
from pdeinv.benchmark.stats import chain_converged


class MCMCMethod(Method):
    """pCN MCMC (``pdeinv.solvers.MCMC``) on the white-noise coefficients of the task's Gaussian field.

    The prior is the task's own law, ``task.latent(grid) = (GaussianRandomField, transform)``, as
    ``build("mcmc", task, res, ...)`` sets it: Darcy's chain runs on the Gaussian field mu of the law
    and maps it by the law's threshold (a = 12 where mu >= 0 else 3), so the prior is exactly the
    data law; the GRF tasks use their GRF directly.  Forward mode: the chain
    targets m given its sparse values (identity forward map); the prediction is
    u of the posterior-mean m.  The prediction is the posterior mean; the record
    also holds the 90 % band coverage and the mean pixel std.  Costly: the quick
    suite runs it on the first ``max_test`` samples only.
    """

    name = "mcmc"
    parallel = True
    max_test = {"quick": 10, "full": 100}

    def available(self, cfg):
        if is_boundary_task(cfg.task):
            return f"MCMC adapter has no prior/residual for task {cfg.task!r} (boundary data); use map or nio"
        # ns, burgers and wave have a task.latent too, but a pCN chain of simulator runs per sample there is
        # not budgeted in the suites: the adapter stays on the elliptic tasks (as before build supplied the prior)
        if cfg.task not in ("darcy", "poisson", "helmholtz"):
            return f"the MCMC adapter has priors for darcy, poisson and helmholtz only, not {cfg.task!r}"
        return module_missing("pdeinv.solvers.mcmc")

    def settings(self, cfg):
        full = cfg.suite == "full"      # every other suite (quick, darcy-ref, ...) runs the short chains
        n = 2000 if full else 200
        return {"n_samples": n, "n_chains": 4 if full else 2, "burn_in": n}

    def prepare(self, cfg, data):
        st = self.settings(cfg)
        return {"n_train": 0, "steps": st["n_samples"] + st["burn_in"]}

    def predict(self, cfg, sample):
        from pdeinv.physics import ForwardModel
        from pdeinv.solvers import build
        task = get_task(cfg.task)
        grid, problem = task.make(cfg.res)
        fwd_problem = problem if cfg.mode == "inverse" else Identity(grid)
        fwd = ForwardModel(fwd_problem, sample.observation, noise=weighting_noise(sample))
        # the prior of m in both modes (forward mode: m from its own sparse values, then u = F(m))
        solver = build("mcmc", task, cfg.res, **self.settings(cfg), compute_state=False)
        res = solver(sample.y, fwd, seed=sample.method_seed)
        pred = target_of(cfg, res, problem, "cpu")
        i = res.info
        rl = float(i.get("rhat_loglik", np.nan))
        info = {"acceptance": float(np.mean(i.get("acceptance", np.nan))), "rhat_loglik": rl,
                "ess_loglik": float(i.get("ess_loglik", np.nan)), "rhat": float(i.get("rhat", np.nan)),
                "ess": float(i.get("ess", np.nan))}
        info["converged"] = chain_converged(info)
        if cfg.mode == "inverse":
            info["samples"] = res.samples
        return pred.detach().double(), info


class PINNMethod(Method):
    """PINN inversion on deepxde (``pdeinv.solvers.PINN``): one network fit per test sample.

    Inverse mode only (observe u, recover m); ``build("pinn", task, res, ...)`` keeps Darcy's
    coefficient in [3, 12] by the PINN's sigmoid map (the task's bounds as ``field_bounds``).
    Costly on a CPU: the quick suite runs it on the first ``max_test`` samples with a short schedule.
    """

    name = "pinn"
    modes = ("inverse",)
    parallel = True
    max_test = {"quick": 5, "full": 100}

    def available(self, cfg):
        if is_boundary_task(cfg.task):
            return f"the PINN adapter has no prior/residual for task {cfg.task!r} (boundary data); use map or nio"
        return module_missing("pdeinv.solvers.pinn.solver")

    def settings(self, cfg):
        if cfg.suite == "quick":
            return {"adam_iters": 1000, "lbfgs_iters": 500, "n_domain": 1000, "n_boundary": 200}
        return {"adam_iters": 10000, "lbfgs_iters": 5000, "n_domain": 4000, "n_boundary": 400}

    def prepare(self, cfg, data):
        st = self.settings(cfg)
        return {"n_train": 0, "steps": st["adam_iters"] + st["lbfgs_iters"]}

    def predict(self, cfg, sample):
        from pdeinv.physics import ForwardModel
        from pdeinv.solvers import build
        task = get_task(cfg.task)
        grid, problem = task.make(cfg.res)
        fwd = ForwardModel(problem, sample.observation, noise=sample.noise)
        solver = build("pinn", task, cfg.res, **self.settings(cfg), seed=sample.method_seed)
        res = solver(sample.y, fwd, seed=sample.method_seed)
        return res.m.detach().double().cpu(), {}
