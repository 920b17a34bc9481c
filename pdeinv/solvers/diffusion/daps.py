r"""DAPS: decoupled annealing posterior sampling (Zhang et al., 2024), on pdeinv's diffusion priors.

DPS (FunDPS, DiffusionPDE) pushes the ODE state towards the data through the denoiser's Jacobian.
DAPS *decouples* the two: at each noise level :math:`\sigma_i` of the annealing schedule

1. :math:`\hat x_0 = \hat x_0(x_i)` from the prior: the probability-flow ODE from :math:`x_i` to 0 in
   ``ode_steps`` Heun steps (``ode_steps=1``: the Tweedie mean :math:`D(x_i, \sigma_i)`);
2. a short Langevin run on

   .. math:: \pi(x_0) \propto N(x_0;\, \hat x_0,\, r_i^2 K)\; p(y \mid x_0)

   with the data likelihood evaluated by ``fwd`` itself -- the true simulator through its adjoint
   (``physics="simulator"``, the default; a ``SurrogateForward`` works the same) or the observation of a
   channel of a joint prior (``physics="none"``) -- no DPS approximation of the likelihood, no gradient
   through the denoiser;
3. re-noise: :math:`x_{i+1} = x_0 + \sigma_{i+1} n`, :math:`n \sim N(0, K)` (white or GRF noise: the
   prior's own law, so FunDPS's function-space priors and DiffusionPDE's joint ones both work).

If step 2 sampled the exact :math:`p(x_0 \mid x_i, y)` every :math:`x_i` would follow :math:`p(x_{\sigma_i}
\mid y)`; the approximation is the Gaussian :math:`p(x_0 | x_i) \approx N(\hat x_0, r_i^2 K)`.
``tempering`` sets :math:`r_i^2`: ``"schedule"`` (default) :math:`\sigma_d^2\sigma^2/(\sigma_d^2+\sigma^2)`
(the variance of :math:`x_0 | x_\sigma` for data of std :math:`\sigma_d`; no extra network call);
``"sigma"`` :math:`r_i = \sigma_i` (the paper's choice; the same at small :math:`\sigma`); ``"tweedie"``
:math:`\sigma_i^2\kappa` with :math:`\kappa = \langle p, J_D K p\rangle / \langle p, Kp\rangle` along a probe
:math:`p = H^T w` in the row space of the data (the Tweedie covariance where the data see it; one extra
denoiser call per level; the schedule value where :math:`\kappa < 0`).  For Gaussian data whose covariance
is proportional to ``K`` the Tweedie rule is exact, and so is DAPS at any number of levels.  With the exact
score of a GRF law (covariance not proportional to ``K``) the error of the approximation vanishes as the
levels are refined with ``"schedule"`` (spread 1.23, 1.09, 1.04 x the exact posterior's at 20, 50, 200
levels, 32² Poisson inverse), but not with ``"tweedie"`` (0.94, 0.92, 0.88 at 50, 200, 800): the scalar
:math:`\kappa` of the data directions is too small for the directions the data do not see
(``benchmarks/results/exact_score.md``).

**The Langevin run** (``langevin_steps`` steps, ``step_size`` :math:`\eta`) is preconditioned by the
Gauss--Newton covariance :math:`P = (M^{-1} + H^T\Gamma^{-1}H)^{-1}`, :math:`M = r^2 K`, with :math:`H` the
Jacobian of the predicted data (normalised units; computed by one batched VJP per observation set:
once when the data map is affine -- observations of a channel, Poisson, Helmholtz --, every
``jacobian_every`` levels at the chains' mean otherwise) and :math:`\Gamma` the noise covariance:

.. math:: x \leftarrow x + (1-a)\,P\,\nabla\log\pi(x) + \sqrt{1-a^2}\,\zeta,\qquad a = e^{-\eta},
          \quad \zeta \sim N(0, P),

with :math:`P` applied through Woodbury in data space and :math:`\zeta` by Matheron's rule (no
:math:`M^{-1}`, no square root of :math:`P`).  This is the exact Ornstein--Uhlenbeck step for a Gaussian
:math:`\pi`: with a linear forward map every step keeps :math:`\pi` invariant and the chain forgets its
start as :math:`a^t`, so a few steps sample step 2 exactly however small the noise (plain Langevin needs
a step below :math:`s^2/(r^2\|H\|^2)` there).  With a nonlinear simulator (Darcy) :math:`\nabla\log\pi`
is exact and :math:`P` a preconditioner (the Jacobian at the chains' mean or at each chain's, ``jacobian_at``).
``metropolis=True`` keeps each step with its Metropolis--Hastings probability (the proposal density needs
:math:`K^{-1}`, the noise law's ``apply_prec``), so the run samples its target exactly; unadjusted (the
default, as in the paper) the noise of :math:`P` is sized for the wrong curvature: on a cubic likelihood the
unadjusted chain diverges and the adjusted one matches quadrature (``tests/test_daps.py``).  The price is
mixing: on 10² Darcy with a Gaussian prior (20 points, 1 % noise, 12 levels x 8 steps, ``jacobian_at="chain"``)
12 % of the proposals are kept and the posterior mean fits the data to 0.04-0.4x the prior mean's misfit
(MAP with the same prior: 0.006x); on 64² Darcy with a trained prior (the UNO after
10 epochs, 2 samples, 8 draws, 100 levels) none is kept, and the unadjusted run is
the better estimator (27.6 % against 37.4 % rel. L2, MAP 19.9 %;
``benchmarks/results/daps_metropolis-darcy.md``).
``drift="chord"`` replaces the exact gradient of the log-likelihood by :math:`H^T\Gamma^{-1}(y - G(x))`: the
true residual (one forward solve per chain and step, no adjoint) through the Jacobian of the last refresh,
the chord (simplified Newton) method.  Where the map is far from linear over the chains' spread -- 2-D
Navier--Stokes, whose Jacobian at the first levels' near-zero mean has no advection -- the exact gradient's
components outside the row space of that stale :math:`H` meet the prior-sized part of :math:`P` and the chains
blow up within two steps (vorticity std 0.006, 0.16, 3.1 against the law's 0.13; the solver then stops at
the simulator's Courant check); the chord step stays in the row space of :math:`H` and the prior.  An affine
map gives the same step either way.
``preconditioner="prior"`` uses :math:`P = M` (the paper's
Langevin; small ``step_size`` and many steps with accurate data).

Exact data (no noise model) are weighted by the package's 1 % rule (a likelihood needs a variance).
``result.info["daps"]`` records the Jacobian refreshes and the tempering fallbacks;
``info["network_evals_per_sample"]`` the cost.

Reference: B. Zhang, W. Chu, J. Berner, C. Meng, A. Anandkumar, Y. Song, "Improving diffusion inverse
problem solving with decoupled noise annealing", arXiv:2407.01521 (CVPR 2025).
"""
from __future__ import annotations

