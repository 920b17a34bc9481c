"""``pdeinv invert`` end to end: every method ``invert --help`` lists for Darcy runs from the command line
on the demo's observations (tiny grid and budgets; the learned methods with models trained by
``pdeinv train`` on a ``pdeinv generate`` dataset), exact data follow the stated noise rule, results
go to mesh formats through meshio, and an interrupted inversion (SIGINT, SIGKILL) leaves nothing
behind and gives, run again, the uninterrupted answer.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import math

import numpy as np
import torch
import pytest
import xarray as xr

from pdeinv.cli.app import main
from pdeinv.cli.invert import methods_for_task
from pdeinv.solvers import NEEDS_MODEL
from pdeinv.tasks import TASKS

RES = 12
#: tiny budgets per method (options given with --opt); a method without an entry runs with its defaults
BUDGET = {
    "map": {"max_iter": 3},
    "mcmc": {"n_samples": 8, "n_chains": 2},
    "mcmc-2level": {"n_samples": 8, "n_chains": 2},
    "pinn": {"adam_iters": 20, "lbfgs_iters": 0, "n_domain": 60, "n_boundary": 20, "layers": [8, 8]},
    "surrogate-map": {"max_iter": 3},
    "fundps": {"n_samples": 1, "num_steps": 2},
    "diffusionpde": {"n_samples": 1, "num_steps": 2},
    "daps": {"n_samples": 1, "num_steps": 2, "langevin_steps": 2},
    "laplace": {"max_rank": 4},
    "gaussian": {"max_rank": 4},
}
#: which trained model each learned method takes (a key of the ``models`` fixture)
MODEL_OF = {"surrogate-map": "forward", "mcmc-2level": "forward", "amortized": "inverse", "fundps": "uno",
            "diffusionpde": "unet", "daps": "uno"}


def _opts(method):
    import json
    out = []
    for k, v in BUDGET.get(method, {}).items():
        out += ["--opt", f"{k}={json.dumps(v)}"]
    return out


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("invert_cli")
    assert main(["demo", "--res", str(RES), "--max-iter", "3", "--quiet", "-o", str(d / "demo")]) == 0
    return d


@pytest.fixture(scope="module")
def models(demo_dir):
    d = demo_dir
    data = d / "darcy12.nc"
    assert main(["generate", "darcy", "--n", "16", "--res", str(RES), "-o", str(data), "--quiet"]) == 0
    common = ["--data", str(data), "--epochs", "1", "--batch-size", "8", "--quiet"]
    out = {"forward": d / "fwd.pt", "inverse": d / "inv.pt", "uno": d / "uno.pt", "unet": d / "unet.pt"}
    assert main(["train", "fno", *common, "--mode", "forward", "--width", "4", "--modes", "2", "--layers", "1",
                 "-o", str(out["forward"])]) == 0
    assert main(["train", "fno", *common, "--mode", "inverse", "--sparse", "0.2", "--width", "4", "--modes", "2",
                 "--layers", "1", "-o", str(out["inverse"])]) == 0
    assert main(["train", "diffusion", *common, "--arch", "uno", "-O", "hidden=8", "-O", "modes=4",
                 "-O", "lifting=8", "-o", str(out["uno"])]) == 0
    assert main(["train", "diffusion", *common, "--arch", "unet", "-O", "base=8", "-O", "mults=[1,2]",
                 "-O", "emb_dim=16", "-o", str(out["unet"])]) == 0
    return out


def _m(path):
    with xr.open_dataset(path, engine="h5netcdf") as ds:
        return np.asarray(ds["m"].values), dict(ds.attrs)


@pytest.mark.parametrize("method", methods_for_task(TASKS["darcy"]))
def test_every_listed_method_runs_from_the_cli(method, demo_dir, tmp_path, request):
    argv = ["invert", "darcy", "--obs", str(demo_dir / "demo" / "observations.nc"), "--method", method,
            "-o", str(tmp_path / "r.nc"), "--quiet", *_opts(method)]
    if method in NEEDS_MODEL:
        models = request.getfixturevalue("models")
        argv += ["--model", str(models[MODEL_OF[method]])]
    assert main(argv) == 0
    m, attrs = _m(tmp_path / "r.nc")
    assert m.reshape(-1, RES, RES).shape[0] == 1 and np.isfinite(m).all()
    assert attrs["method"] == method and attrs["task"] == "darcy"
    assert (tmp_path / "r.png").exists()


def test_two_level_screen_on_a_coarser_grid_from_the_cli(demo_dir, tmp_path, request):
    """``--opt screen_res=N`` runs the forward surrogate on an N-point grid as the screen."""
    models = request.getfixturevalue("models")
    argv = ["invert", "darcy", "--obs", str(demo_dir / "demo" / "observations.nc"), "--method", "mcmc-2level",
            "--model", str(models["forward"]), "-o", str(tmp_path / "r.nc"), "--quiet", *_opts("mcmc-2level"),
            "--opt", "screen_res=7"]
    assert main(argv) == 0
    m, attrs = _m(tmp_path / "r.nc")
    assert np.isfinite(m).all() and attrs["method"] == "mcmc-2level"


def test_help_lists_what_the_test_runs(capsys):
    with pytest.raises(SystemExit):
        main(["invert", "--help"])
    line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.strip().startswith("darcy "))
    assert [m.rstrip("*") for m in line.split(None, 1)[1].split(", ")] == methods_for_task(TASKS["darcy"])


@pytest.mark.parametrize("how", ["--sigma 0", "no noise level"])
def test_exact_data_are_weighted_by_the_stated_rule(how, demo_dir, tmp_path, caplog):
    """--sigma 0 and a mesh file without --noise used to give unit weights and MAP's constant field."""
    import meshio
    with xr.open_dataset(demo_dir / "demo" / "observations.nc", engine="h5netcdf") as ds:
        pts, y = ds["points"].values, ds["y"].values.reshape(-1)
    src = demo_dir / "demo" / "observations.nc"
    extra = ["--sigma", "0"]
    if how == "no noise level":
        src = tmp_path / "sensors.vtu"
        meshio.Mesh(np.c_[pts, np.zeros(len(pts))], [("vertex", np.arange(len(pts))[:, None])],
                    point_data={"y": y}).write(src)
        extra = ["--res", str(RES)]
    assert main(["invert", "darcy", "--obs", str(src), "-o", str(tmp_path / "r.nc"), "--quiet",
                 "--opt", "max_iter=20", *extra]) == 0
    m, attrs = _m(tmp_path / "r.nc")
    assert "relative noise 0.01" in attrs["noise_assumed"]
    assert float(m.std()) > 0.1, "exact data gave the prior's constant field"
    assert any("treated as exact" in r.getMessage() for r in caplog.records)


