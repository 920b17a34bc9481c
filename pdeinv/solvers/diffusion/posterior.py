r"""Diffusion posterior sampling as an :class:`~pdeinv.solvers.base.InverseSolver`.

Shared by :class:`~pdeinv.solvers.diffusion.fundps.FunDPS` and
:class:`~pdeinv.solvers.diffusion.diffusionpde.DiffusionPDE`, which differ in their
denoiser (neural operator + GRF noise vs U-Net + white noise) and in when the
PDE guidance is switched on.  ``solver(y, fwd, seed=) -> InverseResult``:

``mode="inverse"``  ``y`` observes the state ``u`` through ``fwd.observation``;
                    the target is ``m``.
``mode="forward"``  ``y`` observes ``m`` through ``fwd.observation`` (same grid);
                    the target is ``u``.
``mode="both"``     ``y`` observes ``u``; pass ``y_m=`` and ``obs_m=`` for
                    sparse observations of ``m`` too.

``physics``: ``"residual"`` (joint (m, u) prior; the problem's real PDE
residual guides -- ``fwd.problem.residual``, or the ``residual=`` callable, e.g.
``NavierStokes2D.slice_residual`` between distant time slices or ``u - S(m)``
with a surrogate ``S``), ``"simulator"`` (guidance and ``u`` through ``fwd`` itself --
the adjoint simulator or a ``SurrogateForward``; works with an ``m``-only
prior), or ``"none"`` (observations only; ``u`` from the joint prior).

Observation noise comes from ``fwd.noise`` (part of the likelihood).  Each
observation set gets ``n_samples`` posterior samples; the result holds their
mean (``m``, ``u``), the samples of ``m`` (``samples``, ``(S, B, 1, *grid)``)
and those of ``u`` (``result.u_samples``), so ``result.std`` and
``result.credible_interval`` give pixel-wise spread and bands;
:func:`~pdeinv.solvers.diffusion.scores.posterior_scores` scores the mean *and* single samples
(the published Darcy figures are single-sample thresholded error rates).

The guidance options (``tempering``, ``safeguard``, ``max_gain``, ``trust``, ``weights``) are
constructor arguments, so ``pdeinv.solvers.build(..., tempering="schedule")`` and
``pdeinv invert --opt trust=null`` reach them.  ``result.info["guidance"]`` counts the guided steps,
the tempering fallbacks (Tweedie :math:`\kappa \le 0` -> schedule), the safeguard and trust
interventions; ``result.info["warnings"]`` says it once when the tempering fell back.
"""
from __future__ import annotations

import logging
import time
from typing import Optional

import torch

from pdeinv.solvers.base import InverseResult, InverseSolver
from pdeinv.solvers.diffusion.guidance import (TEMPERINGS, ObservationGuidance, PosteriorGuidance, ResidualGuidance,
                                               SimulatorGuidance, always, merge_stats, stats_info)
from pdeinv.solvers.diffusion.samplers import edm_sample

log = logging.getLogger(__name__)

MODES = ("inverse", "forward", "both")


class CountingDenoiser:
    """A denoiser seen through a counter of network evaluations (one per field denoised)."""

    def __init__(self, denoiser):
        self.inner, self.evals = denoiser, 0

    def denoise(self, z, sigma):
        self.evals += int(z.shape[0])
        return self.inner.denoise(z, sigma)

    def __getattr__(self, name):
        return getattr(self.__dict__["inner"], name)
PHYSICS = ("residual", "simulator", "none")


