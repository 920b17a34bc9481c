r"""Datasets on disk: the ``pdeinv.dataset/1`` schema, netCDF4 (h5netcdf) and zarr.

A pdeinv dataset is an :class:`xarray.Dataset` holding pairs ``(m, u)`` drawn
from a task's law and solved by its simulator:

============  ===============================================  =====================================
variable      dims                                             meaning
============  ===============================================  =====================================
``m``         ``sample, x, y`` (1-D grid: ``sample, x``)       the unknown (coefficient, source, w0)
``u``         ``sample, x, y`` or ``sample, time, x, y``       the state; ``time`` for time series
============  ===============================================  =====================================

Coordinates ``x``, ``y`` are the node coordinates of the grid (``grid.coords()``),
``time`` the record times.  When the state lives on a different grid than
the unknown (``problem.state_grid``), ``u`` uses the dims ``x_u, y_u`` with their
own coordinates and the attribute ``state_grid``.  Fields with more than one
channel get a ``m_channel`` / ``u_channel`` dim after ``sample`` (and ``time``).

Attributes (all required): ``schema = "pdeinv.dataset/1"``, ``task``, ``grid``
(JSON of ``grid.to_dict()``), ``m_name``, ``u_name`` (physical names, e.g.
``a`` / ``pressure``), ``law`` (the law of ``m`` in words), ``seed``; plus the
task's PDE parameters.  Attribute values that netCDF cannot hold (dicts, lists,
booleans, None) are JSON-encoded on write and decoded on read; the keys so
encoded are listed in the attribute ``_json_attrs``.

Writes are atomic: a temporary file (or folder, for zarr) next to the target is
renamed over it only once complete, so an interrupted write never leaves a
broken dataset.  Paths ending in ``.zarr`` are written as zarr stores (with
consolidated metadata, so ``xarray.open_zarr(path)`` opens them without a warning), all
others as netCDF4 through h5netcdf; files get the mode the umask gives.  Reading also
accepts netCDF3 (classic) files, through xarray's scipy engine.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import uuid
import warnings
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np
import torch

log = logging.getLogger(__name__)

SCHEMA = "pdeinv.dataset/1"
REQUIRED_ATTRS = ("schema", "task", "grid", "m_name", "u_name", "law", "seed")
SPATIAL_DIMS = ("x", "y")
STATE_DIMS = ("x_u", "y_u")


# ----------------------------------------------------------------------------- attrs
def _is_plain(v) -> bool:
    return isinstance(v, (str, int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))


def encode_attrs(attrs: Dict[str, Any]) -> Dict[str, Any]:
    """Attrs that netCDF/zarr can store: non-scalars JSON-encoded, keys listed in ``_json_attrs``."""
    out, encoded = {}, []
    try:    # attrs encoded before (a result dataset saved again): their keys stay listed
        encoded = [k for k in json.loads(attrs.get("_json_attrs") or "[]") if k in attrs]
    except (TypeError, ValueError):
        encoded = []
    for k, v in attrs.items():
        if k == "_json_attrs":
            continue
        if _is_plain(v):
            out[k] = v.item() if isinstance(v, np.generic) else v
        else:
            if isinstance(v, np.ndarray):
                v = v.tolist()
            elif torch.is_tensor(v):
                v = v.detach().cpu().tolist()
            out[k] = json.dumps(v, default=str)
            if k not in encoded:
                encoded.append(k)
    if encoded:
        out["_json_attrs"] = json.dumps(encoded)
    return out


def decode_attrs(attrs: Dict[str, Any]) -> Dict[str, Any]:
    """Inverse of :func:`encode_attrs`."""
    out = dict(attrs)
    keys = out.pop("_json_attrs", None)
    if keys:
        for k in json.loads(keys):
            if k in out:
                out[k] = json.loads(out[k])
    for k, v in list(out.items()):   # numpy scalars from the file -> Python scalars
        if isinstance(v, np.generic):
            out[k] = v.item()
    return out


# ----------------------------------------------------------------------------- building
def _spatial_dims(ndim: int, state: bool = False) -> Tuple[str, ...]:
    return (STATE_DIMS if state else SPATIAL_DIMS)[:ndim]


def _coords(grid, state: bool = False) -> Dict[str, np.ndarray]:
    names = _spatial_dims(grid.ndim, state)
    return {n: c.numpy() for n, c in zip(names, grid.coords())}


def build_dataset(m: torch.Tensor, u: torch.Tensor, grid, *, task: str, law: str, seed: int,
                  m_name: str = "m", u_name: str = "u", state_grid=None, times: Optional[Sequence[float]] = None,
                  attrs: Optional[Dict[str, Any]] = None, sample_offset: int = 0):
    """An ``xarray.Dataset`` in the pdeinv schema from tensors.

    ``m``: ``(N, C, *grid.shape)``; ``u``: ``(N, C, *state_shape)`` or, for a
    time series, ``(N, T, C, *state_shape)``.  ``state_grid`` defaults to
    ``grid``; ``times`` gives the ``time`` coordinate (default ``0..T-1``).
    ``sample`` coordinates run from ``sample_offset``.
    """
    import xarray as xr

    sg = state_grid if state_grid is not None else grid
    same = sg.to_dict() == grid.to_dict()
    nd, snd = grid.ndim, sg.ndim
    if m.dim() != 2 + nd or tuple(m.shape[2:]) != tuple(grid.shape):
        raise ValueError(f"m has shape {tuple(m.shape)}; expected (N, C, {', '.join(map(str, grid.shape))})")
    if u.dim() == 2 + snd:
        series = False
    elif u.dim() == 3 + snd:
        series = True
    else:
        raise ValueError(f"u has shape {tuple(u.shape)}; expected (N, C, *{tuple(sg.shape)}) "
                         f"or (N, T, C, *{tuple(sg.shape)})")
    if tuple(u.shape[-snd:]) != tuple(sg.shape):
        raise ValueError(f"u is on a {tuple(u.shape[-snd:])} grid; the state grid is {tuple(sg.shape)}")
    if u.shape[0] != m.shape[0]:
        raise ValueError(f"m has {m.shape[0]} samples but u has {u.shape[0]}")
    mdims = _spatial_dims(nd)
    udims = _spatial_dims(snd, state=not same)
    m_np = m.detach().cpu().numpy()
    u_np = u.detach().cpu().numpy()
    # channels: squeeze a single channel, else a named channel dim
    if m_np.shape[1] == 1:
        m_np, mvdims = m_np[:, 0], ("sample",) + mdims
    else:
        mvdims = ("sample", "m_channel") + mdims
    cax = 2 if series else 1
    if u_np.shape[cax] == 1:
        u_np = np.take(u_np, 0, axis=cax)
        uvdims = ("sample",) + (("time",) if series else ()) + udims
    else:
        uvdims = ("sample",) + (("time",) if series else ()) + ("u_channel",) + udims
    coords = {"sample": np.arange(sample_offset, sample_offset + m_np.shape[0])}
    coords.update(_coords(grid))
    if not same:
        coords.update(_coords(sg, state=True))
    if series:
        T = u.shape[1]
        t = np.arange(T, dtype=float) if times is None else np.asarray([float(x) for x in times])
        if t.shape != (T,):
            raise ValueError(f"{len(t)} record times for a time series of {T} frames")
        coords["time"] = t
    at = dict(attrs or {})
    at.update(schema=SCHEMA, task=str(task), grid=json.dumps(grid.to_dict()), m_name=str(m_name),
              u_name=str(u_name), law=str(law), seed=int(seed))
    if not same:
        at["state_grid"] = json.dumps(sg.to_dict())
    ds = xr.Dataset({"m": (mvdims, m_np), "u": (uvdims, u_np)}, coords=coords, attrs=at)
    ds["m"].attrs["long_name"] = str(m_name)
    ds["u"].attrs["long_name"] = str(u_name)
    return ds


# ----------------------------------------------------------------------------- validation
def grid_of(ds):
    """The grid of ``m`` (from the ``grid`` attribute)."""
    from pdeinv.physics.grid import grid_from_dict
    g = ds.attrs.get("grid")
    if g is None:
        raise ValueError("the dataset has no 'grid' attribute (JSON of grid.to_dict()); "
                         f"it is not a {SCHEMA} dataset")
    if isinstance(g, str):
        try:
            g = json.loads(g)
        except json.JSONDecodeError as err:
            raise ValueError(f"the dataset's 'grid' attribute is not valid JSON: {g!r}") from err
    return grid_from_dict(g)


def state_grid_of(ds):
    """The grid of ``u`` (``state_grid`` attribute, else the grid of ``m``)."""
    from pdeinv.physics.grid import grid_from_dict
    g = ds.attrs.get("state_grid")
    if g is None:
        return grid_of(ds)
    return grid_from_dict(json.loads(g) if isinstance(g, str) else g)


def validate_dataset(ds, where: str = "dataset", check_values: bool = True) -> None:
    """Raise ``ValueError`` naming every way ``ds`` departs from the schema.

    Checks the variables ``m``/``u``, the required attrs, the dims and sizes
    against the grid, and (``check_values``) that the data are finite.
    """
    problems = []
    for v in ("m", "u"):
        if v not in ds.data_vars:
            problems.append(f"variable {v!r} is missing (found {sorted(map(str, ds.data_vars))})")
    missing = [a for a in REQUIRED_ATTRS if a not in ds.attrs]
    if missing:
        problems.append(f"attributes {missing} are missing")
    elif ds.attrs["schema"] != SCHEMA:
        problems.append(f"schema is {ds.attrs['schema']!r}; expected {SCHEMA!r}")
    if problems:
        raise ValueError(f"{where} is not a {SCHEMA} dataset: " + "; ".join(problems))
    grid, sg = grid_of(ds), state_grid_of(ds)
    same = sg.to_dict() == grid.to_dict()
    mdims = _spatial_dims(grid.ndim)
    udims = _spatial_dims(sg.ndim, state=not same)
    m, u = ds["m"], ds["u"]
    allowed_m = [("sample",) + mdims, ("sample", "m_channel") + mdims]
    allowed_u = [("sample",) + udims, ("sample", "u_channel") + udims,
                 ("sample", "time") + udims, ("sample", "time", "u_channel") + udims]
    if m.dims not in allowed_m:
        problems.append(f"m has dims {m.dims}; expected {allowed_m[0]}")
    if u.dims not in allowed_u:
        problems.append(f"u has dims {u.dims}; expected {allowed_u[0]} or {allowed_u[2]}")
    if not problems:
        for name, da, dims, g in (("m", m, mdims, grid), ("u", u, udims, sg)):
            got = tuple(da.sizes[d] for d in dims)
            if got != tuple(g.shape):
                problems.append(f"{name} is on a {got} grid; the grid attribute says {tuple(g.shape)}")
        if m.sizes["sample"] != u.sizes["sample"]:
            problems.append(f"m has {m.sizes['sample']} samples, u has {u.sizes['sample']}")
    if problems:
        raise ValueError(f"{where} is not a {SCHEMA} dataset: " + "; ".join(problems))
    if check_values:
        for name in ("m", "u"):
            vals = np.asarray(ds[name].values)
            bad = ~np.isfinite(vals)
            if bad.any():
                raise ValueError(f"{where}: variable {name!r} contains {int(np.isnan(vals).sum())} NaN and "
                                 f"{int(bad.sum() - np.isnan(vals).sum())} inf values (of {vals.size}); "
                                 "expected finite numbers")


# ----------------------------------------------------------------------------- save / load
def _is_zarr(path) -> bool:
    return str(path).rstrip("/").endswith(".zarr")


@contextlib.contextmanager
def quiet_consolidation():
    """zarr 3 warns that consolidated metadata is not part of its format-3 spec; xarray and zarr
    both read it, and without it ``open_zarr`` warns on every open.  Write it, without the warning."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Consolidated metadata is currently not part")
        yield


