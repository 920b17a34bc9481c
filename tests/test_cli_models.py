"""Train a model with ``pdeinv train`` and use it with ``pdeinv invert --method ... --model CKPT``.

The solver that ``invert`` builds goes through :func:`pdeinv.solvers.build`, like the harness's
and the demos'; these tests check the whole chain from the command line, and that the command
line gives the same answer as the library called directly with the same model.
"""
import numpy as np
import pytest
import torch

from pdeinv.cli.app import main
from pdeinv.cli.observations import save_observations
from pdeinv import metrics
from pdeinv.physics import ForwardModel, GaussianNoise, PointObservation
from pdeinv.solvers import Amortized, build
from pdeinv.surrogates import load
from pdeinv.tasks import TASKS

RES = 16


@pytest.fixture(scope="module")
def darcy_data(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli_models")
    data = d / "darcy16.nc"
    assert main(["generate", "darcy", "--n", "48", "--res", str(RES), "-o", str(data), "--quiet"]) == 0
    return d, data


def _observe(d, fraction, seed, points=None):
    """A held-out Darcy sample (seed outside the training set), observed at points with 1 % noise."""
    task = TASKS["darcy"]
    grid, problem = task.make(RES)
    a = task.sample_m(grid, 1, seed=10_000 + seed)
    obs = PointObservation(grid, points) if points is not None else PointObservation.random(grid, fraction=fraction,
                                                                                             seed=seed)
    fwd = ForwardModel(problem, obs, GaussianNoise(relative=0.01))
    y = fwd(a, seed=seed + 1)
    path = d / f"obs_{seed}.nc"
    save_observations(str(path), obs.points, y, task="darcy", noise_relative=0.01, res=RES)
    return a, obs, fwd, y, path


def _result(path):
    import xarray as xr
    with xr.open_dataset(path, engine="h5netcdf") as r:
        return torch.as_tensor(np.asarray(r["m"].values)).reshape(1, 1, RES, RES)


@pytest.mark.parametrize("operator", ["fno", "deeponet"])
def test_train_surrogate_then_surrogate_map_from_the_cli(darcy_data, tmp_path, operator):
    d, data = darcy_data
    ckpt = tmp_path / f"{operator}.pt"
    assert main(["train", operator, "--data", str(data), "--mode", "forward", "--epochs", "15", "--width", "12",
                 "--modes", "6", "--layers", "3", "--batch-size", "8", "-o", str(ckpt), "--quiet"]) == 0
    a, obs, fwd, y, obs_path = _observe(d, 0.3, seed=7)
    out = tmp_path / "sm.nc"
    rc = main(["invert", "darcy", "--obs", str(obs_path), "--method", "surrogate-map", "--model", str(ckpt),
               "--opt", "max_iter=30", "--opt", "refine_iter=100", "-o", str(out), "--quiet"])
    assert rc == 0 and out.exists()
    m = _result(out)
    assert float(m.min()) >= 3.0 - 1e-9 and float(m.max()) <= 12.0 + 1e-9      # the task's bounds came through
    err = float(metrics.relative_l2(m, a))
    const = float(metrics.relative_l2(torch.full_like(a, 7.5), a))          # the constant guess (mid-range)
    assert err < 0.8 * const, (err, const)
    # the same answer as the library, built the same way
    ref = build("surrogate-map", "darcy", RES, model=str(ckpt), max_iter=30, refine_iter=100)(y, fwd)
    assert torch.allclose(m, ref.m.reshape(m.shape), rtol=1e-6, atol=1e-6)


def test_train_sparse_inverse_operator_then_amortized_from_the_cli(darcy_data, tmp_path):
    d, data = darcy_data
    ckpt = tmp_path / "inv.pt"
    assert main(["train", "fno", "--data", str(data), "--mode", "inverse", "--sparse", "0.3", "--epochs", "3",
                 "--width", "8", "--modes", "4", "--batch-size", "8", "-o", str(ckpt), "--quiet"]) == 0
    a, obs, fwd, y, obs_path = _observe(d, 0.3, seed=11)
    out = tmp_path / "am.nc"
    assert main(["invert", "darcy", "--obs", str(obs_path), "--method", "amortized", "--model", str(ckpt),
                 "-o", str(out), "--quiet"]) == 0
    m = _result(out)
    ref = Amortized(load(ckpt))(y, fwd).m                 # the network called directly on the same data
    assert torch.allclose(m, ref.reshape(m.shape), rtol=1e-6, atol=1e-6)


def test_train_vito_then_amortized_on_a_coarse_sensor_grid(darcy_data, tmp_path):
    d, data = darcy_data
    ckpt = tmp_path / "vito.pt"
    assert main(["train", "vito", "--data", str(data), "--epochs", "2", "--batch-size", "8", "-O", "coarse=8",
                 "-O", "width=8", "-O", "embed_dim=16", "-O", "n_layers=1", "-o", str(ckpt), "--quiet"]) == 0
    c = torch.linspace(0.0, 1.0, 8, dtype=torch.float64)
    pts = torch.stack(torch.meshgrid(c, c, indexing="ij"), -1).reshape(-1, 2)     # coarse nodes, first axis slowest
    a, obs, fwd, y, obs_path = _observe(d, None, seed=13, points=pts)
    out = tmp_path / "vito.nc"
    assert main(["invert", "darcy", "--obs", str(obs_path), "--method", "amortized", "--model", str(ckpt),
                 "-o", str(out), "--quiet"]) == 0
    m = _result(out)
    model = load(ckpt)
    ref = Amortized(model)(y, fwd).m
    assert torch.allclose(m, ref.reshape(m.shape), rtol=1e-6, atol=1e-6)
    assert model.config["out_size"] == [RES, RES]


@pytest.mark.parametrize("method, needle", [("fno", "surrogate-map"), ("surrogate-map", "--model"),
                                            ("amortized", "--model"), ("nonsense", "available")])
def test_invert_names_the_right_method_and_model(darcy_data, tmp_path, capsys, method, needle):
    d, _ = darcy_data
    *_, obs_path = _observe(d, 0.1, seed=3)
    rc = main(["invert", "darcy", "--obs", str(obs_path), "--method", method, "-o", str(tmp_path / "x.nc")])
    assert rc == 2
    assert needle in capsys.readouterr().err
