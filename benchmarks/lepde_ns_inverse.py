r"""NS inverse through LE-PDE's latent evolution, against the converged simulator MAP (``bench_lepde.py --task ns_long``).

Unknown: the vorticity at the rollout start, frame ``t0 = in_frames - 1`` (``(1, 1, n, n)``).  Data: the same
random share of the nodes in each later frame ``t0+1 .. T``, noise ``sigma = 0.01 rms(clean data)``.

Latent rows optimise LE-PDE's latent vector ``z`` (answer ``decode(z)``) by L-BFGS to its tolerance:

    J(z) = sum_t |y_t - P D(z_t)|^2 / (2 s_t^2) + R(z),      z_t = G^t(z)

* *plain*: ``s_t = sigma`` and ``R = |z|^2 / 2`` (the earlier benchmark's objective);
* *law + error model*: ``z = mu + L xi`` with ``N(mu, L L^T)`` fitted to the encoded training windows ending at
  ``t0`` (Ledoit-Wolf shrinkage), ``R = |xi|^2 / 2``; and the approximation-error model of Kaipio and Somersalo:
  ``s_t^2 = sigma^2 + v_t``, with ``v_t`` the mean squared latent-rollout error at lead ``t`` on trajectories held
  out from training and from the inverted ones (the surrogate's own error is the larger part of the misfit);
* *annealed*: the same objective, with the data variance annealed from ``100 s_t^2`` to ``s_t^2`` in 5 geometric
  stages, each warm-starting the next (LE-PDE's inverse design anneals its boundary mask the same way, from soft
  to sharp).

The simulator row is the Bayesian MAP of the initial vorticity ``w0`` under the task's own law
(``MAP(**task.map_options)``, whitened L-BFGS to its gradient tolerance) through the full solver, whose answer at
``t0`` is ``S_{t0}(w0_MAP)``: the converged classical baseline with the true prior.  Every answer is re-simulated
from ``t0`` with the true solver.
"""
from __future__ import annotations

import time

import numpy as np
import torch

from pdeinv.metrics import relative_l2 as rel


def ledoit_wolf(Z: torch.Tensor):
    """Mean and shrunk covariance ``(1 - r) S + r (tr S / d) I`` of rows ``Z (N, d)``, ``r`` by Ledoit and Wolf (2004)."""
    N, d = Z.shape
    mu = Z.mean(0)
    X = Z - mu
    S = X.T @ X / N
    target = torch.eye(d, dtype=Z.dtype) * torch.trace(S) / d
    d2 = ((S - target) ** 2).sum()
    b2 = sum(((torch.outer(x, x) - S) ** 2).sum() for x in X) / N ** 2
    r = float(min(b2, d2) / d2)
    return mu, (1 - r) * S + r * target, r


@torch.no_grad()
def latent_law(lepde, frames_tr, in_frames):
    """``(mu, L, shrinkage)`` of the encoded training windows ending at frame ``in_frames - 1``."""
    p = next(lepde.parameters())
    Z = lepde.encode(lepde._frames_norm(frames_tr[:, :in_frames].to(p.dtype))).double()
    mu, C, r = ledoit_wolf(Z)
    return mu, torch.linalg.cholesky(C), r


@torch.no_grad()
def rollout_error_variance(lepde, held, in_frames):
    """Mean squared error per lead time ``(n_roll,)`` of LE-PDE's rollout from true windows of trajectories ``held``."""
    pred = lepde(held[:, :in_frames], held.shape[1] - in_frames).double()
    return (pred - held[:, in_frames:].double()).pow(2).mean(dim=(0, 2, 3, 4))