def consolidate(store) -> None:
    """Write the consolidated metadata of a zarr store assembled in several writes."""
    import zarr
    with quiet_consolidation():
        zarr.consolidate_metadata(str(store))


def netcdf_engine(path) -> str:
    """``"scipy"`` for a netCDF3 (classic / 64-bit offset) file, else ``"h5netcdf"`` (netCDF4/HDF5)."""
    try:
        with open(path, "rb") as fh:
            magic = fh.read(4)
    except OSError:
        return "h5netcdf"
    return "scipy" if magic[:3] == b"CDF" else "h5netcdf"


def save_dataset(ds, path, validate: bool = True) -> Path:
    """Write ``ds`` to ``path`` atomically: netCDF4 (h5netcdf), or zarr if ``path`` ends in ``.zarr``.

    Non-scalar attrs are JSON-encoded (see :func:`encode_attrs`).  Returns the path.
    """
    path = Path(path)
    if path.is_dir() and not _is_zarr(path):
        raise ValueError(f"cannot save a dataset to {str(path)!r}: it is a folder; give a file name ending in .nc "
                         "(netCDF) or .zarr")
    if validate:
        validate_dataset(ds, where="the dataset to save")
    path.parent.mkdir(parents=True, exist_ok=True)
    out = ds.copy(deep=False)
    out.attrs = encode_attrs(ds.attrs)
    for v in out.variables:
        out[v].attrs = encode_attrs(ds[v].attrs)
    tag = f".{path.name}.{uuid.uuid4().hex[:8]}.tmp"
    tmp = path.parent / tag
    try:
        if _is_zarr(path):
            with quiet_consolidation():
                out.to_zarr(tmp, mode="w", consolidated=True)
            if path.exists():
                trash = path.parent / (tag + ".old")
                os.replace(path, trash)
                os.replace(tmp, path)
                shutil.rmtree(trash, ignore_errors=True)
            else:
                os.replace(tmp, path)
        else:
            encoding = {v: {"zlib": True, "complevel": 1} for v in ("m", "u") if v in out.data_vars}
            out.to_netcdf(tmp, engine="h5netcdf", encoding=encoding)
            from pdeinv._validation import file_mode
            os.chmod(tmp, file_mode())
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True) if tmp.is_dir() else tmp.unlink()
    log.debug("wrote %s", path)
    return path


