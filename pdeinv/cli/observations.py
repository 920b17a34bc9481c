"""Read and write point observations (sensor coordinates + values) as netCDF.

File layout (xarray): variable ``points`` with dims ``(obs, coord)`` holding
physical coordinates, variable ``y`` with dims ``(obs,)`` or ``(sample, obs)``,
optional attrs ``noise_relative`` / ``noise_sigma`` and ``task``.  Mesh files
(VTK, XDMF, Gmsh, ...) are read through ``pdeinv.data.mesh.read_observations``.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from pdeinv._validation import check_finite
from pdeinv.physics.observation import PointObservation

MESH_SUFFIXES = {".vtu", ".vtk", ".xdmf", ".xmf", ".msh", ".ply", ".obj", ".stl", ".mesh", ".med", ".h5m"}


def save_observations(path, points, y, **attrs) -> str:
    """Write ``points`` ``(P, d)`` and ``y`` ``(P,)`` or ``(B, P)`` (or ``(B, 1, P)``) atomically."""
    import xarray as xr
    pts = np.asarray(points.detach().cpu() if torch.is_tensor(points) else points, dtype=float)
    yy = np.asarray(y.detach().cpu() if torch.is_tensor(y) else y, dtype=float)
    if yy.ndim == 3:
        yy = yy[:, 0]
    dims = ("obs",) if yy.ndim == 1 else ("sample", "obs")
    ds = xr.Dataset({"points": (("obs", "coord"), pts), "y": (dims, yy)},
                    attrs={"schema": "pdeinv.observations/1", **{k: v for k, v in attrs.items() if v is not None}})
    path = os.fspath(path)
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=d, suffix=".nc")
    os.close(fd)
    ds.to_netcdf(tmp, engine="h5netcdf")
    os.replace(tmp, path)
    return path


def load_observations(path, grid, dtype=torch.float64, field: str = "y"):
    """Return ``(PointObservation, y (B, 1, P), attrs)`` from a netCDF or mesh file
    (``field``: the point-data array holding the values in a mesh file)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"observation file {str(path)!r} does not exist")
    if path.suffix.lower() in MESH_SUFFIXES:
        from pdeinv.data.mesh import read_observations
        obs, y = read_observations(str(path), grid, field=field)
        y = torch.as_tensor(y, dtype=dtype)
        while y.dim() < 3:
            y = y.unsqueeze(0)
        return obs, y, {}
    import xarray as xr
    try:
        ds = xr.load_dataset(path, engine="h5netcdf")
    except Exception as err:
        raise ValueError(f"cannot read observation file {str(path)!r} as netCDF ({type(err).__name__}: {err}); "
                         "expected a netCDF file with variables 'points' (obs, coord) and 'y' (obs) or a mesh file "
                         f"with one of the suffixes {sorted(MESH_SUFFIXES)}") from None
    for v in ("points", "y"):
        if v not in ds:
            raise ValueError(f"observation file {str(path)!r} has no variable {v!r}; expected 'points' (obs, coord) "
                             f"and 'y' (obs) or (sample, obs); found {sorted(ds.data_vars)}")
    pts = torch.as_tensor(ds["points"].values, dtype=torch.float64)
    y = torch.as_tensor(ds["y"].values, dtype=dtype)
    check_finite(y, f"observations in {path.name}")
    if y.shape[-1] != pts.shape[0]:
        raise ValueError(f"{path.name}: y has {y.shape[-1]} values but there are {pts.shape[0]} points")
    y = y.reshape(-1, 1, y.shape[-1])
    return PointObservation(grid, pts), y, dict(ds.attrs)