def test_result_in_a_mesh_format(demo_dir, tmp_path):
    import meshio
    out = tmp_path / "r.vtu"
    assert main(["invert", "darcy", "--obs", str(demo_dir / "demo" / "observations.nc"), "-o", str(out), "--quiet",
                 "--opt", "max_iter=3"]) == 0
    mesh = meshio.read(out)                       # a real VTU (it used to be HDF5 under a .vtu name)
    assert mesh.points.shape[0] == RES * RES and {"m", "u"} <= set(mesh.point_data)
    sensors = meshio.read(tmp_path / "r_sensors.vtu")
    assert "y" in sensors.point_data and (tmp_path / "r.png").exists()


def test_netcdf3_observations_are_read(demo_dir, tmp_path):
    with xr.open_dataset(demo_dir / "demo" / "observations.nc", engine="h5netcdf") as ds:
        ds.load().to_netcdf(tmp_path / "obs3.nc", engine="scipy")          # netCDF3 (classic)
    assert (tmp_path / "obs3.nc").read_bytes()[:3] == b"CDF"
    assert main(["invert", "darcy", "--obs", str(tmp_path / "obs3.nc"), "-o", str(tmp_path / "r.nc"), "--quiet",
                 "--opt", "max_iter=3"]) == 0
    m3, _ = _m(tmp_path / "r.nc")
    assert main(["invert", "darcy", "--obs", str(demo_dir / "demo" / "observations.nc"), "-o",
                 str(tmp_path / "r4.nc"), "--quiet", "--opt", "max_iter=3"]) == 0
    np.testing.assert_array_equal(m3, _m(tmp_path / "r4.nc")[0])


