"""``pdeinv invert TASK --obs FILE``: recover the unknown of a task from a user's observations.

The observations come from a netCDF file (variables ``points (obs, coord)`` and
``y (obs)`` or ``(sample, obs)``; ``pdeinv demo`` writes one) or from a mesh
file read with meshio (point coordinates + a point-data array).  The method is
any entry of ``pdeinv.solvers.SOLVERS``, built for the task by
:func:`pdeinv.solvers.build` (the same builder the benchmark harness and the demos use, so
MAP gets the task's prior and bounds, MCMC the task's law, ...); options go through
``--opt KEY=VALUE`` (values parsed as JSON when possible) and trained models through
``--model CKPT`` (``surrogate-map``: a forward surrogate; ``amortized``: an inverse
operator; ``fundps``/``diffusionpde``: a denoiser; ``mcmc-2level``: the screening surrogate).

    pdeinv train fno --data darcy.nc --mode forward -o fno.pt
    pdeinv invert darcy --obs observations.nc --method surrogate-map --model fno.pt
"""
from __future__ import annotations

import json
import logging
import os

import torch

log = logging.getLogger(__name__)


def add_arguments(p) -> None:
    p.add_argument("task", help="task name (e.g. darcy, poisson, helmholtz, ns)")
    p.add_argument("--obs", required=True, help="observation file: netCDF (points, y) or a mesh file")
    p.add_argument("--method", default="map", help="inverse solver from pdeinv.solvers.SOLVERS (default map)")
    p.add_argument("--res", type=int, default=None, help="grid resolution (default: the task's / the file's)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--noise", type=float, default=None, help="relative noise level of the data (fraction of RMS)")
    g.add_argument("--sigma", type=float, default=None, help="absolute noise standard deviation of the data")
    p.add_argument("--field", default="y", help="point-data array to read from a mesh file (default y)")
    p.add_argument("--model", "--checkpoint", dest="model", default=None, metavar="CKPT",
                   help="trained model for learned methods (surrogate-map: forward surrogate; amortized: inverse "
                        "operator; fundps/diffusionpde: denoiser; mcmc-2level: screening surrogate)")
    p.add_argument("--opt", action="append", default=[], metavar="KEY=VALUE",
                   help="solver option (repeatable), e.g. --opt weight=1.0 --opt max_iter=100")
    p.add_argument("-o", "--output", default="pdeinv_invert.nc", help="result netCDF (a PNG is written beside it)")


def parse_options(items):
    opts = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"--opt expects KEY=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        try:
            opts[k] = json.loads(v)
        except json.JSONDecodeError:
            opts[k] = v
    if isinstance(opts.get("bounds"), list):
        opts["bounds"] = tuple(opts["bounds"])
    return opts


def main(args) -> int:
    from pdeinv.data.io import save_dataset
    from pdeinv.cli.observations import load_observations
    from pdeinv.physics import ForwardModel, GaussianNoise
    from pdeinv.plot import compare
    from pdeinv.tasks import get_task

    task = get_task(args.task)
    device = torch.device(args.device)
    if not os.path.exists(args.obs):
        raise FileNotFoundError(f"observation file {args.obs!r} does not exist")
    res = args.res
    if res is None:
        res = task.default_res
        if not args.obs.lower().endswith((".vtu", ".vtk", ".xdmf", ".xmf", ".msh")):
            import xarray as xr
            with xr.open_dataset(args.obs, engine="h5netcdf") as ds:
                res = int(ds.attrs.get("res", res))
    grid, problem = task.make(res)
    obs, y, attrs = load_observations(args.obs, grid, field=args.field)
    noise = None
    if args.noise is not None:
        noise = GaussianNoise(relative=args.noise)
    elif args.sigma is not None:
        noise = GaussianNoise(sigma=args.sigma)
    elif "noise_relative" in attrs:
        noise = GaussianNoise(relative=float(attrs["noise_relative"]))
    elif "noise_sigma" in attrs:
        noise = GaussianNoise(sigma=float(attrs["noise_sigma"]))
    fwd = ForwardModel(problem.to(device), obs.to(device), noise)
    from pdeinv.solvers import build
    solver = build(args.method, task, res, model=args.model, device=device, **parse_options(args.opt))
    if hasattr(solver, "verbose"):
        solver.verbose = not args.quiet
    result = solver(y.to(device), fwd, seed=args.seed)
    ds = result.to_xarray()
    ds.attrs.update({"task": args.task, "method": args.method, "observations": os.path.abspath(args.obs)})
    save_dataset(ds, args.output, validate=False)
    png = os.path.splitext(args.output)[0] + ".png"
    compare(recovered=result.m, sensors=obs, path=png, title=f"{args.task}: {args.method}")
    misfit = float(fwd.misfit(result.m, y.to(device)).mean())
    print(f"pdeinv invert {args.task} ({args.method}): {y.shape[0]} observation set(s), {obs.n_obs} points, "
          f"final misfit {misfit:.4g} (expected about {obs.n_obs / 2:.4g} for calibrated noise)")
    print(f"  result: {args.output}\n  figure: {png}")
    return 0
