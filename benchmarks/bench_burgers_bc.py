"""Dirichlet Burgers (BurgersBC) against the Raissi / deepxde reference: error and cost per resolution.

For n = 255 k + 1 nodes on [-1, 1] (grids that contain every reference node), nu = 0.01/pi,
u0 = -sin(pi x), u(+-1) = 0, it measures in one run:

* the relative L2 error over the reference frames (the shipped subsample
  ``tests/fixtures/burgers_raissi_frames.npz``, or all 100 frames x 256 nodes of deepxde's
  ``Burgers.npz`` with ``--reference PATH``);
* the time of one forward solve (frames t = 0.01 .. 0.99) and of forward + gradient with respect
  to nu (batch 1, float64, min of ``--repeats``);
* with ``--nu-fit``: nu identified from the reference frames (all after t = 0, no noise) by
  Gauss-Newton on log nu (forward-mode Jacobian, from 2 nu), i.e. the error that the solver's own
  discretisation error puts on a noise-free MAP estimate.

Usage::

    python benchmarks/bench_burgers_bc.py                                  # shipped subsample
    python benchmarks/bench_burgers_bc.py --reference /path/to/Burgers.npz # full reference
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from _common import md_table, write_results  # noqa: E402
from pdeinv.physics import BurgersBC, Grid1D  # noqa: E402
from pdeinv.physics.time_stepping import schedule  # noqa: E402
from pdeinv.tasks.burgers_bc import RAISSI_NU  # noqa: E402

FIXTURE = HERE.parent / "tests" / "fixtures" / "burgers_raissi_frames.npz"


def load_reference(path):
    d = np.load(path)
    if "usol" in d.files:                       # deepxde layout: x (256, 1), t (100, 1), usol (x, t)
        return d["x"].ravel(), d["t"].ravel(), d["usol"].T
    return d["x"].ravel(), d["t"].ravel(), d["u"]


def run(k, x_ref, t_ref, u_ref, courant, repeats, nu_fit=False):
    n = 255 * k + 1
    grid = Grid1D.interval(-1.0, 1.0, n)
    x = grid.coords()[0]
    idx = [int(round((xi + 1) / 2 * (n - 1))) for xi in x_ref]
    assert np.allclose(x[idx].numpy(), x_ref, atol=1e-12)
    u0 = -torch.sin(math.pi * x)[None, None]
    times = [float(t) for t in t_ref[1:]]
    problem = BurgersBC(grid, nu=RAISSI_NU, record_times=times, courant=courant)
    fwd = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        u = problem(u0)
        fwd.append(time.perf_counter() - t0)
    frames = torch.cat([u0[:, None], u], 1)[0, :, 0][:, idx].numpy()
    err = float(np.linalg.norm(frames - u_ref) / np.linalg.norm(u_ref))
    pv = BurgersBC(grid, unknown="viscosity", u0=u0, record_times=times, courant=courant)
    grad = []
    for _ in range(repeats):
        nu = torch.tensor([RAISSI_NU], dtype=torch.float64, requires_grad=True)
        t0 = time.perf_counter()
        (pv(nu) ** 2).sum().backward()
        grad.append(time.perf_counter() - t0)
    steps = sum(s for s, _ in schedule(times, problem.time_step(u0)))
    rec = {"n": n, "h": grid.h, "steps": steps, "courant": courant, "rel_l2": err,
           "forward_s": min(fwd), "forward_grad_s": min(grad)}
    if nu_fit:
        ref = torch.tensor(u_ref[1:])

        def res(lognu):
            return (pv(torch.exp(lognu))[0, :, 0][:, idx] - ref).reshape(-1)
        lognu = torch.tensor([math.log(2 * RAISSI_NU)], dtype=torch.float64)
        t0 = time.perf_counter()
        for it in range(20):
            r, jv = torch.func.jvp(res, (lognu,), (torch.ones_like(lognu),))
            step = -(jv @ r) / (jv @ jv)
            lognu = lognu + step
            if abs(float(step)) < 1e-7:
                break
        rec.update(nu_rel_error=float(torch.exp(lognu)) / RAISSI_NU - 1, nu_fit_iters=it + 1,
                   nu_fit_s=time.perf_counter() - t0)
    return rec


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reference", default=str(FIXTURE))
    ap.add_argument("--ks", default="1,2,4,8,16")
    ap.add_argument("--courant", type=float, default=2.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--nu-fit", action="store_true", help="also identify nu from the frames (Gauss-Newton)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    x_ref, t_ref, u_ref = load_reference(args.reference)
    rows = [run(int(k), x_ref, t_ref, u_ref, args.courant, args.repeats, args.nu_fit) for k in args.ks.split(",")]
    for a, b in zip(rows, rows[1:]):
        b["order"] = math.log(a["rel_l2"] / b["rel_l2"]) / math.log(a["h"] / b["h"])
    src = Path(args.reference).name
    md = (f"# Dirichlet Burgers (Raissi) against the reference `{src}`\n\n"
          f"nu = 0.01/pi, u0 = -sin(pi x), u(+-1) = 0; {len(t_ref)} frames x {len(x_ref)} nodes; "
          f"central FD + IMEX ARS(3,4,3), Courant {args.courant}; batch 1, float64, one thread.\n\n"
          + md_table(rows, [("n", "nodes", None), ("steps", "steps", None), ("rel_l2", "rel. L2 error", "{:.2e}"),
                            ("order", "order", "{:.2f}"), ("forward_s", "forward (s)", "{:.3f}"),
                            ("forward_grad_s", "forward + d/dnu (s)", "{:.3f}")]
                   + ([("nu_rel_error", "nu error (GN fit)", "{:+.2e}"), ("nu_fit_iters", "GN iters", None),
                       ("nu_fit_s", "fit (s)", "{:.1f}")] if args.nu_fit else [])))
    write_results("burgers_bc", rows, md, meta={"reference": src, "courant": args.courant})
    print(md)


if __name__ == "__main__":
    main()