def open_raw(path, lazy: bool = False):
    """Open a netCDF/zarr file as an ``xarray.Dataset`` with decoded attrs, without schema checks."""
    import xarray as xr
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such dataset: {path}")
    try:
        if _is_zarr(path) or path.is_dir():
            with warnings.catch_warnings():     # stores written before they were consolidated
                warnings.filterwarnings("ignore", message=".*consolidated metadata", category=RuntimeWarning)
                ds = xr.open_zarr(path, consolidated=None)
        else:
            ds = xr.open_dataset(path, engine=netcdf_engine(path))
        if not lazy:
            ds = ds.load()
            ds.close()
    except (OSError, ValueError, KeyError, TypeError) as err:
        kind = "zarr store" if (_is_zarr(path) or path.is_dir()) else "netCDF4/HDF5 or netCDF3 file"
        raise ValueError(f"cannot read {path}: not a valid {kind} (truncated or corrupt?) — {err}") from err
    except Exception as err:  # zarr/h5py raise their own exception types on damaged stores
        raise ValueError(f"cannot read {path}: the file is damaged or not a dataset — "
                         f"{type(err).__name__}: {err}") from err
    ds.attrs = decode_attrs(ds.attrs)
    for v in ds.variables:
        ds[v].attrs = decode_attrs(ds[v].attrs)
    return ds


