"""``pdeinv invert TASK --obs FILE``: recover the unknown of a task from a user's observations.

The observations come from a netCDF file (variables ``points (obs, coord)`` and
``y (obs)`` or ``(sample, obs)``; ``pdeinv demo`` writes one, with the task and grid it
belongs to, which are checked) or from a mesh file read with meshio (point coordinates +
a point-data array).  The method is any entry of ``pdeinv.solvers.SOLVERS``, built for the
task by :func:`pdeinv.solvers.build` (the same builder the benchmark harness and the demos
use, so MAP gets the task's prior and bounds, MCMC the task's law, ...); options go through
``--opt KEY=VALUE`` (values parsed as JSON when possible) and trained models through
``--model CKPT``.

Noise: ``--noise`` (relative) or ``--sigma`` (absolute), else the file's ``noise_relative`` /
``noise_sigma``.  Data with no noise level, or a level of 0, are exact data: the misfit
weights them as 1 % relative noise (``pdeinv.physics.noise.DEFAULT_RELATIVE_NOISE``), with
a warning, and the result records ``noise_assumed``.

    pdeinv train fno --data darcy.nc --mode forward -o fno.pt
    pdeinv invert darcy --obs observations.nc --method surrogate-map --model fno.pt

Unknowns: ``--unknown`` picks what to recover among the task's declared unknowns (``Task.unknowns``,
listed by ``--help``): its field (the default), a scalar parameter (``burgers``: ``nu``; ``ns``: ``nu``,
``amplitude``; ``helmholtz``: ``k``), recovered by MAP with the field it needs fixed read from the
observation file (variable ``u0``, ``w0`` or ``f``), or the field and scalars together (``u0,nu``).
Space-time observation files (a time per point: netCDF ``times``, CSV column ``t``, mesh array ``t``)
give a :class:`~pdeinv.physics.spacetime.SpaceTimePointObservation` of the task's trajectory.

    pdeinv invert burgers --unknown nu --obs burgers_nu.nc
"""
from __future__ import annotations

import json
import logging
import os

log = logging.getLogger(__name__)

#: what each method needs beyond the observations (shown by ``pdeinv invert --help``)
METHOD_NOTES = {
    "map": "the task's classical prior and bounds",
    "mcmc": "pCN under the task's law (tasks whose law is a transformed Gaussian field)",
    "pinn": "a physics-informed network (deepxde); tasks with a PINN residual",
    "surrogate-map": "--model: a forward surrogate (pdeinv train fno|deeponet --mode forward)",
    "amortized": "--model: an inverse operator (pdeinv train vito | nio | fno --mode inverse --sparse F)",
    "fundps": "--model: a joint-field denoiser (pdeinv train diffusion --arch uno)",
    "diffusionpde": "--model: a joint-field denoiser (pdeinv train diffusion --arch unet)",
    "mcmc-2level": "--model: a forward surrogate as the screen; tasks whose law is a transformed Gaussian field",
    "gaussian": "the exact Gaussian posterior of a linear problem (tasks with a Gaussian MAP prior)",
    "laplace": "a Gaussian at the MAP point (tasks with a Gaussian MAP prior)",
}

#: methods that need the Gaussian field behind the task's law (``task.latent``)
NEEDS_LATENT = {"mcmc", "mcmc-2level"}
#: methods that need a Gaussian MAP prior among the task's defaults (not TV/H1; see pdeinv.solvers.factory)
NEEDS_GAUSSIAN_PRIOR = {"gaussian", "laplace"}


def _is_linear(task) -> bool:
    """Whether the task's forward map is linear in m (a random probe on an 8-point grid)."""
    try:
        import torch

        from pdeinv.physics import ForwardModel, PointObservation
        from pdeinv.solvers.gaussian import check_linear
        grid, problem = task.make(8)
        sg = getattr(problem, "state_grid", None) or grid
        fwd = ForwardModel(problem, PointObservation.random(sg, fraction=0.5, seed=0))
        with torch.no_grad():
            check_linear(fwd, task.latent(grid)[0], 1)
        return True
    except Exception:  # noqa: BLE001 - not linear, or not probeable: not offered
        return False