class DiffusionPosteriorSolver(InverseSolver):
    """Base of FunDPS and DiffusionPDE; see the module docstring.

    Parameters
    ----------
    prior : a denoiser (``EDMDenoiser`` or ``AnalyticGaussianDenoiser``) over
        ``(m, u)`` (2 channels) or ``m`` alone (1 channel).
    mode, physics : see the module docstring.
    n_samples : posterior samples per observation set.
    num_steps : EDM steps.  sampler : ``"heun"`` or ``"stochastic"``.
    weights : multipliers ``{"obs": 1, "pde": 1}`` of the likelihood-derived
        guidance (defaults: the tuned ones recorded in the model for this
        mode/physics, else 1 -- FunDPS in inverse mode: ``pde`` 0, as in the original).
        ``pde`` 0 switches the PDE term off.
    tempering : ``"tweedie"`` (kappa from the denoiser's Jacobian, schedule where it is not positive)
        or ``"schedule"``; see :class:`~.guidance.PosteriorGuidance`.
    safeguard, max_gain : the line-search safeguard of each correction (``max_gain`` x the maximiser).
    trust : cap on the rms correction, ``trust * sigma`` (normalised units); ``None`` = no cap;
        ``"auto"`` (default): 3, and no cap with ``physics="simulator"`` in inverse/both mode (the
        simulator must be able to move a pixel across the prior's range at small sigma).
    m_channel, u_channel : channel indices in the prior (``u_channel=None`` for an ``m``-only prior).
    clip : ``(lo, hi)`` physical range of ``m`` (e.g. Darcy's (3, 12)): used inside PDE/simulator
        guidance, and the returned samples of ``m`` are clamped to it.
    residual : ``residual(m, u)`` (physical fields) for ``physics="residual"``; default
        ``fwd.problem.residual``.
    batch_size : chains sampled together.
    """

    name = "diffusion"
    default_steps = 50

    def uses_noise_weights(self, fwd) -> bool:
        """Without a noise model the guidance treats the data as exact (zero std), not as 1 % noise."""
        return getattr(fwd, "noise", None) is not None

    def __init__(self, prior, mode: str = "inverse", physics: str = "residual", n_samples: int = 8,
                 num_steps: Optional[int] = None, sampler: str = "heun", weights: Optional[dict] = None,
                 m_channel: int = 0, u_channel: Optional[int] = -1, clip=None, batch_size: int = 64,
                 dtype=None, S_churn: Optional[float] = None, verbose: bool = False, residual=None,
                 tempering: str = "tweedie", safeguard: bool = True, max_gain: float = 2.0, trust="auto"):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}; got {mode!r}")
        if physics not in PHYSICS:
            raise ValueError(f"physics must be one of {PHYSICS}; got {physics!r}")
        if sampler not in ("heun", "stochastic"):
            raise ValueError(f"sampler must be 'heun' or 'stochastic'; got {sampler!r}")
        if tempering not in TEMPERINGS:
            raise ValueError(f"tempering must be one of {TEMPERINGS}; got {tempering!r}")
        if trust != "auto" and trust is not None and not (isinstance(trust, (int, float)) and trust > 0):
            raise ValueError(f"trust must be 'auto', a number > 0 or None (no cap); got {trust!r}")
        if not (isinstance(max_gain, (int, float)) and max_gain > 0):
            raise ValueError(f"max_gain must be a number > 0; got {max_gain!r}")
        if weights is not None and (not isinstance(weights, dict) or set(weights) - {"obs", "pde"}):
            raise ValueError(f"weights must be a dict with keys 'obs' and/or 'pde'; got {weights!r}")
        self.tempering, self.safeguard, self.max_gain, self.trust = tempering, bool(safeguard), float(max_gain), trust
        channels = int(getattr(prior, "channels", None) or prior.config["channels"])
        if u_channel == -1:
            u_channel = 1 if channels >= 2 else None
        if u_channel is None and physics != "simulator":
            raise ValueError("an m-only prior (one channel) needs physics='simulator' (u from the forward model)")
        if int(n_samples) < 1:
            raise ValueError(f"n_samples must be >= 1; got {n_samples}")
        self.prior, self.mode, self.physics = prior, mode, physics
        self.n_samples, self.num_steps = int(n_samples), int(num_steps or self.default_steps)
        self.sampler, self.m_channel, self.u_channel = sampler, int(m_channel), u_channel
        self.clip, self.batch_size, self.dtype, self.S_churn, self.verbose = clip, int(batch_size), dtype, S_churn, verbose
        if residual is not None and not callable(residual):
            raise ValueError("residual= must be a callable residual(m, u)")
        self.residual = residual
        recorded = {}
        if hasattr(prior, "guidance_weights"):
            recorded = prior.guidance_weights.get(f"{mode}/{physics}", {})
        self.weights = {"obs": 1.0, "pde": self.default_pde_weight(), **recorded, **(weights or {})}

    @classmethod
    def load(cls, path, map_location=None, **kwargs):
        """Solver around a saved :class:`~.denoisers.EDMDenoiser` checkpoint."""
        from pdeinv.priors.diffusion.denoisers import EDMDenoiser
        return cls(EDMDenoiser.load(path, map_location=map_location), **kwargs)

    # ------------------------------------------------------------------ schedules (subclasses)
    def default_pde_weight(self) -> float:
        return 1.0

    def trust_for(self):
        """The trust cap in use: ``trust``, or for ``"auto"`` 3 (none with simulator guidance of the data)."""
        if self.trust != "auto":
            return self.trust
        return None if (self.physics == "simulator" and self.mode in ("inverse", "both")) else 3.0

    def obs_activity(self):
        return always

    def pde_activity(self):
        return always

    # ------------------------------------------------------------------ helpers
    def _scales(self, spatial):
        return self.prior.channel_std(tuple(spatial))

    def _guidance(self, y, s, fwd, y_m, s_m, obs_m, scales):
        noise = self.prior.noise
        terms = []
        w = self.weights
        mc, uc = self.m_channel, self.u_channel
        if self.mode in ("inverse", "both"):
            if self.physics == "simulator":
                su = scales[uc] if uc is not None else \
                    float(y.detach().pow(2).mean().sqrt()) / self.prior.schedule.sigma_data
                terms.append((SimulatorGuidance(fwd, y, mc, s, state_scale=su, clip=self.clip), w["obs"],
                              self.obs_activity()))
            else:
                terms.append((ObservationGuidance(fwd.observation, y, uc, s, scales[uc], noise), w["obs"],
                              self.obs_activity()))
        if self.mode == "forward":
            terms.append((ObservationGuidance(fwd.observation, y, mc, s, scales[mc], noise), w["obs"],
                          self.obs_activity()))
        if self.mode == "both" and y_m is not None:
            terms.append((ObservationGuidance(obs_m, y_m, mc, s_m, scales[mc], noise), w["obs"], self.obs_activity()))
        if self.physics == "residual" and w.get("pde", 0) != 0:
            residual = self.residual
            if residual is None:
                problem = getattr(fwd, "problem", None)
                if problem is None or not hasattr(problem, "residual"):
                    raise ValueError("physics='residual' needs fwd.problem.residual(m, u) or residual=; use "
                                     "physics='simulator' or 'none' with this forward model")
                residual = problem.residual
            terms.append((ResidualGuidance(residual, mc, uc, (scales[mc], scales[uc]), clip=self.clip),
                          w["pde"], self.pde_activity()))
        return PosteriorGuidance(terms, self.prior.decode, self.prior.schedule, noise, tempering=self.tempering,
                                 safeguard=self.safeguard, max_gain=self.max_gain, trust=self.trust_for())

    # ------------------------------------------------------------------ sampling (subclasses: other samplers)
    #: whether exact data (no noise model) are weighted by the 1 % rule (True) or as exact (zero std; DPS)
    exact_data_weighted = False

    def _sample_chains(self, denoiser, shape, batch: dict, generator, dtype, device):
        """Sample one batch of chains (normalised units) -> ``(z, stats)``: EDM with the guided denoiser."""
        guidance = self._guidance(batch["y"], batch["s"], batch["fwd"], batch["y_m"], batch["s_m"], batch["obs_m"],
                                  batch["scales"])
        z = edm_sample(denoiser, shape, num_steps=self.num_steps, stochastic=self.sampler == "stochastic",
                       S_churn=self.S_churn, guidance=guidance, generator=generator, dtype=dtype, device=device,
                       verbose=self.verbose)
        return z, guidance.stats

    def extra_info(self) -> dict:
        return {}

    def _initial_state(self, y, fwd, seed, grid, C):
        """``(z0, info)``: normalised states ``(B, C, *grid)`` to start the chains from, or None (from pure noise),
        and what to record about the start in the result's ``info``."""
        return None, {}

    # ------------------------------------------------------------------ solve
    def solve(self, y: torch.Tensor, fwd, *, seed: Optional[int] = None, y_m: Optional[torch.Tensor] = None,
              obs_m=None) -> InverseResult:
        grid = fwd.grid
        if grid is None:
            raise ValueError("the forward model has no grid; diffusion solvers sample fields on fwd.grid")
        if self.mode == "both" and (y_m is None) != (obs_m is None):
            raise ValueError("mode='both' takes y_m= and obs_m= together (observations of m and their operator)")
        if y_m is not None and self.mode != "both":
            raise ValueError("y_m= is only used in mode='both'")
        t0 = time.perf_counter()
        prior = self.prior
        C = int(getattr(prior, "channels", None) or prior.config["channels"])
        dtype = self.dtype or (torch.float64 if not isinstance(prior, torch.nn.Module) else torch.float32)
        device = y.device
        B, S = y.shape[0], self.n_samples
        scales = self._scales(grid.shape)
        s = fwd.noise_std(y)
        s_m = None
        if y_m is not None:
            if y_m.shape[0] != B:
                raise ValueError(f"y_m has batch {y_m.shape[0]}; y has {B}")
            s_m = fwd.noise.std(y_m) if fwd.noise is not None else torch.zeros(B, 1, 1, dtype=y_m.dtype)
        rep = lambda t: None if t is None else t.repeat_interleave(S, 0)
        exact = fwd.noise is None and not self.exact_data_weighted
        Y, Sd, Ym, Sm = rep(y), rep(torch.zeros_like(s) if exact else s), rep(y_m), rep(s_m)
        z0, start_info = self._initial_state(y, fwd, seed, grid, C)
        Z0 = rep(z0)
        set_index = torch.arange(B).repeat_interleave(S)
        out, stats = [], []
        N = B * S
        counted = CountingDenoiser(prior)
        base_seed = int(seed) if seed is not None else 0
        cut = lambda t, sl: None if t is None else t[sl]
        for k, start in enumerate(range(0, N, self.batch_size)):
            sl = slice(start, min(N, start + self.batch_size))
            gen = torch.Generator().manual_seed(base_seed * 1_000_003 + k)
            batch = dict(y=Y[sl], s=Sd[sl], y_m=cut(Ym, sl), s_m=cut(Sm, sl), obs_m=obs_m, fwd=fwd, scales=scales,
                         sets=set_index[sl], z_init=cut(Z0, sl))
            z, st = self._sample_chains(counted, (sl.stop - sl.start, C, *grid.shape), batch, gen, dtype, device)
            stats.append(st)
            with torch.no_grad():
                out.append(prior.decode(z).to(y.dtype))
        x = torch.cat(out).reshape(B, S, C, *grid.shape)
        m_s = x[:, :, self.m_channel:self.m_channel + 1].transpose(0, 1).contiguous()   # (S, B, 1, *grid)
        if self.clip is not None:     # samples outside the physical range of m are not admissible
            m_s = m_s.clamp(*self.clip)
        if self.physics == "simulator" or self.u_channel is None:
            with torch.no_grad():
                mm = m_s.reshape(S * B, 1, *grid.shape)
                u_s = fwd.solve(mm).reshape(S, B, 1, *grid.shape).to(y.dtype)
        else:
            u_s = x[:, :, self.u_channel:self.u_channel + 1].transpose(0, 1).contiguous()
        wall = time.perf_counter() - t0
        log.debug("%s: %d chains x %d steps in %.2f s", self.name, N, self.num_steps, wall)
        info = {"method": self.name, "mode": self.mode, "physics": self.physics, "num_steps": self.num_steps,
                "sampler": self.sampler, "n_samples": S, "weights": dict(self.weights),
                "time_s": wall, "time_per_sample_s": wall / N, "noise": prior.noise.to_dict(),
                "tempering": self.tempering, "safeguard": self.safeguard, "max_gain": self.max_gain,
                "trust": self.trust_for(), "network_evals_per_sample": counted.evals / N}
        info.update(self.extra_info())
        info.update(start_info)
        info["guidance"], warnings = stats_info(merge_stats(stats))
        if warnings:
            info["warnings"] = warnings
            log.warning("%s: %s", self.name, warnings[0])
        return InverseResult(m=m_s.mean(0), u=u_s.mean(0), samples=m_s, u_samples=u_s, info=info, grid=grid)
