"""Learned amortised baselines: sparse FNO / DeepONet, ViTO and NIO, trained for the setting they are tested in.

Where a trained model of the row's kind ships for the task, grid, mode and observation fraction
(``pdeinv models``: ``darcy64-fno-sparse`` for ``fno``, ``darcy64-deeponet-sparse`` for ``deeponet``,
``darcy64-vito`` for ``vito``, ``eit_inclusions32-nio`` for ``nio``), the row runs it,
as the diffusion rows run their shipped priors, and refuses test samples it was trained on.  Otherwise
each is trained once per task, mode, sizes and seed (``pdeinv.nn.training.train``: Adam, cosine
schedule, 10 % of the training pairs held out for validation and best-epoch restore), cached under
``<cache>/models`` and reused by later runs; at test time it costs one network evaluation per sample.
"""
from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Optional

import torch

from pdeinv.benchmark.config import atomic_write_text, get_task, stable_hash
from pdeinv.benchmark.methods.base import Identity, Method, load_cached_model, module_missing
from pdeinv.benchmark.samples import is_boundary_task

log = logging.getLogger(__name__)


class SparseBaseline(Method):
    """FNO / DeepONet trained for the sparse setting they are tested in (``pdeinv.surrogates.sparse``).

    Input: the observed field scattered on the grid (zero elsewhere) + the mask;
    a fresh random mask per training sample at the benchmark's fraction; target:
    the full field.  Trained by ``pdeinv.nn.training.train`` (Adam, cosine
    schedule, relative L2 loss, 10 % of the training set held out for validation
    and best-epoch restore) on ``cfg.n_train`` pairs for ``cfg.epochs`` epochs;
    the checkpoint is cached under ``<cache>/models`` keyed by task, mode, sizes
    and seed, and reused by later runs.  At test time the solver is
    ``build("amortized", task, res, model=<trained SparseOperator>)`` on a forward model
    with the sample's observation set: ``SparseOperator.inputs_from_observations`` scatters
    the noisy point data onto their grid nodes (the input :func:`node_scatter` builds).
    """

    needs_training = True
    lr = 1e-3
    shipped_class = "sparse"     # the manifest ``class`` of a shipped model this row can run
    point_data = True            # a shipped model must have been validated at the run's observation fraction

    def __init__(self, operator: str):
        self.operator = operator
        self.name = operator
        self._model = None

    def available(self, cfg):
        if is_boundary_task(cfg.task):
            return f"the sparse baselines take interior grid-node observations; task {cfg.task!r} observes the DtN map"
        return (self.shipped_leak(cfg) or module_missing("pdeinv.surrogates.sparse")
                or module_missing("pdeinv.surrogates.training"))

    def shipped(self, cfg) -> Optional[str]:
        """The shipped amortised model this row runs, or None (the harness trains its own).

        A shipped model serves the row when it is of the row's kind (manifest ``class``, and for the sparse
        FNO/DeepONet its ``operator``), for the run's task, grid and mode, and was trained and validated at
        the run's observation fraction (its ``validation.fraction``).
        """
        from pdeinv.nn import pretrained
        if cfg.res is None or cfg.mode != "inverse":     # the shipped amortised models are inverse operators
            return None
        for name in pretrained.available(task=cfg.task, method="amortized"):
            e = pretrained.info(name)
            if (e.get("class") != self.shipped_class or e.get("res") != int(cfg.res)
                    or e.get("mode", "inverse") != cfg.mode
                    or (self.shipped_class == "sparse" and e.get("operator") != self.operator)):
                continue
            if not self.point_data:
                return name
            frac = (e.get("validation") or {}).get("fraction")
            if frac is not None and abs(float(frac) - float(cfg.obs)) <= 1e-9:
                return name
        return None

    def shipped_leak(self, cfg) -> Optional[str]:
        """Why the shipped model cannot be tested on this run's samples (they overlap its training samples)."""
        name = self.shipped(cfg)
        if name is None:
            return None
        from pdeinv.benchmark.samples import bench_recipe
        from pdeinv.nn import pretrained
        return pretrained.training_overlap(name, bench_recipe(cfg)["seed"], cfg.n_train, cfg.n_train + cfg.n_test)

    def prepare_shipped(self, cfg):
        """Load the shipped model (:meth:`shipped`) and describe it as the row's training record."""
        from pdeinv.nn import pretrained
        name = self.shipped(cfg)
        model = pretrained.load(name, device=cfg.device).eval()
        e = pretrained.info(name)
        log.info("%s: using the shipped model %s (%s steps)", self.name, name, e.get("steps"))
        self._model = model
        return {"n_train": e.get("n_train"), "steps": e.get("steps"), "train_time_s": None,
                "checkpoint": f"shipped:{name}", "parameters": int(model.n_parameters())}

    def options(self, cfg):
        return dict(modes=12, width=int(cfg.width), layers=4, seed=cfg.seed)

    def settings(self, cfg):
        shipped = self.shipped(cfg)
        if shipped is not None:      # a shipped model: its name and checksum are the setting
            from pdeinv.nn import pretrained
            return {"operator": self.operator, "shipped": shipped, "sha256": pretrained.info(shipped).get("sha256"),
                    "fraction": cfg.obs}
        return {"operator": self.operator, "n_train": cfg.n_train, "epochs": cfg.epochs,
                "batch_size": cfg.batch_size, "lr": self.lr, "options": self.options(cfg), "fraction": cfg.obs}

    def _paths(self, cfg):
        key = stable_hash({**cfg.common_key(), **self.settings(cfg)})
        stem = cfg.cache / "models" / f"{cfg.task}-{cfg.res}-{cfg.mode}-sparse-{self.operator}-{key}"
        return Path(str(stem) + ".pt"), Path(str(stem) + ".train.pt")

    def prepare(self, cfg, data):
        from pdeinv.surrogates import load
        if self.shipped(cfg) is not None:
            return self.prepare_shipped(cfg)
        final, ckpt = self._paths(cfg)
        model, info = load_cached_model(final, load, self.name, cfg)
        if model is not None:
            self._model = model
            return info
        from pdeinv.nn.training import train
        from pdeinv.surrogates.sparse import SparseDataset
        m, u = data.train()
        x, y = (u, m) if cfg.mode == "inverse" else (m, u)
        x, y = x.float(), y.float()
        n_val = max(1, int(round(0.1 * x.shape[0])))
        train_ds = SparseDataset(x[:-n_val], y[:-n_val], fraction=cfg.obs, seed=cfg.seed)
        val_ds = SparseDataset(x[-n_val:], y[-n_val:], fraction=cfg.obs, seed=cfg.seed + 1)
        model = self.build_model(cfg, x, y)
        model.fit_normalizers(train_ds.inputs, y[:-n_val])
        t0 = time.perf_counter()
        hist = train(model, train_ds, val_ds, epochs=cfg.epochs, batch_size=cfg.batch_size, lr=self.lr,
                     weight_decay=1e-4, scheduler="cosine", checkpoint=ckpt, resume=True, seed=cfg.seed,
                     device=cfg.device, verbose=cfg.verbose)
        wall = time.perf_counter() - t0
        steps = cfg.epochs * math.ceil(len(train_ds) / cfg.batch_size)
        model.save(final)
        meta = {"n_train": len(train_ds), "n_val": n_val, "steps": steps, "train_time_s": wall,
                "best_val_loss": hist.get("best_loss"), "best_epoch": hist.get("best_epoch")}
        atomic_write_text(final.with_suffix(".json"), json.dumps(meta))
        self._model = model.eval()
        return {**meta, "checkpoint": str(final)}

    def build_model(self, cfg, x, y):
        """The untrained network for observed field ``x`` ``(N, C, *grid)`` and target ``y``."""
        from pdeinv.surrogates.sparse import SparseOperator
        return SparseOperator(self.operator, x.shape[1], y.shape[1], list(x.shape[2:]), options=self.options(cfg))

    def predict(self, cfg, sample):
        from pdeinv.physics import ForwardModel
        from pdeinv.solvers import build
        task = get_task(cfg.task)
        grid, problem = task.make(cfg.res)
        # the observed field: u (inverse) or m (forward: the network maps sparse m to u, and the amortised
        # solver's "unknown" is then u)
        fwd = ForwardModel(problem if cfg.mode == "inverse" else Identity(grid), sample.observation,
                           noise=sample.noise)
        res = build("amortized", task, cfg.res, mode=cfg.mode, model=self._model)(sample.y, fwd)
        return res.m.double().cpu(), {}


