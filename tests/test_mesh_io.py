"""meshio coupling: export/import round trips, observations from a mesh file, unstructured <-> grid."""
import meshio
import numpy as np
import pytest
import torch
from scipy.spatial import Delaunay

from pdeinv.data.mesh import (export_field, grid_to_points, mesh_to_grid, read_mesh_field, read_observations,
                              sensors_path, write_on_mesh)
from pdeinv.physics import Grid2D, PointObservation


def _linear(x, y):
    return 1.0 + 2.0 * x - 3.0 * y


def _bilinear(x, y):
    return 0.5 + 2.0 * x - 3.0 * y + 4.0 * x * y


@pytest.mark.parametrize("ext", [".vtu", ".xdmf"])
def test_export_roundtrip_values_and_sensor_coordinates(tmp_path, ext):
    grid = Grid2D((9, 7), length=(2.0, 1.0))
    X, Y = grid.mesh()
    a = torch.sin(3 * X) * torch.cos(2 * Y)
    batch = torch.stack([a, 2 * a])[:, None]                  # (2, 1, 9, 7) -> arrays m_0, m_1
    obs = PointObservation.random(grid, n=10, seed=3)
    y = obs(a[None, None])[0, 0]
    files = export_field(tmp_path / f"f{ext}", grid, {"a": a[None, None], "m": batch}, points=obs.points,
                         point_data={"y": y})
    assert files == [tmp_path / f"f{ext}", sensors_path(tmp_path / f"f{ext}")]
    mesh = meshio.read(files[0])
    np.testing.assert_array_equal(mesh.points[:, 0], X.numpy().ravel())
    np.testing.assert_array_equal(mesh.points[:, 1], Y.numpy().ravel())
    np.testing.assert_array_equal(mesh.point_data["a"], a.numpy().ravel())
    np.testing.assert_array_equal(mesh.point_data["m_1"], 2 * a.numpy().ravel())
    assert mesh.cells[0].type == "quad" and len(mesh.cells[0].data) == 8 * 6
    obs2, y2 = read_observations(files[1], grid, field="y")
    np.testing.assert_array_equal(obs2.points.numpy(), obs.points.numpy())
    np.testing.assert_array_equal(y2[0, 0].numpy(), y.numpy())


def test_read_observations_matches_the_field(tmp_path):
    grid = Grid2D(17)
    X, Y = grid.mesh()
    u = _bilinear(X, Y)[None, None]                 # bilinear: interpolation on the grid is exact
    rng = np.random.default_rng(0)
    pts = rng.uniform(0, 1, size=(40, 2))
    pts3 = np.c_[pts, np.zeros(40)]
    meshio.write(tmp_path / "sensors.vtu", meshio.Mesh(pts3, [("vertex", np.arange(40)[:, None])],
                                                     point_data={"pressure": _bilinear(pts[:, 0], pts[:, 1])}))
    obs, y = read_observations(tmp_path / "sensors.vtu", grid, field="pressure")
    assert obs.n_obs == 40 and y.shape == (1, 1, 40)
    torch.testing.assert_close(obs(u), y, rtol=0, atol=1e-13)

    # bad input, each named
    with pytest.raises(ValueError, match=r"no point data 'y'; available arrays: \['pressure'\]"):
        read_observations(tmp_path / "sensors.vtu", grid, field="y")
    out = pts3.copy(); out[0, 0] = 1.5
    meshio.write(tmp_path / "out.vtu", meshio.Mesh(out, [("vertex", np.arange(40)[:, None])],
                                                   point_data={"y": np.ones(40)}))
    with pytest.raises(ValueError, match="outside the domain"):
        read_observations(tmp_path / "out.vtu", grid)
    z = pts3.copy(); z[:, 2] = 0.3
    meshio.write(tmp_path / "z.vtu", meshio.Mesh(z, [("vertex", np.arange(40)[:, None])], point_data={"y": np.ones(40)}))
    with pytest.raises(ValueError, match="non-zero coordinates beyond the first 2"):
        read_observations(tmp_path / "z.vtu", grid)
    vals = np.ones(40); vals[3] = np.nan
    meshio.write(tmp_path / "nan.vtu", meshio.Mesh(pts3, [("vertex", np.arange(40)[:, None])], point_data={"y": vals}))
    with pytest.raises(ValueError, match="1 NaN/inf"):
        read_observations(tmp_path / "nan.vtu", grid)
    with pytest.raises(FileNotFoundError):
        read_observations(tmp_path / "none.vtu", grid)
    (tmp_path / "junk.vtu").write_text("<VTKFile garbage")
    with pytest.raises(ValueError, match="cannot read"):
        read_observations(tmp_path / "junk.vtu", grid)


def test_unstructured_mesh_to_grid_and_back_is_exact_for_linear_fields(tmp_path):
    rng = np.random.default_rng(1)
    pts = np.r_[[[0, 0], [1, 0], [0, 1], [1, 1]], rng.uniform(0, 1, size=(150, 2))]
    tri = Delaunay(pts).simplices
    mesh_file = tmp_path / "fem.vtu"
    meshio.write(mesh_file, meshio.Mesh(np.c_[pts, np.zeros(len(pts))], [("triangle", tri)],
                                        point_data={"k": _linear(pts[:, 0], pts[:, 1])}))
    grid = Grid2D(21)
    X, Y = grid.mesh()
    on_grid = read_mesh_field(mesh_file, grid, "k")
    assert on_grid.shape == (1, 1, 21, 21)
    torch.testing.assert_close(on_grid[0, 0], _linear(X, Y), rtol=0, atol=1e-12)
    out = write_on_mesh(mesh_file, tmp_path / "back.vtu", grid, {"k_rec": on_grid})
    back = meshio.read(tmp_path / "back.vtu")
    np.testing.assert_allclose(back.point_data["k_rec"], _linear(pts[:, 0], pts[:, 1]), rtol=0, atol=1e-12)
    assert back.cells[0].type == "triangle" and np.array_equal(back.cells[0].data, tri)
    # grid -> points for a (B, C, ...) tensor keeps the lead dims
    vals = grid_to_points(torch.stack([_linear(X, Y), 2 * _linear(X, Y)])[:, None], grid, pts)
    assert vals.shape == (2, 1, len(pts))
    # nodes outside the convex hull of the data take the nearest value (no NaN)
    inner = np.array([[0.4, 0.4], [0.6, 0.4], [0.5, 0.6]])
    g = mesh_to_grid(inner, np.array([1.0, 2.0, 3.0]), grid)
    assert torch.isfinite(g).all() and float(g[0, 0, 0, 0]) == 1.0 and float(g[0, 0, -1, -1]) in (2.0, 3.0)
