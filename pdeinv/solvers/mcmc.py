r"""Markov chain Monte Carlo for calibrated uncertainty: pCN and two-level delayed acceptance.

Posterior.  With a Gaussian-random-field prior written in white-noise
coordinates, :math:`m = T(\mu + C^{1/2}\xi)`, :math:`\xi \sim N(0, I)`
(``prior.color``; ``T`` an optional pointwise map such as ``exp`` for a
log-permeability), and the data misfit
:math:`\Phi(\xi) = \tfrac12\|(\mathcal{O}\mathcal{F}(m) - y)/s\|^2` (``fwd.misfit``),
the posterior is :math:`\pi(\xi\mid y) \propto e^{-\Phi(\xi)}\,N(\xi; 0, I)`.

**pCN** (preconditioned Crank--Nicolson; Cotter, Roberts, Stuart & White,
Stat. Sci. 28, 2013).  Propose :math:`\xi' = \sqrt{1-\beta^2}\,\xi + \beta\zeta`,
:math:`\zeta\sim N(0,I)`, and accept with probability
:math:`\min(1, e^{\Phi(\xi)-\Phi(\xi')})`.  The proposal is reversible with
respect to the prior, so the prior terms cancel and the acceptance rate does not
degrade as the grid is refined (dimension-robust).

**Two-level delayed acceptance** (Christen & Fox, J. Comput. Graph. Stat. 14,
2005; Cui, Marzouk & Willcox 2015).  A cheap model :math:`\tilde{\mathcal F}`
(``surrogate_fwd``: a trained operator, possibly run on a coarser grid, or a
coarse simulator) screens the proposal first, with the misfit
:math:`\tilde\Phi_x(\xi')` of a screen that may depend on the current state
:math:`x = \xi`.  With ``screen_correction="offset"`` (the default) the screen
is corrected by its error at the current state,
:math:`\tilde{\mathcal F}_x(\xi') = \tilde{\mathcal F}(\xi') + [\mathcal F(\xi) - \tilde{\mathcal F}(\xi)]`
(observed values), so that :math:`\tilde\Phi_x(\xi) = \Phi(\xi)` and only the
screen's error in the *change* of the data between :math:`\xi` and :math:`\xi'`
remains; ``"none"`` uses :math:`\tilde{\mathcal F}` as it is.  Then

.. math:: \alpha_1(\xi,\xi') = \min\big(1, e^{\tilde\Phi_\xi(\xi)-\tilde\Phi_\xi(\xi')}\big),\qquad
          \alpha_2 = \min\Big(1, e^{\Phi(\xi)-\Phi(\xi')}\,
          \frac{\alpha_1(\xi',\xi)}{\alpha_1(\xi,\xi')}\Big),

and only proposals that pass stage 1 are evaluated with the true model (which
gives the offset at :math:`\xi'` that the reverse screen :math:`\alpha_1(\xi',\xi)`
needs).  The composite kernel is a Metropolis--Hastings kernel for the proposal
:math:`q(\xi,\xi')\alpha_1(\xi,\xi')`, so it satisfies detailed balance with
respect to the *exact* posterior whatever the screen's error (it only affects
efficiency); the chain calls the true model only for the screened fraction of
the proposals (``info["n_true_model_calls"]``).  Without the offset,
:math:`\alpha_1(\xi',\xi)/\alpha_1(\xi,\xi') = e^{\tilde\Phi(\xi')-\tilde\Phi(\xi)}`
and :math:`\alpha_2` reduces to the familiar
:math:`\min(1, e^{[\Phi(\xi)-\Phi(\xi')] - [\tilde\Phi(\xi)-\tilde\Phi(\xi')]})`.
The gain in ESS per second over pCN is at most
:math:`1/(c_{\tilde F}/c_F + \bar\alpha_1)`, reached when the screen accepts what
the simulator would (stage-2 acceptance 1).

**gpCN** (``proposal="gpcn"``; the generalised pCN of Rudolf & Sprungk, Found. Comput. Math. 18, 2018, with
the Laplace approximation as its Gaussian, as in hIPPYlib's ``gpCNKernel``).  With the Laplace approximation
:math:`N(\bar\xi, H^{-1})`, :math:`H = I + V\Lambda V^T` (:class:`~pdeinv.solvers.laplace.Laplace`: the
Gauss--Newton Hessian at the MAP point, exact low rank since it has at most one eigenvalue per
observation), propose
:math:`\xi' = \bar\xi + \sqrt{1-\beta^2}(\xi - \bar\xi) + \beta H^{-1/2}\zeta` and accept with
:math:`\min\big(1, \tfrac{\pi(\xi')/N(\xi';\bar\xi,H^{-1})}{\pi(\xi)/N(\xi;\bar\xi,H^{-1})}\big)`.  The
proposal is reversible for the Laplace Gaussian, which differs from the prior in finitely many directions,
so it stays dimension-robust, and it takes steps shaped like the posterior: where the data pin a direction
down, pCN's step must shrink to the posterior's narrowest width in all directions at once.  The chain is
exact whatever the Gaussian (it only affects efficiency); the two-level screen applies to it unchanged, with
the same reference ratio in both stages.  Chains start at independent draws of the Laplace Gaussian
(centred at ``m0`` when given); the Laplace cost (a MAP solve unless ``m0`` or ``laplace=`` is given, and one linearised forward
and adjoint solve per observation) is in ``info["laplace_seconds"]``, not in ``wall_time``.

**Adaptation.**  During burn-in only, :math:`\log\beta` follows a Robbins--Monro
recursion :math:`\log\beta \mathrel{+}= \gamma_t(a_t - a^\ast)`,
:math:`\gamma_t = (t+1)^{-0.6}`, towards the acceptance rate
:math:`a^\ast` (``target_acceptance``, default 0.25), per chain; the step is
frozen afterwards, so the kept samples come from a fixed Markov kernel.

**Diagnostics** (written here, formulas of Gelman et al., *Bayesian Data
Analysis*, 3rd ed., §11.4--11.5): split-:math:`\hat R` (each chain split in
halves) and the multi-chain effective sample size with Geyer's initial
monotone sequence on the combined autocorrelation
:math:`\hat\rho_t = 1 - (W - \overline{\gamma_t})/\widehat{\mathrm{var}}^+`.
Both are computed per pixel; ``info`` reports the worst pixel (max R-hat, min
ESS) and the values of the log-likelihood.

Chains are batched (all chains and all problems of ``y`` in one forward call per
step), or run as separate ``dask.delayed`` tasks (``parallel="dask"``, on a
``dask.distributed`` ``client`` if given).  Every chain has its own random
stream (``numpy.random.SeedSequence(seed).spawn``), so the two modes give the
same chains; each problem of a batch runs its chains on its own copy of those
streams, so a problem gets the same chains (and answer) in a batch as alone.
"""
from __future__ import annotations

