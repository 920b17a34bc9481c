r"""Coupling with simulation codes through meshio (VTK, XDMF, Gmsh, ... any format meshio reads).

Both directions:

* **out** -- :func:`export_field` writes fields on a pdeinv grid as a structured
  mesh (quadrilateral cells on a 2-D grid, line cells on a 1-D grid; fields as
  point data at the nodes), and the sensor locations (with their data, e.g.
  ``y``) as a *separate* vertex mesh ``<stem>_sensors<ext>``.
  :func:`write_on_mesh` samples grid fields (bilinearly) at the nodes of
  another code's mesh and writes that mesh back with them as point data.
* **in** -- :func:`read_observations` turns the points and one point-data
  array of any mesh file into a :class:`~pdeinv.physics.PointObservation` and
  the observation vector ``y``; :func:`mesh_to_grid` interpolates unstructured
  point data onto a grid (piecewise linear on the Delaunay triangulation of the
  points, nearest-node values outside their convex hull).

Node ordering on a grid is row-major in ``ij`` indexing: node ``(i, j)`` at
``(x_i, y_j)`` has index ``i * ny + j``.  Points are written with a zero ``z``
column (VTK readers expect 3-D points); readers drop a zero ``z`` column and
refuse a mesh that is really 3-D.  Bilinear sampling (grid -> points) and
linear interpolation (points -> grid) are both exact for linear fields, so a
round trip mesh -> grid -> mesh reproduces a linear field at the mesh nodes.
"""
from __future__ import annotations

import logging
import os
import uuid
from pathlib import Path
from typing import Dict, Optional, Union

import numpy as np
import torch

log = logging.getLogger(__name__)

Array = Union[np.ndarray, torch.Tensor]


def _np(x) -> np.ndarray:
    if torch.is_tensor(x):
        return x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=float)


def grid_points(grid, zcol: bool = True) -> np.ndarray:
    """Node coordinates ``(N, 3)`` (or ``(N, d)`` without ``zcol``), row-major node order."""
    if grid.ndim == 1:
        pts = grid.coords()[0].numpy()[:, None]
    else:
        X, Y = grid.mesh()
        pts = np.stack([X.numpy().ravel(), Y.numpy().ravel()], 1)
    if zcol:
        pts = np.concatenate([pts, np.zeros((pts.shape[0], 3 - pts.shape[1]))], 1)
    return pts


def grid_cells(grid):
    """meshio cell blocks of the structured grid: quads (2-D) or lines (1-D)."""
    if grid.ndim == 1:
        i = np.arange(grid.shape[0] - 1)
        return [("line", np.stack([i, i + 1], 1))]
    nx, ny = grid.shape
    i, j = np.meshgrid(np.arange(nx - 1), np.arange(ny - 1), indexing="ij")
    i, j = i.ravel(), j.ravel()
    quads = np.stack([i * ny + j, (i + 1) * ny + j, (i + 1) * ny + j + 1, i * ny + j + 1], 1)
    return [("quad", quads)]


def _field_arrays(name: str, value, grid) -> Dict[str, np.ndarray]:
    """Flatten a field ``(*lead, *grid.shape)`` into point-data arrays ``name`` / ``name_k``."""
    a = _np(value)
    shape = tuple(grid.shape)
    if a.shape[-len(shape):] != shape:
        raise ValueError(f"field {name!r} has shape {a.shape}; expected (..., {', '.join(map(str, shape))}) "
                         "on the grid")
    if not np.isfinite(a).all():
        raise ValueError(f"field {name!r} contains NaN/inf values; expected finite numbers")
    lead = a.reshape(-1, int(np.prod(shape)))
    if lead.shape[0] == 1:
        return {name: lead[0]}
    return {f"{name}_{k}": lead[k] for k in range(lead.shape[0])}


def _write_atomic(path: Path, mesh) -> None:
    import meshio
    path.parent.mkdir(parents=True, exist_ok=True)
    ext = "".join(path.suffixes[-1:])
    if ext.lower() in (".xdmf", ".xmf"):
        # XDMF stores its arrays in a companion .h5 file named after the .xdmf: written in place
        meshio.write(path, mesh)
        return
    tmp = path.parent / f".{path.stem}.{uuid.uuid4().hex[:8]}.tmp{ext}"
    try:
        meshio.write(tmp, mesh)
        from pdeinv._validation import file_mode
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def sensors_path(path) -> Path:
    """Where :func:`export_field` writes the sensor mesh: ``<stem>_sensors<ext>``."""
    path = Path(path)
    return path.with_name(path.stem + "_sensors" + path.suffix)


