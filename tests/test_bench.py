"""The benchmark harness: seeded reproducibility, resume after a kill, Dask = serial, honest measurements."""
import json
import runpy
from pathlib import Path

import numpy as np
import pytest
import torch

import pdeinv.benchmark as bench
from pdeinv.benchmark import BenchConfig, run_benchmark

ROOT = Path(__file__).resolve().parent.parent


def cfg_for(tmp_path, out="res", **kw):
    base = dict(task="darcy", mode="inverse", res=16, n_test=3, n_train=8, map_iter=10, obs=0.1, noise=0.01,
                seed=0, cache_dir=str(tmp_path / "cache"), out_dir=str(tmp_path / out), figures=False,
                verbose=False)
    base.update(kw)
    return BenchConfig(**base)


def table(payload):
    return {r["method"]: (r["errors"], r.get("error_rates")) for r in payload["records"]}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bench")
    return tmp, run_benchmark(cfg_for(tmp, figures=True), ["map", "mean"])


def test_two_runs_same_errors_and_records_are_honest(reference, tmp_path):
    tmp, first = reference
    assert [r["method"] for r in first["records"]] == ["map", "mean"]
    # same command through the CLI, into another results folder (same dataset cache): identical errors
    from pdeinv.cli.app import main
    rc = main(["benchmark", "--task", "darcy", "--mode", "inverse", "--methods", "map,mean", "--res", "16",
               "--n-test", "3", "--n-train", "8", "--map-iter", "10", "--obs", "0.1", "--noise", "0.01",
               "--cache-dir", str(tmp / "cache"), "--out", str(tmp_path / "again"), "--no-figures", "--quiet"])
    assert rc == 0
    second = json.loads((tmp_path / "again" / "darcy-inverse.json").read_text())
    assert table(second) == table(first)
    # a fresh random point set per sample, identical for every method, recorded with its seed
    lines = [json.loads(x) for x in (tmp / "res" / "darcy-inverse.jsonl").read_text().splitlines()]
    seeds = {(r["method"], r["index"]): r["obs_seed"] for r in lines}
    assert len({seeds[("map", i)] for i in range(3)}) == 3
    assert all(seeds[("map", i)] == seeds[("mean", i)] for i in range(3))
    # the recorded error is what an independent recomputation from the recorded seeds gives
    cfg = cfg_for(tmp)
    m, u = bench.load_split(cfg, "test", 3)
    s = bench.make_sample(cfg, 1, m[1:2], u[1:2])
    assert s.obs_seed == seeds[("map", 1)]
    from pdeinv.metrics import relative_l2
    from pdeinv.physics import ForwardModel
    from pdeinv.solvers import MAP
    from pdeinv.tasks import TASKS
    grid, problem = TASKS["darcy"].make(16)
    r = MAP(**TASKS["darcy"].map_options, max_iter=10, gtol=1e-5)(s.y, ForwardModel(problem, s.observation,
                                                                                      noise=s.noise))
    assert float(relative_l2(r.m, m[1:2])[0]) == pytest.approx(first["records"][0]["errors"][1], rel=1e-10)
    # and MAP, which uses the data, beats the data-blind training-mean floor on every sample
    errs = table(first)
    assert all(a < b for a, b in zip(errs["map"][0], errs["mean"][0]))
    assert (tmp / "res" / "figures" / "darcy-inverse.png").stat().st_size > 1000