def load_dataset(path, lazy: bool = False, check_values: Optional[bool] = None):
    """Read a dataset written by :func:`save_dataset` and check its schema.

    ``lazy``: keep the data on disk (dask arrays, for large zarr stores);
    ``check_values`` (default: ``not lazy``) also checks the data are finite.
    Raises ``FileNotFoundError`` for a missing file, ``ValueError`` naming the
    fault for a corrupt file or a schema violation.
    """
    ds = open_raw(path, lazy=lazy)
    validate_dataset(ds, where=str(path), check_values=(not lazy) if check_values is None else check_values)
    return ds


# ----------------------------------------------------------------------------- tensors
def _to_tensor(da, nspatial: int, series: bool, chan_dim: str, dtype, device) -> torch.Tensor:
    x = torch.as_tensor(np.asarray(da.values), dtype=dtype, device=device)
    if chan_dim not in da.dims:  # insert the channel axis
        x = x.unsqueeze(2 if series else 1)
    return x


def dataset_tensors(ds, dtype=torch.float64, device=None) -> Tuple[torch.Tensor, torch.Tensor]:
    """``(m, u)`` tensors: ``m`` ``(N, C, *grid)``, ``u`` ``(N, C, *state)`` or ``(N, T, C, *state)``.

    ``C = 1`` unless the dataset has a channel dim.  Raises ``ValueError`` on
    non-finite data.
    """
    validate_dataset(ds, where="dataset", check_values=False)
    series = "time" in ds["u"].dims
    m = _to_tensor(ds["m"], grid_of(ds).ndim, False, "m_channel", dtype, device)
    u = _to_tensor(ds["u"], state_grid_of(ds).ndim, series, "u_channel", dtype, device)
    for name, t in (("m", m), ("u", u)):
        if not bool(torch.isfinite(t).all()):
            raise ValueError(f"dataset variable {name!r} contains {int((~torch.isfinite(t)).sum())} non-finite "
                             "values (NaN/inf); expected finite numbers")
    return m, u


def concat_datasets(parts):
    """Concatenate schema datasets along ``sample`` (attrs of the first)."""
    import xarray as xr
    ds = xr.concat(list(parts), dim="sample", data_vars="all", coords="minimal", compat="override",
                   combine_attrs="override")
    return ds


