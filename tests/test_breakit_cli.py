"""Break-it suite, command line: every bad input to every sub-command is refused with exit code 2 and
one line on stderr that names what was wrong, before any work, and no file -- input or output -- is
changed, created or removed.  Parametrised over :data:`CASES` (corrupt, wrong-schema, NaN,
out-of-range and mismatched inputs, ``--device`` with no device, overwrite attempts); the count of
cases tried and handled goes to ``benchmarks/results/robustness.md`` (``tests/conftest.py``).

All cases share one workspace of tiny files (12² grids), built once; each case compares the bytes
and modification times of every file in it before and after.  The cases run in-process through
:func:`pdeinv.cli.app.main`; a few also run as real processes (``pdeinv --help`` without torch,
one-line stderr with logging switched on).
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence, Union

import numpy as np
import pytest

from pdeinv.cli.app import main

RES = 12


@dataclass(frozen=True)
class Case:
    id: str
    argv: Union[Sequence[str], Callable[[Path], Sequence[str]]]
    needle: str                 # what the one-line message must say (what was wrong / what is expected)


# ----------------------------------------------------------------------------- the workspace
def _build_workspace(d: Path) -> None:
    import meshio
    import xarray as xr

    from pdeinv.cli.observations import save_observations
    from pdeinv.data.generate import generate
    from pdeinv.data.io import save_dataset
    from pdeinv.physics import ForwardModel, GaussianNoise, PointObservation
    from pdeinv.surrogates import SparseOperator
    from pdeinv.surrogates.training import build_operator
    from pdeinv.tasks import TASKS

    task = TASKS["darcy"]
    grid, problem = task.make(RES)
    a = task.sample_m(grid, 1, seed=1)
    obs = PointObservation.random(grid, fraction=0.2, seed=2)
    y = ForwardModel(problem, obs, GaussianNoise(relative=0.01))(a, seed=3)
    pts = obs.points.numpy()
    save_observations(d / "obs.nc", obs.points, y, grid=grid, task="darcy", noise_relative=0.01)

    def variant(name, **change):
        ds = xr.load_dataset(d / "obs.nc", engine="h5netcdf")
        for k, v in change.items():
            if k == "attrs":
                ds.attrs.update(v)
            elif v is None:
                ds = ds.drop_vars(k)
            else:
                ds[k] = v
        ds.to_netcdf(d / name, engine="h5netcdf")

    yy = y[0, 0].numpy()
    variant("obs_nan.nc", y=(("obs",), np.where(np.arange(len(yy)) == 3, np.nan, yy)))
    variant("obs_noy.nc", y=None)
    variant("obs_outside.nc", points=(("obs", "coord"), pts + 2.0))
    variant("obs_3d.nc", points=(("obs", "coord3"), np.c_[pts, np.ones(len(pts))]))
    variant("obs_count.nc", y=(("obs2",), yy[:-2]))
    variant("obs_strings.nc", y=(("obs",), np.array(["a"] * len(yy))))
    variant("obs_domain.nc", attrs={"grid": json.dumps({"kind": "Grid2D", "n": [RES, RES], "length": [2.0, 2.0],
                                                        "bc": "dirichlet"})})
    variant("obs_periodic.nc", attrs={"grid": json.dumps({"kind": "Grid2D", "n": [RES, RES], "length": [1.0, 1.0],
                                                          "bc": "periodic"})})
    variant("obs_badgrid.nc", attrs={"grid": "{not json"})
    variant("obs_negnoise.nc", attrs={"noise_relative": -0.5})
    variant("obs_strnoise.nc", attrs={"noise_sigma": "loud"})
    raw = (d / "obs.nc").read_bytes()
    (d / "obs_truncated.nc").write_bytes(raw[: len(raw) // 2])
    (d / "corrupt.nc").write_bytes(b"\x89HDF\r\n\x1a\n this is not a netCDF file")
    (d / "empty.nc").write_bytes(b"")
    (d / "text.nc").write_text("points,y\n0.5,0.5,1.0\n")
    # mesh files
    m3 = np.c_[pts, np.zeros(len(pts))]
    cells = [("vertex", np.arange(len(pts))[:, None])]
    meshio.Mesh(m3, cells, point_data={"pressure": yy}).write(d / "sensors.vtu")
    meshio.Mesh(m3, cells, point_data={"pressure": yy}).write(d / "res_sensors.vtu")
    (d / "plot.png").write_bytes(b"an earlier figure")
    meshio.Mesh(m3, cells, point_data={"pressure": np.where(np.arange(len(yy)) == 0, np.nan, yy)}).write(
        d / "sensors_nan.vtu")
    meshio.Mesh(np.c_[pts, np.ones(len(pts))], cells, point_data={"pressure": yy}).write(d / "sensors_3d.vtu")
    (d / "junk.vtu").write_text("<VTKFile> broken")
    # datasets
    ds = generate("darcy", 6, RES, seed=0, verbose=False)
    save_dataset(ds, d / "data.nc")
    bad = ds.copy(deep=True)
    bad["m"][0, 0, 0] = np.nan
    save_dataset(bad, d / "data_nan.nc", validate=False)
    # checkpoints
    fno = build_operator("fno", 1, 1, (RES, RES), modes=2, width=4, layers=1)
    fno.save(d / "fno.pt")
    SparseOperator("fno", 1, 1, [RES, RES], options=dict(modes=2, width=4, layers=1)).save(d / "inv12.pt")
    (d / "corrupt.pt").write_bytes(b"PK\x03\x04 not a checkpoint")
    # recipes, existing outputs, folders
    (d / "recipe.toml").write_text('task = "darcy"\nres = 12\nn_train = 4\nn_test = 2\nseed = 0\n')
    (d / "bad.toml").write_text("task = darcy = 12\n")
    (d / "nokeys.toml").write_text('task = "darcy"\n')
    (d / "existing.nc").write_bytes(b"an earlier result")
    (d / "existing.pt").write_bytes(b"an earlier checkpoint")
    (d / "adir").mkdir()
    (d / "demo_old").mkdir()
    (d / "demo_old" / "darcy_inverse.nc").write_bytes(b"an earlier demo")
    (d / "afile").write_text("a file, not a folder")


def _snapshot(d: Path) -> dict:
    out = {}
    for root, dirs, files in os.walk(d):
        for name in dirs + files:
            p = Path(root) / name
            if p.is_dir():          # a folder's own mtime moves with the write probe; its files are compared
                out[str(p.relative_to(d))] = "dir"
                continue
            st = p.stat()
            out[str(p.relative_to(d))] = (st.st_mtime_ns, st.st_mode, hashlib.sha1(p.read_bytes()).hexdigest())
    return out


# ----------------------------------------------------------------------------- the cases
def _inv(*args):
    return ["invert", "darcy", *args, "--quiet"]


CASES = [
    # --- invert: corrupt / wrong-schema / NaN / mismatched observations
    Case("invert-missing-obs", _inv("--obs", "nope.nc", "-o", "r.nc"), "does not exist"),
    Case("invert-corrupt-no-res", _inv("--obs", "corrupt.nc", "-o", "r.nc"), "cannot read"),
    Case("invert-corrupt-res", _inv("--obs", "corrupt.nc", "--res", "12", "-o", "r.nc"), "cannot read"),
    Case("invert-empty-file", _inv("--obs", "empty.nc", "-o", "r.nc"), "cannot read"),
    Case("invert-truncated", _inv("--obs", "obs_truncated.nc", "-o", "r.nc"), "cannot read"),
    Case("invert-text-file", _inv("--obs", "text.nc", "-o", "r.nc"), "cannot read"),
    Case("invert-obs-folder", _inv("--obs", "adir", "-o", "r.nc"), "folder"),
    Case("invert-no-y", _inv("--obs", "obs_noy.nc", "-o", "r.nc"), "no variable 'y'"),
    Case("invert-nan-y", _inv("--obs", "obs_nan.nc", "-o", "r.nc"), "NaN"),
    Case("invert-string-y", _inv("--obs", "obs_strings.nc", "-o", "r.nc"), "expected numbers"),
    Case("invert-outside", _inv("--obs", "obs_outside.nc", "-o", "r.nc"), "outside the domain"),
    Case("invert-3d-points", _inv("--obs", "obs_3d.nc", "-o", "r.nc"), "expected (P, 2)"),
    Case("invert-count", _inv("--obs", "obs_count.nc", "-o", "r.nc"), "points"),
    Case("invert-ns-on-darcy", ["invert", "ns", "--obs", "obs.nc", "-o", "r.nc", "--quiet"], "not 'ns'"),
    Case("invert-poisson-on-darcy", ["invert", "poisson", "--obs", "obs.nc", "-o", "r.nc", "--quiet"],
         "not 'poisson'"),
    Case("invert-domain", _inv("--obs", "obs_domain.nc", "-o", "r.nc"), "length"),
    Case("invert-bc", _inv("--obs", "obs_periodic.nc", "-o", "r.nc"), "bc=periodic"),
    Case("invert-bad-grid-attr", _inv("--obs", "obs_badgrid.nc", "-o", "r.nc"), "not JSON"),
    Case("invert-negative-noise-attr", _inv("--obs", "obs_negnoise.nc", "-o", "r.nc"), "noise level >= 0"),
    Case("invert-string-noise-attr", _inv("--obs", "obs_strnoise.nc", "-o", "r.nc"), "not a number"),
    Case("invert-mesh-field", _inv("--obs", "sensors.vtu", "--field", "nope", "-o", "r.nc"), "no point data"),
    Case("invert-mesh-nan", _inv("--obs", "sensors_nan.vtu", "--field", "pressure", "-o", "r.nc"), "NaN"),
    Case("invert-mesh-3d", _inv("--obs", "sensors_3d.vtu", "--field", "pressure", "-o", "r.nc"), "z = 0"),
    Case("invert-mesh-junk", _inv("--obs", "junk.vtu", "-o", "r.nc"), "cannot read"),
    # --- invert: out-of-range values and options
    Case("invert-res-0", _inv("--obs", "obs.nc", "--res", "0", "-o", "r.nc"), "--res must be an integer >= 1"),
    Case("invert-res-2", _inv("--obs", "obs.nc", "--res", "2", "-o", "r.nc"), ">= 3"),
    Case("invert-res-text", _inv("--obs", "obs.nc", "--res", "big", "-o", "r.nc"), "invalid int value"),
    Case("invert-sigma-negative", _inv("--obs", "obs.nc", "--sigma", "-1", "-o", "r.nc"), "--sigma must be"),
    Case("invert-noise-negative", _inv("--obs", "obs.nc", "--noise", "-0.1", "-o", "r.nc"), "--noise must be"),
    Case("invert-noise-nan", _inv("--obs", "obs.nc", "--noise", "nan", "-o", "r.nc"), "--noise must be"),
    Case("invert-noise-and-sigma", _inv("--obs", "obs.nc", "--noise", "0.1", "--sigma", "1", "-o", "r.nc"),
         "not allowed with"),
    Case("invert-seed-negative", _inv("--obs", "obs.nc", "--seed", "-1", "-o", "r.nc"),
         "--seed must be an integer >= 0"),
    Case("invert-unknown-method", _inv("--obs", "obs.nc", "--method", "nonsense", "-o", "r.nc"), "available"),
    Case("invert-network-as-method", _inv("--obs", "obs.nc", "--method", "fno", "-o", "r.nc"), "surrogate-map"),
    Case("invert-opt-typo", _inv("--obs", "obs.nc", "--opt", "max_iterr=3", "-o", "r.nc"), "its options are"),
    Case("invert-opt-no-equals", _inv("--obs", "obs.nc", "--opt", "max_iter", "-o", "r.nc"), "KEY=VALUE"),
    Case("invert-opt-empty-key", _inv("--obs", "obs.nc", "--opt", "=3", "-o", "r.nc"), "KEY=VALUE"),
    Case("invert-model-missing", _inv("--obs", "obs.nc", "--method", "amortized", "--model", "nope.pt", "-o", "r.nc"),
         "does not exist"),
    Case("invert-model-corrupt", _inv("--obs", "obs.nc", "--method", "amortized", "--model", "corrupt.pt",
                                      "-o", "r.nc"), "not a readable"),
    Case("invert-needs-model", _inv("--obs", "obs.nc", "--method", "surrogate-map", "-o", "r.nc"), "needs --model"),
    Case("invert-takes-no-model", _inv("--obs", "obs.nc", "--method", "map", "--model", "fno.pt", "-o", "r.nc"),
         "takes no trained model"),
    Case("invert-model-other-grid", _inv("--obs", "obs.nc", "--method", "amortized", "--model", "inv12.pt",
                                         "--res", "16", "-o", "r.nc"), "trained on a (12, 12) grid"),
    Case("invert-unknown-task", ["invert", "nosuchtask", "--obs", "obs.nc", "-o", "r.nc"], "unknown task"),
    Case("invert-no-obs", ["invert", "darcy"], "--obs"),
    # --- invert: outputs
    Case("invert-output-is-input", _inv("--obs", "obs.nc", "-o", "obs.nc"), "also an input"),
    Case("invert-output-is-model", _inv("--obs", "obs.nc", "--method", "amortized", "--model", "inv12.pt",
                                        "-o", "inv12.pt"), "also an input"),
    Case("invert-output-exists", _inv("--obs", "obs.nc", "-o", "existing.nc"), "--overwrite"),
    Case("invert-output-folder", _inv("--obs", "obs.nc", "-o", "adir"), "is a folder"),
    Case("invert-output-under-file", _inv("--obs", "obs.nc", "-o", "afile/r.nc"), "is a file"),
    Case("invert-output-unwritable", _inv("--obs", "obs.nc", "-o", "/proc/pdeinv_test/r.nc"), "not writable"),
    Case("invert-sensor-mesh-is-input", _inv("--obs", "res_sensors.vtu", "--field", "pressure", "-o", "res.vtu"),
         "also an input"),
    Case("invert-figure-exists", _inv("--obs", "obs.nc", "-o", "plot.nc"), "plot.png"),
    # --- devices (every sub-command, before any work)
    Case("invert-device-cuda", _inv("--obs", "obs.nc", "--device", "cuda", "-o", "r.nc"), "--device cuda"),
    Case("invert-device-cuda-7", _inv("--obs", "obs.nc", "--device", "cuda:7", "-o", "r.nc"), "--device cuda:7"),
    Case("invert-device-nonsense", _inv("--obs", "obs.nc", "--device", "gpu0", "-o", "r.nc"), "not a torch device"),
    Case("generate-device-cuda", ["generate", "darcy", "--n", "2", "--res", "12", "-o", "g.nc", "--device", "cuda"],
         "--device cuda"),
    Case("train-device-cuda", ["train", "fno", "--data", "data.nc", "-o", "t.pt", "--device", "cuda"],
         "--device cuda"),
    Case("demo-device-cuda", ["demo", "--res", "12", "-o", "demo_new", "--device", "cuda"], "--device cuda"),
    Case("benchmark-device-cuda", ["benchmark", "--task", "darcy", "--out", "bench", "--cache-dir", "cache",
                                   "--device", "cuda"], "--device cuda"),
    # --- generate
    Case("generate-n-0", ["generate", "darcy", "--n", "0", "--res", "12", "-o", "g.nc"], "--n must be"),
    Case("generate-n-negative", ["generate", "darcy", "--n", "-3", "--res", "12", "-o", "g.nc"], "--n must be"),
    Case("generate-res-0", ["generate", "darcy", "--n", "2", "--res", "0", "-o", "g.nc"], "--res must be"),
    Case("generate-res-2", ["generate", "darcy", "--n", "2", "--res", "2", "-o", "g.nc"], ">= 3"),
    Case("generate-batch-0", ["generate", "darcy", "--n", "2", "--res", "12", "--batch-size", "0", "-o", "g.nc"],
         "--batch-size must be"),
    Case("generate-workers-0", ["generate", "darcy", "--n", "2", "--res", "12", "--workers", "0", "-o", "g.nc"],
         "--workers must be"),
    Case("generate-workers-and-scheduler", ["generate", "darcy", "--n", "2", "--res", "12", "--workers", "1",
                                            "--scheduler", "tcp://localhost:1", "-o", "g.nc"], "not both"),
    Case("generate-output-folder", ["generate", "darcy", "--n", "2", "--res", "12", "-o", "adir"], "is a folder"),
    Case("generate-output-exists", ["generate", "darcy", "--n", "2", "--res", "12", "-o", "existing.nc"],
         "--overwrite"),
    Case("generate-output-is-recipe", ["generate", "--recipe", "recipe.toml", "-o", "recipe.toml"], "also an input"),
    Case("generate-output-unwritable", ["generate", "darcy", "--n", "2", "--res", "12", "-o", "/proc/pdeinv/g.nc"],
         "not writable"),
    Case("generate-unknown-task", ["generate", "nosuchtask", "--n", "2", "-o", "g.nc"], "unknown task"),
    Case("generate-no-task", ["generate", "--n", "2", "-o", "g.nc"], "give a task"),
    Case("generate-no-n", ["generate", "darcy", "-o", "g.nc"], "give --n"),
    Case("generate-recipe-missing", ["generate", "--recipe", "nope.toml", "-o", "g.nc"], "no such recipe"),
    Case("generate-recipe-bad-toml", ["generate", "--recipe", "bad.toml", "-o", "g.nc"], "not valid TOML"),
    Case("generate-recipe-keys", ["generate", "--recipe", "nokeys.toml", "-o", "g.nc"], "lacks the keys"),
    Case("generate-recipe-task", ["generate", "poisson", "--recipe", "recipe.toml", "-o", "g.nc"],
         "not 'poisson'"),
    Case("generate-n-text", ["generate", "darcy", "--n", "ten", "-o", "g.nc"], "invalid int value"),
    # --- train
    Case("train-data-missing", ["train", "fno", "--data", "nope.nc", "-o", "t.pt"], "does not exist"),
    Case("train-data-corrupt", ["train", "fno", "--data", "corrupt.nc", "-o", "t.pt"], "cannot read"),
    Case("train-data-schema", ["train", "fno", "--data", "obs.nc", "-o", "t.pt"], "not a pdeinv.dataset/1"),
    Case("train-data-nan", ["train", "fno", "--data", "data_nan.nc", "-o", "t.pt"], "NaN"),
    Case("train-output-is-data", ["train", "fno", "--data", "data.nc", "-o", "data.nc"], "also an input"),
    Case("train-output-is-val-data", ["train", "fno", "--data", "data.nc", "--val-data", "obs.nc", "-o", "obs.nc"],
         "also an input"),
    Case("train-checkpoint-exists", ["train", "fno", "--data", "data.nc", "-o", "existing.pt", "--epochs", "1"],
         "--resume"),
    Case("train-resume-and-overwrite", ["train", "fno", "--data", "data.nc", "-o", "t.pt", "--resume", "--overwrite"],
         "not allowed with"),
    Case("train-output-folder", ["train", "fno", "--data", "data.nc", "-o", "adir"], "is a folder"),
    Case("train-n-train-0", ["train", "fno", "--data", "data.nc", "-o", "t.pt", "--n-train", "0"], "--n-train must"),
    Case("train-n-train-negative", ["train", "fno", "--data", "data.nc", "-o", "t.pt", "--n-train", "-1"],
         "--n-train must"),
    Case("train-n-train-too-many", ["train", "fno", "--data", "data.nc", "-o", "t.pt", "--n-train", "1000"],
         "holds 6 samples"),
    Case("train-epochs-0", ["train", "fno", "--data", "data.nc", "-o", "t.pt", "--epochs", "0"], "--epochs must"),
    Case("train-batch-0", ["train", "fno", "--data", "data.nc", "-o", "t.pt", "--batch-size", "0"], "--batch-size"),
    Case("train-lr-0", ["train", "fno", "--data", "data.nc", "-o", "t.pt", "--lr", "0"], "--lr must"),
    Case("train-val-fraction", ["train", "fno", "--data", "data.nc", "-o", "t.pt", "--val-fraction", "1.5"],
         "--val-fraction"),
    Case("train-sparse-0", ["train", "fno", "--data", "data.nc", "-o", "t.pt", "--sparse", "0"], "--sparse"),
    Case("train-sparse-2", ["train", "fno", "--data", "data.nc", "-o", "t.pt", "--sparse", "2"], "--sparse"),
    Case("train-option-unknown", ["train", "fno", "--data", "data.nc", "-o", "t.pt", "-O", "nonsense=1"],
         "valid keys"),
    Case("train-option-format", ["train", "fno", "--data", "data.nc", "-o", "t.pt", "-O", "nonsense"], "KEY=VALUE"),
    Case("train-vito-option", ["train", "vito", "--data", "data.nc", "-o", "t.pt", "-O", "depthh=2"], "valid keys"),
    Case("train-diffusion-option", ["train", "diffusion", "--data", "data.nc", "-o", "t.pt", "-O", "hiden=8"],
         "valid keys"),
    Case("train-unknown-model", ["train", "resnet", "--data", "data.nc"], "invalid choice"),
    # --- demo
    Case("demo-output-file", ["demo", "--res", "12", "-o", "afile"], "is a file"),
    Case("demo-output-exists", ["demo", "--res", "12", "-o", "demo_old"], "--overwrite"),
    Case("demo-res-0", ["demo", "--res", "0", "-o", "demo_new"], "--res must"),
    Case("demo-max-iter-0", ["demo", "--max-iter", "0", "-o", "demo_new"], "--max-iter must"),
    Case("demo-n-samples-0", ["demo", "--n-samples", "0", "-o", "demo_new"], "--n-samples must"),
    Case("demo-obs-0", ["demo", "--obs", "0", "-o", "demo_new"], "--obs is a fraction"),
    Case("demo-obs-big", ["demo", "--obs", "1.5", "-o", "demo_new"], "--obs is a fraction"),
    Case("demo-noise-negative", ["demo", "--noise", "-1", "-o", "demo_new"], "--noise must"),
    Case("demo-unknown-task", ["demo", "--task", "nope", "-o", "demo_new"], "unknown demo task"),
    Case("demo-mcmc-n-samples", ["demo", "--task", "mcmc", "--n-samples", "2", "-o", "demo_new"], "solves one problem"),
    # --- benchmark (the checks run before the harness touches its cache)
    Case("benchmark-n-test-0", ["benchmark", "--task", "darcy", "--n-test", "0", "--out", "bench",
                                "--cache-dir", "cache"], "--n-test must"),
    Case("benchmark-n-train-0", ["benchmark", "--task", "darcy", "--n-train", "0", "--out", "bench",
                                 "--cache-dir", "cache"], "--n-train must"),
    Case("benchmark-res-0", ["benchmark", "--task", "darcy", "--res", "0", "--out", "bench", "--cache-dir", "cache"],
         "--res must"),
    Case("benchmark-noise-negative", ["benchmark", "--task", "darcy", "--noise", "-1", "--out", "bench",
                                      "--cache-dir", "cache"], "--noise must"),
    Case("benchmark-obs-0", ["benchmark", "--task", "darcy", "--obs", "0", "--out", "bench", "--cache-dir", "cache"],
         "--obs is a fraction"),
    Case("benchmark-workers-0", ["benchmark", "--task", "darcy", "--workers", "0", "--out", "bench",
                                 "--cache-dir", "cache"], "--workers must"),
    # --- the dispatcher
    Case("unknown-command", ["frobnicate"], "invalid choice"),
    Case("unknown-flag", ["invert", "darcy", "--obs", "obs.nc", "--frobnicate"], "unrecognized arguments"),
]


def case_nodeids():
    """Node ids of the parametrised cases (what tests/conftest.py counts for robustness.md)."""
    return [f"tests/test_breakit_cli.py::test_cli_case[{c.id}]" for c in CASES]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    d = tmp_path_factory.mktemp("breakit")
    _build_workspace(d)
    return d


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_cli_case(case, workspace, capsys, monkeypatch):
    monkeypatch.chdir(workspace)
    argv = list(case.argv(workspace) if callable(case.argv) else case.argv)
    before = _snapshot(workspace)
    try:
        rc = main(argv)
    except SystemExit as e:         # argparse errors exit from inside parse_args
        rc = e.code
    out, err = capsys.readouterr()
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert rc == 2, f"{case.id}: exit code {rc}; stderr: {err!r}"
    assert len(lines) == 1, f"{case.id}: expected one line on stderr, got {len(lines)}: {err!r}"
    assert "error:" in lines[0] and "Traceback" not in err
    assert case.needle in lines[0], f"{case.id}: the message does not say {case.needle!r}: {lines[0]}"
    assert _snapshot(workspace) == before, f"{case.id}: a file in the workspace was created, changed or removed"


def test_case_ids_unique():
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids))


# ----------------------------------------------------------------------------- real processes
def _run(args, cwd, timeout=120):
    code = "import sys; from pdeinv.cli.app import main; sys.exit(main())"     # what the console script runs
    return subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


def test_help_does_not_import_torch():
    code = ("import sys\nfrom pdeinv.cli.app import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "import pdeinv\nassert 'torch' not in sys.modules, 'pdeinv --help imported torch'\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    import pdeinv                       # the lazy facade still gives the names
    from pdeinv import Grid2D, physics
    assert pdeinv.Grid2D is Grid2D is physics.Grid2D and pdeinv.ForwardModel is physics.ForwardModel
    assert "solvers" in dir(pdeinv) and pdeinv.solvers.MAP is not None


def test_one_line_with_logging_on_in_a_real_process(workspace):
    """With logging switched on (INFO), a refused input is still one line: the checks run before any log."""
    before = _snapshot(workspace)
    r = _run(["invert", "darcy", "--obs", "obs.nc", "--device", "cuda", "-o", "r.nc", "--log-level", "INFO"],
             workspace)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert r.stderr.startswith("pdeinv invert: error: --device cuda")
    assert _snapshot(workspace) == before


def test_invert_help_lists_the_methods_per_task(capsys):
    with pytest.raises(SystemExit):
        main(["invert", "--help"])
    out = capsys.readouterr().out
    assert "methods available per task" in out
    line = next(ln for ln in out.splitlines() if ln.strip().startswith("darcy "))
    for m in ("map", "mcmc", "pinn", "surrogate-map*", "amortized*"):
        assert m in line, (m, line)
    eit = next(ln for ln in out.splitlines() if ln.strip().startswith("eit "))
    assert "mcmc," not in eit + ","      # no Gaussian law: no pCN