class ViTOSparse(SparseBaseline):
    """ViTO (``pdeinv.surrogates.vito``) as an amortised inverse solver on the harness's sparse points.

    The harness observes random grid nodes, not a coarse square grid, so ViTO is
    trained exactly like the sparse FNO/DeepONet baselines (:class:`SparseBaseline`):
    input ``[M * u, M]`` (observed values scattered on the grid + the mask, a fresh
    random mask per training sample at the run's fraction), target the full ``m``;
    ``out_size`` = the task's grid, so the super-resolution step of ViTO is the
    identity here.  Same training recipe, cache and solver (``build("amortized")``: a
    ``sparse=True`` ViTO scatters the points itself) as the baselines.  Inverse mode only
    (ViTO is an inverse operator).
    """

    modes = ("inverse",)
    shipped_class = "vito"

    def __init__(self):
        super().__init__("vito")

    def available(self, cfg):
        if is_boundary_task(cfg.task):
            return f"ViTO takes interior grid-node observations; task {cfg.task!r} observes the DtN map (use nio)"
        return (self.shipped_leak(cfg) or module_missing("pdeinv.surrogates.vito")
                or module_missing("pdeinv.surrogates.training"))

    def options(self, cfg):
        return dict(width=16, depth=3, patch_size=1, embed_dim=64, n_heads=4, n_layers=2, seed=cfg.seed)

    def build_model(self, cfg, x, y):
        from pdeinv.surrogates.vito import ViTO
        return ViTO(2 * x.shape[1], y.shape[1], out_size=list(y.shape[2:]), sparse=True, **self.options(cfg))


