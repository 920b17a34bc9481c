"""Coupling with another simulation code through its mesh files (meshio: VTU here; XDMF, Gmsh, ... alike).

Both directions:

1. **in**: another code wrote its unstructured triangle mesh with a pressure
   field (``simulation.vtu``) and the measurements of a few sensors as a
   point cloud with data (``sensors.vtu``).  ``pdeinv.data.mesh.read_observations``
   turns the sensor file into a ``PointObservation`` (bilinear interpolation
   at the off-grid sensor positions) and the data vector ``y``;
   ``mesh_to_grid`` brings a mesh field onto pdeinv's grid.
2. **invert** on pdeinv's grid (MAP, TV prior, 3 <= a <= 12).
3. **out**: ``write_on_mesh`` samples the recovered permeability and pressure at
   the other code's mesh nodes and writes ``simulation_recovered.vtu``,
   ready for ParaView or for the other code's next run.

(Here the "other code" is played by pdeinv itself on a finer grid, so that the
truth is known.)

    python examples/mesh_coupling.py [--out mesh_out] [--quick]
"""
import argparse
from pathlib import Path

import meshio
import numpy as np
from scipy.spatial import Delaunay

import pdeinv as pi
from pdeinv.data.mesh import grid_to_points, mesh_to_grid, read_observations, write_on_mesh
from pdeinv.tasks import TASKS


def other_code_output(folder: Path, n_sensors: int, seed: int = 0):
    """Write what a simulation code would: an unstructured mesh with fields, and a sensor file."""
    rng = np.random.default_rng(seed)
    fine = pi.Grid2D(65)
    a = TASKS["darcy"].sample_m(fine, 1, seed=3)
    u = pi.physics.Darcy(fine, f=1.0)(a)
    t = np.linspace(0, 1, 17)
    border = np.unique(np.concatenate([np.c_[t, 0 * t], np.c_[t, 0 * t + 1], np.c_[0 * t, t], np.c_[0 * t + 1, t]]), axis=0)
    pts = np.concatenate([border, rng.uniform(0.01, 0.99, size=(900, 2))])
    tri = Delaunay(pts).simplices
    nodes3 = np.c_[pts, np.zeros(len(pts))]
    fields = {"permeability": grid_to_points(a[0], fine, pts)[0].numpy(),
              "pressure": grid_to_points(u[0], fine, pts)[0].numpy()}
    meshio.write(folder / "simulation.vtu", meshio.Mesh(nodes3, [("triangle", tri)], point_data=fields))
    # sensors: interior points with 1 % noisy pressure readings
    s = rng.uniform(0.05, 0.95, size=(n_sensors, 2))
    p = grid_to_points(u[0], fine, s)[0].numpy()
    p_noisy = p + 0.01 * np.sqrt(np.mean(p ** 2)) * rng.standard_normal(p.shape)
    meshio.write(folder / "sensors.vtu", meshio.Mesh(np.c_[s, np.zeros(len(s))], [("vertex", np.arange(len(s))[:, None])],
                                                     point_data={"pressure": p_noisy}))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--res", type=int, default=40, help="pdeinv grid nodes per side (default 40)")
    ap.add_argument("--out", default="mesh_out", help="output folder")
    ap.add_argument("--quick", action="store_true", help="tiny sizes (used by the tests)")
    args = ap.parse_args(argv)
    res, iters, n_sensors = (24, 40, 40) if args.quick else (args.res, 150, 80)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    other_code_output(out, n_sensors)

    # 1. in: sensors and their data from the other code's file
    grid = pi.Grid2D(res)
    obs, y = read_observations(out / "sensors.vtu", grid, field="pressure")
    print(f"read {obs.n_obs} sensors from {out / 'sensors.vtu'}")

    # 2. invert on pdeinv's grid
    fwd = pi.ForwardModel(pi.physics.Darcy(grid, f=1.0), obs, noise=pi.GaussianNoise(relative=0.01))
    result = pi.solvers.MAP(prior="tv", bounds=(3.0, 12.0), max_iter=iters)(y, fwd)

    # truth from the other code's mesh, interpolated onto the grid, for the error
    sim = meshio.read(out / "simulation.vtu")
    a_grid = mesh_to_grid(sim.points, sim.point_data["permeability"], grid)
    err = float(pi.metrics.relative_l2(result.m, a_grid)[0])
    print(f"recovered permeability on the {res}x{res} grid: relative L2 error {err:.1%} against the mesh truth")

    # 3. out: the recovery written back onto the other code's mesh nodes
    write_on_mesh(out / "simulation.vtu", out / "simulation_recovered.vtu", grid,
                  {"a_recovered": result.m[0], "u_recovered": result.u[0]})
    back = meshio.read(out / "simulation_recovered.vtu")
    a_nodes = np.asarray(back.point_data["a_recovered"]).reshape(-1)
    node_err = np.linalg.norm(a_nodes - sim.point_data["permeability"]) / np.linalg.norm(sim.point_data["permeability"])
    assert np.allclose(back.points, sim.points) and len(a_nodes) == len(sim.points)
    print(f"wrote {out / 'simulation_recovered.vtu'}: {len(a_nodes)} mesh nodes, relative L2 error at the "
          f"nodes {node_err:.1%}")
    return {"rel_l2": err, "rel_l2_nodes": float(node_err)}


if __name__ == "__main__":
    main()
