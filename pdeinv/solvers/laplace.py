r"""Laplace approximation of the posterior of a nonlinear problem: a Gaussian at the MAP point.

Model.  A Gaussian random field behind the unknown, :math:`\xi = \mu + C^{1/2} z`, :math:`z \sim N(0, I)`, and a
pointwise map :math:`m = T(\xi)`: identity (``transform=None``), :math:`e^\xi` (``transform="exp"``: a
log-normal field such as a log-permeability; also the default for a ``LawPrior(transform="log")``) or
:math:`lo + (hi - lo)\,\sigma(\xi)` (``bounds=(lo, hi)``).  Data :math:`y = \mathcal A(m) + e`,
:math:`e \sim N(0, \Gamma)` (``fwd.noise``).

**The Gaussian lives in the whitened latent coordinates** ``z``:

.. math::  z \mid y \approx N\big(z^\ast, H^{-1}\big), \qquad
           H = I + \tilde J^T\Gamma^{-1}\tilde J, \qquad
           \tilde J = \partial_z\mathcal A(T(\mu + C^{1/2}z))\big|_{z^\ast},

with :math:`z^\ast` the MAP point (found by :class:`~pdeinv.solvers.map.MAP` in these coordinates, Newton--CG
by default, or given) and :math:`H` the Gauss--Newton Hessian, applied matrix-free through
Jacobian-vector products (linearised solve) and vector-Jacobian products (adjoint solve) and
compressed by the randomized low-rank eigendecomposition of :mod:`pdeinv.solvers.lowrank`.  Samples are
drawn in ``z`` and mapped through :math:`T(\mu + C^{1/2}\cdot)`, so they respect the bounds / positivity.
Consequently

* ``result.m`` is :math:`T(\xi^\ast)`, the MAP point (for ``T = I`` it is also the Gaussian's mean);
* ``result.std`` is the exact pointwise std for ``T = I``, else the std of the mapped samples;
  ``result.latent_std`` is the exact pointwise std of :math:`\xi`;
* ``info["log_evidence"]`` is the Laplace estimate
  :math:`-J(z^\ast) - \tfrac12\log\det H - \tfrac12\sum_j\log 2\pi s_j^2`
  (exact for a linear problem with ``T = I``: :class:`GaussianPosterior`'s value).

For a linear forward model and ``T = I`` this is the exact posterior (the test suite checks it against
:class:`~pdeinv.solvers.gaussian.GaussianPosterior`).  Priors without a whitening (TV, H1) are refused.
"""
from __future__ import annotations

import logging
import math
import time
from typing import Optional, Tuple

import torch

from pdeinv.solvers.base import InverseResult, InverseSolver
from pdeinv.solvers.gaussian import GaussianField, PosteriorResult, as_gaussian_prior, noise_std, posterior_std
from pdeinv.solvers.lowrank import (Linearization, LowRankGaussian, choose_rank, misfit_factor,
                                    randomized_gram_eigh, seeded, draws_and_state)
from pdeinv.solvers.map import MAP, Parametrisation, WhitenedPrior

log = logging.getLogger(__name__)

DEFAULT_MAP = dict(method="newton-cg", gtol=1e-8, max_iter=100)


def _latent(transform, bounds, law_transform):
    if transform not in (None, "identity", "exp") and not (callable(transform) and hasattr(transform, "inverse")):
        raise ValueError(f"transform must be None, 'exp' or an object with __call__ and inverse; got {transform!r}")
    if bounds is not None:
        if transform not in (None, "identity") or law_transform == "log":
            raise ValueError("give either bounds=(lo, hi) (sigmoid map) or a log-normal transform, not both")
        return Parametrisation(bounds=bounds)
    if transform == "exp" or law_transform == "log":
        return Parametrisation(positive=True)
    if callable(transform):
        return transform
    return None