def test_killed_run_resumes_to_the_same_table(reference, tmp_path):
    tmp, first = reference
    cfg = cfg_for(tmp, out="killed")
    with pytest.raises(KeyboardInterrupt):
        run_benchmark(cfg, ["map", "mean"], _stop_after=2)
    log = tmp / "killed" / "darcy-inverse.jsonl"
    text = log.read_text()
    assert len(text.splitlines()) == 2
    log.write_text(text[: len(text) - 25])        # killed in the middle of writing the 2nd record
    partial = run_benchmark(cfg, ["map", "mean"], report_only=True)   # tables from what is there, no work
    assert [(r["method"], r["status"], r["n_test"]) for r in partial["records"]] == [("map", "partial", 1)]
    assert partial["records"][0]["errors"] == table(first)["map"][0][:1]
    assert len(log.read_text().splitlines()) == 2
    calls = []
    orig = bench.MAPMethod.predict

    def counting(self, cfg_, sample):
        calls.append(sample.index)
        return orig(self, cfg_, sample)

    bench.METHODS["map"].predict = counting.__get__(bench.METHODS["map"])
    try:
        resumed = run_benchmark(cfg, ["map", "mean"])
    finally:
        del bench.METHODS["map"].predict
    assert calls == [1, 2]                         # sample 0 was kept, the torn record is recomputed
    assert table(resumed) == table(first)


def test_dask_scheduler_equals_serial(reference, tmp_path):
    """Per-sample tasks submitted to a Dask scheduler (``--scheduler ADDRESS``) give the serial table.

    The cluster here is in-process (threads) to keep the test fast; ``--workers N`` (a local cluster of N
    processes) runs the same code path and was checked to give identical errors too (docs/benchmarks.md)."""
    from dask import distributed                   # a required dependency (dask[distributed]): must import
    tmp, first = reference
    threads = torch.get_num_threads()
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) as lc:
        par = run_benchmark(cfg_for(tmp, out="dask", scheduler=lc.scheduler_address), ["map"])
    assert torch.get_num_threads() == threads
    assert table(par)["map"] == table(first)["map"]


def test_unavailable_method_is_skipped_and_readme(reference, tmp_path, monkeypatch):
    tmp, _ = reference

    class Missing(bench.Method):
        name = "ghost"

        def available(self, cfg):
            return "pdeinv.solvers.ghost is not available"

    monkeypatch.setitem(bench.METHODS, "ghost", Missing())
    out = run_benchmark(cfg_for(tmp, out="skip"), ["mean", "ghost"])
    assert out["skipped"] == [{"method": "ghost", "status": "skipped", "reason": "pdeinv.solvers.ghost is not available"}]
    readme = (tmp / "skip" / "README.md").read_text()
    assert "ghost (pdeinv.solvers.ghost is not available)" in readme
    assert "| darcy | 2.5 / 3.2 | 6.07 / 7.87 | 2.49 / 5.18 |" in readme     # published numbers beside ours
    mean_err = 100 * out["records"][0]["error_mean"]
    assert f"{mean_err:.2f} ±" in readme
    # make_readme.py regenerates the same file from the result files alone
    before = readme
    (tmp / "skip" / "README.md").unlink()
    make_readme = runpy.run_path(str(ROOT / "benchmarks" / "make_readme.py"), run_name="make_readme")
    assert make_readme["main"](["--results", str(tmp / "skip")]) == 0
    assert (tmp / "skip" / "README.md").read_text() == before
    with pytest.raises(ValueError, match="unknown benchmark method"):
        run_benchmark(cfg_for(tmp, out="skip"), ["nope"])


def test_nio_adapter_is_the_amortised_solver_on_eit(tmp_path):
    """The harness's NIO adapter gives exactly what ``Amortized(nio)(y, fwd)`` gives on the same noisy DtN data
    (difference data + patterns wired the same way), is cached, and is skipped off the EIT tasks with a reason."""
    from pdeinv.physics import ForwardModel
    from pdeinv.solvers import Amortized
    from pdeinv.surrogates import load
    cfg = cfg_for(tmp_path, task="eit", res=12, n_test=2, n_train=6, epochs=1, batch_size=4, width=8)
    out = run_benchmark(cfg, ["nio"])
    rec = out["records"][0]
    ckpt = Path(rec["info"]["checkpoint"]) if "info" in rec and "checkpoint" in rec["info"] else \
        next((tmp_path / "cache" / "models").glob("eit-12-inverse-sparse-nio-*.pt"))
    m, u = bench.load_split(cfg, "test", 2)
    s = bench.make_sample(cfg, 1, m[1:2], u[1:2])
    grid, problem = bench.get_task("eit").make(12)
    r = Amortized(load(ckpt))(s.y, ForwardModel(problem, s.observation))
    from pdeinv.metrics import relative_l2
    assert float(relative_l2(r.m, m[1:2])[0]) == pytest.approx(rec["errors"][1], rel=1e-5)
    skip = run_benchmark(cfg_for(tmp_path, out="s2"), ["nio"])["skipped"]
    assert skip[0]["method"] == "nio" and "boundary measurement" in skip[0]["reason"]