def export_field(path, grid, fields: Dict[str, Array], points: Optional[Array] = None,
                 point_data: Optional[Dict[str, Array]] = None):
    """Write grid fields (and optionally sensor points) for ParaView or another code.

    Parameters
    ----------
    path : output file; the format follows the extension (``.vtu``, ``.vtk``, ``.xdmf``, ...).
    grid : the fields' ``Grid1D``/``Grid2D``.
    fields : name -> field of shape ``(*lead, *grid.shape)``; one lead entry gives
        the array ``name``, several give ``name_0, name_1, ...``.
    points : sensor coordinates ``(P, d)`` (e.g. ``obs.points``), written as a vertex
        mesh to :func:`sensors_path` ``(path)``.
    point_data : name -> values ``(P,)`` at the sensors (e.g. the observations ``y``).

    Returns the list of files written.
    """
    import meshio
    path = Path(path)
    data = {}
    for k, v in fields.items():
        data.update(_field_arrays(k, v, grid))
    _write_atomic(path, meshio.Mesh(grid_points(grid), grid_cells(grid), point_data=data))
    written = [path]
    if points is not None:
        pts = _np(points)
        if pts.ndim == 1:
            pts = pts[:, None]
        if pts.ndim != 2 or pts.shape[1] != grid.ndim:
            raise ValueError(f"sensor points must be (P, {grid.ndim}); got {pts.shape}")
        pdata = {}
        for k, v in (point_data or {}).items():
            a = _np(v).reshape(-1)
            if a.shape[0] != pts.shape[0]:
                raise ValueError(f"point data {k!r} has {a.shape[0]} values for {pts.shape[0]} sensors")
            pdata[k] = a
        p3 = np.concatenate([pts, np.zeros((pts.shape[0], 3 - pts.shape[1]))], 1)
        cells = [("vertex", np.arange(pts.shape[0])[:, None])]
        sp = sensors_path(path)
        _write_atomic(sp, meshio.Mesh(p3, cells, point_data=pdata))
        written.append(sp)
    log.info("wrote %s", ", ".join(map(str, written)))
    return written


def _mesh_points(mesh_points: np.ndarray, ndim: int, where: str) -> np.ndarray:
    pts = np.asarray(mesh_points, dtype=float)
    if pts.ndim != 2 or pts.shape[1] < ndim:
        raise ValueError(f"{where}: points have shape {pts.shape}; expected (P, >= {ndim})")
    extra = pts[:, ndim:]
    if extra.size:
        scale = max(1.0, float(np.abs(pts[:, :ndim]).max()))
        if np.abs(extra).max() > 1e-10 * scale:
            raise ValueError(f"{where}: points have non-zero coordinates beyond the first {ndim} "
                             f"(max |z| = {np.abs(extra).max():g}); pdeinv's grid is {ndim}-D, so the mesh must "
                             "lie in the plane z = 0")
    pts = pts[:, :ndim]
    if not np.isfinite(pts).all():
        raise ValueError(f"{where}: point coordinates contain NaN/inf")
    return pts


def read_mesh(path):
    """``meshio.read`` with clear errors for a missing or unreadable file."""
    import meshio
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such mesh file: {path}")
    try:
        # meshio.read prints and calls sys.exit(1) when every reader fails: call the readers ourselves
        from meshio._helpers import _filetypes_from_path, reader_map
    except ImportError:  # pragma: no cover - other meshio versions
        _filetypes_from_path = reader_map = None
    errors = []
    try:
        if reader_map is None:  # pragma: no cover
            return meshio.read(path)
        formats = _filetypes_from_path(path)
        for fmt in formats:
            try:
                return reader_map[fmt](str(path))
            except Exception as err:  # noqa: PERF203 - meshio raises ReadError, KeyError, ValueError ...
                errors.append(f"as {fmt}: {type(err).__name__}: {err}")
    except (Exception, SystemExit) as err:
        errors.append(f"{type(err).__name__}: {err}")
    raise ValueError(f"cannot read {path} as a mesh ({'; '.join(errors) or 'unknown format'}); "
                     "expected a file meshio reads (VTK, VTU, XDMF, Gmsh, ...)")