class Laplace(InverseSolver):
    r"""Laplace approximation (module docstring): ``Laplace(prior, transform=..., ...)(y, fwd, m_map=None)``.

    Parameters
    ----------
    prior : ``"grf"``, a ``GaussianRandomField`` on ``fwd.grid`` or a ``LawPrior`` (the latent field's law).
    transform, bounds : the map ``T`` from the latent field to ``m`` (see the module docstring).
    map_options : options of the inner :class:`MAP` (default ``method="newton-cg", gtol=1e-8, max_iter=100``).
    n_samples : draws per problem (``result.samples``, ``(S, B, C, *grid)``).
    rank, oversampling, max_rank, power_iterations : the randomized eigensolver
        (:func:`~pdeinv.solvers.lowrank.randomized_gram_eigh`; rank default: the number of observations,
        capped by ``max_rank``, which the Gauss--Newton misfit Hessian never exceeds; power iterations default
        0 when that rank is reached, else 1).
    noise : a noise model whose ``std(y)`` overrides ``fwd.noise_std(y)``.
    channels, block_size, compute_state, seed : as in :class:`GaussianPosterior`.

    The call takes ``m_map=`` (a ``(B|1, C, *grid)`` tensor or an ``InverseResult``) to centre the
    Gaussian at a given point instead of running MAP.  ``result.info``: ``gaussian_in`` (the coordinates),
    ``map`` (the inner MAP's ``converged``/``iterations``/``grad_norm_relative``), ``rank``,
    ``eigenvalues_tail``, ``log_evidence``, ``wall_time``.
    """

    name = "laplace"

    def __init__(self, prior="grf", transform=None, bounds: Optional[Tuple[float, float]] = None,
                 map_options: Optional[dict] = None, n_samples: int = 64, rank: Optional[int] = None,
                 oversampling: int = 10, max_rank: int = 1000, power_iterations: Optional[int] = None, noise=None,
                 channels: int = 1, block_size: int = 256, compute_state: bool = True, seed: int = 0):
        if n_samples < 0 or oversampling < 0 or max_rank < 1 or (power_iterations or 0) < 0:
            raise ValueError("need n_samples >= 0, oversampling >= 0, max_rank >= 1, power_iterations >= 0")
        self.prior, self.transform, self.bounds = prior, transform, bounds
        self.map_options = {**DEFAULT_MAP, **(map_options or {})}
        for key in ("prior", "bounds", "positive", "whiten", "channels"):
            if key in self.map_options:
                raise ValueError(f"map_options may not set {key!r}: Laplace fixes the coordinates of the inner MAP")
        self.n_samples, self.rank = int(n_samples), rank
        self.oversampling, self.max_rank = int(oversampling), int(max_rank)
        self.power_iterations, self.noise, self.channels = power_iterations, noise, int(channels)
        self.block_size, self.compute_state, self.seed = int(block_size), compute_state, seed

    def coordinates(self, grid) -> WhitenedPrior:
        field, law_transform = as_gaussian_prior(self.prior, grid, who="Laplace")
        return WhitenedPrior(field, _latent(self.transform, self.bounds, law_transform), weight=1.0)

    def solve(self, y: torch.Tensor, fwd, *, seed: Optional[int] = None, m_map=None, **kwargs) -> InverseResult:
        seed = self.seed if seed is None else seed
        t0 = time.perf_counter()
        grid = fwd.grid
        coords = self.coordinates(grid)
        coords.field.to(y.device)
        y = y.to(torch.float64)
        B = y.shape[0]
        s = noise_std(fwd, y, self.noise, who="Laplace")
        zshape = coords.z_shape(self.channels)
        map_info = None
        if m_map is None:
            res = MAP(channels=self.channels, **self.map_options).solve(y, fwd, coordinates=coords)
            z = res.x
            map_info = {k: res.info[k] for k in ("converged", "iterations", "grad_norm_relative", "stop_reason")}
            if not res.info["converged"]:
                log.warning("Laplace: the inner MAP did not converge (%s); the Gaussian is centred at its last "
                            "iterate", res.info["stop_reason"])
        else:
            m_map = m_map.m if isinstance(m_map, InverseResult) else m_map
            m_map = torch.as_tensor(m_map, dtype=y.dtype, device=y.device).expand(B, self.channels, *grid.shape)
            z = coords.from_m(m_map)
        n, n_obs = math.prod(zshape), math.prod(y.shape[1:])
        rank, k = choose_rank(n_obs, n, self.rank, self.oversampling, self.max_rank)
        k = min(k, n_obs)
        pw = self.power_iterations if self.power_iterations is not None else (0 if k >= n_obs else 1)
        inv_var = (1.0 / s ** 2).expand_as(y)
        posts, tails, logev = [], [], []
        for b in range(B):
            zb = z[b:b + 1].detach()
            mb = coords.to_m(zb)
            lin = Linearization(fwd, mb)
            G, Gt = misfit_factor(lin, coords, zb, inv_var[b:b + 1].sqrt())
            lam, V = randomized_gram_eigh(G, Gt, n, n_obs, k, power_iterations=pw, block_size=self.block_size,
                                          generator=seeded(seed, 0), device=y.device)
            gauss = LowRankGaussian(zb.reshape(-1), V, lam)
            posts.append(GaussianField(coords, gauss, zshape))
            tails.append(float(lam[-1]))
            with torch.no_grad():   # J(z*) = misfit + prior term
                J = 0.5 * float(((fwd.A(mb) - y[b:b + 1]) ** 2 * inv_var[b:b + 1]).sum()) + 0.5 * float(zb.pow(2).sum())
            logev.append(-J - 0.5 * gauss.logdet_hessian() - 0.5 * float(torch.log(2 * math.pi / inv_var[b]).sum()))
        with torch.no_grad():
            m = coords.to_m(z.detach())
        latent = WhitenedPrior(coords.field)
        latent_std = posterior_std([GaussianField(latent, p.gauss, zshape) for p in posts], latent, zshape,
                                   self.block_size)
        samples, u = draws_and_state(posts, self.n_samples, seed, fwd, m, self.compute_state)
        wall = time.perf_counter() - t0

        def per_b(v):
            return v[0] if B == 1 else v
        info = {"method": "laplace", "coordinates": coords.describe(),
                "gaussian_in": "z (whitened latent): xi = mu + C^(1/2) z ~ N(z*, H^-1), m = T(xi)",
                "point": "map", "map": map_info, "rank": k, "target_rank": rank, "n_obs": n_obs,
                "power_iterations": pw, "eigenvalues_tail": per_b(tails),
                "log_evidence": per_b(logev), "n_samples": self.n_samples, "seed": seed, "wall_time": wall}
        log.info("Laplace: rank %d, MAP %s, %.2f s", k, map_info, wall)
        result = PosteriorResult(m=m, u=u, samples=samples, info=info, grid=grid,
                                 pointwise_std=latent_std if coords.linear else None, posterior=posts)
        result.latent_std = latent_std
        return result