import math
from typing import Optional

import torch

from pdeinv.priors.diffusion.sampling import ode_denoise
from pdeinv.solvers.diffusion.guidance import (KAPPA_FLOOR, KAPPA_ZERO, ObservationGuidance, SimulatorGuidance,
                                               record_kappa)
from pdeinv.solvers.diffusion.posterior import DiffusionPosteriorSolver

DAPS_TEMPERINGS = ("tweedie", "schedule", "sigma")


class _PerSet:
    """The data Jacobians ``H`` ``(n_sets, P, n)`` applied chain by chain (chain ``b`` uses ``H[inv[b]]``)."""

    def __init__(self, H, inv):
        self.H, self.inv = H, inv
        self.groups = [(k, (inv == k).nonzero().reshape(-1)) for k in range(H.shape[0])]

    def mv(self, v):                       # (B, n) -> (B, P)
        out = v.new_empty(v.shape[0], self.H.shape[1])
        for k, idx in self.groups:
            out[idx] = v[idx] @ self.H[k].T
        return out

    def rmv(self, w):                      # (B, P) -> (B, n)
        out = w.new_empty(w.shape[0], self.H.shape[2])
        for k, idx in self.groups:
            out[idx] = w[idx] @ self.H[k]
        return out
PRECONDITIONERS = ("gauss-newton", "prior")
DRIFTS = ("exact", "chord")