class NIOMethod(SparseBaseline):
    """NIO (``pdeinv.surrogates.nio``) as an amortised inverse solver on the EIT tasks (``eit*``).

    The sample's data are the noisy DtN fluxes of all ``L`` patterns at every boundary node
    (:func:`~pdeinv.benchmark.samples.make_sample`); NIO takes them as difference data stacked with
    the patterns (``NIO.inputs_from_observations``, the wiring of
    :func:`pdeinv.surrogates.nio.eit_measurements`) and returns the conductivity: the solver is
    ``build("amortized", task, res, model=<trained NIO>)`` on the EIT forward model.  Trained on
    ``cfg.n_train`` pairs (10 % held out) for ``cfg.epochs`` epochs with randomised batching over
    the number of measurements (:func:`~pdeinv.surrogates.nio.nio_loss`), as in
    ``benchmarks/bench_nio.py``; cached like the sparse baselines.  Other tasks observe interior
    points of a field, which is not NIO's input: the harness skips it there with that reason.
    """

    modes = ("inverse",)
    lr = 2e-3

    shipped_class = "nio"
    point_data = False           # EIT data: every pattern at every boundary node, no fraction

    def __init__(self):
        super().__init__("nio")

    def available(self, cfg):
        if not is_boundary_task(cfg.task):
            return (f"NIO maps boundary measurement operators (EIT / DtN data, tasks eit*), not the sparse interior "
                    f"points of task {cfg.task!r}; see benchmarks/bench_nio.py")
        return (self.shipped_leak(cfg) or module_missing("pdeinv.surrogates.nio")
                or module_missing("pdeinv.surrogates.training"))

    def options(self, cfg):
        return dict(n_modes=[min(8, cfg.res // 2)] * 2, hidden_channels=int(cfg.width), n_layers=4, seed=cfg.seed)

    def settings(self, cfg):
        shipped = self.shipped(cfg)
        if shipped is not None:
            from pdeinv.nn import pretrained
            return {"operator": "nio", "shipped": shipped, "sha256": pretrained.info(shipped).get("sha256")}
        return {"operator": "nio", "n_train": cfg.n_train, "epochs": cfg.epochs, "batch_size": cfg.batch_size,
                "lr": self.lr, "options": self.options(cfg)}

    def prepare(self, cfg, data):
        from torch.utils.data import TensorDataset

        from pdeinv.nn.training import relative_l2_loss, train
        from pdeinv.surrogates import load
        from pdeinv.surrogates.nio import NIO, eit_measurements, nio_loss
        self._problem = get_task(cfg.task).make(cfg.res)[1]
        if self.shipped(cfg) is not None:
            return self.prepare_shipped(cfg)
        final, ckpt = self._paths(cfg)
        model, info = load_cached_model(final, load, self.name, cfg)
        if model is not None:
            self._model = model
            return info
        m, u = data.train()
        x = eit_measurements(self._problem, u.double(), difference=True).float()
        y = m.float()
        n_val = max(1, int(round(0.1 * x.shape[0])))
        L, nb = x.shape[1], x.shape[-1]
        model = NIO(nb, out_size=list(y.shape[2:]), n_measurements=L, difference=True, **self.options(cfg))
        model.fit_normalizers(x[:-n_val], y[:-n_val])
        t0 = time.perf_counter()
        hist = train(model, TensorDataset(x[:-n_val], y[:-n_val]), TensorDataset(x[-n_val:], y[-n_val:]),
                     loss_fn=nio_loss, val_loss_fn=relative_l2_loss, epochs=cfg.epochs, batch_size=cfg.batch_size,
                     lr=self.lr, weight_decay=0.0, scheduler="cosine", checkpoint=ckpt, resume=True, seed=cfg.seed,
                     device=cfg.device, verbose=cfg.verbose)
        wall = time.perf_counter() - t0
        model.save(final)
        meta = {"n_train": x.shape[0] - n_val, "n_val": n_val,
                "steps": cfg.epochs * math.ceil((x.shape[0] - n_val) / cfg.batch_size), "train_time_s": wall,
                "best_val_loss": hist.get("best_loss"), "best_epoch": hist.get("best_epoch")}
        atomic_write_text(final.with_suffix(".json"), json.dumps(meta))
        self._model = model.eval()
        return {**meta, "checkpoint": str(final)}

    def predict(self, cfg, sample):
        from pdeinv.physics import ForwardModel
        from pdeinv.solvers import build
        fwd = ForwardModel(self._problem, sample.observation, noise=sample.noise)
        res = build("amortized", cfg.task, cfg.res, model=self._model)(sample.y, fwd)
        return res.m.double().cpu(), {}