# ----------------------------------------------------------------------------- inverse results
def result_to_xarray(result):
    """An ``xarray.Dataset`` from an :class:`~pdeinv.solvers.base.InverseResult`.

    Variables: ``m`` (``sample[, channel], x, y``), ``u`` (if any), ``samples``
    (``draw, sample, ...``), ``std``, and each history series ``history_<key>``
    on an ``iteration`` dim (``iteration_<key>`` if its length differs from the
    longest).  Attrs: ``result.info`` (non-scalars JSON-encoded, so the dataset
    can go straight to ``to_netcdf``) and ``grid``.  Coordinates come from
    ``result.grid`` when its shape matches the field.
    """
    import xarray as xr

    grid = result.grid
    data, coords = {}, {}

    def dims_for(t: torch.Tensor, lead: Tuple[str, ...], prefix: str):
        nsp = t.dim() - len(lead) - 1          # spatial axes after (lead..., C)
        if grid is not None and grid.ndim == nsp and tuple(t.shape[-nsp:]) == tuple(grid.shape):
            sp = _spatial_dims(nsp)
            coords.update(_coords(grid))
        else:
            sp = tuple(f"{prefix}_dim{i}" for i in range(nsp))
        if t.shape[len(lead)] == 1:
            return lead + sp, t.select(len(lead), 0)
        return lead + ("channel",) + sp, t

    def put(name, t, lead, prefix=None):
        if t is None:
            return
        t = t.detach().cpu()
        if t.dim() < len(lead) + 2:
            data[name] = (lead + tuple(f"{name}_dim{i}" for i in range(t.dim() - len(lead))), t.numpy())
            return
        dims, arr = dims_for(t, lead, prefix or name)
        data[name] = (dims, arr.numpy())

    put("m", result.m, ("sample",))
    u = result.u
    if u is not None:
        series = grid is not None and u.dim() == result.m.dim() + 1
        put("u", u, ("sample", "time") if series else ("sample",), "u")
    if result.samples is not None:
        put("samples", result.samples, ("draw", "sample"), "m")
        std = result.std
        if std is not None:
            put("std", std, ("sample",), "m")
    if getattr(result, "u_samples", None) is not None:
        put("u_samples", result.u_samples, ("draw", "sample"), "u")
    hist = {k: np.asarray(v, dtype=float) for k, v in (result.history or {}).items()}
    if hist:
        longest = max(h.shape[0] if h.ndim else 1 for h in hist.values())
        for k, h in hist.items():
            h = np.atleast_1d(h)
            it = "iteration" if h.shape[0] == longest else f"iteration_{k}"
            data[f"history_{k}"] = ((it,) + tuple(f"history_{k}_dim{i}" for i in range(1, h.ndim)), h)
    attrs = dict(result.info or {})
    if grid is not None:
        attrs["grid"] = grid.to_dict()
    ds = xr.Dataset(data, coords=coords, attrs=encode_attrs(attrs))
    return ds


# ----------------------------------------------------------------------------- point tables (CSV)
def read_point_table(path) -> Dict[str, np.ndarray]:
    """Columns of a CSV point table: ``{name: (P,) float array}`` in file order.

    The first non-comment line is the header (column names, e.g. ``x,t,u`` or ``x,y,t,value``); lines
    starting with ``#`` are comments; separators are commas (whitespace around them is ignored).  Every row
    must have one number per column: a ``ValueError`` names the first bad line.
    """
    import csv
    path = Path(path)
    rows, header, where = [], None, str(path)
    with open(path, newline="") as fh:
        for lineno, row in enumerate(csv.reader(fh), 1):
            if not row or not "".join(row).strip() or row[0].lstrip().startswith("#"):
                continue
            cells = [c.strip() for c in row]
            if header is None:
                header = cells
                if any(not c for c in header) or len(set(header)) != len(header):
                    raise ValueError(f"{where}: the header line {row} must name every column once")
                try:
                    [float(c) for c in header]
                except ValueError:
                    continue
                raise ValueError(f"{where}: the first line holds numbers; expected a header naming the columns "
                                 "(e.g. x,t,value)")
            if len(cells) != len(header):
                raise ValueError(f"{where}, line {lineno}: {len(cells)} values for {len(header)} columns {header}")
            try:
                rows.append([float(c) for c in cells])
            except ValueError:
                raise ValueError(f"{where}, line {lineno}: {row} is not all numbers") from None
    if header is None or not rows:
        raise ValueError(f"{where}: the CSV file holds no data rows (expected a header such as x,t,value and "
                         "one row per observation)")
    arr = np.asarray(rows, dtype=float)
    if not np.isfinite(arr).all():
        raise ValueError(f"{where}: the table contains NaN/inf values")
    return {name: arr[:, i].copy() for i, name in enumerate(header)}
