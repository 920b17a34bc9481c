"""``pdeinv train MODEL --data FILE.nc``: train a surrogate, an inverse operator or a denoiser.

``TRAINERS`` maps MODEL to the function here that builds the network from the dataset and the
parsed arguments and runs :func:`pdeinv.nn.training.train` (Adam + schedule, validation,
atomic resumable checkpoints, CSV learning curve, DDP under ``torchrun``).
"""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any, Callable, Dict, Optional

import torch
from torch.utils.data import TensorDataset

from pdeinv.data.io import dataset_tensors, load_dataset
from pdeinv.nn.training import log_path, relative_l2_loss, train
from pdeinv.surrogates.training import build_operator, operator_pairs

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``pdeinv train MODEL --data FILE.nc ...``"""
    parser.add_argument("model", choices=["deeponet", "diffusion", "fno", "lepde", "nio", "vito"], help="what to train")
    parser.add_argument("--data", required=True, help="training dataset (netCDF/zarr from `pdeinv generate`)")
    parser.add_argument("-o", "--out", default=None,
                        help="checkpoint path (default: fno/deeponet: <model>-<task>-<mode>[-sparse].pt; nio, lepde: "
                             "<model>-<task>.pt; vito: <arch>-<task>.pt with arch vito or unet; diffusion: "
                             "diffusion-<arch>-<task>.pt); the loss log goes beside it as <checkpoint>.log.csv")
    parser.add_argument("--val-data", default=None, help="validation dataset (default: split off --val-fraction)")
    parser.add_argument("--val-fraction", type=float, default=0.1, help="validation share of --data (default 0.1)")
    parser.add_argument("--n-train", type=int, default=None,
                        help="use only the first N >= 1 samples of --data (before the validation split)")
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=20)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--weight-decay", type=float, default=1e-4)
    parser.add_argument("--scheduler", default="cosine", choices=["cosine", "step", "none"])
    parser.add_argument("--patience", type=int, default=None, help="early-stopping patience in epochs")
    g = parser.add_mutually_exclusive_group()
    g.add_argument("--resume", action="store_true", help="continue an interrupted (or finished, with more --epochs) "
                                                         "run from the checkpoint --out")
    g.add_argument("--overwrite", action="store_true",
                   help="train from scratch even if the checkpoint --out exists (it and its log are replaced)")
    parser.add_argument("--init", default=None, metavar="MODEL",
                        help="warm start from a shipped model's name (`pdeinv models`) or a checkpoint: same network "
                             "and options, its weights and normalisers, a fresh optimiser; the step count continues")
    parser.add_argument("--mode", default="forward", choices=["forward", "inverse"],
                        help="forward: m -> u; inverse: u -> m")
    parser.add_argument("--sparse", type=float, default=None, metavar="FRACTION",
                        help="sparse-observation baseline: input = values at this fraction of random nodes "
                             "(a new set per sample and epoch; --fixed-masks: one per sample) + mask channel")
    parser.add_argument("--fixed-masks", action="store_true",
                        help="with --sparse: one random point set per training sample, drawn once (default: a new "
                             "set every epoch)")
    parser.add_argument("--time-index", type=int, default=-1, help="for time series u: which time (default last)")
    parser.add_argument("--modes", type=int, default=12, help="FNO: Fourier modes per axis")
    parser.add_argument("--width", type=int, default=32, help="FNO hidden channels / DeepONet basis size")
    parser.add_argument("--layers", type=int, default=4, help="FNO layers / DeepONet hidden layers")
    parser.add_argument("--arch", default=None, choices=["unet", "uno"],
                        help="diffusion: denoiser architecture (unet: DiffusionPDE, uno: FunDPS)")
    parser.add_argument("-O", "--option", action="append", default=[], metavar="KEY=VALUE",
                        help="model-specific option (VALUE parsed as JSON if it can be); repeatable")


def parse_options(items) -> Dict[str, Any]:
    """``["a=1", "b=[2,3]", "c=gelu"]`` -> ``{"a": 1, "b": [2, 3], "c": "gelu"}``."""
    out = {}
    for it in items or []:
        if "=" not in it:
            raise ValueError(f"--option expects KEY=VALUE; got {it!r}")
        k, v = it.split("=", 1)
        try:
            out[k.strip()] = json.loads(v)
        except json.JSONDecodeError:
            out[k.strip()] = v
    return out


def main(args) -> int:
    from pdeinv.cli._checks import check_output
    for flag, path in (("--data", args.data), ("--val-data", args.val_data)):
        if path is not None and not Path(path).exists():
            raise FileNotFoundError(f"{flag} {path!r} does not exist")
    if args.out is not None:        # the default path is known once the dataset is read; checked again then
        check_output(args.out, inputs=[args.data, args.val_data], allow_existing=True, what="checkpoint",
                     example="model.pt")
    return int(TRAINERS[args.model](args) or 0)


def interrupted(args) -> str:
    """What ``pdeinv train`` says on Ctrl-C."""
    out = getattr(args, "_checkpoint", None)
    if out is None:
        return "nothing was written (training had not started)"
    if Path(out).exists():
        return (f"the checkpoint {out} holds the last finished epoch; run the same command with --resume to "
                "continue exactly where it stopped")
    return "no epoch had finished, so nothing was written; run the same command again"


def prepare_checkpoint(args, out: Path, ds=None, model=None, n_train: Optional[int] = None,
                       n_items: Optional[int] = None) -> Path:
    """Check the checkpoint path before training starts and record what the model is trained on.

    ``n_train``: training samples; ``n_items``: training items per epoch when they differ (LE-PDE's windows),
    for the recorded optimiser steps per epoch.

    Refused: the checkpoint (or its log) being an input, an existing checkpoint without ``--resume``
    or ``--overwrite``, a location that cannot be written.  ``model.trained_on`` gets the dataset's
    task and grid (the grid of ``m``), so a solver can tell when the model is used on another grid.
    """
    from pdeinv.cli._checks import check_output
    inputs = [args.data, args.val_data]
    check_output(str(out), inputs=inputs, allow_existing=True, what="checkpoint", example="model.pt")
    check_output(str(log_path(out)), inputs=inputs, allow_existing=True, what="training log")
    if out.exists() and not (args.resume or args.overwrite):
        raise ValueError(f"the checkpoint {str(out)!r} exists; pass --resume to continue its training or "
                         "--overwrite to train a new model in its place")
    if out.exists() and args.overwrite:
        log.info("--overwrite: training a new model; %s and its log will be replaced", out)
    if model is not None and ds is not None and hasattr(model, "trained_on"):
        from pdeinv.data.io import grid_of, state_grid_of
        rec = {"task": ds.attrs.get("task"), "grid": grid_of(ds).to_dict(), "data": str(Path(args.data).resolve()),
               "mode": "inverse" if args.model in ("vito", "nio") else getattr(args, "mode", None),
               "n_train": n_train}
        sg = state_grid_of(ds).to_dict()
        if sg != rec["grid"]:
            rec["state_grid"] = sg
        if n_items or n_train:
            rec["steps_per_epoch"] = -(-int(n_items or n_train) // int(args.batch_size))
        if getattr(args, "init", None) and not (args.resume and out.exists()):
            from pdeinv.nn.pretrained import warm_start
            rec["init"] = warm_start(model, args.init)
            log.info("warm start from %s (%d steps before this run)", args.init, rec["init"]["steps"])
        model.trained_on = rec
    args._checkpoint = str(out)
    return out


#: constructor arguments the trainers set from the data and the command line, never through ``-O``
RESERVED_OPTIONS = {"self", "kind", "grid_shape", "in_channels", "out_channels", "channels", "seed", "out_size",
                    "n_boundary", "n_measurements", "resolution", "ndim", "channel_names"}


def check_options(user: Dict[str, Any], what: str, *targets, extra=()) -> None:
    """Refuse ``-O`` keys that none of ``targets`` (classes or functions) takes and that are not in ``extra``
    (arguments in :data:`RESERVED_OPTIONS` come from the data and the command line: ``--seed``, ...)."""
    import inspect
    valid = set(extra)
    for t in targets:
        fn = t.__init__ if inspect.isclass(t) else t
        valid |= {n for n, p in inspect.signature(fn).parameters.items()
                  if n not in RESERVED_OPTIONS and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
    unknown = sorted(set(user) - valid)
    if unknown:
        raise ValueError(f"unknown -O option(s) {unknown} for {what}; valid keys: {sorted(valid)}")


def _n_train(args, n: int) -> int:
    if args.n_train is not None and args.n_train > n:
        raise ValueError(f"--n-train {args.n_train} but {args.data!r} holds {n} samples")
    return n if args.n_train is None else args.n_train




def sparse_training_set(args, x, y):
    """``--sparse F`` training pairs: a new random point set per sample and epoch (``--fixed-masks``: one
    per sample, drawn once, as the benchmark harness's baselines are trained)."""
    from pdeinv.surrogates.sparse import ResampledSparseDataset, SparseDataset
    if getattr(args, "fixed_masks", False):
        return SparseDataset(x, y, fraction=args.sparse, seed=args.seed)
    return ResampledSparseDataset(x, y, fraction=args.sparse)


def train_operator(args) -> int:
    """``pdeinv train fno|deeponet``: forward or inverse operator, full or sparse input."""
    from pdeinv.data.io import load_dataset
    from pdeinv.surrogates.sparse import SparseDataset

    ds = load_dataset(args.data)
    x, y = operator_pairs(ds, args.mode, args.time_index)
    n = _n_train(args, x.shape[0])
    x, y = x[:n], y[:n]
    if args.val_data:
        vx, vy = operator_pairs(load_dataset(args.val_data), args.mode, args.time_index)
    else:
        n_val = int(round(args.val_fraction * x.shape[0]))
        if n_val < 1 or n_val >= x.shape[0]:
            raise ValueError(f"--val-fraction {args.val_fraction} leaves no validation or no training samples "
                             f"of {x.shape[0]}")
        x, y, vx, vy = x[:-n_val], y[:-n_val], x[-n_val:], y[-n_val:]
    user = parse_options(args.option)
    from pdeinv.surrogates.deeponet import DeepONet
    from pdeinv.surrogates.fno import FNO
    check_options(user, args.model, FNO if args.model == "fno" else DeepONet, build_operator)
    opts = dict(modes=args.modes, width=args.width, layers=args.layers, seed=args.seed)
    opts.update(user)
    if args.sparse is not None:
        from pdeinv.surrogates.sparse import SparseOperator
        train_ds = sparse_training_set(args, x, y)
        val_ds = SparseDataset(vx, vy, fraction=args.sparse, seed=args.seed + 1)
        model = SparseOperator(args.model, x.shape[1], y.shape[1], list(x.shape[2:]), options=opts)
        model.fit_normalizers(train_ds.inputs, y)
    else:
        train_ds, val_ds = TensorDataset(x, y), TensorDataset(vx, vy)
        model = build_operator(args.model, x.shape[1], y.shape[1], x.shape[2:], **opts)
        model.fit_normalizers(x, y)
    task = ds.attrs.get("task", "data")
    out = Path(args.out or f"{args.model}-{task}-{args.mode}{'-sparse' if args.sparse else ''}.pt")
    prepare_checkpoint(args, out, ds, model, len(train_ds))
    hist = train(model, train_ds, val_ds, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                 weight_decay=args.weight_decay, scheduler=None if args.scheduler == "none" else args.scheduler,
                 patience=args.patience, checkpoint=out, resume=args.resume, seed=args.seed, device=args.device,
                 verbose=not args.quiet)
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized() and dist.get_rank() != 0:
        return 0
    log.info("trained %s (%d parameters) on %d samples: final train loss %.4g, best val loss %.4g "
             "(epoch %s); checkpoint %s, log %s", args.model, model.n_parameters(), len(train_ds),
             hist["train_loss"][-1], hist["best_loss"], hist["best_epoch"], out, log_path(out))
    return 0


def train_nio(args) -> int:
    """``pdeinv train nio --data eit.nc [-O n_basis=64 -O min_measurements=2 ...]``."""


    from pdeinv.data.io import load_dataset

    from pdeinv.surrogates.nio import NIO, eit_pairs, nio_loss
    ds = load_dataset(args.data)
    user = parse_options(args.option)
    diff = bool(user.pop("difference", True))          # difference data by default (see EIT.reference_data)
    wd = float(user.pop("weight_decay", 0.0))          # Adam's L2 term (the CLI's 1e-4) collapsed NIO
    x, y = eit_pairs(ds, difference=diff)
    n = _n_train(args, x.shape[0])
    x, y = x[:n], y[:n]
    if args.val_data:
        vx, vy = eit_pairs(load_dataset(args.val_data), difference=diff)
    else:
        n_val = max(1, int(round(args.val_fraction * x.shape[0])))
        if n_val >= x.shape[0]:
            raise ValueError(f"--val-fraction {args.val_fraction} leaves no training samples of {x.shape[0]}")
        x, y, vx, vy = x[:-n_val], y[:-n_val], x[-n_val:], y[-n_val:]
    opts = dict(n_modes=[min(args.modes, s // 2) for s in y.shape[2:]], hidden_channels=args.width,
                n_layers=args.layers, seed=args.seed, difference=diff)
    check_options(user, "nio", NIO, extra=("difference", "weight_decay"))
    opts.update(user)
    model = NIO(x.shape[-1], out_size=list(y.shape[2:]), in_channels=x.shape[2], n_measurements=x.shape[1], **opts)
    model.fit_normalizers(x, y)
    out = Path(args.out or f"nio-{ds.attrs.get('task', 'eit')}.pt")
    prepare_checkpoint(args, out, ds, model, len(x))
    hist = train(model, TensorDataset(x, y), TensorDataset(vx, vy), loss_fn=nio_loss, val_loss_fn=relative_l2_loss,
                 epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                 weight_decay=wd,
                 scheduler=None if args.scheduler == "none" else args.scheduler, patience=args.patience,
                 checkpoint=out, resume=args.resume, seed=args.seed, device=args.device, verbose=not args.quiet)
    log.info("trained NIO (%d parameters) on %d samples with randomised batching over 1..%d measurements: "
             "best val rel. L2 %.4g; checkpoint %s", model.n_parameters(), len(x), x.shape[1], hist["best_loss"], out)
    return 0


def train_lepde(args) -> int:
    """``pdeinv train lepde --data ns_long.nc [-O in_frames=10 -O horizon=4 -O latent_dim=128 ...]``.

    ``-O step_weights=[1,0.1,0.1,0.1]`` weights the multi-step loss per step (one entry per horizon step),
    ``-O norm=group -O activation=elu`` give the authors' NS encoder/decoder.

    The dataset's state must be a time series ``u (N, T, C, *grid)``; the unknown ``m`` (initial state)
    is prepended as frame 0 when it has the state's shape.
    """

    from pdeinv.data.io import dataset_tensors, load_dataset

    from pdeinv.surrogates.lepde import LEPDE, TrajectoryWindows, lepde_loss
    ds = load_dataset(args.data)
    m, u = dataset_tensors(ds, dtype=torch.float32)
    if u.dim() != m.dim() + 1:
        raise ValueError(f"LE-PDE trains on trajectories: the dataset's u must be a time series (N, T, C, *grid); "
                         f"got {tuple(u.shape)}")
    if tuple(m.shape[1:]) == tuple(u.shape[2:]):
        u = torch.cat([m[:, None], u], 1)
    opts = parse_options(args.option)
    check_options(opts, "lepde", LEPDE, extra=("in_frames", "horizon", "w_consistency", "step_weights"))
    in_frames, horizon = int(opts.pop("in_frames", 1)), int(opts.pop("horizon", 4))
    w_cons = float(opts.pop("w_consistency", 1.0))
    step_weights = opts.pop("step_weights", None)       # the authors' NS runs: [1, 0.1, 0.1, 0.1]
    if step_weights is not None and len(step_weights) != horizon:
        raise ValueError(f"-O step_weights has {len(step_weights)} entries; expected horizon = {horizon}")
    u = u[:_n_train(args, u.shape[0])]
    n_val = max(1, int(round(args.val_fraction * u.shape[0])))
    if n_val >= u.shape[0]:
        raise ValueError(f"--val-fraction {args.val_fraction} leaves no training samples of {u.shape[0]}")
    tr, va = u[:-n_val], u[-n_val:]
    model = LEPDE(list(u.shape[3:]), in_channels=u.shape[2], in_frames=in_frames, seed=args.seed, **opts)
    model.fit_normalizers(tr)
    out = Path(args.out or f"lepde-{ds.attrs.get('task', 'data')}.pt")
    prepare_checkpoint(args, out, ds, model, tr.shape[0], n_items=len(TrajectoryWindows(tr, in_frames, horizon)))

    def loss_fn(mod, batch):
        return lepde_loss(mod, batch, w_consistency=w_cons, step_weights=step_weights)

    hist = train(model, TrajectoryWindows(tr, in_frames, horizon), TrajectoryWindows(va, in_frames, horizon),
                 loss_fn=loss_fn, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                 weight_decay=args.weight_decay, scheduler=None if args.scheduler == "none" else args.scheduler,
                 patience=args.patience, checkpoint=out, resume=args.resume, seed=args.seed, device=args.device,
                 verbose=not args.quiet)
    log.info("trained LE-PDE (%d parameters) on %d trajectories x %d windows: best val loss %.4g; checkpoint %s",
             model.n_parameters(), tr.shape[0], len(TrajectoryWindows(tr, in_frames, horizon)) // tr.shape[0],
             hist["best_loss"], out)
    return 0


def train_vito(args) -> int:
    """``pdeinv train vito --data darcy.nc [-O coarse=16 -O width=16 ...]``: inverse map coarse u -> fine m.

    Time-series data use ``u[:, --time-index]`` (e.g. NS ``w(T)`` -> ``w0``).  ``-O arch=unet`` trains the
    plain U-Net baseline on the same pairs.  ``--sparse F``: the input is ``u`` at a fresh random
    ``F`` of the grid nodes per sample, scattered with its mask (``pdeinv.surrogates.sparse``), so the
    trained ViTO inverts point observations anywhere on the grid (``pdeinv invert --method amortized``).
    """
    from pdeinv.data.io import load_dataset
    from pdeinv.surrogates.sparse import SparseDataset
    from pdeinv.surrogates.unet import UNet
    from pdeinv.surrogates.vito import ViTO, coarsen
    ds = load_dataset(args.data)
    u, m = operator_pairs(ds, "inverse", args.time_index)
    opts = parse_options(args.option)
    check_options(opts, "vito", UNet if opts.get("arch") == "unet" else ViTO, extra=("coarse", "arch"))
    arch = opts.pop("arch", "vito")
    if arch not in ("vito", "unet"):
        raise ValueError(f"-O arch={arch!r}; expected 'vito' or 'unet'")
    if args.sparse is not None and "coarse" in opts:
        raise ValueError("--sparse and -O coarse=... are two different inputs; give one")
    coarse = opts.pop("coarse", 16)
    x = u if args.sparse is not None else coarsen(u, coarse)
    n = _n_train(args, x.shape[0])
    x, m = x[:n], m[:n]
    if args.val_data:
        vu, vm = operator_pairs(load_dataset(args.val_data), "inverse", args.time_index)
        vx = vu if args.sparse is not None else coarsen(vu, coarse)
    else:
        n_val = max(1, int(round(args.val_fraction * x.shape[0])))
        if n_val >= x.shape[0]:
            raise ValueError(f"--val-fraction {args.val_fraction} leaves no training samples of {x.shape[0]}")
        x, m, vx, vm = x[:-n_val], m[:-n_val], x[-n_val:], m[-n_val:]
    if args.sparse is not None:
        train_ds = sparse_training_set(args, x, m)
        val_ds = SparseDataset(vx, vm, fraction=args.sparse, seed=args.seed + 1)
        if arch == "vito":
            opts["sparse"] = True
    else:
        train_ds, val_ds = TensorDataset(x, m), TensorDataset(vx, vm)
    inputs = train_ds.inputs if args.sparse is not None else x
    net = UNet if arch == "unet" else ViTO
    model = net(inputs.shape[1], m.shape[1], out_size=list(m.shape[2:]), seed=args.seed, **opts)
    model.fit_normalizers(inputs, m)
    out = Path(args.out or f"{arch}-{ds.attrs.get('task', 'data')}{'-sparse' if args.sparse else ''}.pt")
    prepare_checkpoint(args, out, ds, model, len(train_ds))
    hist = train(model, train_ds, val_ds, epochs=args.epochs, batch_size=args.batch_size,
                 lr=args.lr, weight_decay=args.weight_decay,
                 scheduler=None if args.scheduler == "none" else args.scheduler, patience=args.patience,
                 checkpoint=out, resume=args.resume, seed=args.seed, device=args.device, verbose=not args.quiet)
    log.info("trained %s (%d parameters) on %d samples, %s -> %s: best val rel. L2 %.4g; checkpoint %s", arch,
             model.n_parameters(), len(train_ds), tuple(inputs.shape[1:]), tuple(m.shape[1:]),
             hist["best_loss"], out)
    return 0


def train_diffusion(args) -> int:
    """``pdeinv train diffusion --data FILE.nc --arch uno|unet``; ``-O`` takes the network's arguments, ``noise``
    (``grf``, ``white`` or a dict such as ``{"kind": "grf", "bc": "zero"}``), ``channels``, ``resolutions``,
    ``ema_decay``, ``gaussian_skip=spectral`` (a Gaussian fitted in the noise basis as the denoiser's linear
    part; :mod:`pdeinv.priors.diffusion.spectral`), ``damp_residual=true`` or ``=SIGMA_C`` (the network's residual
    about it damped at large noise) and the EDM schedule (``sigma_data`` 0.5, ``P_mean`` -1.2, ...)."""
    from pdeinv.data.io import load_dataset
    opts = parse_options(getattr(args, "option", []))
    arch = getattr(args, "arch", None) or opts.pop("arch", "unet")
    opts.pop("arch", None)
    from pdeinv.priors.diffusion.denoisers import ARCHS
    if arch not in ARCHS:
        raise ValueError(f"unknown denoiser architecture {arch!r}; expected one of {sorted(ARCHS)}")
    schedule_keys = ("sigma_data", "P_mean", "P_std", "sigma_min", "sigma_max", "rho")
    check_options(opts, f"the {arch} denoiser", ARCHS[arch],
                  extra=("noise", "channels", "resolutions", "ema_decay", "gaussian_skip", "damp_residual")
                  + schedule_keys)
    schedule = {k: float(opts.pop(k)) for k in schedule_keys if k in opts}   # EDM schedule (default sigma_data 0.5)
    noise = opts.pop("noise", "grf" if arch == "uno" else "white")
    channels = opts.pop("channels", "joint")
    resolutions = opts.pop("resolutions", None)
    ema = opts.pop("ema_decay", 0.995)
    gaussian_skip = opts.pop("gaussian_skip", None)
    damp_residual = opts.pop("damp_residual", False)
    if gaussian_skip and resolutions:
        raise ValueError("-O gaussian_skip=spectral fits its Gaussian on the training grid; it cannot be combined "
                         "with -O resolutions=[...]")
    from pdeinv.priors.diffusion.denoisers import EDMDenoiser
    from pdeinv.priors.diffusion.training import joint_fields, train_denoiser
    ds = load_dataset(args.data)
    x = joint_fields(ds, channels, getattr(args, "time_index", -1))
    x = x[:_n_train(args, x.shape[0])]
    if args.val_data:
        vx = joint_fields(load_dataset(args.val_data), channels)
    else:
        n_val = int(round(args.val_fraction * x.shape[0]))
        if n_val < 1 or n_val >= x.shape[0]:
            raise ValueError(f"--val-fraction {args.val_fraction} leaves no validation or no training samples")
        x, vx = x[:-n_val], x[-n_val:]
    names = [ds.attrs.get("m_name", "m")] + ([ds.attrs.get("u_name", "u")] if channels == "joint" else [])
    model = EDMDenoiser(channels=x.shape[1], arch=arch, arch_kwargs=opts, noise=noise, channel_names=names,
                        seed=args.seed, ema_decay=ema, schedule=schedule, gaussian_skip=gaussian_skip,
                        damp_residual=damp_residual)
    task = ds.attrs.get("task", "data")
    out = Path(args.out or f"diffusion-{arch}-{task}.pt")
    prepare_checkpoint(args, out, ds, model, x.shape[0])
    hist = train_denoiser(model, x, vx, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                          resolutions=resolutions, checkpoint=out, resume=args.resume, seed=args.seed,
                          device=args.device, verbose=not args.quiet, fit_normalizers=not getattr(args, "init", None),
                          scheduler=None if args.scheduler == "none" else args.scheduler)
    log.info("trained a %s denoiser (%s noise, %d parameters) on %d fields %s: final loss %.4g; checkpoint %s",
             arch, model.noise.kind, model.n_parameters(), x.shape[0], tuple(x.shape[1:]), hist["train_loss"][-1], out)
    return 0


#: ``pdeinv train MODEL``: MODEL -> the function that trains it from the parsed arguments.
TRAINERS: Dict[str, Callable[[argparse.Namespace], int]] = {
    "fno": train_operator,
    "deeponet": train_operator,
    "diffusion": train_diffusion,
    "nio": train_nio,
    "lepde": train_lepde,
    "vito": train_vito,
}
