r"""Posterior guidance for the EDM samplers: observations, PDE residual, simulator.

The samplers integrate the ODE with the guided denoiser (see :mod:`.samplers`)

.. math:: D_y(x,\sigma) = D(x,\sigma) + \sigma^2 K \nabla_x \textstyle\sum_j w_j \ell_j\big(D(x,\sigma)\big),

where the gradient flows through the denoiser (diffusion posterior sampling,
DPS; Chung et al. 2023) and each :math:`\ell_j` is a Gaussian log-likelihood
of the denoised estimate :math:`\hat x_0 = D(x,\sigma)`.  The weights are not
hand-tuned constants: each likelihood is tempered by the uncertainty of
:math:`\hat x_0` at noise level :math:`\sigma`, :math:`r^2 = \sigma^2\kappa` with
:math:`\kappa` the Tweedie covariance :math:`\mathrm{Cov}[x_0|x_\sigma]/\sigma^2 = J_D K`
measured along a random probe (see :class:`PosteriorGuidance`; or the schedule's
:math:`r_\sigma^2 = \sigma_d^2\sigma^2/(\sigma_d^2+\sigma^2)`), in normalised units,

.. math:: \ell_\text{obs} = -\tfrac12 (y - \mathcal{O}\hat x_0)^T
          \big(\Gamma + \gamma\, r_\sigma^2 s_c^2\, \mathcal{O} K \mathcal{O}^T\big)^{-1} (y - \mathcal{O}\hat x_0),

with :math:`\Gamma` the observation-noise covariance of the forward model,
:math:`s_c` the physical scale of the observed channel and :math:`K` the
diffusion-noise covariance (``I`` for white noise).  So the guidance strength
follows the noise likelihood and the noise level: :math:`\sigma^2/(\Gamma + r^2)`
tends to 1 (replace the observed values) as :math:`\sigma\to 0` with exact
data, and stays bounded at large :math:`\sigma`.

* :class:`ObservationGuidance` -- a linear observation of one channel (inverse
  mode: ``u``; forward mode: ``m``).
* :class:`SimulatorGuidance` -- :math:`y = \mathcal{O}(F(\hat m))` through a
  :class:`~pdeinv.physics.ForwardModel` or ``SurrogateForward``, i.e. the true
  simulator (adjoint gradients) or a surrogate instead of the learned joint field.
* :class:`ResidualGuidance` -- the problem's real PDE residual
  :math:`R(\hat m, \hat u)` (``problem.residual``, scaled like the continuous
  equation) as a pseudo-observation :math:`R = 0` whose variance is the one that
  the denoiser's uncertainty induces, :math:`v_R = \sigma^2\mathrm{tr}(J_R J_D K J_R^T)/n_R`
  (a Hutchinson estimate along one probe :math:`J_R^T w` per step).

:func:`tune_guidance` picks the multipliers ``w`` (``obs``, ``pde``) on a few
held-out samples and records them with the model.
"""
from __future__ import annotations

import itertools
import logging
from typing import Callable, Dict, Optional, Sequence, Tuple

import torch

log = logging.getLogger(__name__)


def _channel(x: torch.Tensor, c: int) -> torch.Tensor:
    return x[:, c:c + 1]


def _rademacher(shape, generator, like: torch.Tensor) -> torch.Tensor:
    return (torch.randint(0, 2, tuple(shape), generator=generator) * 2 - 1).to(dtype=like.dtype, device=like.device)


def _vjp_probe(fn: Callable, z_hat: torch.Tensor, generator) -> torch.Tensor:
    r"""``J_g^T w`` at ``z_hat`` for ``g = fn(z)`` and a Rademacher ``w`` of g's shape (normalised units)."""
    with torch.enable_grad():
        z = z_hat.detach().requires_grad_(True)
        g = fn(z)
        w = _rademacher(g.shape, generator, g)
        (p,) = torch.autograd.grad((g * w).sum(), z)
    return p.detach()


