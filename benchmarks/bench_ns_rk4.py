"""Navier-Stokes time steppers at equal accuracy: pdeinv RK4 / Heun vs jax-cfd's crank_nicolson_rk4.

Run:  OMP_NUM_THREADS=1 python benchmarks/bench_ns_rk4.py [--quick] [--res 64 128 256] [--tol 1e-6]

The BENCHMARKS.md ``ns`` problem (nu = 1e-3, forcing 0.1 (sin 2pi(x+y) + cos 2pi(x+y)), w0 from the
task's law, T = 1, float64).  For each resolution:

1. accuracy (batch 1, sample 0): the reference is jax-cfd's ``crank_nicolson_rk4`` with N_ref steps;
   every stepper runs T = 1 with N = 2, 3, ..., 40 steps, then N = 40 * 2^(k/8), and its relative
   L2 error ``|w(T) - w_ref(T)| / |w_ref(T)|`` is recorded; the *largest dt meeting the tolerance*
   is the first N whose error is <= ``--tol`` (errors fall monotonically there).  The distance between
   the two codes' fine answers (pdeinv RK4 at N_ref steps vs the reference) is the spatial-discretisation
   floor (the two 2/3 masks differ in the one Nyquist-adjacent row/column) and is reported.
   pdeinv refuses a step above its Courant limit (1 Heun, 2 RK4); such N are recorded as refused.
2. speed (batch 1 and 16): CPU seconds per step (``time.process_time``, all threads of the process:
   the shared machine's other jobs stretch wall time, not the work done; wall time is recorded too),
   best of ``--repeats`` timed runs, the steppers taking
   turns run by run so that the load of the shared machine hits them alike, of about
   ``--steps`` x 16 x 64² / (n² B) steps, at least 3, at most 200, after a warm-up/compile run; best-of
   because the machine is shared), and seconds per unit simulated time = seconds per step x N.

Threads: torch one intra-op thread; jax with ``--xla_cpu_multi_thread_eigen=false
intra_op_parallelism_threads=1`` (set before jax is imported).  jax-cfd columns are skipped with a
note when jax / jax-cfd are not installed (``pip install -e .[bench]``); they are not pdeinv
dependencies.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import md_table, write_results  # noqa: E402
from pdeinv.physics.navier_stokes import NavierStokes2D, fno_forcing  # noqa: E402

NU, T = 1e-3, 1.0
STEP_COUNTS = list(range(2, 41)) + [round(40 * 2 ** (k / 8)) for k in range(1, 41)]   # then ratio 2^(1/8)


def _jax():
    try:
        import jax
        jax.config.update("jax_enable_x64", True)
        import jax.numpy as jnp
        from jax_cfd.base import grids
        from jax_cfd.spectral import equations, time_stepping
        return jax, jnp, grids, equations, time_stepping
    except ImportError:
        return None


class JaxCFD:
    """jax-cfd's spectral NavierStokes2D with the steady vorticity forcing added to its explicit terms."""

    def __init__(self, n, forcing, stepper="crank_nicolson_rk4"):
        jax, jnp, grids, equations, ts = _jax()
        self.jax, self.jnp = jax, jnp
        grid = grids.Grid((n, n), domain=((0, 1), (0, 1)))
        f_h = jnp.fft.rfft2(jnp.asarray(forcing.numpy()[0, 0]))

        class Forced(equations.NavierStokes2D):
            def explicit_terms(self, w_h):
                return super().explicit_terms(w_h) + f_h

        eq = Forced(viscosity=NU, grid=grid, drag=0.0, smooth=True)
        make = getattr(ts, stepper)

        def roll(w_h, dt, nsteps):
            step = make(eq, dt)
            return jax.lax.fori_loop(0, nsteps, lambda i, x: step(x), w_h)

        self._roll = jax.jit(jax.vmap(roll, in_axes=(0, None, None)))

    def __call__(self, w0: torch.Tensor, nsteps: int, t_end: float = T) -> torch.Tensor:
        """``w0`` ``(B, 1, n, n)`` torch -> w(t_end) ``(B, 1, n, n)`` torch."""
        jnp = self.jnp
        w_h = jnp.fft.rfft2(jnp.asarray(w0[:, 0].numpy()))
        out = self._roll(w_h, t_end / nsteps, nsteps)
        out = jnp.fft.irfft2(out, s=w0.shape[-2:]).block_until_ready()
        return torch.from_numpy(self.jax.device_get(out).copy())[:, None]