TIME_ARRAYS = ("t", "time")


def mesh_times(mesh, where: str = "mesh") -> Optional[np.ndarray]:
    """The observation time of each point, from a point-data array ``t`` or ``time`` (``(P,)``), or ``None``:
    a mesh of space-time observations keeps its sensors' positions as points and their times beside them."""
    names = [n for n in TIME_ARRAYS if n in mesh.point_data]
    if not names:
        return None
    t = np.asarray(mesh.point_data[names[0]], dtype=float).reshape(len(mesh.points), -1)
    if t.shape[1] != 1:
        raise ValueError(f"{where}: point data {names[0]!r} has shape {t.shape}; expected one time per point")
    if not np.isfinite(t).all():
        raise ValueError(f"{where}: point data {names[0]!r} (the observation times) contains NaN/inf")
    return t[:, 0]


def read_spacetime_observations(path, problem, field: str = "y"):
    """Space-time observations from a mesh file: ``(SpaceTimePointObservation, y (1, 1, P))``.

    The points are the sensor positions, the point-data array ``t`` (or ``time``) their times and ``field``
    the values; ``problem`` is the time-dependent problem (its state grid and record times).
    """
    from pdeinv.physics.spacetime import SpaceTimePointObservation
    mesh = read_mesh(path)
    grid = getattr(problem, "state_grid", None) or problem.grid
    times = mesh_times(mesh, str(path))
    if times is None:
        raise ValueError(f"{path} has no point data 't' or 'time' (the observation time of each point); "
                         f"available arrays: {sorted(mesh.point_data)}")
    _, y = _values(mesh, path, field)
    try:
        obs = SpaceTimePointObservation.for_problem(problem, _mesh_points(mesh.points, grid.ndim, str(path)), times)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from err
    return obs, y


def _values(mesh, path, field):
    if field not in mesh.point_data:
        raise ValueError(f"{path} has no point data {field!r}; available arrays: {sorted(mesh.point_data)}")
    vals = np.asarray(mesh.point_data[field], dtype=float)
    if vals.ndim > 1:
        if vals.ndim == 2 and vals.shape[1] == 1:
            vals = vals[:, 0]
        else:
            raise ValueError(f"point data {field!r} has shape {vals.shape}; expected one value per point")
    if not np.isfinite(vals).all():
        raise ValueError(f"{path}: point data {field!r} contains {int((~np.isfinite(vals)).sum())} NaN/inf values")
    return vals, torch.from_numpy(vals.copy()).reshape(1, 1, -1)


def read_observations(path, grid, field: str = "y"):
    """Point observations from a mesh file: ``(PointObservation, y)``.

    The mesh's points are the sensor locations (a zero ``z`` column is
    dropped), the point-data array ``field`` their values.  ``y`` is a float64
    tensor ``(1, 1, P)``, the shape ``obs(u)`` gives for ``u`` ``(1, 1, *grid)``.
    Points outside the domain, a missing array, NaN values or a non-planar
    mesh raise ``ValueError`` naming the problem.
    """
    from pdeinv.physics.observation import PointObservation
    mesh = read_mesh(path)
    pts = _mesh_points(mesh.points, grid.ndim, str(path))
    if field not in mesh.point_data:
        raise ValueError(f"{path} has no point data {field!r}; available arrays: {sorted(mesh.point_data)}")
    vals = np.asarray(mesh.point_data[field], dtype=float)
    if vals.ndim > 1:
        if vals.ndim == 2 and vals.shape[1] == 1:
            vals = vals[:, 0]
        else:
            raise ValueError(f"point data {field!r} has shape {vals.shape}; expected one value per point")
    if not np.isfinite(vals).all():
        raise ValueError(f"{path}: point data {field!r} contains {int((~np.isfinite(vals)).sum())} NaN/inf values")
    try:
        obs = PointObservation(grid, torch.from_numpy(pts))
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from err
    y = torch.from_numpy(vals.copy()).reshape(1, 1, -1)
    return obs, y