class ObservationGuidance:
    """Gaussian likelihood of linear observations ``y = O(x[:, channel]) + e``.

    ``noise_std``: ``(B, 1, ..)`` or number, std of ``e`` (0 for exact data).
    ``scale``: physical size of one normalised unit of the channel.
    ``noise``: the diffusion noise; with GRF noise the correlation
    :math:`\\mathcal{O}K\\mathcal{O}^T` of the observed points is used.
    """

    name = "obs"

    def __init__(self, observation, y: torch.Tensor, channel: int, noise_std, scale: float = 1.0, noise=None,
                 gamma: float = 1.0):
        self.observation, self.channel, self.scale, self.gamma = observation, int(channel), float(scale), float(gamma)
        self.y = y.reshape(y.shape[0], -1)
        s = torch.as_tensor(noise_std, dtype=y.dtype, device=y.device)
        self.s2 = (s.reshape(-1, 1) if s.dim() else s.reshape(1, 1)).expand(y.shape[0], 1).pow(2)
        P = self.y.shape[1]
        self.corr = None
        if noise is not None and getattr(noise, "kind", "white") != "white":
            eye = torch.eye(P, dtype=y.dtype, device=y.device)
            KHt = noise.apply_cov(observation.adjoint(eye.reshape(P, 1, P)))   # (P, 1, *grid)
            M = observation(KHt).reshape(P, P)
            self.corr = 0.5 * (M + M.T)

    def probe(self, z: torch.Tensor, generator, decode=None) -> torch.Tensor:
        """Dual probe field ``O^T v`` on the observed channel (Rademacher ``v``), normalised units."""
        B, P = z.shape[0], self.y.shape[1]
        v = _rademacher((B, P), generator, z)
        p = torch.zeros_like(z)
        p[:, self.channel:self.channel + 1] = self.observation.adjoint(v.reshape(B, 1, P))
        return p

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """``O x_c`` (physical), ``(B, P)``."""
        return self.observation(_channel(x, self.channel)).reshape(x.shape[0], -1)

    def log_lik(self, x: torch.Tensor, r2, pvar=None) -> torch.Tensor:
        pred = self.predict(x)
        res = self.y.to(pred.dtype) - pred
        c = (self.gamma * self.scale ** 2 * torch.as_tensor(r2, dtype=pred.dtype, device=pred.device)).reshape(-1, 1)
        s2 = self.s2.to(pred.dtype)
        if self.corr is None:
            return -0.5 * (res ** 2 / (s2 + c)).sum(1)
        P = res.shape[1]
        S = c[:, :, None] * self.corr.to(pred.dtype) + torch.diag_embed(s2.expand(-1, P) + 1e-6 * c + 1e-30)
        L = torch.linalg.cholesky(S)
        w = torch.cholesky_solve(res.unsqueeze(-1), L).squeeze(-1)
        return -0.5 * (res * w).sum(1)


class SimulatorGuidance:
    r"""Gaussian likelihood of ``y = fwd.A(x[:, m_channel])``: the simulator (or a surrogate) in the loop.

    The variance of each datum is the noise variance plus what the uncertainty of :math:`\hat x_0`
    induces through the simulator, :math:`\sigma^2\,\mathrm{tr}(J_g J_D K J_g^T)/P` for
    :math:`g = \mathcal O F(\hat m)` (a Hutchinson estimate from the probe :math:`J_g^T w`: one extra adjoint
    solve per step; see :class:`PosteriorGuidance`).  Without a probe (``pvar=None``) it falls back to
    ``r2 * state_scale**2`` (``state_scale``: physical size of one normalised unit of the state).
    ``clip``: ``(lo, hi)`` applied to ``m`` before the solve (e.g. the Darcy permeability range, so that
    early, noisy estimates stay physical).
    """

    name = "obs"

    def __init__(self, fwd, y: torch.Tensor, m_channel: int, noise_std, state_scale: float = 1.0,
                 clip=None, gamma: float = 1.0):
        self.fwd, self.m_channel, self.state_scale, self.clip, self.gamma = fwd, int(m_channel), float(state_scale), clip, gamma
        self.y = y
        s = torch.as_tensor(noise_std, dtype=y.dtype, device=y.device)
        self.s2 = s.pow(2)
        self.n_out = int(y[0].numel())

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        m = _channel(x, self.m_channel).to(torch.float64)
        if self.clip is not None:
            m = m.clamp(*self.clip)
        return self.fwd.A(m).reshape(x.shape[0], -1)

    def probe(self, z: torch.Tensor, generator, decode) -> torch.Tensor:
        return _vjp_probe(lambda zz: self.predict(decode(zz)), z, generator)

    def log_lik(self, x: torch.Tensor, r2, pvar=None) -> torch.Tensor:
        pred = self.predict(x)
        res = self.y.reshape(pred.shape).to(pred.dtype) - pred
        if pvar is None:
            pvar = torch.as_tensor(r2, dtype=pred.dtype, device=pred.device) * self.state_scale ** 2
        pvar = torch.as_tensor(pvar, dtype=pred.dtype, device=pred.device).reshape(-1, 1)
        var = self.s2.to(pred.dtype).reshape(-1, 1) + self.gamma * pvar
        return (-0.5 * (res ** 2 / var.clamp_min(1e-300)).sum(1)).to(x.dtype)


