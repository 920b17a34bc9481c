"""Statistics of the benchmark records: posterior bands, convergence, and errors relative to the reference.

* :func:`band_statistics` -- per test sample, from a sampler's draws (and a Gaussian posterior's exact std):
  coverage of the equal-tailed bands at :data:`LEVELS`, the 90 % band's finite-sample expectation
  (:func:`expected_band_coverage`), the order-statistic band whose nominal coverage is exact for S draws
  (:func:`rank_band`), one independent pixel trial for a binomial interval, Darcy single-draw errors;
* :func:`summarize_statistics` -- per method: their means, MAP convergence, MCMC R-hat/ESS;
* :func:`reference_ratios` -- each method's error over the reference's (``bayes`` on the linear-Gaussian tasks,
  ``mcmc-ref`` on Darcy) on the same test samples, per sample, then the mean;
* :func:`clopper_pearson`, :func:`convergence_note` -- an exact binomial interval; what a row must say about
  its convergence.
"""
from __future__ import annotations

import math
from typing import Any, Dict, List, Optional

import numpy as np
import torch

from pdeinv.benchmark.config import BenchConfig, derived_seed
from pdeinv.benchmark.samples import Sample

#: nominal levels of the calibration curve (equal-tailed bands)
LEVELS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def expected_band_coverage(n_draws: int, level: float) -> float:
    """Expected coverage of the equal-tailed ``level`` band of ``n_draws`` exact posterior draws (linear-interpolated
    quantiles, ``torch.quantile``'s rule): ``(S - 1) / (S + 1) * level`` -- 0.70 for 8 draws, 0.872 for 64, 0.8996
    for 4000.  Exact for an interpolation between order statistics of uniforms; for 64 Gaussian draws the measured
    value is 0.8725 (200,000 trials)."""
    S = int(n_draws)
    return float((S - 1) / (S + 1) * level) if S >= 2 else float("nan")