def mesh_to_grid(points: Array, values: Array, grid, method: str = "linear") -> torch.Tensor:
    """Interpolate unstructured point data onto the grid's nodes.

    ``points`` ``(P, d)`` (a zero ``z`` column is dropped), ``values`` ``(P,)``
    or ``(P, K)``.  ``method="linear"`` is piecewise linear on the Delaunay
    triangulation of the points (exact for linear fields); nodes outside the
    points' convex hull take the nearest point's value.  Returns float64
    ``(1, K, *grid.shape)``.
    """
    from scipy.interpolate import griddata
    pts = _mesh_points(_np(points), grid.ndim, "mesh_to_grid")
    vals = _np(values)
    if vals.shape[0] != pts.shape[0]:
        raise ValueError(f"{vals.shape[0]} values for {pts.shape[0]} points")
    if not np.isfinite(vals).all():
        raise ValueError("mesh_to_grid: values contain NaN/inf")
    vals2 = vals.reshape(pts.shape[0], -1)
    nodes = grid_points(grid, zcol=False)
    if grid.ndim == 1:
        order = np.argsort(pts[:, 0])
        out = np.stack([np.interp(nodes[:, 0], pts[order, 0], vals2[order, k]) for k in range(vals2.shape[1])], 1)
    else:
        out = griddata(pts, vals2, nodes, method=method)
        if method != "nearest":
            miss = ~np.isfinite(out)
            if miss.any():
                near = griddata(pts, vals2, nodes, method="nearest")
                out[miss] = near[miss]
    out = out.T.reshape(1, vals2.shape[1], *grid.shape)
    return torch.from_numpy(np.ascontiguousarray(out))


def grid_to_points(field: Array, grid, points: Array):
    """Sample a grid field at arbitrary points by bilinear interpolation.

    ``field`` ``(*lead, *grid.shape)``, ``points`` ``(P, d)`` inside the domain.
    Returns ``(*lead, P)``: a tensor for tensor input, else a NumPy array.
    """
    from pdeinv.physics.observation import PointObservation
    pts = _mesh_points(_np(points), grid.ndim, "grid_to_points")
    is_t = torch.is_tensor(field)
    f = field if is_t else torch.from_numpy(_np(field))
    shape = tuple(grid.shape)
    if f.dim() < len(shape) or tuple(f.shape[-len(shape):]) != shape:
        raise ValueError(f"the field has shape {tuple(f.shape)}; expected (..., {', '.join(map(str, shape))}) on the "
                         f"grid")
    if f.is_complex():
        raise TypeError(f"the field has dtype {f.dtype}; expected real values")
    bare = f.dim() == len(shape)          # a plain (*grid) field: no leading axes
    obs = PointObservation(grid, torch.from_numpy(pts))
    out = obs((f.double() if not f.is_floating_point() else f)[None] if bare else
              (f.double() if not f.is_floating_point() else f))
    out = out[0] if bare else out
    return out if is_t else out.numpy()


def read_mesh_field(path, grid, field: str, method: str = "linear") -> torch.Tensor:
    """Point data ``field`` of a mesh file interpolated onto ``grid`` (:func:`mesh_to_grid`)."""
    mesh = read_mesh(path)
    if field not in mesh.point_data:
        raise ValueError(f"{path} has no point data {field!r}; available arrays: {sorted(mesh.point_data)}")
    return mesh_to_grid(mesh.points, mesh.point_data[field], grid, method=method)


def write_on_mesh(mesh_path, out_path, grid, fields: Dict[str, Array]):
    """Write grid fields back onto another code's mesh: sampled bilinearly at its nodes.

    Reads ``mesh_path`` (any meshio format), adds each field ``(*lead, *grid)``
    as point data (``name`` or ``name_k``) and writes ``out_path`` (atomic
    except for XDMF).  Returns the ``meshio.Mesh`` written.
    """
    import meshio
    mesh = read_mesh(mesh_path)
    pts = mesh.points
    if Path(out_path).resolve() == Path(mesh_path).resolve():
        raise ValueError(f"write_on_mesh would replace its input mesh {str(mesh_path)!r}; give another out_path")
    for name, v in fields.items():
        vals = grid_to_points(_np(v), grid, pts)
        flat = vals.reshape(-1, pts.shape[0])
        if flat.shape[0] == 1:
            mesh.point_data[name] = flat[0]
        else:
            for k in range(flat.shape[0]):
                mesh.point_data[f"{name}_{k}"] = flat[k]
    out = meshio.Mesh(mesh.points, mesh.cells, point_data=mesh.point_data, cell_data=mesh.cell_data)
    _write_atomic(Path(out_path), out)
    return out
