r"""The training loop for surrogates, inverse operators and denoisers (``pdeinv train`` runs it).

:func:`train` minimises a loss over a torch ``Dataset`` of tuples with Adam and
a learning-rate schedule.  The default loss is the relative L2 error

.. math::  \mathcal{L} = \frac{1}{B}\sum_{b} \frac{\|G_\theta(x_b) - y_b\|_2}{\|y_b\|_2}

between ``model(batch[0])`` and ``batch[1]``; other models plug in their own
``loss_fn(model, batch) -> scalar`` (denoising score matching, multi-step
rollouts, randomised sensor batches ...).

What it does for every model:

* validation each epoch, early stopping (``patience``), best-validation
  weights restored at the end (``restore_best``);
* a tqdm progress bar (``verbose``) and a log of losses, one row per epoch,
  in ``<checkpoint>.log.csv``;
* an atomic checkpoint at the end of every epoch and at the end, holding the
  model (loadable with ``pdeinv.surrogates.load``) plus optimiser, scheduler,
  history and early-stopping state;
* ``resume=True`` continues an interrupted run *exactly*: the shuffling and
  the global torch RNG are re-seeded at every epoch from ``(seed, epoch,
  rank)``, so the resumed run makes the same updates as an uninterrupted one
  and ends with the same weights;
* data parallelism under ``torchrun`` with ``DistributedDataParallel`` (gloo on
  CPU, nccl on CUDA).  ``batch_size`` is the *global* batch: each of the
  ``W`` processes takes ``1/W`` of it, and the loss is re-weighted by the
  shard size, so the updates equal those of one process on the same global
  batch (up to float summation order).  ``loss_fn`` runs inside the DDP
  forward (through a small wrapper module), so any loss function gets its
  gradients synchronised, whichever model methods it calls.

The global torch RNG state of the caller is left as it was.
"""
from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
import time
from pathlib import Path
from typing import Any, Callable, Dict, Optional

import torch
from torch import nn
from torch.utils.data import Dataset, TensorDataset

from pdeinv.nn.base import atomic_torch_save, checkpoint_dict, read_checkpoint

log = logging.getLogger(__name__)