def test_diffusion_adapters_share_data_and_budget_and_fundps_takes_a_quarter_of_the_steps(tmp_path):
    """FunDPS and DiffusionPDE: same pairs, same optimiser steps, comparable widths; FunDPS samples
    with steps // 4; the denoiser is cached only once finished (the .json is written last)."""
    cfg = cfg_for(tmp_path, steps=40, denoiser_steps=3, n_train=8)
    fun, dpde, obs = (bench.METHODS[k] for k in ("fundps", "diffusionpde", "fundps-obs"))
    sf, sd = fun.settings(cfg), dpde.settings(cfg)
    assert (sf["steps"], sd["steps"]) == (10, 40)
    for k in ("n_train", "denoiser_steps", "batch_size"):
        assert sf[k] == sd[k]
    assert sf["arch_kwargs"]["hidden"] == sd["arch_kwargs"]["base"] == cfg.width
    assert obs._path(cfg) == fun._path(cfg) == bench.METHODS["fundps-sim"]._path(cfg)   # ablations reuse it
    assert (sf["physics"], obs.settings(cfg)["physics"]) == ("residual", "none")
    data = bench.Data(cfg)
    meta = dpde.prepare(cfg, data)
    assert meta["steps"] == 3 and meta["n_train"] == 8
    path = dpde._path(cfg)
    assert path.exists() and path.with_suffix(".json").exists()
    again = dpde.prepare(cfg, data)                          # reused, not retrained
    assert again["train_time_s"] == meta["train_time_s"]
    assert bench.METHODS["fundps"].available(BenchConfig(task="burgers")) is not None
    assert bench.METHODS["fundps-sim"].available(BenchConfig(task="ns")) is not None


def test_headline_scores_every_row_on_the_same_samples():
    """The headline block compares methods on the diffusion methods' first n samples, and a method run
    on fewer samples (PINN) gets a second block over the samples every method ran."""
    def rec(method, errors, **kw):
        return {"method": method, "errors": errors, "time_per_sample_s": 1.0, "peak_mem_mb": 0.0, "res": 16,
                "settings": {}, **kw}
    run = {"config": {"task": "darcy", "mode": "forward"}, "records": [
        rec("fundps", [0.1, 0.3]), rec("diffusionpde", [0.2, 0.2, 0.9]), rec("map", [0.4, 0.4, 0.0, 0.0]),
        rec("pinn", [0.05])]}
    text = "\n".join(bench.headline_table([run]))
    assert "| darcy | forward | 2 | 20.0 | 20.0 | 40.0 |" in text.replace("**", "")   # means over samples 0, 1
    assert "### darcy — forward (16², n = 2)" in text and "### darcy — forward (16², n = 1)" in text
    assert "| pinn | 5.00 ± 0.00 |" in text
    assert bench.headline_table([{"config": {"task": "darcy", "mode": "forward"}, "records": [rec("map", [0.1])]}]) == []
    gap = {"config": {"task": "darcy", "mode": "forward"}, "records": [
        rec("fundps", [0.1, 0.3], indices=[0, 1]), rec("diffusionpde", [0.2, 0.2], indices=[0, 2])]}
    assert "(16², n = 1)" in "\n".join(bench.headline_table([gap]))     # sample 1 is missing from diffusionpde