def methods_for_task(task) -> list:
    """The methods of ``pdeinv.solvers.SOLVERS`` that ``pdeinv invert`` can run on ``task``: built by
    :func:`pdeinv.solvers.build` with the task's defaults (a builder in ``BUILDERS``), with what the method
    needs from the task (a Gaussian law, a PINN residual, a linear forward map) and, where
    :data:`pdeinv.solvers.NEEDS_MODEL` says so, a trained model given with ``--model``."""
    from pdeinv.solvers import BUILDERS, SOLVERS
    out = []
    for name in SOLVERS:
        if name not in BUILDERS:
            continue
        if name in NEEDS_LATENT and task.latent is None:
            continue
        if name in NEEDS_GAUSSIAN_PRIOR and isinstance(task.map_options.get("prior"), (str, type(None))):
            continue
        if name == "pinn":
            try:
                from pdeinv.solvers.pinn.residuals import PINN_PROBLEMS
                if type(task.make(8)[1]).__name__ not in PINN_PROBLEMS:
                    continue
            except Exception:  # noqa: BLE001 - a task that cannot be built small has no PINN here
                continue
        if name == "gaussian" and not _is_linear(task):
            continue
        out.append(name)
    return out


def _methods_epilog() -> str:
    try:
        from pdeinv.solvers import NEEDS_MODEL
        from pdeinv.tasks import TASKS
    except ImportError:  # pragma: no cover
        return ""
    from pdeinv.solvers import SOLVERS
    lines = ["methods:"]
    for name in SOLVERS:
        doc = (SOLVERS[name].__doc__ or "").strip().splitlines()
        lines.append(f"  {name:<14} {METHOD_NOTES.get(name) or (doc[0] if doc else '')}")
    lines.append("")
    lines.append("unknowns per task (--unknown; the first is the default; scalars by map, also with the field: A,B):")
    for t in sorted(TASKS):
        task = TASKS[t]
        desc = [f"{u.name} ({u.kind})" for u in task.unknowns.values()] or [task.m_name]
        lines.append(f"  {t + ':':<19} {', '.join(desc)}")
    lines.append("")
    lines.append("methods available per task (* needs --model CKPT):")
    for t in sorted(TASKS):
        ms = [m + ("*" if m in NEEDS_MODEL else "") for m in methods_for_task(TASKS[t])]
        lines.append(f"  {t:<15} {', '.join(ms)}")
    return "\n".join(lines)


def add_arguments(p) -> None:
    from pdeinv.solvers import SOLVERS
    from pdeinv.tasks import TASKS
    p.epilog = _methods_epilog()
    p.add_argument("task", help=f"task name: one of {', '.join(sorted(TASKS))}")
    p.add_argument("--obs", required=True, help="observation file: netCDF (points, y[, times]), CSV (columns x[, y][, "
                                                "t], value) or a mesh file (point data y[, t])")
    p.add_argument("--unknown", default=None, metavar="NAME[,NAME]",
                   help="what to recover: one of the task's unknowns (listed below; default its field), e.g. "
                        "--unknown nu, or the field with scalars, --unknown u0,nu")
    p.add_argument("--method", default="map",
                   help=f"inverse solver (default map): one of {', '.join(SOLVERS)}; see the list per task below")
    p.add_argument("--res", type=int, default=None,
                   help="grid resolution (default: the file's, else the task's); a pdeinv observation file made on "
                        "another resolution is inverted on this one (the sensors are at physical coordinates)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--noise", type=float, default=None,
                   help="relative noise level of the data (fraction of their RMS); 0 = exact data (weighted as 1 %%)")
    g.add_argument("--sigma", type=float, default=None,
                   help="absolute noise standard deviation of the data; 0 = exact data (weighted as 1 %% relative)")
    p.add_argument("--field", default="y", help="point-data array to read from a mesh file (default y)")
    p.add_argument("--model", "--checkpoint", dest="model", default=None, metavar="CKPT|NAME",
                   help="trained model for learned methods (surrogate-map: forward surrogate; amortized: inverse "
                        "operator; fundps/diffusionpde/daps: denoiser; mcmc-2level: screening surrogate): a "
                        "checkpoint file or a shipped model's name (`pdeinv models`); default: the model shipped "
                        "for the task and method, if any")
    p.add_argument("--opt", action="append", default=[], metavar="KEY=VALUE",
                   help="solver option (repeatable), e.g. --opt weight=1.0 --opt max_iter=100; an unknown key is "
                        "refused with the list of the method's options")
    p.add_argument("-o", "--output", default="pdeinv_invert.nc",
                   help="result file (default pdeinv_invert.nc): netCDF, or a mesh format by its suffix (.vtu, .vtk, "
                        ".xdmf, ...: the fields on the grid through meshio, the sensors with y beside it as "
                        "<stem>_sensors<suffix>); a PNG figure <stem>.png is written beside it")
    p.add_argument("--overwrite", action="store_true", help="replace the output files if they exist")


