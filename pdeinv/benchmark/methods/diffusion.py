"""Diffusion posteriors: FunDPS / DiffusionPDE / DAPS on a joint (m, u) denoiser, and their ablations.

``fundps`` (UNO denoiser, GRF noise, ``steps // 4`` EDM steps), ``diffusionpde`` (U-Net, white
noise, ``steps``), ``fundps-obs`` (observation guidance only), ``fundps-sim`` (the FunDPS prior
of m guided through the true simulator) and ``daps`` (decoupled annealing on the FunDPS prior, the data
through the true simulator, ``steps // 4`` levels).  The ablations and DAPS share the FunDPS denoiser.

Every solver option reaches a row through a *variant name*: ``fundps[tempering=schedule;trust=null]``
(``;``-separated ``KEY=VALUE``, values parsed as JSON when they can be, as ``pdeinv invert --opt``), and
``model=PATH`` runs a checkpoint trained elsewhere (``pdeinv train diffusion``) instead of the harness's own
denoiser, ``model=NAME`` a shipped prior (``pdeinv models``); a row named like its solver (``daps``,
``fundps``) runs the task's shipped default prior at this resolution when one ships
(``pdeinv.nn.pretrained.default_for``), so it needs no training.  The options are part of the row's settings (its cache key).  Each record states its cost:
``network_evals_per_sample`` (denoiser evaluations per posterior draw) and ``simulator_solves_per_sample``
(forward solves of the simulator per posterior draw; each guided solve also costs one adjoint solve).
"""
from __future__ import annotations

import copy
import json
import logging
import math
import os
import time
from pathlib import Path
from typing import Any, Dict, Optional

import torch

from pdeinv.benchmark.config import atomic_write_text, get_task, stable_hash
from pdeinv.benchmark.methods.base import Method, load_cached_model, module_missing
from pdeinv.benchmark.samples import is_boundary_task

log = logging.getLogger(__name__)