# ----------------------------------------------------------------------------- reference rows (issue 12)
def test_bayes_is_the_exact_posterior_and_converged_map_and_laplace_match_it(tmp_path):
    """bayes = GaussianPosterior on the recorded sample (forward mode: u = F(mean)); Newton-CG MAP converges
    and reaches it; the ratios to the reference are per sample; coverage from 64 draws and the exact band."""
    from pdeinv.metrics import relative_l2
    from pdeinv.physics import ForwardModel
    from pdeinv.solvers.gaussian import GaussianPosterior
    from pdeinv.tasks import TASKS
    for mode in ("inverse", "forward"):
        cfg = cfg_for(tmp_path, task="poisson", mode=mode, n_test=3)
        out = run_benchmark(cfg, ["bayes", "map", "laplace", "mean"])
        recs = {r["method"]: r for r in out["records"]}
        assert list(recs) == ["bayes", "map", "laplace", "mean"]
        b, mp = recs["bayes"], recs["map"]
        assert mp["converged_all"] is True and mp["n_converged"] == 3 and mp["max_grad_norm_relative"] <= 1e-8
        assert mp["settings"]["method"] == "newton-cg" and mp["settings"]["version"] == 2
        assert b["n_draws_mean"] == 64 and b["coverage90_expected_mean"] == pytest.approx(63 / 65 * 0.9)
        assert len(b["coverage_levels_mean"]) == 9 and 0.5 < b["coverage90_mean"] <= 1.0
        assert ("coverage90_exact_mean" in b) == (mode == "inverse")
        ratios = bench.reference_ratios(out["records"])
        assert ratios["map"]["reference"] == "bayes" and ratios["map"]["n"] == 3
        assert ratios["map"]["ratio_mean"] == pytest.approx(1.0, abs=1e-4)
        assert ratios["laplace"]["ratio_mean"] == pytest.approx(1.0, abs=1e-4)
        assert ratios["mean"]["ratio_mean"] > 2
        m, u = bench.load_split(cfg, "test", 3)
        s = bench.make_sample(cfg, 2, m[2:3], u[2:3])
        grid, problem = TASKS["poisson"].make(16)
        fwd = ForwardModel(problem if mode == "inverse" else bench.Identity(grid), s.observation, noise=s.noise)
        post = GaussianPosterior(prior=TASKS["poisson"].map_options["prior"], n_samples=0)(s.y, fwd)
        pred = post.m if mode == "inverse" else problem(post.m)
        assert float(relative_l2(pred, s.target)[0]) == pytest.approx(b["errors"][2], rel=1e-9)
    md = (tmp_path / "res" / "poisson-forward.md").read_text()
    assert "| map | " in md and "1.000 (3)" in md and "reference" in md


def test_bayes_refuses_nonlinear_tasks_and_map_settings_key_old_records_out(tmp_path):
    assert "linear forward map" in bench.METHODS["bayes"].available(BenchConfig(task="darcy"))
    assert bench.METHODS["mcmc-ref"].available(BenchConfig(task="poisson")) is not None
    st = bench.METHODS["map"].settings(BenchConfig(task="darcy", map_iter=7))
    assert (st["method"], st["gtol"], st["max_iter"], st["version"]) == ("lbfgs", 1e-5, 7, 2)
    # a record of the old L-BFGS MAP (settings without a version) has another key: it is not reused
    cfg = cfg_for(tmp_path, n_test=2, map_iter=5)
    old = dict(st, max_iter=5)
    old.pop("version"); old.pop("method"); old.pop("gtol")
    old_key = bench.stable_hash({**cfg.common_key(), "method": "map", "settings": old})
    log = tmp_path / "res" / "darcy-inverse.jsonl"
    log.parent.mkdir(parents=True)
    log.write_text(json.dumps({"method": "map", "index": 0, "key": old_key, "rel_l2": 9.0, "time_s": 0.0,
                               "peak_mem_mb": 0.0, "obs_seed": 0, "noise_seed": 0, "n_obs": 26}) + "\n")
    out = run_benchmark(cfg, ["map"])
    r = out["records"][0]
    assert r["errors"][0] != 9.0 and r["n_test"] == 2
    # capped L-BFGS on TV + bounds: not converged, said so in the records and marked in the tables
    assert r["converged_all"] is False and r["n_converged"] == 0 and r["max_iterations"] == 5
    assert "not converged: 0/2 reached gtol" in bench.convergence_note(r)
    assert "not converged" in (tmp_path / "res" / "darcy-inverse.md").read_text()
    assert "| darcy | inverse | 16² | map ⚠ |" in (tmp_path / "res" / "README.md").read_text()