def _lbfgs(x, loss_fn, max_iter):
    opt = torch.optim.LBFGS([x], lr=1, max_iter=max_iter, max_eval=int(1.25 * max_iter), tolerance_grad=1e-6,
                            tolerance_change=1e-12, history_size=50, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = loss_fn(x)
        loss.backward()
        return loss
    opt.step(closure)
    st = opt.state[opt._params[0]]
    return int(st.get("n_iter", 0)), int(st.get("func_evals", 0))


def latent_invert(lepde, obs, y, s2, n_roll, frame_shape, mu=None, L=None, anneal=(1.0,), max_iter=1000):
    """Minimise J over ``xi`` (``z = mu + L xi``, or ``z = xi`` when ``mu`` is None); returns (frame, info)."""
    d = lepde.config["latent_dim"]
    xi = torch.zeros(1, d, dtype=torch.float64, requires_grad=True)
    p = next(lepde.parameters())
    iters = evals = 0

    def z_of(x):
        return x if mu is None else mu + x @ L.T

    for a in anneal:
        def loss_fn(x, a=a):
            zs = lepde.latent_rollout(z_of(x).to(p.dtype), n_roll)
            frames = lepde._frames_denorm(lepde.decode(zs.flatten(0, 1)).reshape(1, n_roll, *frame_shape)).double()
            r2 = (obs(frames) - y) ** 2                                          # (1, n_roll, 1, P)
            return (r2 / (2 * a * s2.reshape(1, -1, 1, 1))).sum() + 0.5 * (x ** 2).sum()
        it, ev = _lbfgs(xi, loss_fn, max_iter)
        iters, evals = iters + it, evals + ev
    with torch.no_grad():
        est = lepde._frames_denorm(lepde.decode(z_of(xi).to(p.dtype))[:, None])[:, 0].double()
    return est, {"iterations": iters, "evaluations": evals}


def ns_latent_inverse(args, task, res, lepde, tr, held, te, in_frames):
    """Rows (one per method, means over ``args.inv_samples`` test trajectories) for the NS inverse above."""
    from pdeinv.physics import ForwardModel, GaussianNoise, PointObservation
    from pdeinv.solvers import MAP
    grid, full = task.make(res)
    times = list(full.record_times)
    t0 = in_frames - 1
    t_start = 0.0 if t0 == 0 else times[t0 - 1]
    _, restart = task.make(res, record_times=[t - t_start for t in times[t0:]])     # from frame t0 to the end
    _, from_w0 = task.make(res, record_times=times[t0:])                            # from w0, frames t0+1..T
    _, to_t0 = task.make(res, record_times=[t_start]) if t0 > 0 else (None, None)
    n_roll = te.shape[1] - in_frames
    frame_shape = tuple(te.shape[2:])
    n = min(args.inv_samples, te.shape[0])
    mu, L, shrink = latent_law(lepde, tr, in_frames)
    v = rollout_error_variance(lepde, torch.cat([held, te[n:]]), in_frames)
    anneal = tuple(float(a) for a in np.geomspace(100.0, 1.0, 5))
    methods = {"plain": "LE-PDE latent, N(0, I) latent prior, noise only (the earlier objective)",
               "law": "LE-PDE latent, fitted latent law + approximation-error model",
               "anneal": "LE-PDE latent, law + error model, annealed data variance",
               "sim": "Bayesian MAP of w0 through the simulator (task law), then S_t0(w0)"}
    out = {k: [] for k in methods}
    for i in range(n):
        obs = PointObservation.random(grid, fraction=args.inv_fraction, seed=1000 + i)
        truth = te[i:i + 1, t0].double()
        clean = obs(te[i:i + 1, in_frames:].double())                                 # (1, n_roll, 1, P)
        sigma = 0.01 * float(clean.pow(2).mean().sqrt())
        gen = torch.Generator().manual_seed(2000 + i)
        y = clean + sigma * torch.randn(clean.shape, generator=gen, dtype=clean.dtype)
        s_noise = torch.full((n_roll,), sigma ** 2, dtype=torch.float64)
        s_model = s_noise + v
        runs = {"plain": dict(s2=s_noise), "law": dict(s2=s_model, mu=mu, L=L),
                "anneal": dict(s2=s_model, mu=mu, L=L, anneal=anneal)}
        for key, kw in runs.items():
            tt = time.perf_counter()
            est, info = latent_invert(lepde, obs, y, n_roll=n_roll, frame_shape=frame_shape,
                                      max_iter=args.inv_iter, **kw)
            out[key].append(dict(est=est, time=time.perf_counter() - tt, **info))
        tt = time.perf_counter()
        opts = {**task.map_options, "max_iter": args.inv_map_iter}
        fwd = ForwardModel(from_w0, obs, noise=GaussianNoise(sigma=sigma))
        res_map = MAP(**opts, verbose=False)(y, fwd)
        with torch.no_grad():
            est = res_map.m.double() if to_t0 is None else to_t0(res_map.m.double())[:, 0]
        out["sim"].append(dict(est=est, time=time.perf_counter() - tt, iterations=res_map.info.get("iterations"),
                               evaluations=res_map.info.get("n_evaluations"), converged=res_map.info.get("converged"),
                               stop=res_map.info.get("stop_reason")))
        for key in methods:
            r = out[key][-1]
            with torch.no_grad():
                resim = restart(r["est"])
            r["state"] = float(rel(r["est"], truth))
            r["resim"] = float(rel(resim, te[i:i + 1, in_frames:].double()))
            r["chi2"] = float(((obs(resim) - y) ** 2).mean() / sigma ** 2)
            r.pop("est")
    setting = (f"{n} test trajectories; unknown: frame {t0} ({res}x{res} = {res * res:,} values); data: the same "
               f"{args.inv_fraction:.2%} random nodes in each of the {n_roll} later frames, noise 1 % of the data's "
               f"rms.  Latent law: Gaussian fitted to {tr.shape[0]} encoded training windows (Ledoit-Wolf shrinkage "
               f"{shrink:.3f}).  Error model: LE-PDE's rollout error variance per lead time on {held.shape[0] + te.shape[0] - n} "
               f"held-out trajectories, rms {float(v.mean().sqrt()):.3g} against the noise's {sigma:.3g} on the last "
               f"sample.  L-BFGS (strong Wolfe) to gradient tolerance 1e-6 (latent; <= {args.inv_iter} iterations per stage); "
               f"simulator MAP: the task's law on w0, whitened L-BFGS to its tolerance (<= {args.inv_map_iter} "
               "iterations).  chi²: mean squared misfit of the re-simulated answer over the noise variance (1 = fits "
               "the data to the noise).")
    recs = []
    for key, label in methods.items():
        r = out[key]
        recs.append({"method": label, "task": "ns-inverse", "setting": setting,
                     "unknowns": res * res if key == "sim" else lepde.config["latent_dim"],
                     "iterations": round(float(np.mean([v["iterations"] or 0 for v in r])), 1),
                     "evaluations": round(float(np.mean([v["evaluations"] or 0 for v in r])), 1),
                     "state_rel_l2": float(np.mean([v["state"] for v in r])),
                     "state_rel_l2_each": [v["state"] for v in r],
                     "resimulated_rel_l2": float(np.mean([v["resim"] for v in r])),
                     "chi2": float(np.mean([v["chi2"] for v in r])),
                     "time_s": float(np.mean([v["time"] for v in r])),
                     "converged": [v.get("converged") for v in r], "stop": [v.get("stop") for v in r]})
    return recs
