"""Every guidance option of FunDPS / DiffusionPDE / DAPS reaches the solver from ``pdeinv invert --opt`` (through
``solvers.build``) and from the benchmark harness (variant names ``NAME[KEY=VALUE;...]``); unknown keys are refused
with the valid ones listed.  The DAPS harness row and ``benchmarks/gpu_headline.sh`` run at a tiny size."""
import json
import os
import stat
import subprocess
from pathlib import Path

import pytest
import torch

import pdeinv.benchmark as bench
from pdeinv.benchmark import BenchConfig, run_benchmark
from pdeinv.benchmark.methods import parse_variant, resolve_method, split_methods
from pdeinv.cli.invert import parse_options
from pdeinv.priors.diffusion import EDMDenoiser
from pdeinv.solvers import build

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def prior():
    return EDMDenoiser(channels=2, arch="uno", arch_kwargs={"hidden": 4, "modes": 4, "lifting": 8}, noise="grf",
                       seed=0).eval()


def opts(*items):
    """What ``pdeinv invert --opt ITEM ...`` hands to ``build`` (the CLI passes them straight through)."""
    return parse_options(list(items))


# (method, --opt items, check on the built solver)
CASES = [
    ("fundps", ["tempering=schedule"], lambda s: s.tempering == "schedule"),
    ("fundps", ["safeguard=false"], lambda s: s.safeguard is False),
    ("fundps", ["trust=null"], lambda s: s.trust is None and s.trust_for() is None),
    ("fundps", ["trust=5"], lambda s: s.trust_for() == 5),
    ("fundps", ["max_gain=3.5"], lambda s: s.max_gain == 3.5),
    ("fundps", ["pde_weight=1"], lambda s: s.weights["pde"] == 1.0),          # off by default in inverse mode
    ("fundps", ['weights={"obs": 2, "pde": 0.5}'], lambda s: s.weights == {"obs": 2, "pde": 0.5}),
    ("fundps", ["pde_sigma=0.5"], lambda s: s.pde_sigma == 0.5),
    ("fundps", ["num_steps=7", "n_samples=3"], lambda s: (s.num_steps, s.n_samples) == (7, 3)),
    ("fundps", ["sampler=stochastic", "S_churn=1.5"], lambda s: (s.sampler, s.S_churn) == ("stochastic", 1.5)),
    ("fundps", ["physics=none"], lambda s: s.physics == "none"),
    ("diffusionpde", ["late_obs_factor=0.5"], lambda s: s.late_obs_factor == 0.5),
    ("diffusionpde", ["pde_fraction=0.3", "pde_weight=0"], lambda s: s.pde_fraction == 0.3 and s.weights["pde"] == 0),
    ("diffusionpde", ["obs_weight=0.25"], lambda s: s.weights["obs"] == 0.25),
    ("diffusionpde", ["tempering=schedule", "trust=null", "safeguard=false"],
     lambda s: (s.tempering, s.trust_for(), s.safeguard) == ("schedule", None, False)),
    ("daps", ["langevin_steps=3", "step_size=0.5"], lambda s: (s.langevin_steps, s.step_size) == (3, 0.5)),
    ("daps", ["ode_steps=2", "num_steps=5"], lambda s: (s.ode_steps, s.num_steps) == (2, 5)),
    ("daps", ["tempering=tweedie"], lambda s: s.tempering == "tweedie"),
    ("daps", ["preconditioner=prior", "jacobian_every=0"], lambda s: (s.preconditioner, s.jacobian_every) == ("prior", 0)),
    ("daps", ["obs_weight=2", "project_state=false"], lambda s: s.weights["obs"] == 2 and s.project_state is False),
]


@pytest.mark.parametrize("method,items,check", CASES, ids=[f"{c[0]}:{' '.join(c[1])}" for c in CASES])
def test_every_option_reaches_the_solver_from_opt(prior, method, items, check):
    solver = build(method, "poisson", 16, model=prior, **opts(*items))
    assert check(solver), (method, items)


@pytest.mark.parametrize("method,bad,valid", [("fundps", "temperng", "tempering"),
                                              ("diffusionpde", "late_obs", "late_obs_factor"),
                                              ("daps", "langevin_step", "langevin_steps"),
                                              ("daps", "trust", "step_size"),          # a DPS option DAPS has not
                                              ("daps", "pde_weight", "langevin_steps")])  # DAPS has no PDE term
def test_unknown_option_is_refused_with_the_valid_ones(prior, method, bad, valid):
    with pytest.raises(ValueError) as err:
        build(method, "poisson", 16, model=prior, **{bad: 1})
    msg = str(err.value)
    assert repr(bad) in msg and valid in msg and "options are" in msg


def test_bad_option_values_are_clear_errors(prior):
    for method, kw, what in [("fundps", {"tempering": "hot"}, "tempering"), ("fundps", {"trust": -1}, "trust"),
                             ("fundps", {"pde_weight": "x"}, "pde_weight"), ("daps", {"step_size": 0}, "step_size"),
                             ("diffusionpde", {"late_obs_factor": -1}, "late_obs_factor")]:
        with pytest.raises(ValueError, match=what):
            build(method, "poisson", 16, model=prior, **kw)


