"""Quick start: recover a Darcy permeability from 3 % noisy pressure sensors by MAP.

    -div(a grad u) = 1 in the unit square, u = 0 on the boundary,
    a = 12 where mu >= 0 else 3, mu ~ N(0, (-Lap + 9 I)^-2)      (the benchmark law)

The pressure is observed at 3 % of the grid nodes with 1 % noise; MAP with a
total-variation prior and the bounds 3 <= a <= 12 (a sigmoid reparametrisation)
recovers ``a`` by L-BFGS with adjoint gradients.  The result is saved as
netCDF (xarray) and drawn next to the truth.

    python examples/quickstart_darcy_map.py [--res 48] [--out quickstart_out] [--quick]
"""
import argparse
import time
from pathlib import Path

import pdeinv as pi
from pdeinv.tasks import TASKS


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--res", type=int, default=48, help="grid nodes per side (default 48)")
    p.add_argument("--iters", type=int, default=150, help="L-BFGS iterations (default 150)")
    p.add_argument("--out", default="quickstart_out", help="output folder")
    p.add_argument("--quick", action="store_true", help="tiny sizes (used by the tests)")
    args = p.parse_args(argv)
    res, iters = (24, 40) if args.quick else (args.res, args.iters)

    grid = pi.Grid2D(res)                                          # nodes on [0,1]^2, boundary included
    problem = pi.physics.Darcy(grid, f=1.0, g=0.0)                 # problem(a) -> u, differentiable
    a_true = TASKS["darcy"].sample_m(grid, 1, seed=3)              # (1, 1, res, res), values {3, 12}

    obs = pi.PointObservation.random(grid, fraction=0.0305, seed=1)   # 3 % of the nodes, seeded
    fwd = pi.ForwardModel(problem, obs, noise=pi.GaussianNoise(relative=0.01))
    y = fwd(a_true, seed=2)                                        # (1, 1, n_obs) noisy pressures

    t0 = time.perf_counter()
    result = pi.solvers.MAP(prior="tv", bounds=(3.0, 12.0), max_iter=iters)(y, fwd)
    wall = time.perf_counter() - t0

    err = float(pi.metrics.relative_l2(result.m, a_true)[0])
    px = float(pi.metrics.error_rate(result.m, a_true, threshold=7.5)[0])
    print(f"{res}x{res} grid, {obs.n_obs} sensors: relative L2 error {err:.1%}, pixel error rate {px:.1%}, "
          f"{result.info['iterations']} iterations, {wall:.1f} s")

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ds = result.to_xarray()
    ds.to_netcdf(out / "darcy_map.nc", engine="h5netcdf")
    _figure(a_true, result.m, obs, out / "darcy_map.png")
    print(f"wrote {out / 'darcy_map.nc'} and {out / 'darcy_map.png'}")
    return {"rel_l2": err, "error_rate": px}


def _figure(true, rec, obs, path):
    try:                                   # the package's plotting helper, when installed
        from pdeinv.plot import compare
        return compare(true=true, recovered=rec, sensors=obs, path=path)
    except ImportError:
        pass
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(1, 3, figsize=(9, 3))
    for a, f, t in zip(ax, (true, rec, (rec - true).abs()), ("true a", "MAP", "|error|")):
        a.imshow(f[0, 0].T, origin="lower", extent=(0, 1, 0, 1))
        a.set_title(t)
    ax[0].scatter(*obs.points.T, s=5, c="r")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


if __name__ == "__main__":
    main()
