r"""Scores of a sampler's result against the true field: the posterior mean *and* single samples.

The published DiffusionPDE / FunDPS Darcy-inverse figures (3.2 %, 5.18 %) are pixel error rates of
**single samples** thresholded at 7.5, while pdeinv's solvers return the posterior mean of
``n_samples`` draws (``result.m``).  The two differ (a mean of binary-looking draws is smoother, and
thresholding it is a different estimator), so both are reported:

* ``rel_l2``: relative L2 error of the posterior mean; ``rel_l2_single``: the mean over samples of
  each sample's relative L2 error;
* with ``threshold``: ``error_rate`` (the thresholded posterior mean) and ``error_rate_single`` (the
  mean over samples of each thresholded sample's pixel error rate, the published estimator);
* ``coverage``: fraction of true pixels inside the equal-tailed ``level`` band of the samples;
  ``coverage_expected``: what an exact posterior's band from the same number of draws covers on
  average (order statistics: ``(j - i) / (S + 1)`` for the ranks that ``torch.quantile`` interpolates
  between; e.g. 0.72 from 8 draws, not 0.9);
* ``spread``: rms pixel-wise std of the samples.
"""
from __future__ import annotations

import math
from typing import Dict, Optional

import torch

from pdeinv.metrics import coverage, error_rate, relative_l2


def expected_band_coverage(n_samples: int, level: float = 0.9) -> float:
    """Mean coverage of the empirical equal-tailed ``level`` band of ``n_samples`` exact posterior draws.

    ``torch.quantile`` interpolates linearly between order statistics at position ``q (S - 1)``; the
    expected probability mass between the ``i``-th and ``j``-th order statistics of ``S`` draws is
    ``(j - i) / (S + 1)``, and linear interpolation is linear in those positions."""
    S = int(n_samples)
    if S < 2:
        return 0.0
    lo, hi = (1 - level) / 2 * (S - 1), (1 + level) / 2 * (S - 1)    # 0-based fractional ranks
    return (hi - lo) / (S + 1)


def posterior_scores(result, true: torch.Tensor, *, target: str = "m", threshold: Optional[float] = None,
                     level: float = 0.9) -> Dict[str, torch.Tensor]:
    """Per-problem scores ``(B,)`` of ``result`` against ``true`` ``(B, C, *grid)`` (see the module docstring).

    ``target``: ``"m"`` (``result.m``, ``result.samples``) or ``"u"`` (``result.u``, ``result.u_samples``)."""
    if target not in ("m", "u"):
        raise ValueError(f"target must be 'm' or 'u'; got {target!r}")
    est = result.m if target == "m" else result.u
    smp = result.samples if target == "m" else result.u_samples
    true = true.to(est.dtype)
    out = {"rel_l2": relative_l2(est, true)}
    if threshold is not None:
        out["error_rate"] = error_rate(est, true, threshold)
    if smp is not None and smp.shape[0] >= 1:
        S = smp.shape[0]
        out["rel_l2_single"] = torch.stack([relative_l2(smp[k], true) for k in range(S)]).mean(0)
        if threshold is not None:
            out["error_rate_single"] = torch.stack([error_rate(smp[k], true, threshold) for k in range(S)]).mean(0)
        if S >= 2:
            out["coverage"] = coverage(smp, true, level)
            out["coverage_expected"] = torch.full_like(out["rel_l2"], expected_band_coverage(S, level))
            out["spread"] = smp.std(0).flatten(1).pow(2).mean(1).sqrt()
    return out


def binomial_interval(p: float, n: int, level: float = 0.95):
    """Central ``level`` interval of a binomial proportion with success probability ``p`` in ``n`` trials
    (normal approximation with continuity correction, clipped to [0, 1])."""
    from statistics import NormalDist
    z = NormalDist().inv_cdf(0.5 + level / 2)
    h = z * math.sqrt(p * (1 - p) / max(int(n), 1)) + 0.5 / max(int(n), 1)
    return max(0.0, p - h), min(1.0, p + h)
