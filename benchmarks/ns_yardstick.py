"""NS inverse measured against its limit: the converged gpCN posterior beside MAP and DAPS on the same samples.

    python benchmarks/ns_yardstick.py --reference results/mcmc_gpcn-ns.json --others results/daps-ns.json

NS inverse has no closed-form posterior.  The reference is gpCN (``MCMC(proposal="gpcn")``, 4 chains, R-hat
recorded per problem) from ``bench_mcmc_2level.py --proposal gpcn``: its posterior mean is the estimator with
the smallest expected L2 error, and its draws give the posterior spread
:math:`s = \\sqrt{\\operatorname{tr}\\Sigma}/\\|m\\|`.  A method that reports the mean of K independent posterior
draws has expected squared error :math:`e_{pm}^2 + s^2/K` (conditional on the data), so its limit is
:math:`\\sqrt{e_{pm}^2 + s^2/K}`, e.g. 8 draws for DAPS.  Rows of ``--others`` (``bench_surrogate_pays.py``
records: ``method``, ``errors`` on the harness test samples 0..n-1) are compared per sample.  Writes
``benchmarks/results/ns-yardstick.md/.json``.
"""
from __future__ import annotations

import argparse
import json
import re

import numpy as np

from _common import md_table, write_results


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reference", required=True, help="bench_mcmc_2level.py --proposal gpcn results (.json)")
    p.add_argument("--sampler", default="gpcn", help="the reference sampler's row in --reference")
    p.add_argument("--others", nargs="+", default=[], help="bench_surrogate_pays.py results (.json)")
    p.add_argument("--name", default="ns-yardstick")
    a = p.parse_args(argv)
    cmd = "python benchmarks/ns_yardstick.py " + " ".join(argv if argv is not None else __import__("sys").argv[1:])
    ref = {r["problem"]: r for r in json.load(open(a.reference))["records"] if r["sampler"] == a.sampler}
    rows, per = [], []
    for f in a.others:
        for rec in json.load(open(f))["records"]:
            draws = re.search(r"n_samples=(\d+)", rec["method"])
            K = int(draws.group(1)) if draws else None
            name = rec["method"].split(",")[0]
            for i, e in enumerate(rec["errors"]):
                if i not in ref or any(q["method"] == name and q["problem"] == i for q in per):
                    continue        # e.g. the MAP row every --others file carries: the first one counts
                r = ref[i]
                lim = float(np.hypot(r["rel_l2_mean"], r["rel_spread"] / np.sqrt(K))) if K else r["rel_l2_mean"]
                per.append(dict(method=name, problem=i, error=e, posterior_mean=r["rel_l2_mean"],
                                spread=r["rel_spread"], draws=K, limit=lim, ratio_pm=e / r["rel_l2_mean"],
                                ratio_limit=e / lim, rhat=r["rhat_max"], coverage90=r.get("coverage90")))
    for m in dict.fromkeys(q["method"] for q in per):
        qs = [q for q in per if q["method"] == m]
        rows.append(dict(method=m, n=len(qs), error=np.mean([q["error"] for q in qs]),
                         posterior_mean=np.mean([q["posterior_mean"] for q in qs]),
                         limit=np.mean([q["limit"] for q in qs]), draws=qs[0]["draws"],
                         ratio_pm=np.mean([q["ratio_pm"] for q in qs]), ratio_pm_max=max(q["ratio_pm"] for q in qs),
                         ratio_limit=np.mean([q["ratio_limit"] for q in qs]),
                         ratio_limit_max=max(q["ratio_limit"] for q in qs)))
    rr = list(ref.values())
    cover = [r.get("coverage90") for r in rr if r.get("coverage90") is not None]
    cols = [("method", "method", "{}"), ("n", "samples", "{}"), ("error", "rel. L2 (mean)", "{:.4f}"),
            ("posterior_mean", "posterior mean rel. L2 (gpCN)", "{:.4f}"),
            ("draws", "draws averaged", "{}"), ("limit", "limit for that many draws", "{:.4f}"),
            ("ratio_pm", "error / posterior mean's (mean)", "{:.3f}"), ("ratio_pm_max", "(max)", "{:.3f}"),
            ("ratio_limit", "error / limit (mean)", "{:.3f}"), ("ratio_limit_max", "(max)", "{:.3f}")]
    pcols = [("method", "method", "{}"), ("problem", "problem", "{}"), ("error", "rel. L2", "{:.4f}"),
             ("posterior_mean", "posterior mean", "{:.4f}"), ("spread", "spread sqrt(tr Σ)/|m|", "{:.4f}"),
             ("limit", "limit", "{:.4f}"), ("ratio_limit", "error / limit", "{:.3f}"),
             ("rhat", "gpCN R-hat (max pixel)", "{:.3f}"), ("coverage90", "gpCN 90 % band covers (pixels)", "{:.3f}")]
    md = ("# NS inverse against its limit: the converged posterior (gpCN)\n\n"
          f"Reference: `{a.reference}` ({len(rr)} problems, sampler `{a.sampler}`, worst pixel R-hat "
          f"{max(r['rhat_max'] for r in rr):.3f}, min-pixel ESS {min(r['ess_min'] for r in rr):.0f}). "
          f"Posterior mean rel. L2 {np.mean([r['rel_l2_mean'] for r in rr]):.4f} against MAP "
          f"{np.mean([r['map_rel_l2'] for r in rr]):.4f} on the same problems; its 90 % pixel band holds the truth at "
          f"{np.mean(cover):.3f} of the pixels (mean over problems; 0.90 if calibrated). The limit of a method that "
          "averages K posterior draws is sqrt(e_pm² + s²/K) (module docstring).\n\n"
          + md_table(rows, cols) + "\n\nPer problem:\n\n" + md_table(per, pcols) + f"\n\nCommand: `{cmd}`\n")
    write_results(a.name, per, md, meta=vars(a))
    print(md)


if __name__ == "__main__":
    main()