# ----------------------------------------------------------------------------- losses
def relative_l2(pred: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of ``||pred - true||_2 / ||true||_2`` (per sample norms over all other axes)."""
    if pred.shape != true.shape:
        raise ValueError(f"prediction has shape {tuple(pred.shape)} but the target has {tuple(true.shape)}")
    num = (pred - true).flatten(1).norm(dim=1)
    den = true.flatten(1).norm(dim=1).clamp_min(torch.finfo(true.dtype).tiny)
    return (num / den).mean()


def relative_l2_loss(model: nn.Module, batch) -> torch.Tensor:
    """Default loss: relative L2 between ``model(batch[0])`` and ``batch[1]``."""
    return relative_l2(model(batch[0]), batch[1])


class _LossModule(nn.Module):
    """Runs ``loss_fn(model, batch)`` as a forward pass, so DDP synchronises any loss's gradients."""

    def __init__(self, model: nn.Module, loss_fn: Callable):
        super().__init__()
        self.model, self.loss_fn = model, loss_fn

    def forward(self, batch):
        return self.loss_fn(self.model, batch)


# ----------------------------------------------------------------------------- helpers
def _collate(ds: Dataset, idx: torch.Tensor, device) -> tuple:
    if isinstance(ds, TensorDataset):
        items = tuple(t[idx] for t in ds.tensors)
    else:
        from torch.utils.data import default_collate
        items = default_collate([ds[int(i)] for i in idx])
        items = tuple(items) if isinstance(items, (list, tuple)) else (items,)
    return tuple(t.to(device) if torch.is_tensor(t) else t for t in items)


def _dist_setup(ddp: Optional[bool], device: torch.device):
    """(world_size, rank); initialises the process group from torchrun's environment if needed."""
    import torch.distributed as dist
    if ddp is False or not dist.is_available():
        return 1, 0
    if not dist.is_initialized():
        env_world = int(os.environ.get("WORLD_SIZE", "1"))
        if ddp is None and env_world <= 1:
            return 1, 0
        if "MASTER_ADDR" not in os.environ:
            raise RuntimeError("ddp=True needs an initialised process group or torchrun's environment "
                               "(MASTER_ADDR, WORLD_SIZE, RANK); launch with `torchrun --nproc_per_node=N ...`")
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return dist.get_world_size(), dist.get_rank()


def _all_sum(values, world: int, device) -> list:
    if world == 1:
        return list(values)
    import torch.distributed as dist
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def _make_scheduler(opt, scheduler: Optional[str], epochs: int, step_size: Optional[int], gamma: float):
    if scheduler is None or scheduler == "none":
        return None
    if scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, epochs))
    if scheduler == "step":
        return torch.optim.lr_scheduler.StepLR(opt, step_size=step_size or max(1, epochs // 5), gamma=gamma)
    raise ValueError(f"unknown scheduler {scheduler!r}; expected 'cosine', 'step' or None")


def _write_log(path: Path, history: Dict[str, list]) -> None:
    keys = ["epoch", "train_loss", "val_loss", "lr", "seconds"]
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(keys)
    for i in range(len(history["epoch"])):
        w.writerow([history[k][i] if history[k][i] is not None else "" for k in keys])
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(buf.getvalue())
    os.replace(tmp, path)


def log_path(checkpoint) -> Path:
    """Where :func:`train` writes the per-epoch loss log of ``checkpoint``."""
    return Path(str(checkpoint) + ".log.csv")


# ----------------------------------------------------------------------------- train
def train(model: nn.Module, train_data: Dataset, val_data: Optional[Dataset] = None, *,
          loss_fn: Optional[Callable] = None, epochs: int, batch_size: int, lr: float, weight_decay: float = 0.0,
          scheduler: Optional[str] = "cosine", patience: Optional[int] = None, checkpoint=None,
          resume: bool = False, seed: int = 0, device="cpu", verbose: bool = True, ddp: Optional[bool] = None,
          restore_best: bool = True, grad_clip: Optional[float] = None, step_size: Optional[int] = None,
          gamma: float = 0.5, val_loss_fn: Optional[Callable] = None) -> Dict[str, Any]:
    """Train ``model`` in place; return the history dict.

    Parameters
    ----------
    model : a :class:`Surrogate` (or any ``nn.Module``; then checkpoints only serve to resume).
    train_data, val_data : torch ``Dataset`` s of tuples (``TensorDataset`` is fastest).
    loss_fn : ``loss_fn(model, batch) -> scalar``; default :func:`relative_l2_loss`.
    epochs, batch_size, lr, weight_decay : Adam settings; ``batch_size`` is the global batch under DDP.
    scheduler : ``"cosine"`` (to 0 over ``epochs``), ``"step"`` (× ``gamma`` every ``step_size``
        epochs, default ``epochs // 5``) or ``None``; stepped once per epoch.
    patience : stop after this many epochs without a better validation loss (training loss
        without ``val_data``).
    checkpoint : path of the checkpoint written each epoch (and ``<checkpoint>.log.csv``).
    resume : continue from ``checkpoint`` if it exists (same settings expected).
    seed : seeds the shuffling and the global RNG inside training (per epoch).
    device : where to train; the model is moved there.
    ddp : ``None`` = use DistributedDataParallel when launched by torchrun / a process group
        exists; ``True`` = require it; ``False`` = never.
    restore_best : load the best-validation weights at the end (with ``val_data``).
    grad_clip : clip the global gradient norm to this value.
    val_loss_fn : validation loss (default ``loss_fn``).

    Returns
    -------
    dict with lists ``epoch, train_loss, val_loss, lr, seconds`` and ``best_epoch``,
    ``best_loss``, ``stopped_early``, ``world_size``.
    """
    if int(epochs) < 1 or int(batch_size) < 1 or not lr > 0:
        raise ValueError(f"need epochs >= 1, batch_size >= 1 and lr > 0; got epochs={epochs}, "
                         f"batch_size={batch_size}, lr={lr}")
    if len(train_data) == 0:
        raise ValueError("train_data is empty")
    if resume and checkpoint is None:
        raise ValueError("resume=True needs checkpoint= (the file to resume from)")
    epochs, batch_size, seed = int(epochs), int(batch_size), int(seed)
    device = torch.device(device)
    loss_fn = loss_fn or relative_l2_loss
    val_loss_fn = val_loss_fn or loss_fn
    world, rank = _dist_setup(ddp, device)
    model.to(device)
    ckpt_path = Path(checkpoint) if checkpoint is not None else None
    settings = {"epochs": epochs, "batch_size": batch_size, "lr": float(lr), "weight_decay": float(weight_decay),
                "scheduler": scheduler, "seed": seed, "world_size": world}

    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    sched = _make_scheduler(opt, scheduler, epochs, step_size, gamma)
    history: Dict[str, Any] = {"epoch": [], "train_loss": [], "val_loss": [], "lr": [], "seconds": [],
                               "best_epoch": None, "best_loss": math.inf, "stopped_early": False,
                               "world_size": world}
    best_state, bad_epochs, start = None, 0, 0

    if resume and ckpt_path.exists():
        ck = read_checkpoint(ckpt_path, map_location="cpu")
        tr = ck.get("training")
        if tr is None:
            raise ValueError(f"{str(ckpt_path)!r} holds no training state (saved without it); cannot resume")
        diff = {k: (tr["settings"].get(k), v) for k, v in settings.items() if tr["settings"].get(k) != v}
        if diff:
            log.warning("resuming with settings that differ from the checkpoint's (checkpoint, now): %s", diff)
        model.load_state_dict(ck["state_dict"])
        opt.load_state_dict(tr["optimizer"])
        history = json.loads(tr["history"])
        best_state, bad_epochs, start = tr.get("best_state"), int(tr["bad_epochs"]), int(tr["epoch"])
        if sched is not None:
            if tr.get("scheduler") is not None and tr["settings"].get("epochs") == epochs:
                sched.load_state_dict(tr["scheduler"])
            else:       # a longer (or shorter) run than planned: follow the new schedule from epoch `start`
                import warnings
                # the optimiser state carries the old schedule's last lr (0 at the end of a cosine run); the
                # chainable schedulers scale the current lr, so start the new plan from its base lr
                for group, base in zip(opt.param_groups, sched.base_lrs):
                    group["lr"] = base
                with warnings.catch_warnings():      # stepping without optimizer steps is intended here
                    warnings.simplefilter("ignore", UserWarning)
                    for _ in range(start):
                        sched.step()
        if tr.get("finished") and (start >= epochs or history.get("stopped_early")):
            log.info("%s holds a finished run (%d epochs); nothing to do", ckpt_path, start)
            return history
        log.info("resuming %s after epoch %d of %d", ckpt_path, start, epochs)

    wrapper: nn.Module = _LossModule(model, loss_fn)
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP
        wrapper = DDP(wrapper, device_ids=[device.index] if device.type == "cuda" else None)

    def save(epoch: int, finished: bool) -> None:
        if ckpt_path is None or rank != 0:
            return
        training = {"settings": settings, "optimizer": opt.state_dict(),
                    "scheduler": sched.state_dict() if sched is not None else None,
                    "epoch": epoch, "history": json.dumps(history), "best_state": best_state,
                    "bad_epochs": bad_epochs, "finished": finished}
        atomic_torch_save(checkpoint_dict(model, training), ckpt_path)
        _write_log(log_path(ckpt_path), history)

    from tqdm.auto import tqdm
    n_train = len(train_data)
    cuda_devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda_devices):
        bar = tqdm(range(start, epochs), desc=f"train {type(model).__name__}", disable=not verbose or rank != 0,
                   initial=start, total=epochs)
        for epoch in bar:
            t0 = time.perf_counter()
            torch.manual_seed(seed * 1_000_003 + epoch * 7919 + rank)   # loss-internal randomness
            perm = torch.randperm(n_train, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch))
            model.train()
            tot, cnt = 0.0, 0
            for s in range(0, n_train, batch_size):
                gidx = perm[s:s + batch_size]
                shard = gidx.tensor_split(world)[rank]
                weight = shard.numel() * world / gidx.numel()
                if shard.numel() == 0:          # tail batch smaller than the world: take part with zero weight
                    shard, weight = gidx[:1], 0.0
                batch = _collate(train_data, shard, device)
                loss = wrapper(batch)
                if not torch.isfinite(loss):
                    raise RuntimeError(f"training loss became {float(loss)} at epoch {epoch + 1}; lower lr= "
                                       f"(now {lr}) or check the data")
                opt.zero_grad(set_to_none=True)
                (loss * weight).backward()
                if grad_clip is not None:
                    torch.nn.utils.clip_grad_norm_(params, grad_clip)
                opt.step()
                tot += float(loss.detach()) * shard.numel() * (weight > 0)
                cnt += int(shard.numel()) * (weight > 0)
            tot, cnt = _all_sum([tot, cnt], world, device)
            train_loss = tot / cnt
            val_loss = _evaluate(model, val_data, val_loss_fn, batch_size, device, world, rank) \
                if val_data is not None else None
            history["epoch"].append(epoch + 1)
            history["train_loss"].append(train_loss)
            history["val_loss"].append(val_loss)
            history["lr"].append(opt.param_groups[0]["lr"])
            if sched is not None:
                sched.step()
            score = val_loss if val_loss is not None else train_loss
            if score < history["best_loss"]:
                history["best_loss"], history["best_epoch"], bad_epochs = score, epoch + 1, 0
                if val_data is not None and restore_best:
                    best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()
                                  if torch.is_tensor(v)}
            else:
                bad_epochs += 1
            history["seconds"].append(time.perf_counter() - t0)
            post = {"loss": f"{train_loss:.4g}"}
            if val_loss is not None:
                post["val"] = f"{val_loss:.4g}"
            bar.set_postfix(post)
            log.debug("epoch %d: train %.5g val %s", epoch + 1, train_loss, val_loss)
            stop = patience is not None and bad_epochs >= int(patience)
            if stop:
                history["stopped_early"] = True
                log.info("early stopping after epoch %d (no improvement for %d epochs)", epoch + 1, bad_epochs)
            save(epoch + 1, finished=False)
            if stop:
                break
        bar.close()
    if best_state is not None and restore_best:
        model.load_state_dict(best_state)
    model.eval()
    save(len(history["epoch"]), finished=True)
    return history


@torch.no_grad()
def _evaluate(model, data, loss_fn, batch_size, device, world, rank) -> float:
    model.eval()
    idx = torch.arange(len(data)).tensor_split(world)[rank]
    tot, cnt = 0.0, 0
    for s in range(0, idx.numel(), batch_size):
        b = idx[s:s + batch_size]
        tot += float(loss_fn(model, _collate(data, b, device))) * b.numel()
        cnt += b.numel()
    tot, cnt = _all_sum([tot, cnt], world, device)
    model.train()
    return tot / max(cnt, 1)