def test_outputs_get_the_umask_mode(demo_dir, tmp_path):
    old = os.umask(0o027)
    try:
        assert main(["invert", "darcy", "--obs", str(demo_dir / "demo" / "observations.nc"), "-o",
                     str(tmp_path / "r.nc"), "--quiet", "--opt", "max_iter=2"]) == 0
    finally:
        os.umask(old)
    for f in ("r.nc", "r.png"):
        assert (tmp_path / f).stat().st_mode & 0o777 == 0o640, f
    from pdeinv.cli.observations import save_observations
    from pdeinv.surrogates.training import build_operator
    old = os.umask(0o022)
    try:
        build_operator("fno", 1, 1, (8, 8), modes=2, width=4, layers=1).save(tmp_path / "m.pt")
        save_observations(tmp_path / "o.nc", np.zeros((1, 2)), np.zeros(1), task="darcy")
    finally:
        os.umask(old)
    for f in ("m.pt", "o.nc"):
        assert (tmp_path / f).stat().st_mode & 0o777 == 0o644, f


def test_zarr_output_has_consolidated_metadata(tmp_path):
    import warnings
    out = tmp_path / "d.zarr"
    assert main(["generate", "darcy", "--n", "3", "--res", "8", "--batch-size", "2", "-o", str(out), "--quiet"]) == 0
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)      # "failed to open consolidated metadata" would raise
        ds = xr.open_zarr(out)
    assert ds.sizes["sample"] == 3


def test_a_surrogate_says_its_training_grid(models, demo_dir, tmp_path):
    """The checkpoint records the grid it was trained on; the resolution-free FNO runs on another grid with a
    warning recorded in the result, a grid-tied sparse operator is refused there."""
    from pdeinv.surrogates import load
    fno = load(models["forward"])
    assert fno.trained_on["grid"]["n"] == [RES, RES] and fno.trained_on["task"] == "darcy"
    assert "trained_on" not in fno.config
    obs = str(demo_dir / "demo" / "observations.nc")
    assert main(["invert", "darcy", "--obs", obs, "--method", "surrogate-map", "--model", str(models["forward"]),
                 "--res", "16", "--opt", "max_iter=2", "-o", str(tmp_path / "r.nc"), "--quiet"]) == 0
    _, attrs = _m(tmp_path / "r.nc")
    assert "(12, 12) grid and runs on (16, 16)" in attrs["model_grid"]
    assert "inverting on [16, 16]" in attrs["observations_grid"]
    assert main(["invert", "darcy", "--obs", obs, "--method", "amortized", "--model", str(models["inverse"]),
                 "--res", "16", "-o", str(tmp_path / "r2.nc"), "--quiet"]) == 2


def test_demo_with_exact_data(tmp_path):
    import json
    out = tmp_path / "demo0"
    assert main(["demo", "--res", str(RES), "--max-iter", "20", "--noise", "0", "--quiet", "-o", str(out)]) == 0
    metrics = json.loads((out / "metrics_darcy.json").read_text())
    assert "relative noise 0.01" in metrics["noise_assumed"]
    m, _ = _m(out / "darcy_inverse.nc")
    assert float(m.std()) > 0.1


