r"""Matrix-free linear algebra shared by the Gaussian posterior, the Laplace approximation and Newton--CG MAP.

Whitened coordinates.  A Gaussian random field prior :math:`\xi \sim N(\mu, C)` is written
:math:`\xi = \mu + C^{1/2} z`, :math:`z \sim N(0, I)` (``field.color``), and the unknown is
:math:`m = T(\xi)` for a pointwise map :math:`T` (identity, ``exp``, scaled sigmoid):
:class:`WhitenedCoordinates`.  In ``z`` the negative log posterior is

.. math::  J(z) = \tfrac12\|\Gamma^{-1/2}(\mathcal A(T(\mu + C^{1/2} z)) - y)\|^2 + \tfrac12\|z\|^2,

and its Gauss--Newton Hessian at :math:`z_0` is

.. math::  H = I + \tilde J^T \Gamma^{-1} \tilde J, \qquad \tilde J = \partial_z \mathcal A(T(\mu + C^{1/2} z))|_{z_0}

(exact for a linear :math:`\mathcal A` and :math:`T = I`).  :math:`\tilde J` and :math:`\tilde J^T` are applied
matrix-free (:class:`Linearization`: Jacobian-vector products by a linearised solve or forward-mode AD,
vector-Jacobian products by reverse-mode AD through the simulator's adjoint).

Low rank.  The misfit Hessian is a Gram operator, :math:`\tilde J^T\Gamma^{-1}\tilde J = G^TG` with
:math:`G = \Gamma^{-1/2}\tilde J`, of rank at most the number of observations ``p``.
:func:`randomized_gram_eigh` computes its dominant eigenpairs :math:`G^TG \approx V\Lambda V^T` by a
randomized SVD of ``G`` (Halko, Martinsson & Tropp, SIAM Rev. 53 (2011), Alg. 4.1/4.4/5.1): a range finder
on :math:`G^T` with ``k`` = rank + oversampling Gaussian columns, optional subspace (power) iterations,
then the SVD of the small :math:`GQ^T` -- two passes, one vector-Jacobian and one Jacobian-vector
product per column, as hIPPYlib's double pass (Villa, Petra & Ghattas, ACM TOMS 47 (2021)) but on the
factor.  With ``k = p`` the range of :math:`G^T` is captured exactly, so the decomposition is exact up to
round-off.  :func:`randomized_eigh` is the same method for a symmetric operator given only through
products.  Then (:class:`LowRankGaussian`)

.. math::  H^{-1} = I - V\,\mathrm{diag}\big(\tfrac{\lambda}{1+\lambda}\big)V^T, \qquad
           H^{-1/2}\zeta = \zeta + V\big((1+\lambda)^{-1/2} - 1\big)V^T\zeta,

so posterior covariance, samples and :math:`\log\det H = \sum\log(1+\lambda_i)` cost no more solves.
Vectors are rows: an operator maps ``(b, n) -> (b, n)``.  Nothing here forms an ``n x n`` matrix.
"""
from __future__ import annotations

import logging
import math
from typing import Callable, Optional

import torch

log = logging.getLogger(__name__)

Operator = Callable[[torch.Tensor], torch.Tensor]


# ============================================================================ Krylov and randomized methods
def blocked(apply: Operator, block_size: Optional[int]) -> Operator:
    """``apply`` on at most ``block_size`` rows at a time (bounds the memory of batched solves)."""
    if not block_size:
        return apply

    def run(X):
        return torch.cat([apply(X[i:i + block_size]) for i in range(0, X.shape[0], block_size)])
    return run


def _orth(Y: torch.Tensor) -> torch.Tensor:
    """Orthonormal rows spanning the rows of ``Y`` ``(k, n)``."""
    return torch.linalg.qr(Y.T, mode="reduced")[0].T.contiguous()


def randomized_eigh(apply: Operator, n: int, k: int, *, power_iterations: int = 1,
                    generator: Optional[torch.Generator] = None, dtype=torch.float64, device=None):
    r"""Dominant eigenpairs of a symmetric positive semi-definite operator on :math:`\mathbb R^n`.

    ``apply(X)`` maps rows ``(b, n)`` to ``(b, n)``.  ``k`` columns in all (rank + oversampling), ``k <= n``.
    Cost: ``(power_iterations + 2) * k`` operator rows.  Returns ``(lam (k,), V (k, n))``, eigenvalues in
    descending order (clamped at 0), ``V`` with orthonormal rows.
    """
    if not 1 <= k <= n:
        raise ValueError(f"randomized_eigh needs 1 <= k <= n; got k={k}, n={n}")
    omega = torch.randn(k, n, generator=generator, dtype=dtype).to(device)
    Q = _orth(apply(omega))
    for _ in range(int(power_iterations)):
        Q = _orth(apply(Q))
    HQ = apply(Q)
    T = Q @ HQ.T
    lam, W = torch.linalg.eigh(0.5 * (T + T.T))
    order = torch.argsort(lam, descending=True)
    lam, W = lam[order].clamp_min(0.0), W[:, order]
    return lam, W.T @ Q