class ResidualGuidance:
    r"""Pseudo-likelihood of the PDE residual ``residual(m, u) = 0`` (interior nodes).

    ``residual``: e.g. ``problem.residual`` (elliptic problems: stencil / h², the real equation).  The
    variance of the residual is the one that the uncertainty of the estimate induces,
    :math:`v_R = \sigma^2\,\mathrm{tr}(J_R J_D K J_R^T)/n_R` -- a Hutchinson estimate along the probe
    :math:`J_R^T w` (see :class:`PosteriorGuidance`), i.e. perturbations shaped like the Tweedie covariance
    :math:`\mathrm{Cov}[x_0|x_\sigma] = \sigma^2 J_D K`, not white ones (a white perturbation of a smooth field
    makes the 1/h² stencil's residual variance, and so the tempering, far too large).
    ``scales`` (physical size of one normalised unit of ``m`` and ``u``) serve the fallback without a probe.
    """

    name = "pde"

    def __init__(self, residual: Callable, m_channel: int = 0, u_channel: int = 1, scales=(1.0, 1.0),
                 clip=None, seed: int = 0):
        self.residual, self.m_channel, self.u_channel = residual, int(m_channel), int(u_channel)
        self.scales, self.clip = tuple(float(s) for s in scales), clip
        self.generator = torch.Generator().manual_seed(int(seed))

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        m = _channel(x, self.m_channel).to(torch.float64)
        u = _channel(x, self.u_channel).to(torch.float64)
        if self.clip is not None:
            m = m.clamp(*self.clip)
        return self.residual(m, u)

    def probe(self, z: torch.Tensor, generator, decode) -> torch.Tensor:
        def g(zz):
            R = self.predict(decode(zz))
            self.n_out = int(R[0].numel())
            return R
        return _vjp_probe(g, z, generator)

    def log_lik(self, x: torch.Tensor, r2, pvar=None) -> torch.Tensor:
        R = self.predict(x)
        if pvar is None:      # fallback: a white perturbation of one normalised unit (the old rule)
            with torch.no_grad():
                m = _channel(x, self.m_channel).to(torch.float64)
                u = _channel(x, self.u_channel).to(torch.float64)
                eps = 1e-3
                dm = torch.randn(m.shape, generator=self.generator, dtype=m.dtype).to(m.device) * self.scales[0]
                du = torch.randn(u.shape, generator=self.generator, dtype=u.dtype).to(u.device) * self.scales[1]
                mp = m + eps * dm
                if self.clip is not None:
                    mp, m = mp.clamp(*self.clip), m.clamp(*self.clip)
                JR = (self.residual(mp, u + eps * du) - self.residual(m, u)) / eps
                pvar = torch.as_tensor(r2, dtype=JR.dtype, device=JR.device).reshape(-1) * JR.pow(2).flatten(1).mean(1)
        vR = torch.as_tensor(pvar, dtype=R.dtype, device=R.device).reshape(-1).clamp_min(1e-30)
        return (-0.5 * R.pow(2).flatten(1).sum(1) / vR).to(x.dtype)