import logging
import math
import time
from typing import Callable, Optional

import numpy as np
import torch

from pdeinv._validation import check_finite
from pdeinv.solvers.base import InverseResult, InverseSolver
from pdeinv.solvers.mcmc_diagnostics import ess, split_rhat  # noqa: F401  (re-exported)

log = logging.getLogger(__name__)


# ============================================================================ sampler core


def _chain_seeds(seed: int, n_chains: int):
    return [int(s.generate_state(1)[0]) for s in np.random.SeedSequence(int(seed)).spawn(n_chains)]


def _run_chains(prior, fwd, sfwd, y, seeds, beta0, n_burn, n_keep, thin, adapt, target, transform,
                correction="offset", xi0=None, verbose=False, desc="pCN", gauss=None):
    """Run ``len(seeds)`` chains, each on all B problems of ``y``, batched; ``xi0`` ``(B, C, *coeff)``: the
    white-noise start of every chain of each problem (default: a prior draw per chain); ``gauss``: per problem
    the Laplace Gaussian ``(mean (B, n), V (B, k, n), lam (B, k))`` of the gpCN proposal (None: pCN).
    Returns a dict of CPU tensors."""
    K, B = len(seeds), y.shape[0]
    dtype, device = (y.dtype if y.is_floating_point() else torch.float64), y.device
    coeff = tuple(prior.coeff_shape)
    # one stream per (chain, problem), chain-major, each seeded with its chain's seed: a problem's chains are
    # the same whatever else is in the batch (a batch gives each problem the answer it gets alone)
    gens = [torch.Generator().manual_seed(s) for s in seeds for _ in range(B)]

    def normal():
        return torch.cat([torch.randn((1, 1) + coeff, generator=g, dtype=torch.float64) for g in gens]) \
            .to(dtype=dtype, device=device)

    def uniform():
        return torch.cat([torch.rand(1, generator=g, dtype=torch.float64) for g in gens]).to(device)

    def field(xi):
        m = prior.color(xi)
        return transform(m) if transform is not None else m

    yr = y.repeat((K,) + (1,) * (y.dim() - 1))                    # chain-major: index k*B + b
    s_noise = fwd.noise_std(yr).expand_as(yr)
    n_true = n_sur = 0

    def misfit(pred, rows=None):
        """Data misfit of noise-free observations ``pred`` of the rows ``rows`` (all when None)."""
        yy, ss = (yr, s_noise) if rows is None else (yr[rows], s_noise[rows])
        return 0.5 * ((pred - yy) / ss).pow(2).flatten(1).sum(1)

    def true_obs(xi, idx=None):
        nonlocal n_true
        if idx is None:
            n_true += xi.shape[0]
            return fwd.A(field(xi)).detach()
        n_true += int(idx.numel())
        return fwd.A(field(xi[idx])).detach()

    def sur_obs(xi):
        nonlocal n_sur
        n_sur += xi.shape[0]
        return sfwd.A(field(xi)).detach().to(yr.dtype)

    offset = correction == "offset"
    shape_b = (K * B,) + (1,) * (1 + len(coeff))
    if gauss is not None:                                              # gpCN: rows chain-major like yr
        g_mean, g_V, g_lam = (t.to(dtype=dtype, device=device).repeat((K,) + (1,) * (t.dim() - 1)) for t in gauss)
        g_root = (1.0 + g_lam).rsqrt() - 1.0

        def propose(xi, beta, zeta):
            """gpCN: xi' = mean + sqrt(1 - beta^2)(xi - mean) + beta H^(-1/2) zeta."""
            zf = zeta.flatten(1)
            root = zf + torch.einsum("rk,rkn->rn", torch.einsum("rn,rkn->rk", zf, g_V) * g_root, g_V)
            mean = g_mean.reshape(xi.shape)
            return mean + (1 - beta ** 2).sqrt() * (xi - mean) + beta * root.reshape(xi.shape)

        def log_ref(xi):
            """log N(xi; mean, H^-1) - log N(xi; 0, I) + const: the proposal's invariant law over the prior."""
            d = xi.flatten(1) - g_mean
            c = torch.einsum("rn,rkn->rk", d, g_V)
            return (0.5 * (xi.flatten(1).pow(2).sum(1) - d.pow(2).sum(1) - (g_lam * c.pow(2)).sum(1))).double()
    else:
        def propose(xi, beta, zeta):
            return (1 - beta ** 2).sqrt() * xi + beta * zeta

        def log_ref(xi):
            return torch.zeros(xi.shape[0], dtype=torch.float64, device=xi.device)
    with torch.no_grad():
        xi = normal()                                                  # start from the prior (overdispersed)
        if isinstance(xi0, str):                                       # ... or a draw of the Laplace Gaussian
            xi = propose(xi, torch.ones(shape_b, dtype=dtype, device=device), xi)
        elif xi0 is not None:                                          # ... or from the given state
            xi = xi0.to(dtype=dtype, device=device).repeat((K,) + (1,) * (xi0.dim() - 1))
        F = true_obs(xi)
        phi = misfit(F)
        G = sur_obs(xi) if sfwd is not None else None
        ref = log_ref(xi)                                              # kept with the state, like phi
    log_beta = torch.full((K * B,), math.log(beta0), dtype=torch.float64, device=device)
    shape_o = (K * B,) + (1,) * (F.dim() - 1)
    keep, misfit_trace, acc_count, pass_count = [], [], torch.zeros(K * B, dtype=torch.float64, device=device), \
        torch.zeros(K * B, dtype=torch.float64, device=device)
    acc_burn = torch.zeros_like(acc_count)
    total = n_burn + n_keep * thin
    from tqdm.auto import tqdm
    for t in tqdm(range(total), disable=not verbose, desc=desc, leave=False):
        with torch.no_grad():
            beta = log_beta.exp().clamp(max=1.0).to(dtype).reshape(shape_b)
            zeta, u1, u2 = normal(), uniform(), uniform()
            xip = propose(xi, beta, zeta)
            # the proposal is reversible for N(0, I) (pCN) or the Laplace Gaussian (gpCN): acceptance ratios
            # carry pi(xi)/ref(xi), i.e. -Phi(xi) - log_ref(xi)
            refp = log_ref(xip)
            d_ref = ref - refp
            if sfwd is None:
                Fp = true_obs(xip)
                phip = misfit(Fp)
                log_a = (phi - phip).double() + d_ref
                acc = torch.log(u1) < log_a
                passed = torch.ones_like(acc)
            else:
                # stage 1: the screen at x', corrected by its error at the current state x (offset) or not
                Gp = sur_obs(xip)
                if offset:
                    log_a1 = (phi - misfit(Gp + (F - G))).double() + d_ref
                else:
                    log_a1 = (misfit(G) - misfit(Gp)).double() + d_ref
                passed = torch.log(u1) < log_a1
                acc = torch.zeros_like(passed)
                Fp, phip = F.clone(), phi.clone()
                idx = passed.nonzero()[:, 0]
                if idx.numel():
                    Fp[idx] = true_obs(xip, idx).to(F.dtype)
                    phip[idx] = misfit(Fp[idx], idx)
                    # stage 2 (Christen & Fox 2005): the screen's acceptance of the reverse move x' -> x
                    if offset:
                        log_r = (phip[idx] - misfit(G[idx] + (Fp[idx] - Gp[idx]), idx)).double() - d_ref[idx]
                    else:
                        log_r = -log_a1[idx]
                    log_a2 = ((phi[idx] - phip[idx]).double() + d_ref[idx] + log_r.clamp(max=0.0)
                              - log_a1[idx].clamp(max=0.0))
                    acc[idx] = torch.log(u2[idx]) < log_a2
                G = torch.where(acc.reshape(shape_o), Gp, G)
            xi = torch.where(acc.reshape(shape_b), xip, xi)
            F = torch.where(acc.reshape(shape_o), Fp, F)
            phi = torch.where(acc, phip, phi)
            ref = torch.where(acc, refp, ref)
        a = acc.double()
        if t < n_burn:
            acc_burn += a
            if adapt:
                log_beta = log_beta + (t + 1) ** -0.6 * (a - target)
                log_beta = log_beta.clamp(math.log(1e-4), 0.0)
        else:
            acc_count += a
            pass_count += passed.double()
            if (t - n_burn) % thin == thin - 1:
                keep.append(field(xi).detach().to("cpu"))
                misfit_trace.append(phi.detach().double().to("cpu"))
    n_kept_steps = max(n_keep * thin, 1)
    S = len(keep)
    samples = torch.stack(keep).reshape(S, K, B, *keep[0].shape[1:]) if S else None
    return dict(samples=samples,                                          # (S, K, B, C, *grid)
                misfit=torch.stack(misfit_trace).reshape(S, K, B) if S else None,
                acceptance=(acc_count / n_kept_steps).reshape(K, B).cpu(),
                acceptance_burn=(acc_burn / max(n_burn, 1)).reshape(K, B).cpu(),
                stage1=(pass_count / n_kept_steps).reshape(K, B).cpu(),
                beta=log_beta.exp().clamp(max=1.0).reshape(K, B).cpu(),
                n_true=n_true, n_sur=n_sur)


