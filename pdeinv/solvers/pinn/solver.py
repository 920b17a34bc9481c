r"""Physics-informed neural network (PINN) inversion on deepxde's PyTorch backend.

A network :math:`u_\theta` (plus a second network :math:`m_\vartheta` when the
unknown is a coefficient field, plus unknown scalars :math:`s`) is fitted by
minimising (Raissi, Perdikaris & Karniadakis, J. Comput. Phys. 378, 2019)

.. math::
   L(\theta, \vartheta, s) =
     \frac{w_r}{(\epsilon_r\,\bar r)^2}\,\frac{1}{N_r}\sum_{i}\mathcal{R}[u_\theta; m_\vartheta, s](x_i)^2
   + \frac{w_d}{N_d}\sum_{j}\Big(\frac{u_\theta(x_j) - y_j}{\sigma_j}\Big)^2
   + \frac{w_b}{N_b}\sum_k \mathcal{B}[u_\theta](x_k)^2 ,

with :math:`\mathcal{R}` the continuous residual of the problem
(:mod:`pdeinv.solvers.pinn.elliptic`, :mod:`~pdeinv.solvers.pinn.time_dependent`),
collocation points :math:`x_i` in the domain, the sparse observations
:math:`(x_j, y_j)` of ``fwd.observation`` (as a
``dde.icbc.PointSetBC``), :math:`\sigma_j` the observation noise std of
``fwd.noise`` (so a noisier data set is trusted less), :math:`\bar r` the
typical size of the residual and :math:`\epsilon_r` (``pde_tol``) the relative
model error the residual is allowed; the quotient puts both terms on the
scale of a Gaussian log-likelihood.  Known Dirichlet data are imposed exactly
(output transform), periodic/initial data as soft conditions.  The fit runs
Adam, then L-BFGS (``lbfgs_iters``; the deepxde 1.15 ``maxiter`` bug is worked
around by also setting ``iter_per_step``/``fun_per_step``).

``PINN(...)(y, fwd, seed=0)`` fits one PINN per sample of the batch ``y``
``(B, 1, P)`` and returns an :class:`~pdeinv.solvers.base.InverseResult` with
``m`` evaluated on ``fwd.grid``, the state ``u`` on the state grid, the loss
history (``history["loss"]`` and one list per term, every ``log_every``
iterations) and the identified scalars in ``info["scalars"]``.
"""
from __future__ import annotations

import logging
import math
import time
from typing import Dict, Optional, Sequence

import torch

from pdeinv._deepxde import deepxde_session, import_deepxde
from pdeinv._validation import check_finite
from pdeinv.solvers.base import InverseResult, InverseSolver
from pdeinv.solvers.pinn.base import PINNProblem, grid_points
from pdeinv.solvers.pinn.identify import _is_burgers_identification, _solve_raissi
from pdeinv.solvers.pinn.residuals import pinn_problem

log = logging.getLogger(__name__)


