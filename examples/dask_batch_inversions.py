"""A batch of inversions on a local Dask cluster (the same code runs on a real cluster).

Each task recovers one Darcy permeability from its own random 3 % sensor set
(seeded by the sample index), so tasks are independent and the results do not
depend on the number of workers or the order in which they finish.  Results
are collected as they complete; one is checked against a serial run.

On a cluster, start ``dask scheduler`` and ``dask worker tcp://HOST:8786
--nthreads 1`` on the nodes (each with pdeinv installed) and pass
``--scheduler tcp://HOST:8786``.  The benchmark harness does the same with
``pdeinv benchmark --workers N`` / ``--scheduler ADDRESS``.

    python examples/dask_batch_inversions.py [--workers 2] [--n 6] [--scheduler ADDR] [--quick]
"""
import argparse
import time

import torch

import pdeinv as pi
from pdeinv.tasks import TASKS


def invert_one(index: int, res: int, iters: int) -> dict:
    """Draw sample ``index`` of the benchmark law, observe it, invert it; return the errors."""
    torch.set_num_threads(1)                          # one thread per worker process
    from pdeinv.solvers import MAP
    grid = pi.Grid2D(res)
    a_true = TASKS["darcy"].sample_m(grid, 1, seed=1000 + index)
    obs = pi.PointObservation.random(grid, fraction=0.0305, seed=index)
    fwd = pi.ForwardModel(pi.physics.Darcy(grid, f=1.0), obs, noise=pi.GaussianNoise(relative=0.01))
    y = fwd(a_true, seed=10_000 + index)
    t0 = time.perf_counter()
    result = MAP(prior="tv", bounds=(3.0, 12.0), max_iter=iters)(y, fwd)
    return {"index": index, "rel_l2": float(pi.metrics.relative_l2(result.m, a_true)[0]),
            "error_rate": float(pi.metrics.error_rate(result.m, a_true)[0]), "seconds": time.perf_counter() - t0}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=2, help="local worker processes (default 2)")
    ap.add_argument("--scheduler", default=None, help="address of a running scheduler instead of a local cluster")
    ap.add_argument("--n", type=int, default=6, help="number of inversions (default 6)")
    ap.add_argument("--res", type=int, default=32, help="grid nodes per side (default 32)")
    ap.add_argument("--quick", action="store_true",
                    help="tiny sizes and in-process (threaded) workers, so that the tests stay fast")
    args = ap.parse_args(argv)
    n, res, iters = (3, 16, 20) if args.quick else (args.n, args.res, 100)

    import logging

    from dask.distributed import Client, LocalCluster, as_completed
    t0 = time.perf_counter()
    cluster = None if args.scheduler else LocalCluster(n_workers=args.workers, threads_per_worker=1,
                                                       processes=not args.quick, dashboard_address=None,
                                                       silence_logs=logging.ERROR)
    with Client(args.scheduler or cluster) as client:
        futures = [client.submit(invert_one, i, res, iters, pure=False) for i in range(n)]
        results = []
        for fut in as_completed(futures):          # write / use each result as soon as it is there
            r = fut.result()
            results.append(r)
            print(f"sample {r['index']}: relative L2 {r['rel_l2']:.1%}, pixel error {r['error_rate']:.1%}, "
                  f"{r['seconds']:.1f} s on a worker")
    if cluster is not None:
        cluster.close()
    wall = time.perf_counter() - t0
    results.sort(key=lambda r: r["index"])
    serial = invert_one(0, res, iters)
    assert serial["rel_l2"] == results[0]["rel_l2"], "a worker's result differs from the serial one"
    mean = sum(r["rel_l2"] for r in results) / n
    print(f"{n} inversions in {wall:.1f} s (cluster start included); mean relative L2 {mean:.1%}; "
          f"worker result == serial result for sample 0")
    return results


if __name__ == "__main__":
    main()