class PosteriorGuidance:
    r"""The guidance hook of the samplers: ``D_y = D + sigma^2 K grad sum_j w_j f_j(sigma, step) l_j``.

    ``terms``: list of ``(term, weight, active)`` with ``active(sigma, step, num_steps) -> factor``
    (0 switches a term off); ``decode``: normalised -> physical fields.

    ``tempering="tweedie"`` (default): the uncertainty of :math:`\hat x_0` that
    tempers each likelihood is the Tweedie covariance
    :math:`\mathrm{Cov}[x_0|x_\sigma] = \sigma^2 J_D K`, reduced to one number per
    chain and term, :math:`\kappa = \langle p, J_D K p\rangle / \langle p, K p\rangle`
    for a probe :math:`p` (``O^T v`` for observations, :math:`J_g^T w` for the simulator and the PDE
    residual, white noise otherwise), with :math:`J_D K p` from one extra (batched) denoiser evaluation
    by finite differences; then :math:`r^2 = \sigma^2\kappa`, and the predictive variance of a term's
    ``n`` outputs is :math:`r^2 \langle p, Kp\rangle / n` (Hutchinson).  This is exact in scale for
    Gaussian data.  A trained denoiser can give :math:`\kappa < 0` (a Jacobian that is not positive
    along the probe, typically at large :math:`\sigma`, where it is least trained; values within
    ``KAPPA_ZERO`` of 0 are finite-difference zeros and floored at ``KAPPA_FLOOR``): there the schedule's
    value :math:`\kappa_\sigma = \sigma_d^2/(\sigma_d^2+\sigma^2)` is used instead, and the fallbacks are
    counted (``stats``; the solvers report them in ``result.info`` with a warning).
    ``tempering="schedule"``: :math:`\kappa_\sigma` everywhere (no extra denoiser call).

    ``safeguard=True``: the correction :math:`\delta = \sigma^2 K\nabla_x\ell` is scaled
    by :math:`t = \min(1, g\,t^*)`, with :math:`t^*` the maximiser of
    :math:`\ell(\hat x_0 + t\delta)` (from its value, slope and the value at
    :math:`t = 1`) and ``max_gain`` :math:`g = 2` (the stability limit of a
    relaxation step on a quadratic), so guidance cannot run away from the data
    even with few steps.  ``trust`` (a number or None): the rms of the correction (normalised units)
    is also kept below ``trust * sigma`` -- a guard against a poorly trained denoiser whose Jacobian
    makes the tempering meaningless.  The solvers switch it off for simulator guidance, which must be
    able to move a pixel across the prior's whole range (Darcy: 3 <-> 12) at small sigma.
    """

    def __init__(self, terms, decode: Callable, schedule, noise, tempering: str = "tweedie", seed: int = 0,
                 safeguard: bool = True, max_gain: float = 2.0, trust: Optional[float] = 3.0):
        if tempering not in TEMPERINGS:
            raise ValueError(f"tempering must be one of {TEMPERINGS}; got {tempering!r}")
        if not float(max_gain) > 0:
            raise ValueError(f"max_gain must be > 0; got {max_gain}")
        if trust is not None and not float(trust) > 0:
            raise ValueError(f"trust must be > 0 or None (no cap); got {trust}")
        self.terms, self.decode, self.schedule, self.noise = terms, decode, schedule, noise
        self.tempering, self.safeguard = tempering, bool(safeguard)
        self.max_gain = float(max_gain)
        self.trust = None if trust is None else float(trust)
        self.generator = torch.Generator().manual_seed(int(seed))
        self.stats = new_stats()

    def kappa_schedule(self, sigma: float) -> float:
        sd2 = self.schedule.sigma_data ** 2
        return sd2 / (sd2 + sigma ** 2)

    def _probes(self, z_hat, terms):
        probes = []
        for t in terms:
            if hasattr(t, "probe"):
                probes.append(t.probe(z_hat, self.generator, self.decode).to(z_hat.dtype))
            else:
                probes.append(torch.randn(z_hat.shape, generator=self.generator, dtype=z_hat.dtype).to(z_hat.device))
        return torch.stack(probes)                                # (T, B, C, ...)

    def kappas(self, denoiser, x, D, sigma, terms):
        """``(kappa (T, B), <p, K p> (T, B))`` for the active ``terms`` (see the class docstring)."""
        P = self._probes(D.detach(), terms)
        W = self.noise.apply_cov(P.flatten(0, 1)).reshape(P.shape)
        den = (P * W).flatten(2).sum(2).clamp_min(1e-30)         # (T, B)
        ks = self.kappa_schedule(sigma)
        if self.tempering == "schedule":
            return torch.full_like(den, ks), den
        rms = W.flatten(2).pow(2).mean(2).sqrt().clamp_min(1e-30)  # (T, B)
        eps = 1e-2 * sigma / rms
        shape = (*eps.shape, *([1] * (x.dim() - 1)))
        with torch.no_grad():
            Dp = denoiser.denoise((x.unsqueeze(0) + eps.reshape(shape) * W).flatten(0, 1), sigma).reshape(P.shape)
        JW = (Dp - D.detach().unsqueeze(0)) / eps.reshape(shape)
        k = (P * JW).flatten(2).sum(2) / den
        bad = ~(k > -KAPPA_ZERO) | ~torch.isfinite(k)
        record_kappa(self.stats, sigma, int(bad.sum()), bad.numel(), k)
        k = torch.where(bad, torch.full_like(k, ks), k)
        return k.clamp(KAPPA_FLOOR, 1.0), den                      # 0 < J_D K <= K in scale

    def __call__(self, denoiser, x, sigma, step, num_steps):
        facs = [(t, w * act(sigma, step, num_steps)) for t, w, act in self.terms]
        facs = [(t, f) for t, f in facs if f != 0]
        if not facs:
            with torch.no_grad():
                return denoiser.denoise(x, sigma)
        self.stats["guided_calls"] += 1
        with torch.enable_grad():
            xg = x.detach().requires_grad_(True)
            D = denoiser.denoise(xg, sigma)
            kap, den = self.kappas(denoiser, x.detach(), D, sigma, [t for t, _ in facs])
            r2s = sigma ** 2 * kap                                 # (T, B)
            pvars = [r2s[k] * den[k] / t.n_out if getattr(t, "n_out", None) else None
                     for k, (t, _) in enumerate(facs)]
            xp = self.decode(D)
            ll = self._total(xp, facs, r2s, pvars)
            gx, gD = torch.autograd.grad(ll.sum(), [xg, D])
        delta = sigma ** 2 * self.noise.apply_cov(gx)
        D = D.detach()
        if not self.safeguard and self.trust is None:
            return D + delta
        t = torch.ones(D.shape[0], dtype=D.dtype, device=D.device)
        with torch.no_grad():
            if self.safeguard:
                # never step more than max_gain times to the likelihood's maximum along delta: phi(t) = l(D + t delta)
                # is (nearly) a concave quadratic; phi(0), phi'(0), phi(1) give its maximiser t*; t = min(1, g t*)
                ll1 = self._total(self.decode(D + delta), facs, r2s, pvars)
                d0 = (gD * delta).flatten(1).sum(1)
                curv = 2 * (ll.detach() + d0 - ll1)
                t = torch.where(curv > 0, self.max_gain * d0 / curv.clamp_min(1e-300), t).clamp(0.0, 1.0)
                self.stats["safeguard_scaled"] += int((t < 1).sum())
            if self.trust is not None:   # the posterior mean moves by at most a few posterior std (<= sigma)
                rms = delta.flatten(1).pow(2).mean(1).sqrt()
                cap = self.trust * sigma / rms.clamp_min(1e-300)
                self.stats["trust_capped"] += int((cap < t).sum())
                t = torch.minimum(t, cap.to(t.dtype))
        self.stats["chain_steps"] += int(D.shape[0])
        return D + t.reshape(-1, *([1] * (D.dim() - 1))).to(D.dtype) * delta

    @staticmethod
    def _total(xp, facs, r2s, pvars):
        ll = 0
        for (t, f), r2, pv in zip(facs, r2s, pvars):
            ll = ll + f * t.log_lik(xp, r2, pv)
        return ll