def pcg(apply: Callable[[torch.Tensor], torch.Tensor], b: torch.Tensor, *, precond=None, x0=None,
        rtol: float = 1e-10, atol: float = 0.0, maxiter: int = 200):
    r"""Preconditioned conjugate gradients for :math:`Hx = b` (one vector ``b`` of any shape).

    Stops when :math:`\|b - Hx\| \le \max(\mathrm{rtol}\,\|b\|, \mathrm{atol})`, at ``maxiter``, or on a direction of
    non-positive curvature (then the iterate so far is returned, or ``b`` itself at the first iteration,
    the steepest-descent direction of Newton--CG).  Returns ``(x, info)`` with ``iterations``,
    ``residual`` (relative), ``converged``, ``negative_curvature``.
    """
    M = precond if precond is not None else (lambda v: v)
    bnorm = float(b.norm())
    tol = max(rtol * bnorm, atol)
    x = torch.zeros_like(b) if x0 is None else x0.clone()
    r = b - apply(x) if x0 is not None else b.clone()
    info = {"iterations": 0, "negative_curvature": False}
    if bnorm == 0 or float(r.norm()) <= tol:
        info.update(residual=float(r.norm()) / max(bnorm, 1e-300), converged=True)
        return x, info
    z = M(r)
    p = z.clone()
    rz = float((r * z).sum())
    for it in range(1, maxiter + 1):
        Hp = apply(p)
        pHp = float((p * Hp).sum())
        if not pHp > 0:
            info["negative_curvature"] = True
            if it == 1 and x0 is None:
                x = b.clone()
            break
        alpha = rz / pHp
        x = x + alpha * p
        r = r - alpha * Hp
        info["iterations"] = it
        if float(r.norm()) <= tol:
            break
        z = M(r)
        rz_new = float((r * z).sum())
        p = z + (rz_new / rz) * p
        rz = rz_new
    res = float(r.norm())
    info.update(residual=res / bnorm, converged=res <= tol)
    return x, info


