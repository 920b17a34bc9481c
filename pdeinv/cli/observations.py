"""Read and write point observations (sensor coordinates + values) as netCDF.

File layout (xarray, schema ``pdeinv.observations/1``): variable ``points`` with dims
``(obs, coord)`` holding physical coordinates, variable ``y`` with dims ``(obs,)`` or
``(sample, obs)``; attrs ``task`` and ``grid`` (JSON of ``grid.to_dict()``: the task and
grid the data belong to, which ``pdeinv invert`` checks), ``res``, and the noise level
``noise_relative`` or ``noise_sigma`` (0 = exact data: see :mod:`pdeinv.physics.noise` for
how exact data are weighted).  netCDF4 and netCDF3 files are read.  Mesh files (VTK, XDMF,
Gmsh, ...) are read through ``pdeinv.data.mesh``; they carry no task, grid or noise level.

Space-time observations (:class:`~pdeinv.physics.spacetime.SpaceTimePointObservation`, for time-dependent
tasks): a netCDF file with a variable ``times`` ``(obs,)`` beside ``points`` ``(obs, d)`` (or ``points`` with
``d + 1`` columns, the time last); a CSV file with a header naming the columns ``x[, y], t`` and one value
column (``value``, the ``--field`` name, or the only other column); a mesh file with a point-data array
``t`` (or ``time``).  A netCDF file may also hold fields the unknown needs fixed (e.g. ``u0`` ``(x,)`` when
``--unknown nu``), with dims ``x_grid[, y_grid]`` on the file's ``grid``; :func:`read_given_fields` reads them.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import numpy as np
import torch

from pdeinv._validation import check_finite, file_mode

SCHEMA = "pdeinv.observations/1"
CSV_SUFFIXES = {".csv", ".txt"}
TIME_NAMES = ("t", "time")
MESH_SUFFIXES = {".vtu", ".vtk", ".xdmf", ".xmf", ".msh", ".ply", ".obj", ".stl", ".mesh", ".med", ".h5m"}


def is_mesh(path) -> bool:
    return Path(str(path)).suffix.lower() in MESH_SUFFIXES


def is_csv(path) -> bool:
    return Path(str(path)).suffix.lower() in CSV_SUFFIXES


def save_observations(path, points, y, *, grid=None, times=None, fields=None, **attrs) -> str:
    """Write ``points`` ``(P, d)`` and ``y`` ``(P,)`` or ``(B, P)`` (or ``(B, 1, P)``) atomically.

    ``grid``: the grid the data were made on (stored as the ``grid`` attr, with ``res``);
    ``times``: ``(P,)`` observation times (space-time observations); ``fields``: ``{name: (1, 1, *grid)}``
    known inputs on ``grid`` (e.g. ``u0``), stored with dims ``x_grid[, y_grid]`` (node coordinates);
    other keyword arguments become attrs (``task=``, ``noise_relative=``, ...; ``None`` is dropped).
    """
    import xarray as xr
    pts = np.asarray(points.detach().cpu() if torch.is_tensor(points) else points, dtype=float)
    yy = np.asarray(y.detach().cpu() if torch.is_tensor(y) else y, dtype=float)
    if yy.ndim == 3:
        yy = yy[:, 0]
    dims = ("obs",) if yy.ndim == 1 else ("sample", "obs")
    at: Dict[str, Any] = {"schema": SCHEMA}
    if grid is not None:
        at["grid"] = json.dumps(grid.to_dict())
        at.setdefault("res", int(grid.shape[0]))
    at.update({k: v for k, v in attrs.items() if v is not None})
    data = {"points": (("obs", "coord"), pts), "y": (dims, yy)}
    if times is not None:
        data["times"] = (("obs",), np.asarray(times.detach().cpu() if torch.is_tensor(times) else times,
                                              dtype=float).reshape(-1))
    coords = {}
    for name, v in (fields or {}).items():
        if grid is None:
            raise ValueError("fields= needs grid= (the grid they live on)")
        arr = np.asarray(v.detach().cpu() if torch.is_tensor(v) else v, dtype=float).reshape(grid.shape)
        sp = ("x_grid", "y_grid")[:grid.ndim]          # not "y": that is the observations' variable
        data[name] = (sp, arr)
        coords.update({d: c.numpy() for d, c in zip(sp, grid.coords())})
    ds = xr.Dataset(data, coords=coords, attrs=at)
    path = os.fspath(path)
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=d, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    os.close(fd)
    try:
        ds.to_netcdf(tmp, engine="h5netcdf")
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def _open_netcdf(path: Path):
    """``xarray.Dataset`` of a netCDF4/HDF5 file, or of a netCDF3 (classic) file; ``ValueError`` otherwise."""
    import xarray as xr
    errors = []
    for engine in ("h5netcdf", "scipy"):
        try:
            return xr.load_dataset(path, engine=engine)
        except Exception as err:  # noqa: PERF203 - each engine raises its own types on a foreign file
            errors.append(f"{engine}: {type(err).__name__}: {str(err).splitlines()[0][:120] if str(err) else ''}")
    raise ValueError(f"cannot read observation file {str(path)!r} as netCDF4 or netCDF3 ({'; '.join(errors)}); "
                     "expected a netCDF file with variables 'points' (obs, coord) and 'y' (obs) or (sample, obs), "
                     f"or a mesh file with one of the suffixes {sorted(MESH_SUFFIXES)}")


def _csv_observations(path: Path, ndim: int, field: str, dtype):
    from pdeinv.data.io import read_point_table
    cols = read_point_table(path)
    space = ["x", "y"][:ndim]
    missing = [c for c in space if c not in cols]
    if missing:
        raise ValueError(f"{path.name}: no column {missing[0]!r}; a {ndim}-D task needs the coordinate columns "
                         f"{space} (then t for space-time data, and a value column); found {list(cols)}")
    tcol = [c for c in TIME_NAMES if c in cols]
    rest = [c for c in cols if c not in space and c not in TIME_NAMES]
    pick = [c for c in (field, "value") if c in rest]
    if pick:
        vname = pick[0]
    elif len(rest) == 1:
        vname = rest[0]
    else:
        raise ValueError(f"{path.name}: cannot tell which column holds the values among {rest}; name it 'value' "
                         "or choose it with --field")
    pts = np.stack([cols[c] for c in space] + ([cols[tcol[0]]] if tcol else []), 1)
    y = torch.as_tensor(cols[vname], dtype=dtype).reshape(1, 1, -1)
    return pts, y, {}


def read_observation_file(path, ndim: int, field: str = "y", dtype=torch.float64,
                          allow_time: bool = False) -> Tuple[np.ndarray, torch.Tensor, Dict[str, Any]]:
    """``(points (P, ndim), y (B, 1, P), attrs)`` from a netCDF, CSV or mesh file, checked (finite, sizes agree,
    ``ndim`` coordinates) but not yet placed on a grid.  ``attrs`` holds ``task``, ``grid`` (a dict),
    ``res`` and the noise level where the file has them.  With ``allow_time``, space-time observations
    (see the module docstring) come back as ``points`` ``(P, ndim + 1)``, the time last; without it they are
    refused with a clear error."""
    pts, y, attrs = _read_observation_file(Path(path), ndim, field, dtype)
    if pts.shape[1] == ndim + 1 and not allow_time:
        raise ValueError(f"{Path(path).name} holds space-time observations (coordinates and a time per point); "
                         "they need a time-dependent problem (SpaceTimePointObservation)")
    return pts, y, attrs


def _read_observation_file(path: Path, ndim: int, field: str, dtype):
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"observation file {str(path)!r} does not exist")
    if path.is_dir():
        raise ValueError(f"observation file {str(path)!r} is a folder; expected a netCDF or mesh file")
    if is_csv(path):
        return _csv_observations(path, ndim, field, dtype)
    if is_mesh(path):
        from pdeinv.data.mesh import _mesh_points, mesh_times, read_mesh
        mesh = read_mesh(path)
        pts = _mesh_points(mesh.points, ndim, str(path))
        times = mesh_times(mesh, str(path))
        if times is not None:
            pts = np.concatenate([pts, times[:, None]], 1)
        if field not in mesh.point_data:
            raise ValueError(f"{path} has no point data {field!r}; available arrays: {sorted(mesh.point_data)} "
                             "(choose one with --field)")
        vals = np.asarray(mesh.point_data[field], dtype=float)
        if vals.ndim == 2 and vals.shape[1] == 1:
            vals = vals[:, 0]
        if vals.ndim != 1:
            raise ValueError(f"{path}: point data {field!r} has shape {vals.shape}; expected one value per point")
        y = torch.as_tensor(vals.copy(), dtype=dtype).reshape(1, 1, -1)
        check_finite(y, f"point data {field!r} in {path.name}")
        return pts, y, {}
    ds = _open_netcdf(path)
    for v in ("points", "y"):
        if v not in ds:
            raise ValueError(f"observation file {str(path)!r} has no variable {v!r}; expected 'points' (obs, coord) "
                             f"and 'y' (obs) or (sample, obs); found {sorted(map(str, ds.data_vars))}")
    attrs = dict(ds.attrs)
    for k, v in list(attrs.items()):
        if isinstance(v, np.generic):
            attrs[k] = v.item()
    if isinstance(attrs.get("grid"), str):
        try:
            attrs["grid"] = json.loads(attrs["grid"])
        except json.JSONDecodeError:
            raise ValueError(f"{path.name}: the 'grid' attribute is not JSON of grid.to_dict(): "
                             f"{attrs['grid'][:80]!r}") from None
    pv, yv = ds["points"].values, ds["y"].values
    for name, arr in (("points", pv), ("y", yv)):
        if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
            raise ValueError(f"{path.name}: variable {name!r} holds {arr.dtype} values; expected numbers")
    pts = np.asarray(pv, dtype=float)
    if "times" in ds:
        tv = np.asarray(ds["times"].values, dtype=float)
        if pts.ndim != 2 or pts.shape[1] != ndim or tv.shape != (pts.shape[0],):
            raise ValueError(f"{path.name}: 'points' {pts.shape} and 'times' {tv.shape}; expected (P, {ndim}) "
                             "coordinates and one time per point (P,)")
        pts = np.concatenate([pts, tv[:, None]], 1)
    elif pts.ndim != 2 or pts.shape[1] not in (ndim, ndim + 1):
        raise ValueError(f"{path.name}: 'points' has shape {pts.shape}; expected (P, {ndim}) coordinates for this "
                         f"task's {ndim}-D grid, or (P, {ndim + 1}) space-time points (time last)")
    if not np.isfinite(pts).all():
        raise ValueError(f"{path.name}: 'points' (or 'times') contains NaN/inf coordinates")
    if yv.ndim not in (1, 2):
        raise ValueError(f"{path.name}: 'y' has shape {yv.shape}; expected (obs,) or (sample, obs)")
    y = torch.as_tensor(np.asarray(yv, dtype=float), dtype=dtype)
    check_finite(y, f"observations in {path.name}")
    if y.shape[-1] != pts.shape[0]:
        raise ValueError(f"{path.name}: y has {y.shape[-1]} values but there are {pts.shape[0]} points")
    if y.numel() == 0:
        raise ValueError(f"{path.name}: the file holds no observations")
    for key in ("noise_relative", "noise_sigma"):
        if key in attrs:
            try:
                level = float(attrs[key])
            except (TypeError, ValueError):
                raise ValueError(f"{path.name}: attribute {key} = {attrs[key]!r} is not a number") from None
            if not (np.isfinite(level) and level >= 0):
                raise ValueError(f"{path.name}: attribute {key} = {attrs[key]!r}; expected a noise level >= 0")
            attrs[key] = level
    return pts, y.reshape(-1, 1, y.shape[-1]), attrs


def check_file_matches(attrs: Dict[str, Any], task_name: str, grid, where: str) -> Optional[str]:
    """Refuse observations made for another task or on another domain; return a note when only the
    resolution differs (point data are at physical coordinates, so they can be inverted on any grid)."""
    ft = attrs.get("task")
    if ft is not None and str(ft) != task_name:
        raise ValueError(f"{where} holds observations of task {ft!r}, not {task_name!r}: run "
                         f"`pdeinv invert {ft} --obs {where}`, or give observations of {task_name!r}")
    g = attrs.get("grid")
    if not isinstance(g, dict):
        return None
    mine = grid.to_dict()
    diff = {k: (g.get(k), mine.get(k)) for k in ("kind", "length", "bc") if g.get(k) != mine.get(k)}
    if diff:
        raise ValueError(f"{where} was made on a {g.get('kind')} grid with "
                         + ", ".join(f"{k}={a}" for k, (a, _) in diff.items())
                         + f"; task {task_name!r} works on " + ", ".join(f"{k}={b}" for k, (_, b) in diff.items()))
    if g.get("n") != mine.get("n"):
        return (f"the observations were made on a {g.get('n')} grid; inverting on {mine.get('n')} "
                "(the sensors are at physical coordinates)")
    return None


def make_observation(points: np.ndarray, grid, problem=None, where: str = "observations"):
    """The observation operator of ``points``: ``(P, d)`` -> :class:`PointObservation` on ``grid``;
    ``(P, d + 1)`` (time last) -> :class:`SpaceTimePointObservation` of the time-dependent ``problem``."""
    from pdeinv.physics.observation import PointObservation
    from pdeinv.physics.spacetime import SpaceTimePointObservation
    pts = torch.as_tensor(points, dtype=torch.float64)
    try:
        if pts.dim() == 2 and pts.shape[1] == grid.ndim + 1:
            if problem is None or getattr(problem, "record_times", None) is None:
                d = grid.ndim
                raise ValueError(f"points have shape {tuple(pts.shape)}; expected (P, {d}) coordinates for this "
                                 f"task's {d}-D grid (a column more, a time per point, needs a time-dependent task "
                                 "that stores a trajectory)")
            return SpaceTimePointObservation.for_problem(problem, pts[:, :grid.ndim], pts[:, grid.ndim])
        return PointObservation(grid, pts)
    except ValueError as err:
        raise ValueError(f"{where}: {err}") from None


def load_observations(path, grid, dtype=torch.float64, field: str = "y", problem=None):
    """Return ``(observation, y (B, 1, P), attrs)`` from a netCDF, CSV or mesh file (``field``: the point-data
    array or column holding the values); space-time points give a ``SpaceTimePointObservation`` of ``problem``."""
    pts, y, attrs = read_observation_file(path, grid.ndim, field=field, dtype=dtype, allow_time=problem is not None)
    return make_observation(pts, grid, problem, Path(path).name), y, attrs


def read_given_fields(path, names, grid, dtype=torch.float64) -> Dict[str, torch.Tensor]:
    """Known input fields stored in a netCDF observation file, ``{name: (1, 1, *grid.shape)}`` on ``grid``.

    A field is stored on the file's ``grid`` (attr) with dims ``x_grid[, y_grid]``; on another resolution it is
    interpolated (linearly / bilinearly, exact at shared nodes).  Names absent from the file are skipped;
    CSV and mesh files hold no fields (an empty dict).
    """
    path = Path(path)
    if is_csv(path) or is_mesh(path):
        return {}
    ds = _open_netcdf(path)
    out = {}
    for name in names:
        if name not in ds or name in ("points", "y", "times"):
            continue
        arr = np.asarray(ds[name].values, dtype=float)
        gd = ds.attrs.get("grid")
        from pdeinv.physics.grid import grid_from_dict
        fgrid = grid_from_dict(json.loads(gd)) if isinstance(gd, str) else grid
        if tuple(arr.shape) != tuple(fgrid.shape):
            raise ValueError(f"{path.name}: variable {name!r} has shape {arr.shape}; expected the file grid's "
                             f"{tuple(fgrid.shape)}")
        if not np.isfinite(arr).all():
            raise ValueError(f"{path.name}: variable {name!r} contains NaN/inf")
        t = torch.as_tensor(arr, dtype=dtype)[None, None]
        if tuple(fgrid.shape) != tuple(grid.shape):
            from pdeinv.data.mesh import grid_points
            from pdeinv.physics.observation import PointObservation
            nodes = torch.as_tensor(grid_points(grid, zcol=False), dtype=torch.float64)
            t = PointObservation(fgrid, nodes)(t).reshape(1, 1, *grid.shape).to(dtype)
        out[name] = t
    return out