def test_mcmc_ref_records_rhat_ess_and_single_draw_errors(tmp_path, monkeypatch):
    """The Darcy reference: R-hat/ESS of the log-likelihood and converged per record, the pixel error of single
    thresholded draws beside that of the thresholded mean; forward mode predicts E[F(a)] over the draws."""
    ref = bench.METHODS["mcmc-ref"]
    for k, v in dict(burn_in=60, keep=20, thin=2, u_draws=10).items():
        monkeypatch.setattr(ref, k, v)
    cfg = cfg_for(tmp_path, res=8, obs=0.2, n_test=2, tag="8")
    out = run_benchmark(cfg, ["mcmc-ref", "map"])
    assert (tmp_path / "res" / "darcy-inverse-8.json").exists()
    r = {x["method"]: x for x in out["records"]}["mcmc-ref"]
    assert len(r["rhat_loglik_values"]) == 2 and all(v > 0 for v in r["ess_loglik_values"])
    assert r["n_draws_mean"] == 4 * 20 and r["converged_all"] == all(v < 1.05 for v in r["rhat_loglik_values"])
    assert 0 <= r["error_rate_single_mean"] <= 1 and "error_rate_mean" in r
    assert bench.reference_ratios(out["records"])["map"]["reference"] == "mcmc-ref"
    fw = run_benchmark(cfg_for(tmp_path, res=8, obs=0.2, n_test=1, mode="forward", tag="8"), ["mcmc-ref"])
    rec = json.loads((tmp_path / "res" / "darcy-forward-8.jsonl").read_text().splitlines()[0])
    assert fw["records"][0]["n_draws_mean"] == 10 and "rhat_loglik" in rec and rec["coverage90"] >= 0


