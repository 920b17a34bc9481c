r"""The benchmark harness: every method on the same tasks, side by side, reproducibly.

``pdeinv benchmark --task darcy --mode inverse --methods map,fno --suite quick``

For one task and mode the harness

1. gets the test set (and, for learned methods, the training set) from the
   dataset cache (generated once, keyed by recipe and seed -- see
   :func:`~pdeinv.benchmark.samples.load_split`);
2. builds one observation set per test sample: a fresh random point set of
   ``obs`` x (number of grid nodes) drawn from a recorded seed, and Gaussian noise
   of ``noise`` x RMS of the clean observations from another recorded seed
   (BENCHMARKS.md).  **inverse** mode observes the state ``u`` and recovers the
   unknown ``m``; **forward** mode observes ``m`` and recovers ``u``;
3. runs each method of :data:`METHODS` on identical samples -- training or
   reusing the models it needs (cached checkpoints) -- and records per sample the
   relative L2 error :math:`\|\hat x - x\|_2/\|x\|_2` (and the pixel error
   rate after thresholding at 7.5 for the Darcy coefficient), the wall time and
   the peak memory;
4. appends every finished sample to ``<out>/<task>-<mode>.jsonl`` at once (a
   killed run resumes where it stopped and ends with the same table), then
   writes ``<out>/<task>-<mode>.json`` and ``.md``, a figure
   ``<out>/figures/<task>-<mode>.png`` (true / each method / error / sensors)
   and regenerates ``<out>/README.md`` (:func:`write_readme`).

Seeds: observation points of sample ``i`` come from
``SeedSequence([seed, i, 1])``, its noise from ``SeedSequence([seed, i, 2])``
and a stochastic method's randomness from ``SeedSequence([seed, i, 3])``; so a
sample's data do not depend on the method, the order of execution, the number
of Dask workers or ``--n-test``.

Per-sample methods (MAP, PINN, MCMC, diffusion samplers) can run on Dask:
``--workers N`` starts a local cluster of N one-thread processes,
``--scheduler ADDRESS`` uses a running one; results are written as each task
finishes.

Methods are adapters (:class:`Method`) in :data:`METHODS`; an adapter whose
module is missing is skipped with a message, not an error.  Each builds its solver with
:func:`pdeinv.solvers.build` (the task's defaults) plus the harness's own options.

Where things are:

=====================  =========================================================================
module                 contents
=====================  =========================================================================
:mod:`.config`         :data:`SUITES`, :class:`BenchConfig`, :func:`derived_seed`, :func:`stable_hash`,
                       :func:`default_cache_dir`, :func:`atomic_write_text`
:mod:`.samples`        :func:`load_split`, :class:`Data`, :class:`Sample`, :func:`make_sample`,
                       :func:`node_scatter`
:mod:`.methods`        :class:`Method`, :data:`METHODS`, :func:`register_method`; one module per
                       method family (classical, learned, sampling, diffusion, reference)
:mod:`.stats`          :func:`band_statistics` (coverage, exact band, single draws), :func:`summarize_statistics`,
                       :func:`reference_ratios`, :func:`clopper_pearson`, :func:`convergence_note`
:mod:`.runner`         :func:`run_benchmark`, :func:`run_one`, :class:`PeakMemory`, :class:`ResultLog`,
                       :func:`write_run`, :func:`git_commit`, :func:`machine_info`, the Dask runner
:mod:`.report`         :data:`PUBLISHED`, :func:`run_markdown`, :func:`write_readme`,
                       :func:`headline_table`, :func:`figure`
:mod:`.headline`       the README's leading sections: :func:`ratio_table` (error / reference on the same
                       samples), coverage, convergence, cost, the published setting, :func:`calibration_figure`
=====================  =========================================================================
"""
from pdeinv.benchmark.config import (HARNESS_VERSION, MODES, SUITES, BenchConfig, atomic_write_text,
                                     default_cache_dir, derived_seed, get_task, progress, stable_hash)
from pdeinv.benchmark.samples import (Data, Sample, bench_recipe, is_boundary_task, load_split, make_sample,
                                      node_scatter, repo_recipe)
from pdeinv.benchmark.methods import (METHODS, BayesMethod, DiffusionMethod, Identity, LaplaceMethod, MAPMethod,
                                      MCMCMethod, MCMCRefMethod, MeanMethod, Method, MethodUnavailable, NIOMethod,
                                      NotAdapted, PINNMethod, SparseBaseline, ViTOSparse, register_method)
from pdeinv.benchmark.stats import (LEVELS, REFERENCES, band_statistics, chain_converged, clopper_pearson,
                                    convergence_note, expected_band_coverage, rank_band, reference_ratios, summarize_statistics)
from pdeinv.benchmark.report import (HEADLINE_METHODS, PUBLISHED, PUBLISHED_FOR_METHOD, figure, fmt_pm,
                                     headline_table, published, run_markdown, write_readme)
from pdeinv.benchmark.runner import (PeakMemory, ResultLog, git_commit, machine_info, run_benchmark, run_one,
                                     sample_errors, summarize, write_run)

__all__ = [
    # config
    "HARNESS_VERSION", "MODES", "SUITES", "BenchConfig", "atomic_write_text", "default_cache_dir", "derived_seed",
    "get_task", "progress", "stable_hash",
    # samples
    "Data", "Sample", "bench_recipe", "is_boundary_task", "load_split", "make_sample", "node_scatter", "repo_recipe",
    # methods
    "METHODS", "Method", "MethodUnavailable", "NotAdapted", "register_method", "MAPMethod", "MeanMethod",
    "SparseBaseline", "ViTOSparse", "NIOMethod", "MCMCMethod", "PINNMethod", "DiffusionMethod", "BayesMethod",
    "LaplaceMethod", "MCMCRefMethod", "Identity",
    # statistics
    "LEVELS", "REFERENCES", "band_statistics", "chain_converged", "clopper_pearson", "convergence_note",
    "expected_band_coverage", "rank_band", "reference_ratios", "summarize_statistics",
    # runner
    "PeakMemory", "ResultLog", "git_commit", "machine_info", "run_benchmark", "run_one", "sample_errors",
    "summarize", "write_run",
    # report
    "HEADLINE_METHODS", "PUBLISHED", "PUBLISHED_FOR_METHOD", "figure", "fmt_pm", "headline_table", "published",
    "run_markdown", "write_readme",
]