class DAPS(DiffusionPosteriorSolver):
    """``DAPS(prior, mode="inverse", physics="simulator", n_samples=8, num_steps=100, ode_steps=1,
    langevin_steps=8, step_size=1.0, tempering="schedule", preconditioner="gauss-newton", jacobian_every=1, ...)``.

    Parameters (see the module docstring; the rest as
    :class:`~pdeinv.solvers.diffusion.posterior.DiffusionPosteriorSolver`)
    ----------
    physics : ``"simulator"`` (data through ``fwd.A`` of the ``m`` channel; an ``m``-only prior works) or
        ``"none"`` (observations of the joint prior's ``u`` channel).
    num_steps : annealing levels (EDM :math:`\\rho`-spacing, ``sigma_max`` to ``sigma_min``).
    ode_steps : Heun steps of :math:`\\hat x_0(x_i)` (network evaluations: ``2 ode_steps - 1``).
    langevin_steps, step_size : the Langevin run per level (:math:`\\eta`; ``a = exp(-step_size)``).
    tempering : ``"schedule"``, ``"sigma"`` or ``"tweedie"`` (the :math:`r_i` rule).
    preconditioner : ``"gauss-newton"`` or ``"prior"``.
    jacobian_every : levels between refreshes of a nonlinear data map's Jacobian (0: once).
    drift : ``"exact"`` (default: the simulator's gradient through its adjoint) or ``"chord"`` (the true residual
        through the refreshed Jacobian ``H``; see the module docstring).
    jacobian_at : ``"mean"`` (default: a nonlinear map's Jacobian at the chains' mean, per observation set) or
        ``"chain"`` (at each chain's own :math:`\hat x_0`: better proposals, at one batched VJP of ``B P`` rows
        per refresh instead of ``P`` per set).
    metropolis : Metropolis--Hastings correction of each Langevin step for a nonlinear data map (default False,
        the paper's unadjusted Langevin; an affine map needs none).  Adjusted, the run samples its target
        exactly, but at 64² with 8 steps of ``step_size=1`` it keeps no proposal (see the module docstring).
    project_state : joint prior with ``physics="simulator"``: after each Langevin run set the ``u`` channel of
        :math:`x_0` to ``F(m)`` (default True there: the state then satisfies the PDE exactly, and the prior's
        u channel, which the data do not see, cannot drag m back).
    weights : ``{"obs": w}`` multiplies the data log-likelihood (noise variance / w).
    """

    name = "daps"
    default_steps = 100
    #: options of the DPS solvers that DAPS refuses (it has no DPS guidance step)
    refused_options = ("sampler", "S_churn", "safeguard", "max_gain", "trust", "residual")
    exact_data_weighted = True

    def __init__(self, prior, mode: str = "inverse", physics: str = "simulator", n_samples: int = 8,
                 num_steps: Optional[int] = None, *, ode_steps: int = 1, langevin_steps: int = 8,
                 step_size: float = 1.0, tempering: str = "schedule", preconditioner: str = "gauss-newton",
                 jacobian_every: int = 1, jacobian_at: str = "mean", drift: str = "exact",
                 metropolis: bool = False, project_state: Optional[bool] = None, weights: Optional[dict] = None,
                 start=None, sigma_start: Optional[float] = None, **kwargs):
        if physics not in ("simulator", "none"):
            raise ValueError(f"DAPS takes physics='simulator' (data through fwd) or 'none' (observations of the "
                             f"joint prior's channel); got {physics!r}")
        if tempering not in DAPS_TEMPERINGS:
            raise ValueError(f"tempering must be one of {DAPS_TEMPERINGS}; got {tempering!r}")
        if preconditioner not in PRECONDITIONERS:
            raise ValueError(f"preconditioner must be one of {PRECONDITIONERS}; got {preconditioner!r}")
        for key, v, lo in (("ode_steps", ode_steps, 1), ("langevin_steps", langevin_steps, 1),
                           ("jacobian_every", jacobian_every, 0)):
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise ValueError(f"{key} must be an integer >= {lo}; got {v!r}")
        if drift not in DRIFTS:
            raise ValueError(f"drift must be one of {DRIFTS}; got {drift!r}")
        if jacobian_at not in ("chain", "mean"):
            raise ValueError(f"jacobian_at must be 'chain' or 'mean'; got {jacobian_at!r}")
        if not (isinstance(step_size, (int, float)) and step_size > 0):
            raise ValueError(f"step_size must be a number > 0; got {step_size!r}")
        if weights is not None and (not isinstance(weights, dict) or set(weights) - {"obs"}):
            raise ValueError(f"DAPS weights take the key 'obs' only (it has no PDE term); got {weights!r}")
        bad = set(kwargs) & set(self.refused_options)
        if bad:
            raise ValueError(f"DAPS has no option {sorted(bad)} (those are DPS guidance options); its own are "
                             "ode_steps, langevin_steps, step_size, tempering, preconditioner, jacobian_every, "
                             "jacobian_at, drift, metropolis")
        if (start is None) != (sigma_start is None):
            raise ValueError("start= (a solver whose answer the chains start from, e.g. MAP) and sigma_start= (the "
                             "noise level, normalised units, to start the annealing at) go together")
        if start is not None and not callable(start):
            raise ValueError(f"start must be an inverse solver, solver(y, fwd, seed=) -> result with .m; got {start!r}")
        if sigma_start is not None and not (isinstance(sigma_start, (int, float)) and sigma_start > 0):
            raise ValueError(f"sigma_start must be a number > 0; got {sigma_start!r}")
        self.start, self.sigma_start = start, (None if sigma_start is None else float(sigma_start))
        super().__init__(prior, mode=mode, physics=physics, n_samples=n_samples, num_steps=num_steps,
                         weights=weights, **kwargs)
        self.weights.pop("pde", None)
        self.tempering = tempering
        self.ode_steps, self.langevin_steps, self.step_size = int(ode_steps), int(langevin_steps), float(step_size)
        self.preconditioner, self.jacobian_every = preconditioner, int(jacobian_every)
        self.jacobian_at, self.metropolis, self.drift = jacobian_at, bool(metropolis), drift
        if drift == "chord" and preconditioner != "gauss-newton":
            raise ValueError("drift='chord' uses the Gauss-Newton Jacobian: it needs preconditioner='gauss-newton'")
        joint_sim = self.physics == "simulator" and self.u_channel is not None
        if project_state and not joint_sim:
            raise ValueError("project_state=True needs a joint (m, u) prior and physics='simulator'")
        self.project_state = joint_sim if project_state is None else bool(project_state)

    def trust_for(self):
        return None

    def extra_info(self) -> dict:
        return {"ode_steps": self.ode_steps, "langevin_steps": self.langevin_steps, "step_size": self.step_size,
                "preconditioner": self.preconditioner, "jacobian_every": self.jacobian_every,
                "jacobian_at": self.jacobian_at, "drift": self.drift, "metropolis": self.metropolis,
                "project_state": self.project_state,
                "sampler": "daps", "safeguard": None, "max_gain": None,
                "start": None, "sigma_start": self.sigma_start}

    def _initial_state(self, y, fwd, seed, grid, C):
        """Warm start: the ``start`` solver's answer ``m`` (with ``u = F(m)`` for a joint prior), normalised."""
        if self.start is None:
            return None, {}
        res = self.start(y, fwd, seed=seed)
        m0 = res.m.detach().to(torch.float64)
        if self.clip is not None:
            m0 = m0.clamp(*self.clip)
        if C == 1:
            x = m0
        else:
            x = torch.zeros(m0.shape[0], C, *grid.shape, dtype=torch.float64, device=m0.device)
            x[:, self.m_channel:self.m_channel + 1] = m0
            if self.u_channel is not None:
                with torch.no_grad():
                    x[:, self.u_channel:self.u_channel + 1] = fwd.solve(m0.to(y.dtype)).to(torch.float64)
        start_info = {"start": {"method": (res.info or {}).get("method", type(self.start).__name__),
                                "time_s": (res.info or {}).get("time_s")}}
        with torch.no_grad():
            return self.prior.encode(x).to(torch.float64), start_info

    # ------------------------------------------------------------------ data terms
    def _data_terms(self, batch):
        """``[(predict(x_phys) -> (B, P_j), y (B, P_j), noise variance (B, P_j))]`` of this mode/physics."""
        y, s, fwd, scales = batch["y"], batch["s"], batch["fwd"], batch["scales"]
        mc, uc = self.m_channel, self.u_channel
        terms = []
        if self.mode in ("inverse", "both"):
            if self.physics == "simulator":
                terms.append((SimulatorGuidance(fwd, y, mc, s, clip=self.clip), y, s))
            else:
                terms.append((ObservationGuidance(fwd.observation, y, uc, s, scales[uc]), y, s))
        if self.mode == "forward":
            terms.append((ObservationGuidance(fwd.observation, y, mc, s, scales[mc]), y, s))
        if self.mode == "both" and batch["y_m"] is not None:
            terms.append((ObservationGuidance(batch["obs_m"], batch["y_m"], mc, batch["s_m"], scales[mc]),
                          batch["y_m"], batch["s_m"]))
        w = float(self.weights.get("obs", 1.0))
        if not w > 0:
            raise ValueError(f"DAPS needs a positive data weight; got weights['obs']={w}")
        out = []
        for term, yy, ss in terms:
            B = yy.shape[0]
            yv = yy.reshape(B, -1).to(torch.float64)
            s2 = torch.as_tensor(ss, dtype=torch.float64, device=yv.device).reshape(B, -1).pow(2)
            s2 = s2.expand(B, yv.shape[1]).clone()
            rule = (0.01 * yv.pow(2).mean(1, keepdim=True).sqrt()).pow(2).expand_as(s2)   # exact data: 1 % rule
            s2 = torch.where(s2 > 0, s2, torch.where(rule > 0, rule, torch.ones_like(rule)))
            out.append((term.predict, yv, s2 / w))
        return out

    # ------------------------------------------------------------------ sampling
    def _sample_chains(self, denoiser, shape, batch: dict, generator, dtype, device):
        prior, noise, sch = self.prior, self.prior.noise, self.prior.schedule
        terms = self._data_terms(batch)
        y = torch.cat([t[1] for t in terms], 1)                      # (B, P)
        s2 = torch.cat([t[2] for t in terms], 1)                     # (B, P)
        stats = {"kappa_evals": 0, "kappa_fallbacks": 0, "fallback_sigma": [], "levels": 0, "langevin_steps": 0,
                 "jacobians": 0, "affine": None,
                 "accepted": 0, "proposed": 0}

        def predict(z):                                              # normalised (b, C, ...) -> (b, P)
            x = prior.decode(z)
            return torch.cat([t[0](x).to(torch.float64) for t in terms], 1)

        inv = torch.unique(batch["sets"], return_inverse=True)[1]
        levels = sch.steps(self.num_steps, dtype=torch.float64).tolist()
        first = 0
        if batch.get("z_init") is not None:      # warm start: anneal from sigma_start around the start's answer
            first = next((k for k in range(self.num_steps) if levels[k] <= self.sigma_start), self.num_steps - 1)
            x = batch["z_init"].to(device=device, dtype=torch.float64) + levels[first] * noise.sample(
                shape, generator=generator, dtype=torch.float64, device=device)
        else:
            x = levels[0] * noise.sample(shape, generator=generator, dtype=torch.float64, device=device)
        lin = None
        a = math.exp(-self.step_size)
        for i in range(first, self.num_steps):
            sigma, s_next = levels[i], levels[i + 1]
            with torch.no_grad():
                x0 = ode_denoise(denoiser, x, sigma, self.ode_steps)
            if lin is None or (not lin["affine"] and self.jacobian_every > 0 and i % self.jacobian_every == 0):
                known = None if lin is None else lin["affine"]
                if known is None or self.jacobian_at == "mean":
                    lin = self._linearise(predict, x0, inv, noise, known)
                if not lin["affine"] and self.jacobian_at == "chain":      # each chain at its own x0
                    lin = self._linearise(predict, x0, torch.arange(x0.shape[0], device=inv.device), noise, False)
                stats["jacobians"] += 1
                stats["affine"] = lin["affine"]
            r2 = self._r2(denoiser, x, x0, sigma, lin, generator, stats)
            try:
                x0 = self._langevin(predict, x0, r2, y, s2, lin, a, noise, generator, stats)
            except ValueError as e:          # the simulator refused a chain's state (e.g. a Courant check)
                hint = "; drift='chord' keeps the steps in the Jacobian's row space" if self.drift == "exact" else ""
                raise RuntimeError(f"DAPS diverged at level {i} (sigma={sigma:.3g}): the simulator refused a chain's "
                                   f"state ({e}){hint}") from e
            if self.project_state:
                x0 = self._project(x0, batch["fwd"])
            stats["levels"] += 1
            stats["langevin_steps"] += self.langevin_steps * x.shape[0]
            x = x0 + s_next * noise.sample(shape, generator=generator, dtype=torch.float64, device=device) \
                if s_next > 0 else x0
            if not bool(torch.isfinite(x).all()):
                raise RuntimeError(f"DAPS diverged at level {i} (sigma={sigma:.3g}); lower step_size, use "
                                   "preconditioner='gauss-newton', or (a strongly nonlinear map) drift='chord'")
        return x.to(dtype), stats

    @torch.no_grad()
    def _project(self, z, fwd):
        """Joint prior, simulator data: replace the ``u`` channel of ``x_0`` by ``F(m)`` (the PDE holds exactly)."""
        x = self.prior.decode(z).to(torch.float64)
        m = x[:, self.m_channel:self.m_channel + 1]
        if self.clip is not None:
            m = m.clamp(*self.clip)
        x[:, self.u_channel:self.u_channel + 1] = fwd.solve(m).to(x.dtype)
        return self.prior.encode(x).to(z.dtype)

    def _linearise(self, predict, x0, inv, noise, affine):
        """The data map linearised per observation set at the chains' mean ``x0`` (normalised units): ``H``
        (:class:`_PerSet`, ``(n_sets, P, n)``, one batched VJP per set), ``G = H K H^T``, the reference points,
        and whether the map is affine (probed once: then ``H`` replaces the simulator in the Langevin runs)."""
        n_sets = int(inv.max()) + 1
        Hs, zs, gs = [], [], []
        for k in range(n_sets):
            z = x0[inv == k].mean(0, keepdim=True).detach()
            with torch.enable_grad():
                g0 = predict(z)
                P = g0.shape[1]
                zr = z.expand(P, *z.shape[1:]).clone().requires_grad_(True)
                g = predict(zr)
                (J,) = torch.autograd.grad(g, zr, grad_outputs=torch.eye(P, dtype=g.dtype, device=g.device))
            Hs.append(J.reshape(P, -1).to(torch.float64))
            zs.append(z.reshape(-1).to(torch.float64))
            gs.append(g0.detach().reshape(-1))
            if affine is None:      # g(z + d) - g(z) = H d for an affine map; d a draw of the noise law
                d = noise.sample(z.shape, generator=torch.Generator().manual_seed(7), dtype=torch.float64,
                                 device=z.device)
                with torch.no_grad():
                    lin = Hs[-1] @ d.reshape(-1)
                    diff = (predict(z + d) - g0.detach()).reshape(-1)
                affine = bool(float((diff - lin).norm()) <= 1e-6 * float(diff.norm() + lin.norm()) + 1e-300)
        H = torch.stack(Hs)
        KHt = noise.apply_cov(H.reshape(-1, *x0.shape[1:])).reshape(H.shape)
        G = H @ KHt.transpose(1, 2)
        return {"H": _PerSet(H, inv), "G": 0.5 * (G + G.transpose(1, 2)), "z": torch.stack(zs), "g": torch.stack(gs),
                "inv": inv, "affine": affine}

    def _r2(self, denoiser, x, x0, sigma, lin, generator, stats):
        """``r^2`` per chain ``(B,)`` (see ``tempering``)."""
        B = x.shape[0]
        sd2 = self.prior.schedule.sigma_data ** 2
        ks = sd2 / (sd2 + sigma ** 2)
        if self.tempering == "sigma":
            return torch.full((B,), sigma ** 2, dtype=torch.float64, device=x.device)
        if self.tempering == "schedule":
            return torch.full((B,), sigma ** 2 * ks, dtype=torch.float64, device=x.device)
        P = lin["G"].shape[1]
        w = (torch.randint(0, 2, (B, P), generator=generator) * 2 - 1).to(dtype=torch.float64, device=x.device)
        p = lin["H"].rmv(w).reshape(x.shape)                            # a probe in the row space of the data
        W = self.prior.noise.apply_cov(p)
        den = (p * W).flatten(1).sum(1).clamp_min(1e-300)
        eps = 1e-2 * sigma / W.flatten(1).pow(2).mean(1).sqrt().clamp_min(1e-300)
        e = eps.reshape(-1, *([1] * (x.dim() - 1)))
        with torch.no_grad():
            D = x0 if self.ode_steps == 1 else denoiser.denoise(x, sigma)
            Dp = denoiser.denoise(x + e * W, sigma)
        k = (p * (Dp - D)).flatten(1).sum(1) / eps / den
        bad = ~(k > -KAPPA_ZERO) | ~torch.isfinite(k)
        record_kappa(stats, sigma, int(bad.sum()), B)
        k = torch.where(bad, torch.full_like(k, ks), k).clamp(KAPPA_FLOOR, 1.0)
        return sigma ** 2 * k

    def _langevin(self, predict, x0, r2, y, s2, lin, a, noise, generator, stats=None):
        r"""``langevin_steps`` steps on :math:`N(x_0; \hat x_0, r^2K)\,p(y|x_0)` from :math:`\hat x_0` (module docstring).

        With an affine data map each step is the exact OU step of the Gaussian target (always kept).  Otherwise,
        with ``metropolis=True``, each proposal :math:`x' \sim N(x + (1-a)P\nabla\log\pi(x),\,(1-a^2)P)` is kept
        with the Metropolis--Hastings probability, so the run samples :math:`\pi` exactly whatever the stale
        Jacobian in :math:`P`; unadjusted (the default) every proposal is kept.  ``stats["accepted"]``/``["proposed"]`` count the decisions."""
        shp = (-1, *([1] * (x0.dim() - 1)))
        r2v = r2.reshape(shp)
        H, inv = lin["H"], lin["inv"]
        gn = self.preconditioner == "gauss-newton"
        affine = bool(lin["affine"])
        chord = self.drift == "chord"
        if gn:
            S = r2.reshape(-1, 1, 1) * lin["G"][inv] + torch.diag_embed(s2)
            L = torch.linalg.cholesky(S)

        def woodbury(v):           # M H^T S^{-1} H v (per chain)
            w = torch.cholesky_solve(H.mv(v.flatten(1)).unsqueeze(-1), L).squeeze(-1)
            return r2v * noise.apply_cov(H.rmv(w).reshape(v.shape))

        def loglik(z):             # (log p(y|z) per chain (B,), its gradient)
            if affine:             # exact for an affine map: H replaces the simulator
                res = y - lin["g"][inv] - H.mv(z.flatten(1) - lin["z"][inv])
                return -0.5 * (res.pow(2) / s2).sum(1), H.rmv(res / s2).reshape(z.shape)
            if chord:              # the true residual through the Jacobian H of the last refresh (no adjoint)
                with torch.no_grad():
                    res = y - predict(z)
                return -0.5 * (res.pow(2) / s2).sum(1), H.rmv(res / s2).reshape(z.shape)
            with torch.enable_grad():
                zg = z.detach().requires_grad_(True)
                ll = -0.5 * ((y - predict(zg)).pow(2) / s2).sum(1)
                (g,) = torch.autograd.grad(ll.sum(), zg)
            return ll.detach(), g

        def drift(z, g):           # P grad log pi(z)
            d = r2v * noise.apply_cov(g) - (z - x0)
            return d - woodbury(d) if gn else d

        def quad_prec(v):          # v^T P^{-1} v per chain (P^{-1} = M^{-1} + H^T Gamma^{-1} H, or M^{-1})
            q = (v * noise.apply_prec(v)).flatten(1).sum(1) / r2
            return q + (H.mv(v.flatten(1)).pow(2) / s2).sum(1) if gn else q

        def log_target(z, ll):
            v = z - x0
            return ll - 0.5 * (v * noise.apply_prec(v)).flatten(1).sum(1) / r2

        z = x0.clone()
        ll, g = loglik(z)
        d = drift(z, g)
        c = 1.0 - a * a
        for _ in range(self.langevin_steps):
            xi = r2v.sqrt() * noise.sample(z.shape, generator=generator, dtype=z.dtype, device=z.device)
            if gn:
                e = torch.randn(s2.shape, generator=generator, dtype=z.dtype).to(z.device) * s2.sqrt()
                w = torch.cholesky_solve((H.mv(xi.flatten(1)) + e).unsqueeze(-1), L).squeeze(-1)
                xi = xi - r2v * noise.apply_cov(H.rmv(w).reshape(z.shape))
            zp = (z + (1 - a) * d + math.sqrt(c) * xi).detach()
            llp, gp = loglik(zp)
            dp = drift(zp, gp)
            if affine or not self.metropolis:
                z, ll, d = zp, llp, dp
                continue
            log_alpha = (log_target(zp, llp) - log_target(z, ll)
                         - 0.5 * quad_prec(z - zp - (1 - a) * dp) / c + 0.5 * quad_prec(zp - z - (1 - a) * d) / c)
            u = torch.rand(log_alpha.shape, generator=generator, dtype=torch.float64).to(z.device)
            keep = (torch.log(u) < log_alpha) & torch.isfinite(log_alpha)
            k = keep.reshape(shp)
            z, d = torch.where(k, zp, z), torch.where(k, dp, d)
            ll = torch.where(keep, llp, ll)
            if stats is not None:
                stats["accepted"] += int(keep.sum())
                stats["proposed"] += int(keep.numel())
        return z