def rank_band(n_draws: int, level: float = 0.9):
    """The order-statistic band of ``n_draws`` draws nearest to ``level``: ``(k, nominal)``, the band running from
    the ``k``-th smallest to the ``k``-th largest draw, ``k = max(1, round((S + 1)(1 - level) / 2))``, and its exact
    coverage ``(S + 1 - 2k) / (S + 1)`` for a truth exchangeable with the draws (a calibrated sampler: the truth's
    rank among the S draws is uniform on 0..S).  For 19 draws ``k = 1`` (min to max) and the nominal coverage is
    0.90 exactly; 16 draws give 0.882, 64 give 0.908."""
    S = int(n_draws)
    if S < 2:
        return 0, float("nan")
    k = max(1, int(math.floor((S + 1) * (1 - level) / 2 + 0.5)))
    k = min(k, S // 2)
    return k, float((S + 1 - 2 * k) / (S + 1))


def band_statistics(cfg: BenchConfig, sample: Sample, samples: Optional[torch.Tensor],
                    exact_std: Optional[torch.Tensor], pred: torch.Tensor) -> Dict[str, Any]:
    """Coverage and spread of a sampler's posterior draws for one test sample.

    ``samples`` ``(S, ...)`` of the target field: coverage of the equal-tailed band at :data:`LEVELS`
    (``coverage_levels``; ``coverage90`` the 90 % one), its finite-sample expectation for ``S`` exact draws
    (``coverage90_expected``), the mean pixel std, and at one seeded random pixel whether the truth lies in the
    90 % band (``cover_pixel90``: one independent Bernoulli trial per test sample, for a binomial interval).
    Darcy inverse: the pixel error rate of single thresholded draws (``error_rate_single``, mean over draws; the
    published figures are single-sample error rates).  ``exact_std`` (a Gaussian posterior's exact pointwise std,
    target's shape): the same for the exact band ``pred +- z std`` (``coverage_exact_levels``,
    ``coverage90_exact``, ``cover_pixel90_exact``).  The scalars go to ``_scalars``."""
    out: Dict[str, Any] = {}
    scal: Dict[str, Any] = {}
    true = sample.target.double()
    gen = np.random.default_rng(derived_seed(cfg.seed, sample.index, 4))
    pix = int(gen.integers(true[0].numel()))
    if samples is not None and samples.shape[0] >= 2:   # samplers: 90 % band coverage and spread of the truth
        from pdeinv.metrics import coverage
        samples = samples.detach().cpu().double().reshape(samples.shape[0], *true.shape)
        S = int(samples.shape[0])
        out["coverage_levels"] = [float(coverage(samples, true, lv)[0]) for lv in LEVELS]
        scal["coverage90"] = out["coverage_levels"][-1]
        scal["coverage90_expected"] = expected_band_coverage(S, 0.9)
        scal["posterior_std"] = float(samples.std(0).mean())
        scal["n_draws"] = S
        q = torch.quantile(samples.flatten(2)[:, 0, pix], torch.tensor([0.05, 0.95], dtype=torch.float64))
        t = float(true.flatten(1)[0, pix])
        scal["cover_pixel90"] = bool(q[0] <= t <= q[1])
        k, nominal = rank_band(S, 0.9)            # order-statistic band: exact nominal coverage for S draws
        srt = samples.flatten(1).sort(0).values
        lo, hi = srt[k - 1], srt[S - k]
        inside = (true.flatten() >= lo) & (true.flatten() <= hi)
        scal["coverage90_rank"] = float(inside.double().mean())
        scal["coverage90_rank_nominal"] = nominal
        scal["cover_pixel90_rank"] = bool(inside.reshape(true.shape[0], -1)[0, pix])
        if cfg.task == "darcy" and cfg.mode == "inverse":
            from pdeinv.metrics import error_rate, relative_l2
            flat = samples.reshape(S, *true.shape[1:])
            tt = true.expand(S, *true.shape[1:])
            scal["error_rate_single"] = float(error_rate(flat, tt, threshold=7.5).mean())
            scal["rel_l2_single"] = float(relative_l2(flat, tt).mean())
    if exact_std is not None:
        from statistics import NormalDist
        std = exact_std.detach().cpu().double().reshape(true.shape)
        err = (true - pred.double().reshape(true.shape)).abs()
        lv = []
        for level in LEVELS:
            z = NormalDist().inv_cdf(0.5 + level / 2)
            lv.append(float((err <= z * std).double().mean()))
        out["coverage_exact_levels"] = lv
        scal["coverage90_exact"] = lv[-1]
        scal["cover_pixel90_exact"] = bool(float(err.flatten()[pix]) <= NormalDist().inv_cdf(0.95) *
                                           float(std.flatten()[pix]))
    out["_scalars"] = scal
    return out


def chain_converged(r: Dict[str, Any], threshold: float = 1.05) -> bool:
    """An MCMC record converged: split-R-hat of the log-likelihood below ``threshold``; where it is undefined (the
    log-likelihood is the same in every kept state -- forward-mode Darcy, whose data are a few pixels of a binary
    field, once every chain fits them), the worst pixel's R-hat instead."""
    rl = r.get("rhat_loglik")
    if rl is not None and math.isfinite(rl):
        return rl < threshold
    rp = r.get("rhat")
    return rp is not None and math.isfinite(rp) and rp < threshold


def _nanmean(vals):
    vals = np.asarray(vals, dtype=float)
    return float(np.nanmean(vals)) if np.isfinite(vals).any() else None


def summarize_statistics(recs: List[Dict[str, Any]]) -> Dict[str, Any]:
    """Per-method aggregates of the optional per-sample fields: coverage (per level, exact band, one-pixel
    binomial counts), single-draw Darcy errors, MAP convergence, MCMC R-hat/ESS."""
    out: Dict[str, Any] = {}
    if not recs:
        return out
    for k in ("coverage90", "coverage90_exact", "posterior_std", "acceptance", "error_rate_single", "rel_l2_single",
              "rhat_loglik", "ess_loglik", "rhat", "ess", "grad_norm_relative", "coverage90_expected", "n_draws",
              "coverage90_rank", "coverage90_rank_nominal",
              "network_evals_per_sample", "simulator_solves_per_sample", "n_forward_solves"):
        if any(k in r for r in recs):
            vals = [float(r[k]) if r.get(k) is not None else np.nan for r in recs]
            out[k + "_mean"] = _nanmean(vals)
            out[k + "_values"] = vals
    for k in ("coverage_levels", "coverage_exact_levels"):
        rows = [r[k] for r in recs if r.get(k)]
        if rows:
            out[k + "_mean"] = np.mean(np.array(rows, dtype=float), 0).tolist()
            out[k + "_n"] = len(rows)
    for k in ("cover_pixel90", "cover_pixel90_exact", "cover_pixel90_rank"):
        vals = [bool(r[k]) for r in recs if k in r]
        if vals:
            out[k + "_count"] = [int(sum(vals)), len(vals)]
    if any("converged" in r for r in recs):
        conv = [chain_converged(r) if "rhat_loglik" in r else bool(r.get("converged")) for r in recs]
        out["n_converged"] = int(sum(conv))
        out["converged_all"] = bool(all(conv))
    else:
        out["converged_all"] = None        # the records say nothing about convergence
    if any("iterations" in r for r in recs):
        out["mean_iterations"] = float(np.mean([r.get("iterations") or 0 for r in recs]))
        out["max_iterations"] = int(max(r.get("iterations") or 0 for r in recs))
    if any("grad_norm_relative" in r for r in recs):
        out["max_grad_norm_relative"] = float(max(float(r.get("grad_norm_relative") or 0) for r in recs))
    if any("rhat_loglik" in r for r in recs):
        rl = [float(r.get("rhat_loglik", np.nan)) for r in recs]
        out["max_rhat_loglik"] = float(np.nanmax(rl)) if np.isfinite(rl).any() else None
        out["min_ess_loglik"] = float(np.nanmin([float(r.get("ess_loglik", np.nan)) for r in recs]))
    return out


#: the reference of a run, in order of preference: the exact posterior, then the long Darcy chain
REFERENCES = ("bayes", "mcmc-ref")


def reference_ratios(records: List[Dict[str, Any]]) -> Dict[str, Dict[str, Any]]:
    """``{method: {reference, n, ratio_mean, ratio_std, ratio_median, reference_error_mean}}`` for the records of one
    run: per test sample present in both (matched by the stored indices), ``error / reference error``; the
    reference itself is left out.  Empty when the run has no reference record."""
    by = {r["method"]: r for r in records if r.get("errors")}
    ref = next((m for m in REFERENCES if m in by), None)
    if ref is None:
        return {}
    rr = by[ref]
    ref_err = dict(zip(rr.get("indices") or range(len(rr["errors"])), rr["errors"]))
    out = {}
    for m, r in by.items():
        if m == ref:
            continue
        idx = r.get("indices") or range(len(r["errors"]))
        pairs = [(e, ref_err[i]) for i, e in zip(idx, r["errors"])
                 if i in ref_err and ref_err[i] > 0 and math.isfinite(e)]
        if not pairs:
            continue
        ratios = np.array([e / f for e, f in pairs])
        out[m] = {"reference": ref, "n": len(pairs), "ratio_mean": float(ratios.mean()),
                  "ratio_std": float(ratios.std()), "ratio_median": float(np.median(ratios)),
                  "ratio_max": float(ratios.max()), "reference_error_mean": float(np.mean([f for _, f in pairs])),
                  "error_mean": float(np.mean([e for e, _ in pairs]))}
    return out


def n_draws_of(r: Dict[str, Any]) -> Optional[int]:
    """Posterior draws per test sample of a record: recorded, else from its settings (older records)."""
    if r.get("n_draws_mean"):
        return int(r["n_draws_mean"])
    st = r.get("settings") or {}
    if "n_chains" in st and "n_samples" in st:
        return int(st["n_chains"]) * int(st["n_samples"])
    if "samples" in st:
        return int(st["samples"])
    return None


def clopper_pearson(k: int, n: int, confidence: float = 0.95):
    """Exact (Clopper--Pearson) binomial interval of ``k`` successes in ``n`` trials."""
    from scipy.stats import beta
    a = (1 - confidence) / 2
    lo = 0.0 if k == 0 else float(beta.ppf(a, k, n - k + 1))
    hi = 1.0 if k == n else float(beta.ppf(1 - a, k + 1, n - k))
    return lo, hi


#: methods whose rows must say whether they converged (optimisers and chains)
ITERATIVE = ("map", "mcmc", "mcmc-ref")


def convergence_note(r: Dict[str, Any]) -> str:
    """``""`` when every record converged (or the method is not iterative), else what the row must say."""
    name = r.get("method")
    if r.get("converged_all") is None:
        return "convergence not recorded" if name in ITERATIVE else ""
    if r["converged_all"]:
        return ""
    n = r.get("n_test") or 0
    k = r.get("n_converged", 0)
    if "max_rhat_loglik" in r:
        vals = [v for v in (r.get("rhat_loglik_values") or []) if v is not None]
        undefined = sum(1 for v in vals if not math.isfinite(v))
        mx = r.get("max_rhat_loglik")
        return (f"not converged: {k}/{n} with R-hat < 1.05" + (f" (max {mx:.3g})" if mx is not None else "")
                + (f"; on {undefined} the log-likelihood is constant (R-hat undefined), judged by the worst "
                   "pixel's R-hat" if undefined else ""))
    g = r.get("max_grad_norm_relative")
    return f"not converged: {k}/{n} reached gtol" + (f" (max relative gradient {g:.1e})" if g is not None else "")