# ----------------------------------------------------------------------------- the harness
def test_variant_names_carry_options_into_settings_and_the_solver():
    assert split_methods("map,fundps[trust=null;tempering=schedule], daps") == \
        ["map", "fundps[trust=null;tempering=schedule]", "daps"]
    assert parse_variant("daps[langevin_steps=4;tempering=sigma]") == ("daps", {"langevin_steps": 4, "tempering": "sigma"})
    cfg = BenchConfig(task="poisson", res=16, steps=40, samples=4)
    plain, var = bench.METHODS["fundps"], resolve_method("fundps[trust=null;tempering=schedule;pde_weight=1]")
    assert var.name == "fundps[trust=null;tempering=schedule;pde_weight=1]" and bench.METHODS["fundps"] is plain
    so = var.solver_options(cfg)
    assert so["trust"] is None and so["tempering"] == "schedule" and so["pde_weight"] == 1 and so["num_steps"] == 10
    assert var.settings(cfg)["options"] == {"trust": None, "tempering": "schedule", "pde_weight": 1}
    assert "options" not in plain.settings(cfg) and var._path(cfg) == plain._path(cfg)   # same trained denoiser
    d = resolve_method("daps[langevin_steps=3;physics=none]")
    assert d.solver_options(cfg)["langevin_steps"] == 3 and d.physics_for(cfg) == "none"
    assert bench.METHODS["daps"].physics_for(cfg) == "simulator"
    with pytest.raises(ValueError, match="langevin_steps"):
        resolve_method("daps[langevin=3]")
    with pytest.raises(ValueError, match="takes no variant options"):
        resolve_method("map[weight=1]")
    with pytest.raises(ValueError, match="unknown benchmark method"):
        resolve_method("fundpss[trust=1]")
    with pytest.raises(ValueError, match="neither a file"):
        resolve_method("daps[model=/no/such/file.pt]")


def test_daps_row_states_its_cost_beside_fundps(tmp_path):
    """DAPS in the harness: records state network evaluations and simulator solves per posterior draw; the
    DAPS levels cost one denoiser call each (ode_steps=1), and DAPS solves the simulator (projection of u and
    the data Jacobian) where FunDPS with residual guidance never does."""
    cfg = BenchConfig(task="poisson", mode="inverse", res=16, n_test=1, n_train=8, obs=0.1, noise=0.01, seed=0,
                      cache_dir=str(tmp_path / "cache"), out_dir=str(tmp_path / "res"), figures=False, verbose=False,
                      steps=12, samples=4, denoiser_steps=2, width=4)
    p = run_benchmark(cfg, ["daps", "fundps[tempering=schedule;trust=null]"], write_readme_file=False)
    rec = {r["method"]: r for r in p["records"]}
    assert set(rec) == {"daps", "fundps[tempering=schedule;trust=null]"} and not p["skipped"]
    assert rec["daps"]["network_evals_per_sample_mean"] == 3                 # 12 // 4 levels x 1 evaluation
    assert rec["daps"]["simulator_solves_per_sample_mean"] >= 3 + 1          # u projected per level + final u
    f = rec["fundps[tempering=schedule;trust=null]"]
    assert f["simulator_solves_per_sample_mean"] == 0 and f["network_evals_per_sample_mean"] >= 3
    assert f["settings"]["options"] == {"tempering": "schedule", "trust": None}
    md = (tmp_path / "res" / "poisson-inverse.md").read_text()
    assert "network evals / draw (simulator solves)" in md and "| 3 (" in md


def test_cache_key_names_the_device_and_writes_are_readable(tmp_path):
    cpu, gpu = BenchConfig(task="poisson"), BenchConfig(task="poisson", device="cuda:0")
    assert "device" not in cpu.common_key() and gpu.common_key()["device"] == "cuda"   # CPU keys unchanged
    assert bench.METHODS["fundps"]._path(cpu) != bench.METHODS["fundps"]._path(gpu)
    from pdeinv._validation import file_mode
    path = tmp_path / "a" / "x.json"
    bench.atomic_write_text(path, "{}")
    assert stat.S_IMODE(os.stat(path).st_mode) == file_mode()
    from pdeinv.benchmark.methods import weighting_noise
    from pdeinv.physics.noise import DEFAULT_RELATIVE_NOISE
    s = bench.make_sample(BenchConfig(task="poisson", res=16, noise=0.0), 0, torch.zeros(1, 1, 16, 16),
                          torch.ones(1, 1, 16, 16))
    w = weighting_noise(s)
    assert s.noise is None or s.noise.level == 0
    assert w.relative and w.level == DEFAULT_RELATIVE_NOISE


# ----------------------------------------------------------------------------- the GPU script at a tiny size
def test_gpu_headline_script_runs_unchanged_at_a_tiny_size(tmp_path):
    env = dict(os.environ, RES="16", N_TRAIN="16", EPOCHS="1", BATCH="16", N_TEST="1", N_OBS="26", UNO_WIDTH="4",
               UNET_WIDTH="4", STEPS="4", SAMPLES="4", MODES="inverse", OUT=str(tmp_path / "out"),
               WORK=str(tmp_path / "work"), DEVICE="cpu", OMP_NUM_THREADS="1")
    run = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_headline.sh")], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    payload = json.loads((tmp_path / "out" / "poisson-inverse-headline-cpu.json").read_text())
    assert payload["machine"]["device"] == "cpu" and payload["config"]["res"] == 16
    rec = {r["method"].split("[")[0]: r for r in payload["records"]}
    assert {"bayes", "map", "fundps", "diffusionpde", "daps"} <= set(rec)
    # linear-Gaussian yardstick: converged MAP is the exact posterior mean
    assert rec["map"]["error_mean"] == pytest.approx(rec["bayes"]["error_mean"], rel=1e-3)
    for m in ("fundps", "diffusionpde", "daps"):
        assert rec[m]["network_evals_per_sample_mean"] > 0 and rec[m]["n_test"] == 1
    report = (tmp_path / "out" / "run-headline-cpu.md").read_text()
    assert "device cpu" in report and "train uno poisson" in report and "pdeinv benchmark" in report
