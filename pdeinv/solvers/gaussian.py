r"""Exact Gaussian posterior of a linear forward model with a Gaussian-random-field prior.

Model.  :math:`y = \mathcal A m + e`, :math:`e \sim N(0, \Gamma)`, :math:`\Gamma = \mathrm{diag}(s^2)` (``fwd.noise``:
``GaussianNoise(sigma=)`` or ``(relative=)``, the latter's :math:`s` computed from the observed ``y``, as in
MAP's misfit; exact data are weighted by the package's rule, ``fwd.noise_std``), :math:`m \sim N(\mu, C)`
(``GaussianRandomField`` / ``LawPrior`` on ``fwd.grid``).
:math:`\mathcal A = \mathcal O\mathcal F` must be linear in :math:`m` (Poisson or Helmholtz with the source
as the unknown and zero boundary data; forward mode's identity map :math:`\mathcal F(m) = m`).

Posterior (in the prior-whitened coordinates :math:`m = \mu + C^{1/2} z`):

.. math::  z \mid y \sim N\big(\bar z, H^{-1}\big), \qquad H = I + C^{1/2}\mathcal A^T\Gamma^{-1}\mathcal A C^{1/2},
           \qquad H\bar z = C^{1/2}\mathcal A^T\Gamma^{-1}(y - \mathcal A\mu).

:math:`\bar z` comes from conjugate gradients on :math:`H` (matrix-free: one forward and one adjoint solve
per product), preconditioned by the low-rank inverse of :mod:`pdeinv.solvers.lowrank`; the randomized
eigendecomposition :math:`C^{1/2}\mathcal A^T\Gamma^{-1}\mathcal A C^{1/2} \approx V\Lambda V^T` gives the
pointwise variance :math:`\mathrm{Var}(m_x) = C_{xx} - \sum_i \tfrac{\lambda_i}{1+\lambda_i}(C^{1/2}v_i)_x^2`,
samples :math:`m = \mu + C^{1/2}(\bar z + H^{-1/2}\zeta)`, and the log evidence

.. math::  \log p(y) = -\tfrac12\big[r^T\Gamma^{-1}r - \bar z^T H\bar z\big] - \tfrac12\sum_i\log(1+\lambda_i)
           - \tfrac12\sum_j \log(2\pi s_j^2), \qquad r = y - \mathcal A\mu

(Woodbury; exact when the rank covers all nonzero eigenvalues, i.e. ``k >= n_obs``).  The rank has at most
as many nonzero eigenvalues as observations, so the default rank is the number of observations
(+ oversampling, capped by ``max_rank``): memory ``O(k N)``, never ``N x N``.  Units: ``m``'s units for the
mean and the std, ``y``'s for ``s``.
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Any, Optional

import torch

from pdeinv.priors.gaussian import gaussian_field, pointwise_variance
from pdeinv.solvers.base import InverseResult, InverseSolver
from pdeinv.solvers.lowrank import (Linearization, LowRankGaussian, WhitenedCoordinates, choose_rank, misfit_factor,
                                    misfit_hessian, pcg, randomized_gram_eigh, seeded, draws_and_state)

log = logging.getLogger(__name__)

_Z90 = 1.6448536269514722


@dataclass
class PosteriorResult(InverseResult):
    """An :class:`InverseResult` whose ``std`` is the exact pointwise posterior std (not a sample estimate).

    ``posterior``: one :class:`GaussianField` per problem of the batch (covariance products, more samples).
    """

    pointwise_std: Optional[torch.Tensor] = None
    posterior: Any = None

    @property
    def std(self) -> Optional[torch.Tensor]:
        if self.pointwise_std is not None:
            return self.pointwise_std
        return InverseResult.std.fget(self)

    def credible_interval(self, level: float = 0.9, exact: bool = False):
        """Equal-tailed band ``(lo, hi)``: from the samples (default, like the samplers) or, ``exact=True``,
        ``m ± q std`` with the Gaussian quantile ``q`` (Gaussian posteriors only)."""
        if not exact:
            return InverseResult.credible_interval(self, level)
        if self.pointwise_std is None:
            raise ValueError("this result holds no exact pointwise std")
        from statistics import NormalDist
        q = NormalDist().inv_cdf(0.5 + level / 2)
        return self.m - q * self.pointwise_std, self.m + q * self.pointwise_std


class GaussianField:
    r"""A Gaussian posterior: :math:`m = T(\mu + C^{1/2} z)`, :math:`z \sim N(\bar z, H^{-1})` (``T = I`` here).

    ``coords``: :class:`~pdeinv.solvers.lowrank.WhitenedCoordinates`; ``gauss``: the
    :class:`~pdeinv.solvers.lowrank.LowRankGaussian` in ``z``; ``zshape = (C, *coeff_shape)``.
    """

    def __init__(self, coords: WhitenedCoordinates, gauss: LowRankGaussian, zshape):
        self.coords, self.gauss, self.zshape = coords, gauss, tuple(zshape)

    def _m(self, z_rows):
        return self.coords.to_m(z_rows.reshape(-1, *self.zshape))

    @property
    def mean(self) -> torch.Tensor:
        """:math:`T(\\mu + C^{1/2}\\bar z)`, ``(1, C, *grid)`` (the posterior mean when ``T = I``)."""
        return self._m(self.gauss.mean[None])

    def sample(self, n: int, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """``(n, C, *grid)`` posterior draws of ``m``."""
        return self._m(self.gauss.sample(n, generator))

    def cov_apply(self, dm: torch.Tensor) -> torch.Tensor:
        r""":math:`C^{1/2}H^{-1}C^{1/2}\,dm` for fields ``dm (b, C, *grid)`` (linear ``T`` only)."""
        z0 = torch.zeros(1, *self.zshape, dtype=dm.dtype, device=dm.device)
        zt = self.coords.vjp(z0, dm).reshape(dm.shape[0], -1)
        return self.coords.jvp(z0, self.gauss.cov_apply(zt).reshape(dm.shape[0], *self.zshape))

    def covariance(self) -> torch.Tensor:
        """Dense posterior covariance of the nodal values ``(N, N)`` (small grids only: it forms ``N x N``)."""
        z0 = torch.zeros(1, *self.zshape, dtype=self.gauss.V.dtype, device=self.gauss.V.device)
        grid_shape = tuple(self.mean.shape[1:])
        N = math.prod(grid_shape)
        if N > 8192:
            raise ValueError(f"a dense covariance of {N} nodes is too large; use cov_apply or the pointwise std")
        L = self.coords.jvp(z0, torch.eye(self.gauss.n, dtype=z0.dtype, device=z0.device)
                            .reshape(-1, *self.zshape)).reshape(self.gauss.n, N)      # rows: C^{1/2} e_i
        return self.gauss.cov_apply(L.T) @ L


def as_gaussian_prior(prior, grid, who: str = "GaussianPosterior"):
    """The ``GaussianRandomField`` behind ``prior`` on ``grid`` and its latent map, or a clear ``ValueError``."""
    from pdeinv.solvers.map import make_prior
    resolved = prior if isinstance(prior, str) and prior == "grf" else make_prior(prior, grid)
    found = gaussian_field(resolved, grid) if resolved is not None else None
    if found is None:
        name = prior if isinstance(prior, (str, type(None))) else type(prior).__name__
        raise ValueError(f"{who} needs a Gaussian random-field prior it can whiten (GaussianRandomField, LawPrior "
                         f"or 'grf'); got {name!r}, which has no C^(1/2) to whiten with")
    return found


def noise_std(fwd, y: torch.Tensor, noise=None, who: str = "GaussianPosterior") -> torch.Tensor:
    """Per-sample noise std :math:`s` broadcastable to ``y``: ``noise.std(y)`` when ``noise`` is given, else
    ``fwd.noise_std(y)`` -- the forward model's noise, or for exact data the package's weighting rule
    (:mod:`pdeinv.physics.noise`; the solver base records it in ``info["noise_assumed"]``)."""
    s = (noise.std(y) if noise is not None else fwd.noise_std(y)).to(y.dtype)
    if not bool((s > 0).all()):
        raise ValueError(f"{who} needs a positive noise std; got {float(s.min()):g}")
    return s


def check_linear(fwd, field, channels: int, seed: int = 0, tol: float = 1e-8) -> float:
    r"""Random linearity probe of ``fwd.A``:
    :math:`\mathcal A(0) = 0` and :math:`\mathcal A(ax+by) = a\mathcal Ax + b\mathcal Ay`.

    ``x, y`` are centred prior draws, ``a, b`` random scalars.  Returns the relative defect; raises
    ``ValueError`` when it exceeds ``tol`` (or when the model cannot even be evaluated there).
    """
    g = seeded(seed, 7)
    xi = torch.randn(2, channels, *field.coeff_shape, generator=g, dtype=torch.float64)
    x, yv = (field.color(xi) - field.mean).unbind(0)
    a, b = (torch.randn(2, generator=g, dtype=torch.float64) * 2).tolist()
    try:
        with torch.no_grad():
            out = fwd.A(torch.stack([a * x + b * yv, x, yv, torch.zeros_like(x)]))
    except (ValueError, RuntimeError) as err:
        raise ValueError(f"the forward model is not linear in m: the linearity probe could not evaluate it at "
                         f"centred prior draws and at 0 ({err}); use Laplace for nonlinear problems") from err
    comb, ax, ay, a0 = out.unbind(0)
    scale = float((a * ax).norm() + (b * ay).norm()) + 1e-300
    defect = max(float((comb - a * ax - b * ay).norm()) / scale, float(a0.norm()) / scale)
    if not defect <= tol:
        raise ValueError(f"the forward model is not linear in m: the random probe gives a relative defect "
                         f"{defect:.2e} (tolerance {tol:.0e}) in A(a x + b y) = a A(x) + b A(y), A(0) = 0; "
                         "use Laplace for nonlinear (or affine) problems")
    return defect


def _per_b(v, B):
    return v[0] if B == 1 else v


class GaussianPosterior(InverseSolver):
    r"""Exact posterior of a linear-Gaussian problem (see the module docstring): ``GaussianPosterior(...)(y, fwd)``.

    Parameters
    ----------
    prior : ``"grf"`` (BENCHMARKS law on ``fwd.grid``), a ``GaussianRandomField`` on ``fwd.grid`` or a
        ``LawPrior`` (identity transform); anything else is refused.
    n_samples : posterior draws per problem (``result.samples``, ``(S, B, C, *grid)``).
    rank : target rank of the misfit Hessian (default: the number of observations); ``oversampling`` extra
        columns (never more than ``n_obs`` in all); ``max_rank`` caps the rank (memory ``~ 3 k N`` floats for
        ``k`` columns).  The decomposition is a randomized SVD of :math:`\Gamma^{-1/2}\mathcal A C^{1/2}`
        (:func:`~pdeinv.solvers.lowrank.randomized_gram_eigh`): ``k`` adjoint and ``k`` forward solves.
    power_iterations : subspace iterations (default 0 when ``k >= n_obs``, where one pass is exact, else 1).
    noise : a noise model whose ``std(y)`` overrides ``fwd.noise_std(y)``.
    channels : channels of ``m``.  block_size : operator rows per batched solve.
    cg_rtol, cg_max_iter : CG tolerance on :math:`\|H\bar z - b\|/\|b\|` and iteration cap.
    check_linearity, linearity_tol : the random linearity probe.
    compute_state : ``result.u = F(mean)``.  seed : default seed (the call's ``seed=`` wins).

    Randomness: the eigensolver's test matrix comes from stream ``(seed, 0)``, the draws of problem ``b`` of
    the batch from ``(seed, 1, b)``: problem ``b`` gets exactly the mean/std it gets alone, and a batch of
    one at ``seed`` reproduces problem 0.  ``result.info``: ``rank`` (columns ``k``), ``n_obs``,
    ``eigenvalues_tail`` (smallest computed eigenvalue per problem: what the rank left out is below it),
    ``exact_rank`` (``k >= n_obs``), ``cg_iterations``, ``cg_residual``, ``log_evidence``, ``noise_std``,
    ``linearity_defect``, ``wall_time`` (one value per problem, or a scalar when ``B = 1``).
    """

    name = "gaussian"

    def __init__(self, prior="grf", n_samples: int = 64, rank: Optional[int] = None, oversampling: int = 10,
                 max_rank: int = 2000, power_iterations: Optional[int] = None, noise=None, channels: int = 1,
                 block_size: int = 256, cg_rtol: float = 1e-12, cg_max_iter: int = 500, check_linearity: bool = True,
                 linearity_tol: float = 1e-8, compute_state: bool = True, seed: int = 0):
        if n_samples < 0 or oversampling < 0 or max_rank < 1 or block_size < 1:
            raise ValueError("need n_samples >= 0, oversampling >= 0, max_rank >= 1, block_size >= 1")
        self.prior, self.n_samples, self.rank, self.oversampling = prior, int(n_samples), rank, int(oversampling)
        self.max_rank, self.power_iterations, self.noise = int(max_rank), power_iterations, noise
        self.channels, self.block_size = int(channels), int(block_size)
        self.cg_rtol, self.cg_max_iter = float(cg_rtol), int(cg_max_iter)
        self.check_linearity, self.linearity_tol = check_linearity, float(linearity_tol)
        self.compute_state, self.seed = compute_state, seed

    def solve(self, y: torch.Tensor, fwd, *, seed: Optional[int] = None, **kwargs) -> InverseResult:
        seed = self.seed if seed is None else seed
        t0 = time.perf_counter()
        grid = fwd.grid
        field, transform = as_gaussian_prior(self.prior, grid)
        if transform != "identity":
            raise ValueError(f"GaussianPosterior needs a Gaussian prior on m itself; this prior is Gaussian in "
                             f"{transform}(m) (log-normal m): use Laplace(prior=..., transform='exp')")
        field = field.to(y.device)
        y = y.to(torch.float64)
        B = y.shape[0]
        s = noise_std(fwd, y, self.noise)
        defect = check_linear(fwd, field, self.channels, seed, self.linearity_tol) if self.check_linearity else None
        coords = WhitenedCoordinates(field)
        zshape = coords.z_shape(self.channels)
        z0 = torch.zeros(1, *zshape, dtype=y.dtype, device=y.device)
        lin = Linearization(fwd, coords.to_m(z0), linear=True)
        n, n_obs = math.prod(zshape), math.prod(y.shape[1:])
        rank, k = choose_rank(n_obs, n, self.rank, self.oversampling, self.max_rank)
        k = min(k, n_obs)
        pw = self.power_iterations if self.power_iterations is not None else (0 if k >= n_obs else 1)
        inv_var = (1.0 / s ** 2).expand_as(y)
        scalar = bool((inv_var == inv_var.flatten(1)[:, :1].reshape(B, *[1] * (y.dim() - 1))).all())

        def decompose(w):
            G, Gt = misfit_factor(lin, coords, z0, w.sqrt())
            return randomized_gram_eigh(G, Gt, n, n_obs, k, power_iterations=pw, block_size=self.block_size,
                                        generator=seeded(seed, 0), device=y.device)

        if scalar:   # one decomposition at unit weight, scaled by 1/s_b^2 per problem
            lam1, V = decompose(torch.ones_like(y[:1]))
        with torch.no_grad():
            r = y - fwd.A(coords.to_m(z0))
        posts, stats = [], {"cg_iterations": [], "cg_residual": [], "log_evidence": [], "eigenvalues_tail": []}
        for b in range(B):
            w = inv_var[b:b + 1]
            if scalar:
                lam, Vb = lam1 * float(w.flatten()[0]), V
            else:
                lam, Vb = decompose(w)
            H = misfit_hessian(lin, coords, z0, w)
            rhs = coords.vjp(z0, lin.vjp(r[b:b + 1] * w)).reshape(-1)
            g0 = LowRankGaussian(torch.zeros_like(rhs), Vb, lam)
            zbar, cg = pcg(lambda v: v + H(v[None])[0], rhs, precond=g0.cov_apply, x0=g0.cov_apply(rhs),
                           rtol=self.cg_rtol, maxiter=self.cg_max_iter)
            if not cg["converged"]:
                log.warning("GaussianPosterior: CG stopped at relative residual %.2e (sample %d)", cg["residual"], b)
            gauss = LowRankGaussian(zbar, Vb, lam)
            posts.append(GaussianField(coords, gauss, zshape))
            quad = float((r[b] ** 2 * w[0]).sum()) - float((rhs * zbar).sum())
            logev = -0.5 * quad - 0.5 * gauss.logdet_hessian() - 0.5 * float(torch.log(2 * math.pi / w).sum())
            stats["cg_iterations"].append(cg["iterations"]); stats["cg_residual"].append(cg["residual"])
            stats["log_evidence"].append(logev); stats["eigenvalues_tail"].append(float(lam[-1]))
        mean = torch.cat([p.mean for p in posts])
        std = posterior_std(posts, coords, zshape, self.block_size)
        samples, u = draws_and_state(posts, self.n_samples, seed, fwd, mean, self.compute_state)
        wall = time.perf_counter() - t0
        info = {"method": "gaussian", "coordinates": "whitened: m = mu + C^(1/2) z", "rank": k, "target_rank": rank,
                "n_obs": n_obs, "exact_rank": k >= n_obs, "power_iterations": pw, "oversampling": self.oversampling,
                "noise_std": _per_b([float(v) for v in s.flatten(1)[:, 0]], B) if scalar else None,
                "linearity_defect": defect, "n_samples": self.n_samples, "seed": seed, "wall_time": wall,
                **{key: _per_b(val, B) for key, val in stats.items()}}
        log.info("GaussianPosterior: rank %d (n_obs %d), CG %s iterations, %.2f s", k, n_obs,
                 info["cg_iterations"], wall)
        return PosteriorResult(m=mean, u=u, samples=samples, info=info, grid=grid, pointwise_std=std, posterior=posts)


def posterior_std(posts, coords: WhitenedCoordinates, zshape, block_size: int = 256) -> torch.Tensor:
    r"""Pointwise std of ``m`` per :class:`GaussianField` (linear ``T``):
    :math:`\sqrt{C_{xx} - \sum_i d_i (C^{1/2}v_i)_x^2}`.

    Problems that share ``V`` share the products :math:`C^{1/2}v_i` (computed once, in blocks).  ``(B, C, *grid)``.
    """
    field = coords.field
    V = posts[0].gauss.V
    prior_var = pointwise_variance(field, dtype=V.dtype, device=V.device)
    groups = {}
    for b, p in enumerate(posts):
        groups.setdefault(id(p.gauss.V), []).append(b)
    z0 = torch.zeros(1, *zshape, dtype=V.dtype, device=V.device)
    out = [None] * len(posts)
    for idx in groups.values():
        Vg = posts[idx[0]].gauss.V
        D = torch.stack([posts[b].gauss.d for b in idx])                            # (G, k)
        red = 0
        for i in range(0, Vg.shape[0], block_size):
            CV = coords.jvp(z0, Vg[i:i + block_size].reshape(-1, *zshape))          # (blk, C, *grid)
            red = red + (D[:, i:i + block_size] @ CV.pow(2).flatten(1)).reshape(len(idx), *CV.shape[1:])
        var = (prior_var - red).clamp_min(0.0)
        for j, b in enumerate(idx):
            out[b] = var[j]
    return torch.stack(out).sqrt()