class LowRankGaussian:
    r"""A Gaussian :math:`N(\bar z, H^{-1})` on :math:`\mathbb R^n` with :math:`H = I + V\Lambda V^T`.

    ``mean (n,)``, ``V (k, n)`` orthonormal rows, ``lam (k,)``.  Covariance products, samples and
    :math:`\log\det H` follow from the formulas of the module docstring.
    """

    def __init__(self, mean: torch.Tensor, V: torch.Tensor, lam: torch.Tensor):
        self.mean, self.V, self.lam = mean, V, lam
        self.d = lam / (1.0 + lam)

    @property
    def n(self) -> int:
        return self.V.shape[1]

    def hessian_apply(self, X):
        """:math:`HX` for rows ``X (b, n)``."""
        return X + (X @ self.V.T * self.lam) @ self.V

    def cov_apply(self, X):
        """:math:`H^{-1}X` for rows ``X (b, n)`` (or one vector ``(n,)``)."""
        return X - (X @ self.V.T * self.d) @ self.V

    def sqrt_cov_apply(self, X):
        """:math:`H^{-1/2}X`: white noise rows ``X`` to posterior deviations."""
        return X + (X @ self.V.T * ((1.0 + self.lam).rsqrt() - 1.0)) @ self.V

    def sample(self, n_samples: int, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """``(n_samples, n)`` draws; the white noise comes from ``generator`` (CPU) for reproducibility."""
        xi = torch.randn(n_samples, self.n, generator=generator, dtype=self.V.dtype).to(self.V.device)
        return self.mean + self.sqrt_cov_apply(xi)

    def logdet_hessian(self) -> float:
        return float(torch.log1p(self.lam).sum())


# ============================================================================ coordinates and Jacobians
class WhitenedCoordinates:
    r"""``m = T(mu + C^{1/2} z)``: a GRF ``field`` (``color``/``whiten``) and a pointwise ``latent`` map.

    ``latent``: ``None`` (identity) or an object with ``__call__`` and ``inverse`` (e.g.
    :class:`pdeinv.solvers.map.Parametrisation`).  ``z`` has shape ``(B, C, *field.coeff_shape)``.
    """

    def __init__(self, field, latent=None):
        self.field, self.latent = field, latent
        if latent is not None and getattr(latent, "kind", None) == "identity":
            self.latent = None

    @property
    def linear(self) -> bool:
        return self.latent is None

    def z_shape(self, channels: int = 1):
        return (channels, *self.field.coeff_shape)

    def to_m(self, z: torch.Tensor) -> torch.Tensor:
        xi = self.field.color(z)
        return xi if self.latent is None else self.latent(xi)

    def from_m(self, m: torch.Tensor) -> torch.Tensor:
        """The ``z`` of ``m`` (a projection onto the prior's support where the field has fewer modes)."""
        return self.field.whiten(m if self.latent is None else self.latent.inverse(m))

    def jvp(self, z0: torch.Tensor, dz: torch.Tensor) -> torch.Tensor:
        """``dm = (dm/dz)(z0) dz`` for rows ``dz (b, C, *coeff)``."""
        if self.latent is None:
            return self.field.color(dz) - self.field.mean
        return torch.func.jvp(self.to_m, (z0.expand_as(dz).contiguous(),), (dz,))[1]

    def vjp(self, z0: torch.Tensor, dm: torch.Tensor) -> torch.Tensor:
        """``(dm/dz)(z0)^T dm`` for rows ``dm (b, C, *grid)``."""
        Z = z0.detach().expand(dm.shape[0], *z0.shape[1:]).clone().requires_grad_(True)
        with torch.enable_grad():
            out = self.to_m(Z)
            return torch.autograd.grad(out, Z, dm)[0]


def _elliptic_problem(problem):
    from pdeinv.physics.elliptic import EllipticProblem
    return isinstance(problem, EllipticProblem)


class Linearization:
    r"""The Jacobian :math:`J = \partial_m \mathcal A(m_0)` of the noise-free forward map ``fwd.A`` at ``m0``.

    ``jvp(dm)``: rows ``(b, C, *grid) -> (b, *obs)``; ``vjp(w)``: the transpose.  How :math:`J\,dm` is obtained:

    * ``linear=True`` (a forward model known to be linear, e.g. checked by a probe): :math:`J\,dm = \mathcal A(dm)`;
    * an :class:`~pdeinv.physics.elliptic.EllipticProblem` (Darcy, Poisson, Helmholtz): the linearised
      problem :math:`L_h(\theta_0)\,du = -\partial_\theta R(u_0;\theta_0)\,d\theta`, :math:`du = dg` on the
      boundary, with one factorisation of :math:`L_h(\theta_0)` kept for every product
      (:math:`\partial_\theta R` by forward-mode AD of the stencil);
    * otherwise forward-mode AD (``torch.func.jvp``), or, where a custom autograd function has no
      forward rule, the transpose of the (differentiable) vector-Jacobian product.

    ``vjp`` is reverse-mode AD through the same map (the simulator's adjoint solve).
    """

    def __init__(self, fwd, m0: torch.Tensor, linear: bool = False):
        self.fwd, self.m0 = fwd, m0.detach()
        if self.m0.shape[0] != 1:
            raise ValueError(f"linearise at one point (batch 1); got m0 of shape {tuple(m0.shape)}")
        problem = getattr(fwd, "problem", None)
        if linear:
            self.kind = "linear"
        elif problem is not None and _elliptic_problem(problem):
            self.kind = "elliptic"
            self._setup_elliptic(problem)
        else:
            self.kind = "autograd"
            self._mode = None

    # -- elliptic: the linearised problem with a fixed operator
    def _setup_elliptic(self, problem):
        from pdeinv.physics.elliptic import stencil
        vals = {k: problem.fixed(k) for k in problem.inputs}
        vals[problem.unknown] = self.m0
        with torch.no_grad():
            u0 = problem(self.m0)
            a0, c0, _, _ = problem.coefficients(**vals)
        spacing = problem.grid.spacing

        def residual(m):
            v = dict(vals)
            v[problem.unknown] = m
            a, c, f, g = problem.coefficients(**v)
            zero = torch.zeros_like(m)
            return stencil(u0, a, c, spacing) - (f + zero)[..., 1:-1, 1:-1], g + zero

        self._problem, self._residual, self._a0, self._c0, self._cache = problem, residual, a0, c0, {}

    def _elliptic_state(self, dm):
        from pdeinv.physics.elliptic import solve_elliptic
        _, (dR, dg) = torch.func.jvp(self._residual, (self.m0.expand_as(dm).contiguous(),), (dm,))
        p = self._problem
        return solve_elliptic(p.grid, self._a0, self._c0, torch.nn.functional.pad(-dR, (1, 1, 1, 1)), dg,
                              method=p.method, rtol=p.rtol, cache=self._cache)

    # -- generic
    def _autograd_state(self, dm):
        x = self.m0.expand_as(dm).contiguous()
        if self._mode in (None, "forward"):
            try:
                out = torch.func.jvp(self.fwd.solve, (x,), (dm,))[1]
                self._mode = "forward"
                return out
            except (RuntimeError, NotImplementedError) as err:
                if self._mode == "forward":
                    raise
                log.debug("forward-mode AD unavailable (%s); using the transpose of the VJP", err)
        self._mode = "double-vjp"
        with torch.enable_grad():
            X = x.detach().clone().requires_grad_(True)
            u = self.fwd.solve(X)
            w = torch.zeros_like(u, requires_grad=True)
            try:
                (g,) = torch.autograd.grad(u, X, w, create_graph=True)
                return torch.autograd.grad(g, w, dm)[0]
            except RuntimeError as err:
                raise NotImplementedError(
                    f"no Jacobian-vector product for {type(self.fwd.problem).__name__}: it has no forward-mode "
                    "rule and its adjoint is not differentiable; Newton-CG/Laplace need J v (use L-BFGS for MAP)"
                ) from err

    def state_jvp(self, dm: torch.Tensor) -> torch.Tensor:
        if self.kind == "linear":
            return self.fwd.solve(dm)
        if self.kind == "elliptic":
            return self._elliptic_state(dm)
        return self._autograd_state(dm)

    def jvp(self, dm: torch.Tensor) -> torch.Tensor:
        return self.fwd.observation(self.state_jvp(dm))

    def vjp(self, w: torch.Tensor) -> torch.Tensor:
        """Reverse-mode AD; the graph of each batch size is kept (the map is fixed), so a product costs
        one adjoint solve, not a forward solve as well."""
        b = w.shape[0]
        graphs = self.__dict__.setdefault("_graphs", {})
        if b not in graphs:
            if len(graphs) >= 4:
                graphs.pop(next(iter(graphs)))
            with torch.enable_grad():
                if self.kind == "autograd":
                    X = self.m0.expand(b, *self.m0.shape[1:]).clone().requires_grad_(True)
                    out = self.fwd.A(X)
                else:   # linear in its argument: differentiate the linear map at 0
                    X = torch.zeros(b, *self.m0.shape[1:], dtype=self.m0.dtype, device=self.m0.device,
                                    requires_grad=True)
                    out = self.jvp(X)
            graphs[b] = (X, out)
        X, out = graphs[b]
        return torch.autograd.grad(out, X, w, retain_graph=True)[0]

    def adjoint_test(self, seed: int = 0) -> float:
        r"""Relative mismatch of the dot-product test,
        :math:`|\langle w, Jv\rangle - \langle J^Tw, v\rangle| / (\|w\|\|Jv\| + \|J^Tw\|\|v\|)`."""
        g = torch.Generator().manual_seed(seed)
        v = torch.randn(self.m0.shape, generator=g, dtype=self.m0.dtype).to(self.m0.device)
        Jv = self.jvp(v)
        w = torch.randn(Jv.shape, generator=g, dtype=Jv.dtype).to(Jv.device)
        Jtw = self.vjp(w)
        a, b = float((w * Jv).sum()), float((Jtw * v).sum())
        return abs(a - b) / max(float(w.norm() * Jv.norm() + Jtw.norm() * v.norm()), 1e-300)


def misfit_factor(lin: Linearization, coords: WhitenedCoordinates, z0: torch.Tensor, inv_sd):
    r"""The factor :math:`G = \Gamma^{-1/2}\tilde J` of the misfit Hessian :math:`G^TG`, at ``z0 (1, C, *coeff)``.

    Returns ``(G, Gt)``: ``G`` maps rows ``(b, n) -> (b, p)`` (Jacobian-vector products), ``Gt`` rows
    ``(b, p) -> (b, n)`` (vector-Jacobian products); ``inv_sd`` is :math:`1/s`, broadcastable to one sample's
    observations ``(1, *obs)``.
    """
    zshape = tuple(z0.shape[1:])
    obs_shape = []

    def G(X):
        dy = lin.jvp(coords.jvp(z0, X.reshape(X.shape[0], *zshape))) * inv_sd
        obs_shape[:] = dy.shape[1:]
        return dy.reshape(X.shape[0], -1)

    def Gt(W):
        if not obs_shape:
            G(torch.zeros(1, math.prod(zshape), dtype=z0.dtype, device=z0.device))
        w = W.reshape(W.shape[0], *obs_shape) * inv_sd
        return coords.vjp(z0, lin.vjp(w)).reshape(W.shape[0], -1)
    return G, Gt


def misfit_hessian(lin: Linearization, coords: WhitenedCoordinates, z0: torch.Tensor, inv_var) -> Operator:
    r"""Rows ``X (b, n) -> (\tilde J^T \Gamma^{-1} \tilde J X)`` in whitened coordinates at ``z0 (1, C, *coeff)``.

    ``inv_var``: :math:`1/s^2`, broadcastable to one sample's observations ``(1, *obs)``.
    """
    G, Gt = misfit_factor(lin, coords, z0, inv_var.sqrt() if torch.is_tensor(inv_var) else inv_var ** 0.5)
    return lambda X: Gt(G(X))


def randomized_gram_eigh(G: Operator, Gt: Operator, n: int, p: int, k: int, *, power_iterations: int = 0,
                         block_size: Optional[int] = None, generator: Optional[torch.Generator] = None,
                         dtype=torch.float64, device=None):
    r"""Dominant eigenpairs of :math:`H = G^TG` (``G``: :math:`\mathbb R^n \to \mathbb R^p`), by a randomized SVD.

    Range finder on :math:`G^T`: :math:`Y = G^T\Omega`, :math:`\Omega \in \mathbb R^{p\times k}` Gaussian
    (``k`` = rank + oversampling, at most ``p``: :math:`G^T` has rank ``<= p``, so ``k = p`` captures it
    exactly), ``power_iterations`` subspace iterations :math:`Y \leftarrow G^TGQ`, then the small SVD of
    :math:`GQ^T` (second pass).  Cost: ``k (2 + 2 power_iterations)`` rows of ``G``/``Gt`` -- one
    Jacobian-vector and one vector-Jacobian product per column, half of :func:`randomized_eigh` on
    :math:`G^TG`.  Returns ``(lam (k,), V (k, n))``, descending, ``V`` with orthonormal rows.
    """
    k = min(int(k), int(p), int(n))
    if k < 1:
        raise ValueError(f"randomized_gram_eigh needs k >= 1; got k={k} (n={n}, p={p})")
    G, Gt = blocked(G, block_size), blocked(Gt, block_size)
    omega = torch.randn(k, p, generator=generator, dtype=dtype).to(device)
    Q = _orth(Gt(omega))
    for _ in range(int(power_iterations)):
        Q = _orth(Gt(G(Q)))
    M = G(Q)                                        # (k, p): rows G q_i, i.e. (G Q^T)^T
    lam, W = torch.linalg.eigh(M @ M.T)             # (G Q^T)^T (G Q^T) = W diag(sigma^2) W^T
    order = torch.argsort(lam, descending=True)
    lam, W = lam[order].clamp_min(0.0), W[:, order]
    return lam, W.T @ Q


def choose_rank(n_obs: int, n: int, rank: Optional[int], oversampling: int, max_rank: int):
    """``(rank, k)``: the target rank (default: the number of observations, capped) and columns ``k``."""
    r = int(rank) if rank is not None else n_obs
    r = max(1, min(r, int(max_rank), n))
    return r, min(n, r + int(oversampling))


def seeded(seed: int, *stream: int) -> torch.Generator:
    """A CPU generator for the stream ``(seed, *stream)`` (independent streams by ``numpy.random.SeedSequence``)."""
    import numpy as np
    state = np.random.SeedSequence([int(seed) % (2 ** 63), *[int(s) for s in stream]]).generate_state(2)
    return torch.Generator().manual_seed(((int(state[0]) << 32) | int(state[1])) % (1 << 63))


__all__ = ["blocked", "randomized_eigh", "pcg", "LowRankGaussian", "WhitenedCoordinates", "Linearization",
           "misfit_factor", "misfit_hessian", "randomized_gram_eigh", "choose_rank", "seeded"]


def draws_and_state(posteriors, n_samples: int, seed: int, fwd, m: torch.Tensor, compute_state: bool):
    """Posterior draws ``(S, B, C, *grid)`` (problem b from the stream ``(seed, 1, b)``, so a batch gives
    each problem its solo draws; ``None`` when ``n_samples`` is 0) and the state ``u = F(m)`` of the
    point estimate (``None`` unless ``compute_state``)."""
    samples = None
    if n_samples > 0:
        samples = torch.stack([p.sample(n_samples, seeded(seed, 1, b)) for b, p in enumerate(posteriors)], 1)
    u = None
    if compute_state:
        with torch.no_grad():
            u = fwd.solve(m)
    return samples, u
