r"""Prior health check: is a diffusion prior fit to guide posterior sampling?

Two things go wrong with an under-trained denoiser, and both are measurable without any data of an
inverse problem:

1. **Its Jacobian is not positive.**  For an exact denoiser the Tweedie covariance
   :math:`\mathrm{Cov}[x_0 | x_\sigma] = \sigma^2 J_D K` is positive semi-definite, so
   :math:`\kappa = \langle p, J_D K p\rangle / \langle p, K p\rangle \in [0, 1]` for every probe
   :math:`p`.  The DPS tempering divides by it; a trained UNO with too few large-noise training draws
   gave :math:`\kappa < 0` for :math:`\sigma \ge 4` (issue 13).  :func:`check_prior` evaluates
   :math:`\kappa` at noisy reference fields :math:`x_0 + \sigma n` for **every** :math:`\sigma` of the
   sampling schedule, along white probes and along sparse point probes (what the observation guidance
   uses), and requires :math:`\kappa > 0` everywhere.
2. **Its unconditional draws do not follow the task's law.**  Draws by the EDM sampler
   (:func:`.sampling.sample_prior`) are compared with reference draws of the law (``task.sample_m``,
   or the joint ``(m, u)`` fields) through per-field statistics: mean, standard deviation, the
   two-point correlation at lags 1, 2, 4, 8 (both axes); for a binary law (Darcy, ``binary=(3, 12)``)
   the **binary fraction** (pixels within 10 % of the range of one of the two values; the law: 1) and
   the **interface fraction** (neighbouring pixel pairs on two sides of the mid value); for a joint
   prior with ``residual=problem.residual`` the **PDE residual** of the drawn pairs,
   :math:`\|R(m, u)\| / \|R(m, 0)\|` (the law: 0).

A statistic passes when the drawn mean is within ``z`` standard errors (of both samples) plus
``rtol`` times its reference scale (``max(|mean|, std)`` of the reference values), plus a float32 floor of
1e-5 times the channel's pointwise std, of the reference mean; the residual passes below ``residual_tol``.  ``check_prior(...).passed`` says whether all did;
``report.failures`` which did not and by how much; ``report.to_dict()`` is JSON for a results file.

The exact Gaussian denoiser of a Gaussian law passes (tests/test_prior_health.py); a Gaussian fitted
to binary Darcy fields fails the binary and interface fractions, and a denoiser with a negative
Jacobian fails the :math:`\kappa` check.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch

from pdeinv.priors.diffusion.sampling import sample_prior

LAGS = (1, 2, 4, 8)


def kappa_profile(denoiser, reference: torch.Tensor, sigmas: Sequence[float], *, n_fields: int = 8,
                  sparse_fraction: float = 0.03, seed: int = 0) -> Dict[str, List[float]]:
    r""":math:`\kappa` at each noise level: ``{"sigma": [...], "min": [...], "median": [...], "n_bad": [...]}``.

    ``reference``: physical fields ``(N, C, *grid)`` (the first ``n_fields`` are noised); two probes per
    field and level: a white one and a sparse Rademacher one on ``sparse_fraction`` of the pixels."""
    g = torch.Generator().manual_seed(int(seed))
    with torch.no_grad():
        z0 = denoiser.encode(reference[:n_fields].to(torch.float64)).to(torch.float64)
    noise = denoiser.noise
    out = {"sigma": [], "min": [], "median": [], "n_bad": []}
    for sigma in sigmas:
        sigma = float(sigma)
        n = noise.sample(z0.shape, generator=g, dtype=z0.dtype, device=z0.device)
        x = z0 + sigma * n
        white = torch.randn(z0.shape, generator=g, dtype=z0.dtype).to(z0.device)
        mask = (torch.rand(z0.shape, generator=g, dtype=z0.dtype) < sparse_fraction).to(z0.dtype).to(z0.device)
        sparse = mask * (torch.randint(0, 2, z0.shape, generator=g) * 2 - 1).to(z0.dtype).to(z0.device)
        P = torch.cat([white, sparse])                               # (2n, C, ...)
        W = noise.apply_cov(P)
        xx = torch.cat([x, x])
        eps = 1e-2 * sigma / W.flatten(1).pow(2).mean(1).sqrt().clamp_min(1e-300)
        e = eps.reshape(-1, *([1] * (x.dim() - 1)))
        with torch.no_grad():
            D = denoiser.denoise(xx, sigma).to(torch.float64)
            Dp = denoiser.denoise(xx + e * W, sigma).to(torch.float64)
        k = (P * (Dp - D)).flatten(1).sum(1) / eps / (P * W).flatten(1).sum(1).clamp_min(1e-300)
        out["sigma"].append(sigma)
        out["min"].append(float(k.min()))
        out["median"].append(float(k.median()))
        out["n_bad"].append(int((~(k > 0)).sum()))
    return out


def field_statistics(x: torch.Tensor, names: Optional[Sequence[str]] = None, binary: Optional[Tuple[float, float]] = None,
                     binary_channel: int = 0, lags: Sequence[int] = LAGS) -> Dict[str, torch.Tensor]:
    """Per-field statistics ``{name: (N,)}`` of physical fields ``(N, C, H, W)`` (see the module docstring)."""
    x = x.to(torch.float64)
    C = x.shape[1]
    names = list(names) if names is not None else [f"c{c}" for c in range(C)]
    out: Dict[str, torch.Tensor] = {}
    for c in range(C):
        f = x[:, c]
        nm = names[c]
        out[f"{nm}.mean"] = f.flatten(1).mean(1)
        out[f"{nm}.std"] = f.flatten(1).std(1)
        fc = f - f.flatten(1).mean(1)[:, None, None]
        var = fc.pow(2).flatten(1).mean(1).clamp_min(1e-300)
        for lag in lags:
            if lag >= min(f.shape[-2:]):
                continue
            cx = (fc[:, :, lag:] * fc[:, :, :-lag]).flatten(1).mean(1)
            cy = (fc[:, lag:, :] * fc[:, :-lag, :]).flatten(1).mean(1)
            out[f"{nm}.corr{lag}"] = 0.5 * (cx + cy) / var
    if binary is not None:
        lo, hi = (float(v) for v in binary)
        f = x[:, binary_channel]
        tol = 0.1 * (hi - lo)
        near = ((f - lo).abs() <= tol) | ((f - hi).abs() <= tol)
        out["binary_fraction"] = near.flatten(1).to(torch.float64).mean(1)
        side = f >= 0.5 * (lo + hi)
        ix = (side[:, :, 1:] != side[:, :, :-1]).flatten(1).to(torch.float64).mean(1)
        iy = (side[:, 1:, :] != side[:, :-1, :]).flatten(1).to(torch.float64).mean(1)
        out["interface_fraction"] = 0.5 * (ix + iy)
    return out


def relative_residual(x: torch.Tensor, residual: Callable, m_channel: int = 0, u_channel: int = 1) -> torch.Tensor:
    r""":math:`\|R(m, u)\| / \|R(m, 0)\|` per field of joint fields ``(N, C, ...)``."""
    m = x[:, m_channel:m_channel + 1].to(torch.float64)
    u = x[:, u_channel:u_channel + 1].to(torch.float64)
    with torch.no_grad():
        r = residual(m, u).flatten(1).norm(dim=1)
        r0 = residual(m, torch.zeros_like(u)).flatten(1).norm(dim=1).clamp_min(1e-300)
    return r / r0


@dataclass
class HealthReport:
    """The outcome of :func:`check_prior`: ``passed``, and what each check measured."""

    passed: bool
    kappa: Dict[str, List[float]]
    kappa_ok: bool
    statistics: Dict[str, Dict[str, float]] = field(default_factory=dict)
    residual: Optional[Dict[str, float]] = None
    failures: List[str] = field(default_factory=list)
    settings: Dict[str, object] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"passed": self.passed, "kappa_ok": self.kappa_ok, "kappa": self.kappa, "statistics": self.statistics,
                "residual": self.residual, "failures": list(self.failures), "settings": dict(self.settings)}

    def summary(self) -> str:
        head = "prior health: PASSED" if self.passed else f"prior health: FAILED ({len(self.failures)} checks)"
        return "\n".join([head] + [f"  - {f}" for f in self.failures])


def check_prior(denoiser, reference: torch.Tensor, *, num_steps: int = 18, n_draws: int = 64,
                kappa_fields: int = 8, binary: Optional[Tuple[float, float]] = None, residual: Optional[Callable] = None,
                m_channel: int = 0, u_channel: int = 1, z: float = 4.0, rtol: float = 0.1,
                residual_tol: float = 0.1, names: Optional[Sequence[str]] = None, seed: int = 0,
                draws: Optional[torch.Tensor] = None, sample_kw: Optional[dict] = None) -> HealthReport:
    r"""Check a diffusion prior against reference draws of its law (see the module docstring).

    Parameters
    ----------
    denoiser : ``EDMDenoiser`` or ``AnalyticGaussianDenoiser`` (anything with ``denoise``, ``encode``,
        ``decode``, ``noise``, ``schedule``).
    reference : physical fields of the law ``(N, C, *grid)``: ``task.sample_m(grid, N, seed)`` for an
        ``m`` prior, ``torch.cat([m, problem(m)], 1)`` for a joint one.
    num_steps : the sampling schedule (its :math:`\sigma` values are where :math:`\kappa` is checked, and the
        Heun steps of the unconditional draws).
    n_draws : unconditional draws (``draws=`` gives them instead, e.g. to reuse).
    binary : ``(lo, hi)`` of a binary law (Darcy: ``(3, 12)``) on ``m_channel``.
    residual : ``residual(m, u)`` of a joint prior (``problem.residual``).
    z, rtol, residual_tol : the pass criteria.
    """
    if reference.dim() < 4:
        raise ValueError(f"reference must be physical fields (N, C, H, W); got shape {tuple(reference.shape)}")
    C = int(getattr(denoiser, "channels", None) or denoiser.config["channels"])
    if reference.shape[1] != C:
        raise ValueError(f"the prior has {C} channel(s); reference fields have {reference.shape[1]}"
                         + (" (a joint prior needs torch.cat([m, problem(m)], 1))" if C == 2 else ""))
    if residual is not None and C < 2:
        raise ValueError("residual= checks a joint (m, u) prior; this prior has one channel")
    sigmas = denoiser.schedule.steps(num_steps, dtype=torch.float64)[:-1].tolist()
    kap = kappa_profile(denoiser, reference, sigmas, n_fields=kappa_fields, seed=seed)
    failures = []
    kappa_ok = all(nb == 0 for nb in kap["n_bad"])
    if not kappa_ok:
        bad = [s for s, nb in zip(kap["sigma"], kap["n_bad"]) if nb]
        failures.append(f"kappa <= 0 at {len(bad)} of {len(sigmas)} noise levels (sigma in "
                        f"[{min(bad):.3g}, {max(bad):.3g}]; min kappa {min(kap['min']):.3g})")
    if draws is None:
        draws = sample_prior(denoiser, n_draws, tuple(reference.shape[2:]), num_steps=num_steps, seed=seed,
                             **(sample_kw or {}))
    draws = draws.detach().to(torch.float64)
    names = names or getattr(denoiser, "channel_names", None)
    if callable(names) or names is None or len(list(names)) != C:
        names = ["m", "u"][:C] if C <= 2 else [f"c{c}" for c in range(C)]
    sd = field_statistics(draws, names, binary, m_channel)
    sr = field_statistics(reference, names, binary, m_channel)
    stats = {}
    # float32 floor: the denoisers run in float32, so a statistic the law pins exactly (a zero spatial mean, as
    # NS vorticity's) is matched only to ~1e-7 of the field's size; 1e-5 of the channel's std absorbs that
    floor = {str(n): 1e-5 * float(reference[:, c].std()) for c, n in enumerate(names)}
    for key in sr:
        a, b = sd[key], sr[key]
        diff = float(a.mean() - b.mean())
        se = float((a.var() / a.numel() + b.var() / b.numel()).sqrt()) if a.numel() > 1 and b.numel() > 1 else 0.0
        scale = max(abs(float(b.mean())), float(b.std()) if b.numel() > 1 else 0.0)
        tol = z * se + rtol * scale + floor.get(key.split(".")[0], 0.0)
        ok = abs(diff) <= tol
        stats[key] = {"drawn": float(a.mean()), "reference": float(b.mean()), "tolerance": tol, "ok": ok}
        if not ok:
            failures.append(f"{key}: drawn {float(a.mean()):.4g} vs law {float(b.mean()):.4g} (|diff| "
                            f"{abs(diff):.3g} > tolerance {tol:.3g})")
    res = None
    if residual is not None:
        rd = relative_residual(draws, residual, m_channel, u_channel)
        rr = relative_residual(reference.to(torch.float64), residual, m_channel, u_channel)
        res = {"drawn": float(rd.mean()), "reference": float(rr.mean()), "tolerance": float(residual_tol),
               "ok": float(rd.mean()) <= residual_tol}
        if not res["ok"]:
            failures.append(f"PDE residual of the drawn (m, u): {res['drawn']:.3g} relative (law: "
                            f"{res['reference']:.2g}; tolerance {residual_tol})")
    settings = {"num_steps": num_steps, "n_draws": int(draws.shape[0]), "n_reference": int(reference.shape[0]),
                "binary": list(binary) if binary is not None else None, "z": z, "rtol": rtol, "seed": seed}
    return HealthReport(passed=not failures, kappa=kap, kappa_ok=kappa_ok, statistics=stats, residual=res,
                        failures=failures, settings=settings)