def test_ratios_use_the_shared_samples_and_lead_the_readme(tmp_path):
    """Ratios are per sample on the indices both records hold; the README leads with the ratio table, and the
    calibration figure is written; the finite-sample expectation and the binomial interval are right."""
    def rec(method, errors, indices, **kw):
        return {"method": method, "errors": errors, "indices": indices, "error_mean": float(np.mean(errors)),
                "error_std": 0.0, "n_test": len(errors), "status": "ok", "time_per_sample_s": 1.0,
                "peak_mem_mb": 0.0, "res": 16, "device": "cpu", "n_obs": 8, **kw}
    records = [rec("bayes", [0.1, 0.2, 0.4], [0, 1, 2], coverage90_mean=0.87, n_draws_mean=64,
                   coverage_levels_mean=[0.1 * k for k in range(1, 10)], cover_pixel90_count=[3, 3]),
               rec("map", [0.2, 0.2], [1, 2], converged_all=False, n_converged=1),
               rec("fno", [0.3, 0.9], [0, 5])]
    ratios = bench.reference_ratios(records)
    assert ratios["map"]["n"] == 2 and ratios["map"]["ratio_mean"] == pytest.approx((1.0 + 0.5) / 2)
    assert ratios["fno"]["n"] == 1 and ratios["fno"]["ratio_mean"] == pytest.approx(3.0)
    payload = {"benchmark": "poisson-inverse", "harness": 1, "config": {"task": "poisson", "mode": "inverse",
               "res": 16, "n_test": 3, "obs": 0.03, "noise": 0.01, "seed": 0, "suite": "quick", "tag": ""},
               "machine": {"cpu": "x", "cores": 2, "torch": "t", "device": "cpu", "date": "d"}, "commit": "c",
               "records": records, "skipped": []}
    (tmp_path / "poisson-inverse.json").write_text(json.dumps(payload))
    text = bench.write_readme(tmp_path).read_text()
    assert text.index("## Headline: error relative to the best achievable answer") < text.index("## Harness")
    assert "| poisson | inverse | 16², 8 pts | bayes 23.3 % (3) | 0.750 (2) ⚠ | 3.000 (1) |" in text
    assert (tmp_path / "figures" / "calibration.png").stat().st_size > 1000
    assert bench.expected_band_coverage(8, 0.9) == pytest.approx(0.7)
    torch.manual_seed(0)
    x = torch.randn(65, 20000, dtype=torch.float64)
    q = torch.quantile(x[:64], torch.tensor([0.05, 0.95], dtype=torch.float64), dim=0)
    mc = float(((x[64] >= q[0]) & (x[64] <= q[1])).double().mean())
    assert mc == pytest.approx(bench.expected_band_coverage(64, 0.9), abs=0.01)
    # the order-statistic band: exact nominal coverage for a truth exchangeable with the draws
    assert bench.rank_band(19) == (1, pytest.approx(0.9)) and bench.rank_band(64)[0] == 3
    for S in (8, 16, 19, 64):
        k, nominal = bench.rank_band(S)
        srt = x[:S].sort(0).values if S < 65 else None
        rc = float(((x[64] >= srt[k - 1]) & (x[64] <= srt[S - k])).double().mean())
        sd = (nominal * (1 - nominal) / x.shape[1]) ** 0.5
        assert abs(rc - nominal) < 4 * sd, (S, rc, nominal)
    lo, hi = bench.clopper_pearson(90, 100)
    assert lo < 0.9 < hi and hi - lo < 0.15


def test_mcmc_ref_on_ns_is_gpcn_and_becomes_the_reference(tmp_path, monkeypatch):
    """On ns (a Gaussian law seen without a transform, nonlinear forward map) the reference chain is gpCN centred at
    the MAP point; its R-hat is recorded and the other rows are measured against it."""
    ref = bench.METHODS["mcmc-ref"]
    for k, v in dict(gpcn_burn_in=20, gpcn_keep=10).items():
        monkeypatch.setattr(ref, k, v)
    cfg = cfg_for(tmp_path, task="ns", res=16, obs=0.1, n_test=1, tag="16")
    assert ref.settings(cfg)["proposal"] == "gpcn"
    out = run_benchmark(cfg, ["mcmc-ref", "map"])
    r = {x["method"]: x for x in out["records"]}["mcmc-ref"]
    assert r["n_draws_mean"] == 4 * 10 and len(r["rhat_loglik_values"]) == 1
    assert bench.reference_ratios(out["records"])["map"]["reference"] == "mcmc-ref"
    assert "bayes" in ref.available(BenchConfig(task="helmholtz"))
    assert "Figure:" not in (tmp_path / "res" / "ns-inverse-16.md").read_text()    # figures=False: none drawn


def test_map_solver_follows_the_forward_map():
    """Newton-CG where the whitened problem is quadratic (linear tasks, every forward mode), L-BFGS to 1e-6 where
    the forward map is nonlinear (ns inverse), L-BFGS to 1e-5 under TV + bounds (darcy)."""
    mp = bench.METHODS["map"]
    st = {(t, m): mp.settings(BenchConfig(task=t, mode=m, map_iter=7))
          for t in ("poisson", "ns", "darcy") for m in ("inverse", "forward")}
    assert st["poisson", "inverse"]["method"] == st["ns", "forward"]["method"] == "newton-cg"
    assert (st["ns", "inverse"]["method"], st["ns", "inverse"]["gtol"], st["ns", "inverse"]["max_iter"]) == \
        ("lbfgs", 1e-6, 7)
    assert (st["darcy", "inverse"]["method"], st["darcy", "inverse"]["gtol"]) == ("lbfgs", 1e-5)