def observation_points(fwd, y: torch.Tensor, spec: PINNProblem) -> torch.Tensor:
    """Physical coordinates ``(P, D)`` of the observations of ``fwd`` (float64, CPU).

    Uses ``fwd.observation.points`` when present; any other linear indexed
    observation (masks, boundary traces) is located by observing the coordinate
    fields themselves (bilinear interpolation reproduces linear functions).
    Time-dependent problems need points with a time column (``D = d + 1``), an
    observation with ``times`` (every point at every time), or a
    ``SpaceTimePointObservation`` (its scattered ``(x, t)`` points).
    """
    obs = fwd.observation
    stp = getattr(obs, "spacetime_points", None)     # SpaceTimePointObservation: one time per point
    pts = stp() if callable(stp) else getattr(obs, "points", None)
    if pts is None:
        grid = getattr(obs, "grid", None) or fwd.state_grid
        if grid is None or not hasattr(obs, "index"):
            raise ValueError(f"the PINN needs observation coordinates; {type(obs).__name__} has neither "
                             "`points` nor an index on a grid")
        coords = grid_points(grid)                                    # (N, d)
        fields = coords.T.reshape(grid.ndim, 1, *grid.shape)          # (d, 1, *shape)
        pts = obs(fields)[:, 0].T                                     # (P, d)
    pts = torch.as_tensor(pts, dtype=torch.float64).detach().cpu()
    if pts.dim() == 1:
        pts = pts[:, None]
    times = None if callable(stp) else getattr(obs, "times", None) or getattr(spec, "times", None)
    if spec.time_dependent and times is not None and pts.shape[1] == spec.grid.ndim:
        t = torch.as_tensor(times, dtype=torch.float64).reshape(-1)
        pts = torch.cat([pts.repeat(len(t), 1), t.repeat_interleave(pts.shape[0])[:, None]], 1)
    check_finite(pts, "observation points")
    lo, hi = spec.bounds()
    if spec.time_dependent:
        lo, hi = list(lo) + [0.0], list(hi) + [spec.T]
    if pts.shape[1] != len(lo):
        raise ValueError(f"observation points have {pts.shape[1]} coordinates; the PINN's domain has {len(lo)} "
                         f"({'space + time' if spec.time_dependent else 'space'})")
    for d in range(len(lo)):
        a, b = float(pts[:, d].min()), float(pts[:, d].max())
        tol = 1e-9 * max(1.0, abs(hi[d] - lo[d]))
        if a < lo[d] - tol or b > hi[d] + tol:
            raise ValueError(f"observation points lie outside the domain: coordinate {d} spans [{a:g}, {b:g}], "
                             f"the domain is [{lo[d]:g}, {hi[d]:g}]")
    return pts