def test_demo_saves_every_sample(tmp_path):
    out = tmp_path / "demo2"
    assert main(["demo", "--res", str(RES), "--max-iter", "2", "--n-samples", "2", "--quiet", "-o", str(out)]) == 0
    m, _ = _m(out / "darcy_inverse.nc")
    with xr.open_dataset(out / "darcy_inverse.nc", engine="h5netcdf") as ds:
        assert ds.sizes["sample"] == 2 and ds["m_true"].shape == (2, RES, RES)
    for f in ("observations.nc", "observations_1.nc", "darcy_inverse.png", "darcy_inverse_1.png"):
        assert (out / f).exists(), f
    # a rerun into the same folder needs --overwrite
    assert main(["demo", "--res", str(RES), "--max-iter", "2", "--quiet", "-o", str(out)]) == 2
    assert main(["demo", "--res", str(RES), "--max-iter", "2", "--quiet", "-o", str(out), "--overwrite"]) == 0


# ----------------------------------------------------------------------------- interruption
_CODE = "import sys; from pdeinv.cli.app import main; sys.exit(main())"


def _interrupt(argv, cwd, sig):
    """Start ``pdeinv ARGV``, wait until the solve has started, send ``sig``; returns (rc, stderr)."""
    # a pytest-xdist worker may run with SIGINT ignored, which a child inherits (Python then installs no
    # KeyboardInterrupt handler and Ctrl-C does nothing): give the child the default disposition, as a shell would
    p = subprocess.Popen([sys.executable, "-c", _CODE, *argv, "--log-level", "INFO"], cwd=cwd,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    lines, t0 = [], time.time()
    try:
        for line in p.stderr:
            lines.append(line)
            if "solving:" in line:
                time.sleep(0.3)
                p.send_signal(sig)
                break
            assert time.time() - t0 < 120, "the solve did not start"
        rest = p.communicate(timeout=60)[1]
    finally:
        if p.poll() is None:
            p.kill()
    return p.returncode, "".join(lines) + (rest or "")


def test_interrupted_invert_leaves_nothing_and_reruns_to_the_same_answer(demo_dir, tmp_path):
    obs = demo_dir / "demo" / "observations.nc"
    before = obs.read_bytes(), obs.stat().st_mtime_ns
    argv = ["invert", "darcy", "--obs", str(obs), "--method", "mcmc", "--opt", "n_samples=400", "--opt",
            "n_chains=2", "-o", "r.nc", "--quiet"]
    rc, err = _interrupt(argv, tmp_path, signal.SIGINT)
    assert rc == 130, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("pdeinv invert: interrupted; nothing was written") and "run the same command" in last
    assert "Traceback" not in err
    assert sorted(os.listdir(tmp_path)) == []                 # no result, no figure, no temporary file
    rc, err = _interrupt(argv, tmp_path, signal.SIGKILL)
    assert rc == -signal.SIGKILL
    assert sorted(os.listdir(tmp_path)) == []
    assert (obs.read_bytes(), obs.stat().st_mtime_ns) == before
    # run again: the same answer as an uninterrupted run
    cwd = os.getcwd()
    try:
        os.chdir(tmp_path)
        assert main(argv) == 0
        assert main([*argv[:-3], "-o", "ref.nc", "--quiet"]) == 0
    finally:
        os.chdir(cwd)
    np.testing.assert_array_equal(_m(tmp_path / "r.nc")[0], _m(tmp_path / "ref.nc")[0])


def test_ctrl_c_says_what_was_saved_and_how_to_go_on(tmp_path, monkeypatch, capsys):
    """generate and train: one line naming what is on disk and the command that resumes."""
    import pdeinv.data.generate as gen
    import pdeinv.nn.training as training
    real = gen._solve_chunk

    def stop_after_first(task, res, seed, start, stop, *a, **k):
        if start > 0:
            raise KeyboardInterrupt
        return real(task, res, seed, start, stop, *a, **k)

    monkeypatch.setattr(gen, "_solve_chunk", stop_after_first)
    out = tmp_path / "g.nc"
    assert main(["generate", "darcy", "--n", "4", "--res", "8", "--batch-size", "2", "-o", str(out), "--quiet"]) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "g.nc.parts" in err[0] and "run the same command again to resume" in err[0]
    monkeypatch.setattr(gen, "_solve_chunk", real)
    assert main(["generate", "darcy", "--n", "4", "--res", "8", "--batch-size", "2", "-o", str(out), "--quiet"]) == 0

    calls = []
    real_eval = training._evaluate

    def stop_in_epoch_2(*a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_eval(*a, **k)

    monkeypatch.setattr(training, "_evaluate", stop_in_epoch_2)
    ck = tmp_path / "f.pt"
    args = ["train", "fno", "--data", str(out), "--epochs", "3", "--width", "4", "--modes", "2", "--layers", "1",
            "--val-fraction", "0.25", "-o", str(ck), "--quiet"]
    assert main(args) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "f.pt holds the last finished epoch" in err[0] and "--resume" in err[0]
    monkeypatch.setattr(training, "_evaluate", real_eval)
    assert main(args) == 2                                   # an existing checkpoint: --resume or --overwrite
    assert "--resume" in capsys.readouterr().err
    assert main(args + ["--resume"]) == 0


def test_progress_is_quiet_when_not_a_terminal(monkeypatch):
    import io

    from pdeinv.cli import app
    monkeypatch.delenv("TQDM_MININTERVAL", raising=False)
    monkeypatch.setattr(sys, "stderr", io.StringIO())                 # a pipe or a log file, not a tty
    app._quiet_progress_when_piped()
    assert float(os.environ["TQDM_MININTERVAL"]) >= 30
    monkeypatch.setenv("TQDM_MININTERVAL", "1")                        # the user's own setting wins
    app._quiet_progress_when_piped()
    assert os.environ["TQDM_MININTERVAL"] == "1"


def test_cli_mcmc_gpcn_on_a_linear_task(tmp_path, caplog):
    """`--opt proposal=gpcn` reaches the sampler.  On poisson (linear-Gaussian) gpCN accepts every proposal and
    draws independent exact posterior samples, so 2 chains x 40 draws put the mean within a few Monte-Carlo
    errors of the exact posterior mean."""
    import logging
    import pdeinv as pi
    from pdeinv.solvers import build
    task = TASKS["poisson"]
    grid, problem = task.make(16)
    obs = pi.PointObservation.random(grid, n=10, seed=0, exclude_boundary=True)
    fwd = pi.ForwardModel(problem, obs, noise=pi.GaussianNoise(sigma=0.01))
    y = fwd(task.sample_m(grid, 1, seed=1), seed=2)
    csv = tmp_path / "obs.csv"
    np.savetxt(csv, np.column_stack([obs.points.numpy(), y.reshape(-1).numpy()]), delimiter=",",
               header="x,y,value", comments="")
    exact = build("gaussian", task, 16, n_samples=0)(y, fwd)
    out = tmp_path / "r.nc"
    with caplog.at_level(logging.INFO, logger="pdeinv.solvers.mcmc"):
        assert main(["invert", "poisson", "--obs", str(csv), "--res", "16", "--sigma", "0.01", "--method", "mcmc",
                     "--opt", "proposal=gpcn", "--opt", "n_samples=40", "--opt", "n_chains=2", "--opt",
                     "burn_in=10", "-o", str(out), "--log-level", "INFO"]) == 0
    assert any("proposal gpcn): acceptance 1.0" in r.getMessage() for r in caplog.records), caplog.text
    m, attrs = _m(out)
    assert attrs["method"] == "mcmc"
    z = (torch.as_tensor(m).reshape(exact.m.shape) - exact.m) / (exact.std.reshape(exact.m.shape) / math.sqrt(80))
    assert float(z[..., 1:-1, 1:-1].abs().max()) < 5     # 196 pixels: |z| > 5 by chance with p < 1e-4