def parse_options(items):
    opts = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"--opt expects KEY=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        if not k.strip():
            raise ValueError(f"--opt expects KEY=VALUE, got {item!r}")
        try:
            opts[k.strip()] = json.loads(v)
        except json.JSONDecodeError:
            opts[k.strip()] = v
    if isinstance(opts.get("bounds"), list):
        opts["bounds"] = tuple(opts["bounds"])
    return opts


def output_paths(args):
    """The files ``invert`` writes: the result, the figure and, for a mesh result, the sensor mesh."""
    from pdeinv.cli.observations import is_mesh
    stem, ext = os.path.splitext(args.output)
    paths = [args.output, stem + ".png"]
    if is_mesh(args.output):
        from pdeinv.data.mesh import sensors_path
        paths.append(str(sensors_path(args.output)))
        if ext.lower() in (".xdmf", ".xmf"):
            paths.append(stem + ".h5")
    return paths


def interrupted(args) -> str:
    """What ``pdeinv invert`` says on Ctrl-C: the result is written only once the solve has finished."""
    return (f"nothing was written ({args.output} is written only when the solve has finished; the input files are "
            "unchanged); run the same command again to start the solve over")


def _noise(args, attrs):
    """The data's noise model: ``--noise``/``--sigma``, else the file's level, else None.  A missing or zero
    level is the exact-data case: the forward model weights the misfit as 1 % relative noise and the solver
    logs a warning and records ``noise_assumed`` (:mod:`pdeinv.physics.noise`)."""
    from pdeinv.physics import GaussianNoise
    if args.noise is not None:
        return GaussianNoise(relative=args.noise)
    if args.sigma is not None:
        return GaussianNoise(sigma=args.sigma)
    if "noise_relative" in attrs:
        return GaussianNoise(relative=float(attrs["noise_relative"]))
    if "noise_sigma" in attrs:
        return GaussianNoise(sigma=float(attrs["noise_sigma"]))
    return None