class DiffusionMethod(Method):
    """FunDPS / DiffusionPDE: a joint (m, u) EDM denoiser trained on the training set, then guided sampling.

    FunDPS: neural-operator (UNO) denoiser with Gaussian-random-field noise;
    DiffusionPDE: U-Net denoiser with white noise (``pdeinv.priors.diffusion``).
    Both denoisers see the same ``cfg.n_train`` joint fields for the same number
    of optimiser steps (``cfg.denoiser_steps``, batch 16), have comparable sizes
    (``cfg.width``: U-Net base channels / UNO hidden channels) and are cached under
    ``<cache>/models`` (training resumes from ``.train.pt`` if killed).  One
    denoiser per task serves both modes.  Each test sample then gets
    ``cfg.samples`` posterior samples; DiffusionPDE takes ``cfg.steps`` EDM steps,
    FunDPS ``cfg.steps // 4`` (its claim: as accurate with 4x fewer steps).  The solver is
    ``build(solver, task, res, mode=..., model=<denoiser>, physics=..., n_samples=..., num_steps=...)``:
    the task's bounds as ``clip`` and the problem's ``slice_residual`` where it has one come from the task.

    Physics in the guidance (``physics``): ``"auto"`` is the problem's real PDE
    residual for the elliptic tasks and, for ``ns``, the differentiable simulator
    between the two time slices, ``u - F(m)`` (``NavierStokes2D.slice_residual``;
    the one-step residual between t=0 and t=T means nothing); ``"none"`` guides by the observations only (the ablation
    ``fundps-obs``); ``"simulator"`` (``fundps-sim``) guides the ``m`` channel through the
    true simulator, ``y = O(F(m))``, and takes ``u = F(m)`` of each sample.  The prediction is the posterior mean; the 90 % band coverage
    of the target is recorded in both modes.
    """

    needs_training = True
    parallel = True
    max_test = {"quick": 20, "full": 1000}
    batch_size = 16

    def __init__(self, name: str, solver: str, arch: str, noise: str, physics: str = "auto", step_divisor: int = 1,
                 options: Optional[Dict[str, Any]] = None):
        self.name, self.solver, self.arch, self.noise = name, solver, arch, noise
        self.physics, self.step_divisor = physics, int(step_divisor)
        self.options: Dict[str, Any] = dict(options or {})
        self._model = None

    def with_options(self, name: str, options: Dict[str, Any]) -> "DiffusionMethod":
        """A variant of this adapter called ``name`` whose solver gets ``options`` on top of its own (checked now:
        an unknown key is a ``ValueError`` naming the solver's options)."""
        from pdeinv.solvers.factory import check_diffusion_options
        opts = {**self.options, **options}
        model = opts.pop("model", None)
        if "physics" in opts:
            check_diffusion_options(self.solver, {"physics": opts["physics"]})
        check_diffusion_options(self.solver, {k: v for k, v in opts.items() if k != "physics"})
        if model is not None and not os.path.exists(str(model)):
            from pdeinv.nn import pretrained
            if str(model) not in pretrained.manifest():
                raise ValueError(f"{name}: model={model!r} is neither a file (a checkpoint of `pdeinv train "
                                 f"diffusion`) nor a shipped prior ({pretrained.available(kind='prior')})")
        out = copy.copy(self)
        out.name, out._model = name, None
        out.physics = opts.pop("physics", self.physics)
        out.options = {**opts, **({"model": str(model)} if model is not None else {})}
        return out

    def available(self, cfg):
        if is_boundary_task(cfg.task):
            return f"the diffusion samplers adapter has no prior/residual for task {cfg.task!r} (boundary data); use map or nio"
        if self.physics == "simulator" and cfg.task.startswith("ns"):
            return ("on ns the simulator already guides fundps/diffusionpde (u - F(w0) as the PDE term); the "
                    "m-only simulator guidance is for the elliptic tasks")
        if len(get_task(cfg.task).grid(cfg.res).shape) != 2:
            return f"task {cfg.task!r} is not 2-D; the harness's denoisers are 2-D"
        shipped = self.shipped(cfg)
        if shipped is not None:      # a shipped prior must not be tested on its own training fields
            from pdeinv.benchmark.samples import bench_recipe
            from pdeinv.nn import pretrained
            leak = pretrained.training_overlap(shipped, bench_recipe(cfg)["seed"], cfg.n_train,
                                               cfg.n_train + cfg.n_test)
            if leak:
                return leak
        return (module_missing(f"pdeinv.solvers.diffusion.{self.solver}")
                or module_missing("pdeinv.priors.diffusion.training"))

    def arch_kwargs(self, cfg):
        w = int(cfg.width)
        if self.arch == "uno":
            return {"hidden": w, "modes": 12, "lifting": 2 * w}
        return {"base": w, "mults": [1, 2, 2]}

    def physics_for(self, cfg):
        if self.physics == "auto":
            return "simulator" if self.solver == "daps" else "residual"
        return self.physics

    def shipped(self, cfg) -> Optional[str]:
        """The shipped prior this row runs: ``model=NAME``, or the task's default for a row named like the
        solver (``daps``, ``fundps``) when one ships at this resolution; None: the harness trains its own."""
        from pdeinv.nn import pretrained
        model = self.options.get("model")
        if model is not None:
            return str(model) if (not os.path.exists(str(model)) and str(model) in pretrained.manifest()) else None
        if self.name != self.solver or cfg.res is None:
            return None
        return pretrained.default_for(self.solver, cfg.task, int(cfg.res))

    def train_settings(self, cfg):
        shipped = self.shipped(cfg)
        if shipped is not None:      # a shipped prior: its name and checksum are the setting
            from pdeinv.nn import pretrained
            return {"shipped": shipped, "sha256": pretrained.info(shipped).get("sha256")}
        model = self.options.get("model")
        if model is not None:        # a checkpoint trained elsewhere: its file is the setting
            st = os.stat(model)
            return {"model": os.path.abspath(model), "size": st.st_size, "mtime": int(st.st_mtime)}
        return {"arch": self.arch, "noise": self.noise, "arch_kwargs": self.arch_kwargs(cfg), "n_train": cfg.n_train,
                "denoiser_steps": cfg.denoiser_steps, "batch_size": self.batch_size}

    def sampling_steps(self, cfg):
        return max(1, int(cfg.steps) // self.step_divisor)

    def solver_options(self, cfg) -> Dict[str, Any]:
        """The keyword options of ``build`` for this row: the harness's, then the variant's."""
        opts = {"physics": self.physics_for(cfg), "n_samples": cfg.samples, "num_steps": self.sampling_steps(cfg)}
        opts.update({k: v for k, v in self.options.items() if k != "model"})
        return opts

    def settings(self, cfg):
        out = {**self.train_settings(cfg), "samples": cfg.samples, "steps": self.sampling_steps(cfg),
               "physics": self.physics_for(cfg)}
        extra = {k: v for k, v in self.options.items() if k != "model"}
        if extra:
            out["options"] = extra
        return out

    def _path(self, cfg):
        key = stable_hash({**cfg.common_key(), "mode": "joint", **self.train_settings(cfg)})
        return cfg.cache / "models" / f"{cfg.task}-{cfg.res}-denoiser-{self.arch}-{self.noise}-{key}.pt"

    def prepare(self, cfg, data):
        from pdeinv.priors.diffusion.denoisers import EDMDenoiser
        shipped = self.shipped(cfg)
        if shipped is not None:
            from pdeinv.nn import pretrained
            model = pretrained.load(shipped, device=cfg.device).eval()
            self._model = model
            e = pretrained.info(shipped)
            log.info("%s: using the shipped prior %s (%s steps)", self.name, shipped, e.get("steps"))
            return {"n_train": e.get("n_train"), "steps": e.get("steps"), "train_time_s": None,
                    "checkpoint": f"shipped:{shipped}", "parameters": int(model.n_parameters())}
        if self.options.get("model") is not None:
            path = Path(self.options["model"])
            model = EDMDenoiser.load(path, map_location=cfg.device).eval()
            self._model = model
            rec = getattr(model, "trained_on", None) or {}
            log.info("%s: using the denoiser %s", self.name, path)
            return {"n_train": rec.get("n_train") if isinstance(rec, dict) else None,
                    "steps": rec.get("steps") if isinstance(rec, dict) else None, "train_time_s": None,
                    "checkpoint": str(path), "parameters": int(model.n_parameters())}
        path = self._path(cfg)
        model, info = load_cached_model(path, EDMDenoiser.load, self.name, cfg, require_meta=True)
        if model is not None:
            self._model = model
            return info
        from pdeinv.priors.diffusion.training import train_denoiser
        m, u = data.train()
        joint = torch.cat([m, u], 1).float()
        task = get_task(cfg.task)
        model = EDMDenoiser(channels=2, arch=self.arch, arch_kwargs=self.arch_kwargs(cfg), noise=self.noise,
                            channel_names=[task.m_name, task.u_name], seed=cfg.seed)
        per_epoch = math.ceil(joint.shape[0] / self.batch_size)
        epochs = max(1, math.ceil(cfg.denoiser_steps / per_epoch))
        ckpt = Path(str(path)[:-3] + ".train.pt")
        t0 = time.perf_counter()
        train_denoiser(model, joint, epochs=epochs, batch_size=self.batch_size, seed=cfg.seed, device=cfg.device,
                       verbose=cfg.verbose, checkpoint=ckpt, resume=ckpt.exists())
        model.save(path)
        meta = {"n_train": int(joint.shape[0]), "steps": epochs * per_epoch, "epochs": epochs,
                "train_time_s": time.perf_counter() - t0, "parameters": int(model.n_parameters())}
        atomic_write_text(path.with_suffix(".json"), json.dumps(meta))
        self._model = model.eval()
        return {**meta, "checkpoint": str(path)}

    def predict(self, cfg, sample):
        from pdeinv.physics import ForwardModel
        from pdeinv.solvers import build
        task = get_task(cfg.task)
        grid, problem = task.make(cfg.res)
        solver = build(self.solver, task, cfg.res, mode=cfg.mode, model=self._model, **self.solver_options(cfg))
        fwd = ForwardModel(problem, sample.observation, noise=sample.noise).to(cfg.device)
        solves = SolveCounter(fwd.problem)
        try:
            res = solver(sample.y.to(cfg.device), fwd, seed=sample.method_seed)
        finally:
            solves.remove()
        pred, draws = (res.m, res.samples) if cfg.mode == "inverse" else (res.u, res.u_samples)
        info = {"samples": draws.cpu()} if draws is not None else {}
        draws_n = int(res.info.get("n_samples", cfg.samples)) * int(sample.y.shape[0])
        info["network_evals_per_sample"] = res.info.get("network_evals_per_sample")
        info["simulator_solves_per_sample"] = solves.count / max(1, draws_n)
        for k in ("tempering", "trust", "num_steps"):
            v = res.info.get(k)
            if isinstance(v, (int, float, str, type(None))):
                info[k] = v
        return pred.detach().double().cpu(), info


class SolveCounter:
    """Counts the forward solves of a simulator (``torch.nn.Module``): the batch size of every call."""

    def __init__(self, problem):
        self.count = 0
        self._handle = problem.register_forward_hook(self._hook) if isinstance(problem, torch.nn.Module) else None

    def _hook(self, module, inputs, output):
        x = inputs[0] if inputs else None
        self.count += int(x.shape[0]) if isinstance(x, torch.Tensor) and x.dim() > 0 else 1

    def remove(self):
        if self._handle is not None:
            self._handle.remove()