def _progress_callback(dde, bar, scalar_fns, record):
    """deepxde callback: advances the tqdm bar and records the scalars at every logged step."""

    class _Progress(dde.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.last = None

        def on_epoch_end(self):
            st = self.model.train_state.step
            if bar is not None and self.last is not None:
                bar.update(max(st - self.last, 0))
            self.last = st
            steps = self.model.losshistory.steps
            if steps and steps[-1] == st and st not in record:
                record[st] = {k: float(fn()) for k, fn in scalar_fns.items()}

        def on_train_begin(self):
            self.last = self.model.train_state.step
            st = self.last
            if st not in record:
                record[st] = {k: float(fn()) for k, fn in scalar_fns.items()}

    return _Progress()


def _history(model, names, record) -> Dict[str, list]:
    """Loss history from deepxde's ``losshistory`` (weighted terms) plus the scalar trajectories."""
    lh = model.losshistory
    hist = {"step": [], "loss": []}
    seen = set()
    for st, terms in zip(lh.steps, lh.loss_train):
        if st in seen:
            continue
        seen.add(st)
        terms = [float(t) for t in terms]
        hist["step"].append(int(st))
        hist["loss"].append(float(sum(terms)))
        for n, t in zip(names, terms):
            hist.setdefault(f"loss_{n}", []).append(t)
        if record:
            near = min(record, key=lambda r: abs(r - st))
            for k, v in record[near].items():
                hist.setdefault(k, []).append(v)
    return hist


class PINN(InverseSolver):
    r"""PINN inversion: ``PINN(...)(y, fwd, seed=0) -> InverseResult``.

    Parameters
    ----------
    scalars : ``{name: initial guess}`` of PDE parameters to identify as
        ``dde.Variable`` (``"a"``/``"f"`` for Darcy, ``"k"`` for Helmholtz,
        ``"nu"`` for Burgers/NS), parametrised as :math:`s_0 e^\theta`.
    known : ``{name: value}`` inputs that are known (override the problem's
        fixed values; e.g. ``{"T": 1.0}`` or a known initial field ``"u0"``).
    layers : hidden layer widths of the state network (and of the field network).
    activation, initializer : passed to ``dde.nn.FNN``/``PFNN``.
    adam_iters, lr, lbfgs_iters : optimiser schedule (Adam, then L-BFGS).
    n_domain, n_boundary, n_initial : collocation points (Hammersley).
    pde_tol : allowed relative size of the residual :math:`\epsilon_r` (weights the PDE term).
    obs_weight, pde_weight, bc_weight : extra multipliers of the loss terms.
    field_bounds : ``(lo, hi)`` range of an unknown positive coefficient field (sigmoid map).
    dtype : network float type (float32 default; float64 for tight identification).
    device : torch device for the fit (default: that of ``y``).
    verbose : tqdm progress bar.
    log_every : history resolution in iterations.
    recipe : ``"auto"`` (default), ``"raissi"`` or ``"generic"``.  ``"raissi"`` is the published
        recipe for identifying a Burgers viscosity from scattered space-time points
        (:func:`~pdeinv.solvers.pinn.identify.identify_burgers`: 9 x 20 tanh, float64, residual at the
        data points, plain MSE loss, :math:`\nu = e^\vartheta`, L-BFGS-B to its ftol/gtol tests);
        ``"auto"`` uses it for exactly that problem (a Burgers problem with ``unknown="viscosity"``
        observed by a ``SpaceTimePointObservation``) and the generic deepxde fit otherwise.
    recipe_options : keyword arguments for ``identify_burgers`` (e.g. ``maxiter``, ``ftol``,
        ``dirichlet=0.0`` for a soft :math:`u = 0` at the ends, ``n_collocation``, ``layers``).
    """

    name = "pinn"

    def uses_noise_weights(self, fwd) -> bool:
        """Without a noise model the PINN trusts the data to 0.1 % of their RMS (see ``obs_weight``)."""
        return getattr(fwd, "noise", None) is not None

    def __init__(self, scalars: Optional[Dict[str, float]] = None, known: Optional[dict] = None,
                 layers: Sequence[int] = (40, 40, 40), activation: str = "tanh",
                 initializer: str = "Glorot normal", adam_iters: int = 3000, lr: float = 1e-3,
                 lbfgs_iters: int = 2000, n_domain: int = 1500, n_boundary: int = 200, n_initial: int = 200,
                 pde_tol: float = 0.01, obs_weight: float = 1.0, pde_weight: float = 1.0, bc_weight: float = 1.0,
                 field_bounds=None, dtype: torch.dtype = torch.float32, device=None, verbose: bool = False,
                 log_every: int = 100, seed: int = 0, recipe: str = "auto", recipe_options: Optional[dict] = None):
        if recipe not in ("auto", "raissi", "generic"):
            raise ValueError(f"recipe must be 'auto', 'raissi' or 'generic'; got {recipe!r}")
        self.recipe, self.recipe_options = recipe, dict(recipe_options or {})
        if adam_iters < 0 or lbfgs_iters < 0 or adam_iters + lbfgs_iters == 0:
            raise ValueError(f"need adam_iters >= 0, lbfgs_iters >= 0 and at least one iteration; got "
                             f"{adam_iters}, {lbfgs_iters}")
        if not pde_tol > 0:
            raise ValueError(f"pde_tol must be > 0; got {pde_tol}")
        if field_bounds is not None and not (0 < field_bounds[0] < field_bounds[1]):
            raise ValueError(f"field_bounds must be (lo, hi) with 0 < lo < hi; got {field_bounds}")
        self.scalars, self.known = dict(scalars or {}), dict(known or {})
        self.layers, self.activation, self.initializer = [int(w) for w in layers], activation, initializer
        self.adam_iters, self.lr, self.lbfgs_iters = int(adam_iters), float(lr), int(lbfgs_iters)
        self.n_domain, self.n_boundary, self.n_initial = int(n_domain), int(n_boundary), int(n_initial)
        self.pde_tol, self.obs_weight, self.pde_weight, self.bc_weight = pde_tol, obs_weight, pde_weight, bc_weight
        self.field_bounds, self.dtype, self.device = field_bounds, dtype, device
        self.verbose, self.log_every, self.seed = verbose, max(1, int(log_every)), seed

    # ------------------------------------------------------------------ one sample
    def _fit_one(self, dde, spec: PINNProblem, X_obs, y_obs, s_obs, seed, bar):
        geom = spec.geometry(dde)
        n_out = spec.n_outputs
        d_in = X_obs.shape[1]
        # scalars as dde.Variable (log-parametrised)
        thetas = {k: dde.Variable(0.0) for k in spec.scalars0}
        spec.bind_scalars({k: (lambda k=k: spec.scalars0[k] * torch.exp(thetas[k])) for k in thetas})
        y_scale = float(y_obs.pow(2).mean().sqrt()) or 1.0
        spec.set_scales(y_scale)

        def pde(x, out):
            res = spec.residual(x, out)
            return res if len(res) > 1 else res[0]

        conds = spec.conditions(dde, geom)
        obs_bc = dde.icbc.PointSetBC(X_obs.numpy(), y_obs.numpy()[:, None], component=0)
        if spec.time_dependent:
            data = dde.data.TimePDE(geom, pde, conds + [obs_bc], num_domain=self.n_domain,
                                    num_boundary=self.n_boundary if conds else 0,
                                    num_initial=self.n_initial if conds else 0, num_test=min(200, self.n_domain))
        else:
            data = dde.data.PDE(geom, pde, conds + [obs_bc], num_domain=self.n_domain,
                                num_boundary=self.n_boundary if conds else 0, num_test=min(200, self.n_domain))
        if n_out == 1:
            net = dde.nn.FNN([d_in] + self.layers + [1], self.activation, self.initializer)
        else:  # independent sub-networks: the state and the unknown field (PFNN with per-output widths)
            net = dde.nn.PFNN([d_in] + [[w] * n_out for w in self.layers] + [n_out], self.activation,
                              self.initializer)
        net.apply_output_transform(spec.output_transform)
        model = dde.Model(data, net)
        # weights: residual terms by (pde_tol * scale)^-2, known conditions by u_scale^-2, data by sigma^-2
        r_scales = spec.residual_scale()
        w = [self.pde_weight / (self.pde_tol * max(r, 1e-300)) ** 2 for r in r_scales]
        w += [self.bc_weight / (self.pde_tol * y_scale) ** 2] * len(conds)
        w += [self.obs_weight / s_obs ** 2]
        # normalise so that the data term starts near 1 (Adam is scale-free, L-BFGS's tolerances are not)
        norm = self.obs_weight / s_obs ** 2 * y_scale ** 2
        w = [wi / norm for wi in w]
        names = spec.residual_names() + [f"bc{i}" for i in range(len(conds))] + ["obs"]
        record: Dict[int, dict] = {}
        ext = list(thetas.values())
        scal_fns = {k: (lambda k=k: spec.scalar_values[k]().detach()) for k in thetas}
        t0 = time.perf_counter()
        if self.adam_iters:
            model.compile("adam", lr=self.lr, loss_weights=w, external_trainable_variables=ext, verbose=0)
            model.train(iterations=self.adam_iters, display_every=self.log_every,
                        callbacks=[_progress_callback(dde, bar, scal_fns, record)], verbose=0)
        if self.lbfgs_iters:
            cfg = dde.optimizers.config
            opts = dict(cfg.LBFGS_options)
            try:
                dde.optimizers.set_LBFGS_options(maxiter=self.lbfgs_iters, ftol=0, gtol=1e-12)
                # deepxde 1.15 bug: iter_per_step/fun_per_step are computed once, at import, from the default
                # maxiter, so maxiter alone is ignored; set them too (one "step" = log_every iterations)
                step = min(self.log_every, self.lbfgs_iters)
                cfg.LBFGS_options["iter_per_step"] = step
                cfg.LBFGS_options["fun_per_step"] = int(step * 1.25)
                model.compile("L-BFGS", loss_weights=w, external_trainable_variables=ext, verbose=0)
                model.train(callbacks=[_progress_callback(dde, bar, scal_fns, record)], verbose=0)
            finally:
                cfg.LBFGS_options.clear()
                cfg.LBFGS_options.update(opts)
        history = _history(model, names, record)
        wall = time.perf_counter() - t0
        scal = {k: float(fn()) for k, fn in scal_fns.items()}
        if history["loss"] and not math.isfinite(history["loss"][-1]):
            raise RuntimeError("the PINN loss became NaN/inf; lower lr or check the data scale")
        return model, net, scal, history, wall

    # ------------------------------------------------------------------ contract
    def solve(self, y: torch.Tensor, fwd, *, seed: Optional[int] = None, **kwargs) -> InverseResult:
        seed = self.seed if seed is None else seed
        check_finite(y, "observations y")
        if y.dim() < 2:
            raise ValueError(f"observations y must be (B, C, P); got shape {tuple(y.shape)}")
        problem = getattr(fwd, "problem", None)
        if problem is None:
            raise ValueError("the PINN needs a ForwardModel with a physical problem (fwd.problem); "
                             "a surrogate forward model has no PDE residual")
        if self.recipe != "generic" and _is_burgers_identification(problem, fwd, strict=self.recipe == "raissi"):
            return _solve_raissi(self, y, fwd, problem, seed)
        import_deepxde()   # sets the backend before pinn_problem imports deepxde
        spec0 = pinn_problem(problem, self.scalars, self.known, self.field_bounds)
        yb = y.reshape(y.shape[0], -1) if y.dim() == 3 and y.shape[1] == 1 else None
        if y.dim() == 4 and y.shape[2] == 1:            # time series (B, T, 1, P) -> (B, T*P), time-major
            yb = y.reshape(y.shape[0], -1)
        if yb is None:
            raise ValueError(f"the PINN handles one observed channel: y must be (B, 1, P) or (B, T, 1, P); "
                             f"got {tuple(y.shape)}")
        X_obs = observation_points(fwd, y, spec0)
        if X_obs.shape[0] != yb.shape[1]:
            raise ValueError(f"{yb.shape[1]} observed values but {X_obs.shape[0]} observation points")
        sig = fwd.noise_std(y).reshape(y.shape[0], -1)[:, 0] if getattr(fwd, "noise", None) is not None else None
        device = torch.device(self.device) if self.device is not None else y.device
        ms, us, hists, scalars, walls = [], [], [], [], []
        from tqdm.auto import tqdm
        total = (self.adam_iters + self.lbfgs_iters) * y.shape[0]
        with tqdm(total=total, disable=not self.verbose, desc="PINN", leave=False) as bar:
            for b in range(y.shape[0]):
                spec = pinn_problem(problem, self.scalars, self.known, self.field_bounds)
                yv = yb[b].detach().to("cpu", torch.float64)
                rms = float(yv.pow(2).mean().sqrt()) or 1.0
                # exact data: trust the data to 0.1 % of its RMS
                s = float(sig[b]) if sig is not None and float(sig[b]) > 0 else 1e-3 * rms
                with deepxde_session(self.dtype, device, seed=seed + b) as dde_:
                    model, net, scal, hist, wall = self._fit_one(dde_, spec, X_obs, yv, s, seed + b, bar)

                    def net_fn(pts, net=net):
                        with torch.no_grad():
                            return net(pts.to(dtype=self.dtype, device=device))

                    grid, sgrid = fwd.grid, fwd.state_grid
                    m = spec.m_from_network(net_fn, grid, y.dtype, device)
                    u = spec.u_from_network(net_fn, sgrid, y.dtype, device) if sgrid is not None else None
                ms.append(m.to(y.device)); us.append(None if u is None else u.to(y.device))
                hists.append(hist); scalars.append(scal); walls.append(wall)
                log.info("PINN sample %d: %.1f s, scalars %s, final loss %.3e", b, wall, scal,
                         hist["loss"][-1] if hist["loss"] else float("nan"))
        history = hists[0] if len(hists) == 1 else {k: [float(sum(h[k][i] for h in hists) / len(hists))
                                                         for i in range(min(len(h[k]) for h in hists))]
                                                     for k in hists[0]}
        info = {"method": "pinn", "scalars": scalars[0] if len(scalars) == 1 else scalars,
                "scalars_per_sample": scalars, "wall_time": float(sum(walls)),
                "adam_iters": self.adam_iters, "lbfgs_iters": self.lbfgs_iters, "layers": self.layers,
                "n_domain": self.n_domain, "dtype": str(self.dtype), "seed": seed,
                "outputs": spec0.outputs, "field": spec0.field}
        u = torch.cat(us) if all(u is not None for u in us) else None
        return InverseResult(m=torch.cat(ms), u=u, history=history, info=info, grid=fwd.grid)