def _merge(parts):
    out = dict(samples=torch.cat([p["samples"] for p in parts], 1),
               misfit=torch.cat([p["misfit"] for p in parts], 1))
    for k in ("acceptance", "acceptance_burn", "stage1", "beta"):
        out[k] = torch.cat([p[k] for p in parts], 0)
    out["n_true"] = sum(p["n_true"] for p in parts)
    out["n_sur"] = sum(p["n_sur"] for p in parts)
    return out


# ============================================================================ solver


class MCMC(InverseSolver):
    r"""pCN MCMC (optionally two-level delayed acceptance): ``MCMC(prior, ...)(y, fwd, seed=0)``.

    Parameters
    ----------
    prior : a :class:`~pdeinv.physics.fields.GaussianRandomField` (``color``/``coeff_shape``)
        on ``fwd.grid``; the chain runs on its white-noise coefficients.  ``None``/``"grf"``:
        :func:`pdeinv.priors.grf_prior` on ``fwd.grid`` (the BENCHMARKS law), built at call time.
    n_samples : kept samples per chain (after burn-in and thinning).
    n_chains : independent chains, each started from a prior draw.
    burn_in : adaptation/burn-in steps (default ``n_samples * thin // 2``), discarded.
    step : initial pCN step :math:`\beta\in(0, 1]`.
    adapt : adapt :math:`\beta` during burn-in towards ``target_acceptance``.
    thin : keep every ``thin``-th state.
    surrogate_fwd : a cheap forward model (``SurrogateForward``, possibly of a
        :class:`~pdeinv.physics.resample.Coarsened` operator, or a coarse ``ForwardModel``)
        with ``A(m)`` (noise-free observations): turns on the two-level sampler.
    screen_correction : ``"offset"`` (default) corrects the screen by its error at the
        chain's current state; ``"none"`` screens with the surrogate as it is.
    proposal : ``"pcn"`` (default) or ``"gpcn"``: pCN preconditioned by the Laplace approximation
        (module docstring).  ``laplace_options``: options of the :class:`~pdeinv.solvers.laplace.Laplace`
        it builds (e.g. ``map_options``, ``rank``).
    laplace_fwd : the forward model through which gpCN's Gaussian is built (its MAP point, unless ``m0`` is
        given, and its Gauss--Newton Hessian); default the true ``fwd``.  A trained surrogate (possibly
        :class:`~pdeinv.physics.resample.Coarsened`) builds it for a fraction of the simulator's cost; the
        chain stays exact, since only the proposal changes (but on NS inverse the network's Gaussian was a
        poor proposal: ``docs/mcmc.md``).
    transform : pointwise map from the prior field to the forward model's input
        (e.g. ``torch.exp`` for a log-permeability prior); samples are reported
        after the map.
    parallel : ``None`` (batched chains) or ``"dask"`` (one ``dask.delayed`` task per chain).
    client : a ``dask.distributed.Client`` for ``parallel="dask"`` (default: dask's threaded scheduler).
    compute_state : also return ``u = fwd.solve(posterior mean)``.
    verbose : tqdm progress bar.  seed : default seed (the call's ``seed=`` wins).

    Call: ``solver(y, fwd, seed=0, m0=None, laplace=None)``; ``m0`` (``(1 or B, C, *grid)``, e.g. the MAP
    point) starts every chain at ``whiten(m0)`` instead of a prior draw (shorter burn-in; chains that start
    together make R-hat less telling); with gpCN it centres the Gaussian there instead, and the chains start
    at independent draws of that Gaussian.  ``laplace``: a
    :class:`~pdeinv.solvers.laplace.Laplace` result on the same prior to use as gpCN's Gaussian.  Both only
    without ``transform``.

    Result: ``samples`` ``(S, B, C, *grid)`` pooled over chains (chain-major),
    ``m`` the posterior mean, ``info`` with ``acceptance``, ``rhat`` (max over
    pixels), ``ess`` (min over pixels), ``rhat_loglik``, ``ess_loglik``,
    ``n_true_model_calls``, ``n_surrogate_calls``, ``step`` and ``ess_per_second``
    (one value per problem of the batch, or a float when ``B = 1``);
    ``history["misfit"]`` is the mean misfit of the kept states.
    """

    name = "mcmc"

    def __init__(self, prior=None, n_samples: int = 1000, n_chains: int = 4, burn_in: Optional[int] = None,
                 step: float = 0.2, adapt: bool = True, target_acceptance: float = 0.25, thin: int = 1,
                 surrogate_fwd=None, screen_correction: str = "offset", proposal: str = "pcn",
                 laplace_options: Optional[dict] = None, laplace_fwd=None, transform: Optional[Callable] = None,
                 parallel: Optional[str] = None, client=None, compute_state: bool = True, verbose: bool = False,
                 seed: int = 0):
        if not (prior is None or (isinstance(prior, str) and prior == "grf")
                or (hasattr(prior, "color") and hasattr(prior, "coeff_shape"))):
            raise TypeError("MCMC needs a GaussianRandomField prior (with color/whiten and coeff_shape); got "
                            f"{type(prior).__name__}")
        if n_samples < 4 or n_chains < 1 or thin < 1:
            raise ValueError(f"need n_samples >= 4, n_chains >= 1, thin >= 1; got {n_samples}, {n_chains}, {thin}")
        if not 0 < step <= 1:
            raise ValueError(f"the pCN step beta must lie in (0, 1]; got {step}")
        if not 0 < target_acceptance < 1:
            raise ValueError(f"target_acceptance must lie in (0, 1); got {target_acceptance}")
        if screen_correction not in ("offset", "none"):
            raise ValueError(f"screen_correction must be 'offset' or 'none'; got {screen_correction!r}")
        if proposal not in ("pcn", "gpcn"):
            raise ValueError(f"proposal must be 'pcn' or 'gpcn'; got {proposal!r}")
        if proposal == "gpcn" and transform is not None:
            raise ValueError("proposal='gpcn' needs the Gaussian field itself as the unknown (its Laplace "
                             "approximation lives in the field's white-noise coordinates); this prior is seen "
                             "through a transform")
        if parallel not in (None, "dask"):
            raise ValueError(f"parallel must be None or 'dask'; got {parallel!r}")
        self.prior, self.n_samples, self.n_chains = prior, int(n_samples), int(n_chains)
        self.thin = int(thin)
        self.burn_in = int(burn_in) if burn_in is not None else self.n_samples * self.thin // 2
        self.step, self.adapt, self.target = float(step), bool(adapt), float(target_acceptance)
        self.surrogate_fwd, self.transform = surrogate_fwd, transform
        self.screen_correction = screen_correction
        if laplace_fwd is not None and proposal != "gpcn":
            raise ValueError("laplace_fwd builds the Gaussian of proposal='gpcn'; this sampler uses pCN")
        self.proposal, self.laplace_options, self.laplace_fwd = proposal, dict(laplace_options or {}), laplace_fwd
        self.parallel, self.client, self.compute_state = parallel, client, compute_state
        self.verbose, self.seed = verbose, seed

    def solve(self, y: torch.Tensor, fwd, *, seed: Optional[int] = None, **kwargs) -> InverseResult:
        seed = self.seed if seed is None else seed
        check_finite(y, "observations y")
        grid = getattr(fwd, "grid", None)
        prior = self.prior
        if prior is None or isinstance(prior, str):
            if grid is None:
                raise ValueError("MCMC(prior=None) builds the default GRF prior on fwd.grid, but fwd has no grid")
            from pdeinv.priors import grf_prior
            prior = grf_prior(grid)
        pg = prior.grid
        if grid is not None and tuple(grid.shape) != tuple(pg.shape):
            raise ValueError(f"the prior lives on a grid of shape {tuple(pg.shape)}; the forward model's unknown "
                             f"is on {tuple(grid.shape)}")
        if not (hasattr(prior, "color") and hasattr(prior, "coeff_shape")):
            raise TypeError(f"MCMC needs a GaussianRandomField prior; got {type(prior).__name__}")
        sfwd = self.surrogate_fwd
        if sfwd is not None and hasattr(sfwd, "bind"):    # a bare surrogate: completed with fwd's observation/noise
            sfwd = sfwd.bind(fwd)
        if sfwd is not None and hasattr(sfwd, "check_observations"):
            sfwd.check_observations(y)
        xi0 = None
        m0 = kwargs.get("m0")
        if m0 is not None:
            if self.transform is not None:
                raise ValueError("MCMC(m0=...) starts the chains at whiten(m0), which needs the field itself as the "
                                 "unknown; this prior is seen through a transform (e.g. the law's threshold)")
            xi0 = prior.whiten(m0.to(dtype=y.dtype if y.is_floating_point() else torch.float64))
            xi0 = xi0.expand((y.shape[0],) + tuple(xi0.shape[1:])).clone()
        gauss, t_lap = None, 0.0
        if self.proposal == "gpcn":
            t0 = time.perf_counter()
            gauss = self._laplace(prior, y, fwd, m0, kwargs.get("laplace"), seed)
            t_lap = time.perf_counter() - t0
            xi0 = "gauss"       # each chain at its own draw of the Laplace Gaussian (drawn in _run_chains)
        elif kwargs.get("laplace") is not None:
            raise ValueError("laplace= is the Gaussian of proposal='gpcn'; this sampler uses pCN")
        seeds = _chain_seeds(seed, self.n_chains)
        args = (self.step, self.burn_in, self.n_samples, self.thin, self.adapt, self.target, self.transform)
        t0 = time.perf_counter()
        if self.parallel == "dask":
            import dask
            tasks = [dask.delayed(_run_chains, pure=False)(prior, fwd, sfwd, y, [s], *args,
                                                           correction=self.screen_correction, xi0=xi0,
                                                           verbose=False, gauss=gauss)
                     for s in seeds]
            if self.client is not None:
                parts = self.client.gather(self.client.compute(tasks))
            else:
                parts = list(dask.compute(*tasks, scheduler="threads"))
            out = _merge(parts)
        else:
            desc = ("two-level " if sfwd is not None else "") + ("gpCN" if gauss is not None else "pCN")
            out = _run_chains(prior, fwd, sfwd, y, seeds, *args, correction=self.screen_correction, xi0=xi0,
                              verbose=self.verbose, desc=desc, gauss=gauss)
        wall = time.perf_counter() - t0
        smp = out["samples"]                                          # (S, K, B, C, *grid)
        S, K, B = smp.shape[:3]
        rh, es, rh_ll, es_ll = [], [], [], []
        for b in range(B):
            ch = smp[:, :, b].reshape(S, K, -1).permute(1, 0, 2).double().numpy()    # (K, S, D)
            r, e = split_rhat(ch), ess(ch)
            rh.append(float(np.nanmax(r)) if np.isfinite(r).any() else float("nan"))
            es.append(float(np.nanmin(e)) if np.isfinite(e).any() else float("nan"))
            ll = -out["misfit"][:, :, b].T.numpy()[..., None]                         # (K, S, 1)
            rh_ll.append(float(split_rhat(ll)[0])); es_ll.append(float(ess(ll)[0]))
        pooled = smp.permute(1, 0, *range(2, smp.dim())).reshape(K * S, *smp.shape[2:])   # chain-major
        pooled = pooled.to(device=y.device)
        mean = pooled.mean(0)
        u = None
        if self.compute_state and hasattr(fwd, "solve"):
            with torch.no_grad():
                u = fwd.solve(mean)

        def per_b(v):
            return v[0] if B == 1 else v
        acc = out["acceptance"].mean(0).tolist()
        n_steps = self.n_chains * (self.burn_in + self.n_samples * self.thin) * B
        info = {"method": "mcmc-2level" if self.surrogate_fwd is not None else f"mcmc-{self.proposal}",
                "acceptance": per_b(acc), "acceptance_per_chain": out["acceptance"].tolist(),
                "acceptance_burn_in": per_b(out["acceptance_burn"].mean(0).tolist()),
                "stage1_acceptance": per_b(out["stage1"].mean(0).tolist()) if self.surrogate_fwd is not None
                else None,
                "stage2_acceptance": per_b((out["acceptance"].sum(0) / out["stage1"].sum(0).clamp(min=1e-12)).tolist())
                if self.surrogate_fwd is not None else None,
                "screen_correction": self.screen_correction if self.surrogate_fwd is not None else None,
                "proposal": self.proposal, "laplace_seconds": t_lap if gauss is not None else None,
                "laplace_model": (None if gauss is None else "given" if kwargs.get("laplace") is not None
                                  else "simulator" if self.laplace_fwd is None else "surrogate"),
                "rhat": per_b(rh), "ess": per_b(es), "rhat_loglik": per_b(rh_ll), "ess_loglik": per_b(es_ll),
                "ess_per_second": per_b([e / wall for e in es]),
                "n_true_model_calls": int(out["n_true"]), "n_surrogate_calls": int(out["n_sur"]),
                "n_proposals": int(n_steps), "step": per_b(out["beta"].mean(0).tolist()),
                "n_chains": self.n_chains, "n_samples": self.n_samples, "burn_in": self.burn_in,
                "thin": self.thin, "wall_time": wall, "seed": seed,
                "diagnostics": "split R-hat and multi-chain ESS (Geyer initial monotone sequence), BDA3 §11.4-11.5"}
        history = {"misfit": out["misfit"].mean((1, 2)).tolist()}
        log.info("%s (proposal %s): acceptance %s, R-hat %s, ESS %s, %d true-model calls, %.1f s", info["method"],
                 self.proposal, info["acceptance"], info["rhat"], info["ess"], info["n_true_model_calls"], wall)
        return InverseResult(m=mean, u=u, samples=pooled, history=history,
                             info=info, grid=grid)


    def _laplace(self, prior, y, fwd, m0, lap, seed):
        """gpCN's Gaussian per problem: ``(mean (B, n), V (B, k, n), lam (B, k))`` in white-noise coordinates."""
        from pdeinv.solvers.laplace import Laplace
        if lap is None:
            opts = dict(n_samples=0, compute_state=False, **self.laplace_options)
            lf = self.laplace_fwd if self.laplace_fwd is not None else fwd
            if hasattr(lf, "bind"):     # a bare surrogate: completed with fwd's observation/noise
                lf = lf.bind(fwd)
            lap = Laplace(prior=prior, **opts).solve(y, lf, seed=seed, m_map=m0)
        posts = getattr(lap, "posterior", None)
        if not posts or len(posts) != y.shape[0]:
            raise ValueError("laplace= must be a Laplace result with one Gaussian per problem of y "
                             f"({y.shape[0]}); got {type(lap).__name__}")
        n = math.prod(prior.coeff_shape)
        for p in posts:
            if p.gauss.n != n or tuple(p.coords.field.coeff_shape) != tuple(prior.coeff_shape):
                raise ValueError(f"the Laplace Gaussian lives on {p.gauss.n} white-noise coefficients; this prior "
                                 f"has {n}: compute it with the same prior")
        return (torch.stack([p.gauss.mean.reshape(-1) for p in posts]), torch.stack([p.gauss.V for p in posts]),
                torch.stack([p.gauss.lam for p in posts]))


class TwoLevelMCMC(MCMC):
    """Two-level delayed-acceptance pCN: :class:`MCMC` with a required ``surrogate_fwd``.

    ``TwoLevelMCMC(prior, surrogate_fwd, ...)(y, fwd)``; see the module docstring.
    """

    name = "mcmc-2level"

    def __init__(self, prior, surrogate_fwd, **kwargs):
        if surrogate_fwd is None:
            raise ValueError("TwoLevelMCMC needs a surrogate_fwd (the cheap screening model)")
        super().__init__(prior, surrogate_fwd=surrogate_fwd, **kwargs)