TEMPERINGS = ("tweedie", "schedule")
#: kappa above -KAPPA_ZERO is zero within the finite-difference error (e.g. the PDE residual's probe, which an exact
#: joint prior's denoiser annihilates) and is floored at KAPPA_FLOOR; below it the Jacobian is not positive along the
#: probe and the schedule's value is used instead (counted as a fallback)
KAPPA_ZERO, KAPPA_FLOOR = 1e-3, 1e-4


def new_stats() -> dict:
    """Counters of a guidance run (reported in ``result.info["guidance"]``)."""
    return {"guided_calls": 0, "chain_steps": 0, "kappa_evals": 0, "kappa_fallbacks": 0,
            "fallback_sigma": [], "safeguard_scaled": 0, "trust_capped": 0}


def record_kappa(stats: dict, sigma: float, n_bad: int, n_all: int, k=None) -> None:
    stats["kappa_evals"] += int(n_all)
    stats["kappa_fallbacks"] += int(n_bad)
    if n_bad:
        stats["fallback_sigma"].append(float(sigma))


def merge_stats(all_stats) -> dict:
    """Sum the counters of several guidance runs (one per batch of chains)."""
    out = {}
    for st in all_stats:
        for k, v in st.items():
            if isinstance(v, bool) or v is None:
                out[k] = v if k not in out else (out[k] and v)
            elif isinstance(v, list):
                out[k] = out.get(k, []) + list(v)
            else:
                out[k] = out.get(k, 0) + v
    return out or new_stats()


