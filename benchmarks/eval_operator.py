"""Held-out error of a trained operator (checkpoint or shipped name) on a dataset file: the figure a manifest
entry records as ``validation``.

    python benchmarks/eval_operator.py darcy64-deeponet.pt --data darcy64_test.nc
    python benchmarks/eval_operator.py darcy64-vito.pt --data darcy64_test.nc --sparse 0.0305 --noise 0.01

Forward operators (``mode`` forward in the checkpoint): ``m -> u``.  Inverse operators: ``u -> m``; with
``--sparse F`` each sample is observed at its own random ``F`` of the grid nodes (seed ``--seed + i``) with
``--noise`` relative Gaussian noise (seed ``--seed + 10_000 + i``), through ``pdeinv.solvers.Amortized`` as
``pdeinv invert --method amortized`` runs it.  Prints JSON: rel. L2 mean/std and the mean predictor's (the
mean target field of the same samples); Darcy inverse also the pixel error rate at 7.5.  LE-PDE (a rollout
operator): the trajectories' first ``in_frames`` frames (the initial state is frame 0) in, the rest rolled
out; rel. L2 over all rolled-out frames, per trajectory, and of the last frame.
"""
from __future__ import annotations

import argparse
import json

import numpy as np
import torch


def forward_errors(model, x, y, batch: int = 20):
    """Per-sample rel. L2 of ``model(x)`` against ``y`` (no gradients, in batches)."""
    from pdeinv import metrics
    with torch.no_grad():
        pred = torch.cat([model(x[i:i + batch].float()) for i in range(0, x.shape[0], batch)]).double()
    return metrics.relative_l2(pred, y.double()).numpy()


def eit_errors(model, ds, a):
    """An EIT inverse operator (NIO) as ``pdeinv invert --method amortized`` runs it: the data are the DtN fluxes
    of all patterns at every boundary node (``DtNObservation``) with ``--noise`` relative Gaussian noise (seed
    ``--seed + 10_000 + i``), through ``build("amortized", task, res, model=...)``."""
    from pdeinv import metrics
    from pdeinv.data.io import dataset_tensors, grid_of
    from pdeinv.physics import ForwardModel, GaussianNoise
    from pdeinv.physics.eit import DtNObservation
    from pdeinv.solvers import build
    from pdeinv.tasks import get_task
    task = get_task(ds.attrs["task"])
    res = grid_of(ds).shape[0]
    problem = task.make(res)[1]
    m, u = dataset_tensors(ds)
    solver = build("amortized", task, res, model=model)
    noise = GaussianNoise(relative=a.noise) if a.noise > 0 else None
    errs = []
    for i in range(m.shape[0]):
        obs = DtNObservation(u.shape[-1])
        fwd = ForwardModel(problem, obs, noise=noise)
        yy = obs(u[i:i + 1].double())
        if noise is not None:
            yy = noise(yy, seed=a.seed + 10_000 + i)
        errs.append(float(metrics.relative_l2(solver(yy, fwd).m.double().reshape(m[i:i + 1].shape),
                                              m[i:i + 1].double())))
    out = summary(errs, m, a)
    out["rel_l2_median"] = round(float(np.median(errs)), 5)
    out.update(noise=a.noise, obs_seed=a.seed)
    return out


def rollout_errors(model, ds, a) -> dict:
    """LE-PDE: roll out the frames after the first ``in_frames`` of each trajectory of ``ds`` (frame 0 = ``m``)."""
    from pdeinv import metrics
    from pdeinv.data.io import dataset_tensors
    m, u = dataset_tensors(ds)
    traj = torch.cat([m[:, None], u], 1) if tuple(m.shape[1:]) == tuple(u.shape[2:]) else u
    k = int(model.config["in_frames"])
    with torch.no_grad():
        pred = torch.cat([model(traj[i:i + 16, :k].float(), traj.shape[1] - k)
                          for i in range(0, traj.shape[0], 16)]).double()
    target = traj[:, k:].double()
    out = summary(metrics.relative_l2(pred.flatten(1, 2), target.flatten(1, 2)).numpy(), target.flatten(1, 2), a)
    out["last_frame_rel_l2"] = round(float(metrics.relative_l2(pred[:, -1], target[:, -1]).mean()), 5)
    out.update(in_frames=k, rolled_out=int(traj.shape[1] - k))
    return out


def summary(errs, target, a) -> dict:
    """Mean and spread of the per-sample errors ``errs``, beside the error of the mean predictor (the mean of
    ``target`` over the set, itself evaluated on every sample of ``target``)."""
    from pdeinv import metrics
    errs, t = np.asarray(errs, dtype=float), target.double()
    mean_err = metrics.relative_l2(t.mean(0, keepdim=True).expand_as(t), t).numpy()
    return {"rel_l2": round(float(errs.mean()), 5), "rel_l2_std": round(float(errs.std(ddof=1)), 5),
            "n": len(errs), "mean_predictor_rel_l2": round(float(mean_err.mean()), 5), "set": a.data.split("/")[-1]}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model")
    p.add_argument("--data", required=True)
    p.add_argument("--sparse", type=float, default=None)
    p.add_argument("--noise", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--time-index", type=int, default=-1)
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    from pdeinv import metrics
    from pdeinv.data.io import grid_of, load_dataset
    from pdeinv.nn import pretrained
    from pdeinv.physics import ForwardModel, GaussianNoise, PointObservation
    from pdeinv.solvers import Amortized
    from pdeinv.surrogates import load
    from pdeinv.surrogates.training import operator_pairs
    model = (pretrained.load(a.model) if a.model in pretrained.available() else load(a.model)).eval()
    mode = (getattr(model, "trained_on", None) or {}).get("mode") or "forward"
    if type(model).__name__ == "ViTO":
        mode = "inverse"
    ds = load_dataset(a.data)
    errs, pix = [], []
    if str(ds.attrs.get("task", "")).startswith("eit"):     # NIO: every flux of every pattern, relative noise
        print(json.dumps(eit_errors(model, ds, a)))
        return
    if type(model).__name__ == "LEPDE":
        print(json.dumps(rollout_errors(model, ds, a)))
        return
    x, y = operator_pairs(ds, mode, a.time_index)
    if a.sparse is None:
        errs = forward_errors(model, x, y)
    else:
        grid = grid_of(ds)
        solver = Amortized(model)
        for i in range(x.shape[0]):
            obs = PointObservation.random(grid, fraction=a.sparse, seed=a.seed + i)
            noise = GaussianNoise(relative=a.noise) if a.noise > 0 else None
            fwd = ForwardModel(torch.nn.Identity(), obs, noise=noise)
            yy = obs(x[i:i + 1].double())
            if noise is not None:
                yy = noise(yy, seed=a.seed + 10_000 + i)
            pred = solver(yy, fwd).m.double()
            errs.append(float(metrics.relative_l2(pred, y[i:i + 1].double())))
            if ds.attrs.get("task") == "darcy":
                pix.append(float(metrics.error_rate(pred, y[i:i + 1].double())))
    out = summary(errs, y, a)
    if a.sparse is not None:
        out.update(fraction=a.sparse, noise=a.noise, obs_seed=a.seed)
    if pix:
        out["pixel_error"] = round(float(np.mean(pix)), 5)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