def main(args) -> int:
    from pdeinv.cli._checks import check_device, check_output
    from pdeinv.cli.observations import check_file_matches, make_observation, read_given_fields, read_observation_file
    from pdeinv.tasks import get_task

    task = get_task(args.task)
    device = check_device(args.device)
    if not os.path.exists(args.obs):
        raise FileNotFoundError(f"observation file {args.obs!r} does not exist")
    if isinstance(args.model, str) and not os.path.exists(args.model):
        from pdeinv.nn import pretrained
        if args.model not in pretrained.manifest():
            raise FileNotFoundError(f"--model {args.model!r} does not exist (neither a file nor a shipped model; "
                                    f"shipped: {pretrained.available() or 'none'}, see `pdeinv models`)")
    opts = parse_options(args.opt)
    for path in output_paths(args):          # before any work: never an input, never silently replaced
        check_output(path, inputs=[args.obs, args.model], overwrite=args.overwrite)

    # read and check the file first (a corrupt file is an error before anything else is built)
    ndim = task.grid(task.default_res).ndim
    task.setup(args.unknown, 8 if ndim == 2 else 16, _probe_given(task, args.unknown))  # a bad --unknown fails now
    points, y, attrs = read_observation_file(args.obs, ndim, field=args.field, allow_time=True)
    file_res = attrs.get("res")
    res = args.res or (int(file_res) if file_res is not None else task.default_res)
    grid = task.grid(res)
    note = check_file_matches(attrs, args.task, grid, args.obs)
    if note:
        log.warning("%s: %s", args.obs, note)
    setup = task.setup(args.unknown, res, read_given_fields(args.obs, _given_names(task), grid))
    problem = setup.problem
    if setup.field is None or setup.scalars:
        if args.method != "map":
            raise ValueError(f"--unknown {args.unknown} is recovered by --method map (scalar parameters, alone or "
                             f"with the field); got --method {args.method}")
        opts = {**setup.map_options, **opts}

    import torch

    from pdeinv.physics import ForwardModel
    from pdeinv.solvers import build
    obs = make_observation(points, getattr(problem, "state_grid", None) or grid, problem, args.obs)
    noise = _noise(args, attrs)
    fwd = ForwardModel(problem.to(device), obs.to(device), noise)
    solver = build(args.method, task, res, model=args.model, device=device, **opts)
    if hasattr(solver, "verbose"):
        solver.verbose = not args.quiet
    y = y.to(device)
    log.info("solving: %d observation set(s) of %d points, %s on a %s grid (res %d)", y.shape[0], obs.n_obs,
             args.method, "x".join(map(str, grid.shape)), res)
    result = solver(y, fwd, seed=args.seed)

    info = {"task": args.task, "method": args.method, "observations": os.path.abspath(args.obs), "res": int(res),
            "unknown": ",".join(([setup.field] if setup.field else []) + setup.scalars)}
    if fwd.noise_assumed:
        info["noise_assumed"] = fwd.noise_assumed
    if note:
        info["observations_grid"] = note
    misfit = float(fwd.misfit(result.m, y).mean())
    parts = setup.split(result.m.detach())
    scalars = {k: parts[k].reshape(-1).tolist() for k in setup.scalars}
    for k, v in scalars.items():
        info[k] = v[0] if len(v) == 1 else json.dumps(v)
    if setup.scalars:        # the result holds the field (if any) on the grid, the scalars as variables and attrs
        result.m, result.grid = (parts[setup.field] if setup.field else result.m), grid
    _write_result(args, result, grid, obs, y, info, scalars)
    png = os.path.splitext(args.output)[0] + ".png"
    title = f"{args.task}: {args.method}" + "".join(f", {k} = {v[0]:.5g}" for k, v in scalars.items())
    if setup.field is not None:
        from pdeinv.plot import compare
        compare(recovered=result.m, sensors=obs if grid.ndim == 2 else None, path=png, title=title)  # 1-D: no map
    else:
        with torch.no_grad():
            _fit_figure(png, y, fwd.A(result.m), title)
    weights = "assumed 1 % noise" if fwd.noise_assumed else "calibrated noise"
    print(f"pdeinv invert {args.task} ({args.method}): {y.shape[0]} observation set(s), {obs.n_obs} points, "
          f"final misfit {misfit:.4g} (expected about {obs.n_obs / 2:.4g} for {weights})")
    for k, v in scalars.items():
        print(f"  {k} = " + ", ".join(f"{x:.6g}" for x in v))
    print(f"  result: {args.output}\n  figure: {png}")
    return 0


def _given_names(task):
    return sorted({u.given for u in task.unknowns.values() if u.given})


def _probe_given(task, spec):
    """Zero stand-ins for the fixed fields, so that a bad ``--unknown`` is refused before the file is read."""
    import torch
    res = 8 if task.grid(task.default_res).ndim == 2 else 16
    g = task.grid(res)
    return {n: torch.zeros(1, 1, *g.shape, dtype=torch.float64) for n in _given_names(task)}


def _fit_figure(path, y, pred, title) -> None:
    """Observed against predicted values (the figure of a scalar unknown)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    yo, yp = y.detach().cpu().reshape(-1).numpy(), pred.cpu().reshape(-1).numpy()
    ax.plot(yo, yp, ".", ms=3)
    lo, hi = float(min(yo.min(), yp.min())), float(max(yo.max(), yp.max()))
    ax.plot([lo, hi], [lo, hi], "k-", lw=0.8)
    ax.set_xlabel("observed"); ax.set_ylabel("predicted at the estimate"); ax.set_title(title, fontsize=9)
    fig.tight_layout(); fig.savefig(path, dpi=100); plt.close(fig)


def _write_result(args, result, grid, obs, y, info, scalars=None) -> None:
    from pdeinv.cli.observations import is_mesh
    if not is_mesh(args.output):
        from pdeinv.data.io import save_dataset
        ds = result.to_xarray()
        for k, v in (scalars or {}).items():
            ds[k] = (("sample",), v)
        ds.attrs.update(info)
        save_dataset(ds, args.output, validate=False)
        return
    from pdeinv.data.mesh import export_field
    shape = tuple(grid.shape)
    fields = {"m": result.m}
    for name in ("u", "std"):
        v = getattr(result, name, None)
        if v is not None and tuple(v.shape[-len(shape):]) == shape:
            fields[name] = v
    export_field(args.output, grid, fields, points=obs.points, point_data={"y": y[0].reshape(-1)}
                 if y.shape[0] == 1 and y[0].numel() == obs.n_obs else None)