def stats_info(stats: dict) -> Tuple[dict, list]:
    """``(info["guidance"], warnings)``: the counters, and one warning when the tempering fell back."""
    stats = dict(stats)
    sig = stats.pop("fallback_sigma", [])
    info = dict(stats)
    warnings = []
    if stats.get("kappa_fallbacks"):
        info["fallback_sigma_range"] = [min(sig), max(sig)]
        warnings.append(f"Tweedie tempering: kappa <= 0 (the denoiser's Jacobian is not positive along the probe) "
                        f"in {stats['kappa_fallbacks']} of {stats['kappa_evals']} evaluations, at sigma in "
                        f"[{min(sig):.3g}, {max(sig):.3g}]; used schedule tempering there (a poorly trained "
                        "denoiser at those noise levels: run pdeinv.priors.diffusion.health.check_prior)")
    return info, warnings


# ------------------------------------------------------------------------------ schedules of terms
def always(sigma, step, num_steps):
    return 1.0


def diffusionpde_obs(late_factor: float, pde_fraction: float = 0.2):
    """Observation weight: 1, then ``late_factor`` in the last ``pde_fraction`` of the steps (DiffusionPDE)."""
    def f(sigma, step, num_steps):
        return late_factor if step >= (1 - pde_fraction) * num_steps else 1.0
    return f


def diffusionpde_pde(pde_fraction: float = 0.2):
    """PDE residual switched on for the last ``pde_fraction`` of the steps (DiffusionPDE)."""
    def f(sigma, step, num_steps):
        return 1.0 if step >= (1 - pde_fraction) * num_steps else 0.0
    return f


def fundps_pde(sigma_on: float = 1.0):
    """PDE guidance only once ``sigma <= sigma_on`` (FunDPS)."""
    def f(sigma, step, num_steps):
        return 1.0 if sigma <= sigma_on else 0.0
    return f


# ------------------------------------------------------------------------------ tuning
def tune_guidance(solver, validation_samples: Sequence, grid: Optional[Dict[str, Sequence[float]]] = None,
                  seed: int = 0, record: bool = True) -> Dict[str, float]:
    """Pick guidance multipliers on held-out samples and record them with the model.

    ``validation_samples``: a few ``(y, fwd, target)`` triples, where ``target``
    is the field the solver's mode recovers (``m`` in inverse mode, ``u`` in
    forward mode), ``(1, 1, *grid)`` physical.  ``grid``: candidate values per
    weight (default ``obs`` in {0.5, 1, 2} and, if the solver uses PDE guidance,
    ``pde`` in {0, 0.3, 1, 3}).  Every combination is scored by the mean relative
    L2 error of the posterior mean; the best is set on the solver
    (``solver.weights``) and, with ``record=True``, stored in the denoiser's
    config (``prior.set_guidance_weights``), so it is saved with the checkpoint.
    Returns the chosen weights (and the score under key ``"score"``).
    """
    from pdeinv.metrics import relative_l2
    if not validation_samples:
        raise ValueError("tune_guidance needs at least one (y, fwd, target) validation sample")
    if grid is None:
        grid = {"obs": [0.5, 1.0, 2.0]}
        if getattr(solver, "physics", None) == "residual":
            grid["pde"] = [0.0, 0.3, 1.0, 3.0]
    keys = list(grid)
    best, best_score = None, float("inf")
    old = dict(solver.weights)
    for combo in itertools.product(*(grid[k] for k in keys)):
        solver.weights = {**old, **dict(zip(keys, combo))}
        errs = []
        for k, (y, fwd, target) in enumerate(validation_samples):
            res = solver(y, fwd, seed=seed + k)
            est = res.u if solver.mode == "forward" else res.m
            errs.append(float(relative_l2(est, target).mean()))
        score = sum(errs) / len(errs)
        log.info("tune_guidance %s -> %.4f", dict(zip(keys, combo)), score)
        if score < best_score:
            best, best_score = dict(zip(keys, combo)), score
    solver.weights = {**old, **best}
    key = f"{getattr(solver, 'mode', 'inverse')}/{getattr(solver, 'physics', 'none')}"
    if record and hasattr(solver.prior, "set_guidance_weights"):
        solver.prior.set_guidance_weights(key, best)
    return {**best, "score": best_score}