def _pdeinv(grid, stepper):
    def run(w0, nsteps, t_end=T):
        p = NavierStokes2D(grid, nu=NU, forcing="fno", record_times=t_end, dt=t_end / nsteps, stepper=stepper)
        with torch.no_grad():
            return p(w0)
    return run


def _rel(a, b):
    return float((a - b).norm() / b.norm())


def _time_steps(fns, w0, steps, repeats):
    """Seconds per step of each ``fns[name]``, best of ``repeats``, the steppers taking turns."""
    dt = 1e-3
    cpu = {name: [] for name in fns}
    wall = {name: [] for name in fns}
    for fn in fns.values():
        fn(w0, steps, steps * dt)                          # warm-up / compile
    for _ in range(repeats):
        for name, fn in fns.items():
            t0, c0 = time.perf_counter(), time.process_time()
            fn(w0, steps, steps * dt)
            cpu[name].append(time.process_time() - c0)
            wall[name].append(time.perf_counter() - t0)
    return {name: (min(cpu[name]) / steps, min(wall[name]) / steps) for name in fns}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--res", type=int, nargs="+", default=[64, 128, 256])
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 16])
    ap.add_argument("--tol", type=float, default=1e-6)
    ap.add_argument("--nref", type=int, default=2048)
    ap.add_argument("--steps", type=int, default=40, help="steps per timed run at 64² x 16 (scaled by size)")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--quick", action="store_true", help="64^2 only, fewer repeats")
    ap.add_argument("--name", default="ns_rk4")
    args = ap.parse_args(argv)
    if args.quick:
        args.res, args.repeats = [64], 1
    torch.set_num_threads(1)
    from pdeinv.tasks import get_task
    task = get_task("ns")
    have_jax = _jax() is not None
    records, notes = [], []
    if not have_jax:
        notes.append("jax / jax-cfd not installed: jax-cfd columns skipped and the reference is pdeinv RK4 "
                     "at N_ref steps (pip install -e .[bench]).")
    t_all = time.perf_counter()
    for n in args.res:
        grid = task.grid(n)
        w0_all = task.sample_m(grid, max(args.batches), seed=0).double()
        forcing = fno_forcing(grid)
        steppers = {"pdeinv rk4": _pdeinv(grid, "rk4"), "pdeinv heun": _pdeinv(grid, "heun")}
        if have_jax:
            steppers["jax-cfd crank_nicolson_rk4"] = JaxCFD(n, forcing)
        w0 = w0_all[:1]
        ref_name = "jax-cfd crank_nicolson_rk4" if have_jax else "pdeinv rk4"
        ref = steppers[ref_name](w0, args.nref)
        floor = _rel(steppers["pdeinv rk4"](w0, args.nref), ref) if have_jax else 0.0
        found = {}
        for name, fn in steppers.items():
            errs, n_ok = {}, None
            for N in STEP_COUNTS:
                try:
                    errs[N] = _rel(fn(w0, N), ref)
                except ValueError as e:                    # pdeinv's Courant check refuses the step
                    errs[N] = f"refused ({str(e).split(':')[1].split(';')[0].strip()})"
                    continue
                if errs[N] <= args.tol:
                    n_ok = N
                    break
            found[name] = (errs, n_ok)
        rep = max(1, args.repeats if n < 256 else args.repeats - 3)
        for B in args.batches:
            steps = min(200, max(3, round(args.steps * 16 * 64 ** 2 / (n * n * B))))
            timing = _time_steps(steppers, w0_all[:B], steps, rep)
            for name, (errs, n_ok) in found.items():
                sps, wps = timing[name]
                rec = {"res": n, "batch": B, "stepper": name, "tol": args.tol, "n_steps": n_ok,
                       "dt": T / n_ok if n_ok else None, "error": errs.get(n_ok), "s_per_step": sps,
                       "s_per_unit_time": sps * n_ok if n_ok else None, "wall_s_per_step": wps, "timed_steps": steps, "repeats": rep,
                       "errors_by_steps": {str(k): v for k, v in errs.items()},
                       "reference": f"{ref_name}, {args.nref} steps", "floor_pdeinv_vs_ref": floor}
                records.append(rec)
                print(f"{n}^2 B={B} {name:28s} N={n_ok} err={errs.get(n_ok)} {sps * 1e3:.3f} ms/step "
                      f"(wall {wps * 1e3:.3f}) "
                      f"-> {rec['s_per_unit_time']} s per unit time", flush=True)
    # speed-up of pdeinv rk4 over jax-cfd at equal accuracy
    by = {(r["res"], r["batch"], r["stepper"]): r for r in records}
    for r in records:
        j = by.get((r["res"], r["batch"], "jax-cfd crank_nicolson_rk4"))
        if j and r["s_per_unit_time"] and j["s_per_unit_time"]:
            r["speedup_vs_jaxcfd"] = j["s_per_unit_time"] / r["s_per_unit_time"]
    cols = [("res", "n", "{}"), ("batch", "batch", "{}"), ("stepper", "stepper", "{}"),
            ("n_steps", "steps for T=1", "{}"), ("error", "rel. error vs ref", "{:.2e}"),
            ("s_per_step", "CPU ms / step", None), ("wall", "wall ms / step", None),
            ("s_per_unit_time", "CPU s / unit time", "{:.4f}"),
            ("speedup_vs_jaxcfd", "speed-up vs jax-cfd", "{:.2f}x")]
    rows = [{**r, "s_per_step": f"{r['s_per_step'] * 1e3:.3f}", "wall": f"{r['wall_s_per_step'] * 1e3:.3f}"}
            for r in records]
    md = (f"# NS time steppers at equal accuracy (tolerance {args.tol:g} relative at T = 1)\n\n"
          f"`OMP_NUM_THREADS=1 python benchmarks/bench_ns_rk4.py` -- ns task (nu = {NU:g}, FNO forcing, "
          f"float64), w0 = the task's sample 0 (accuracy) / samples 0..B-1 (speed).  Reference: "
          f"{ref_name} with {args.nref} steps.  Steps tried: {STEP_COUNTS}; the first meeting the tolerance "
          f"is used; pdeinv refuses steps above its Courant limit (1 Heun, 2 RK4).  Times: CPU time of the process "
          f"(best of {args.repeats} runs, {max(1, args.repeats - 3)} at 256²; steppers take turns), which is "
          f"what the shared machine's load distorts least; wall time beside it.  Threads: torch 1, XLA "
          f"`{os.environ.get('XLA_FLAGS')}`.\n\n"
          + md_table(rows, cols)
          + "\n\nSpatial floor (pdeinv RK4 vs the reference, both at the reference step): "
          + ", ".join(f"{n}^2: {by[(n, args.batches[0], 'pdeinv rk4')]['floor_pdeinv_vs_ref']:.1e}"
                      for n in args.res)
          + (f"\n\n{' '.join(notes)}" if notes else "")
          + f"\n\nTotal benchmark wall time {time.perf_counter() - t_all:.0f} s.\n")
    meta = {"tol": args.tol, "nref": args.nref, "steps_tried": STEP_COUNTS, "threads_torch": 1,
            "xla_flags": os.environ.get("XLA_FLAGS"), "notes": notes}
    if have_jax:
        import jax
        import jax_cfd
        meta.update(jax=jax.__version__, jax_cfd=getattr(jax_cfd, "__version__", "?"))
    write_results(args.name, records, md, meta)


if __name__ == "__main__":
    main()
