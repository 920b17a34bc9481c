"""``pdeinv invert --unknown``: scalar and mixed unknowns from the command line, space-time observation files
(netCDF ``times``, an (x, t) ``points`` column, CSV ``x,t,value``, mesh point data ``t``), and the errors."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr

from pdeinv.cli.app import main
from pdeinv.cli.observations import load_observations, read_observation_file, save_observations
from pdeinv.physics import ForwardModel, GaussianNoise, PointObservation, SpaceTimePointObservation
from pdeinv.tasks import TASKS, get_task

FIXTURE = Path(__file__).parent / "fixtures" / "burgers_nu_spacetime.nc"


def _cramer_rao_sd(fwd, m_true, y):
    """Gauss-Newton standard deviation of a one-parameter fit at the truth, (sum (dA/dm / s)^2)^(-1/2)."""
    h = 1e-4 * float(m_true.abs().max())
    with torch.no_grad():
        dA = (fwd.A(m_true + h) - fwd.A(m_true - h)) / (2 * h)
    return float(((dA / fwd.noise_std(y)) ** 2).sum()) ** -0.5


def test_cli_identifies_nu_from_the_shipped_space_time_file(tmp_path):
    """The shipped file: 400 noisy (1 %) (x, t) points of a Burgers run at nu = 0.02 (its `source` attr says
    how it was made); the CLI starts at the task's nominal nu = 0.01 (50 % off) and must land within 2 %."""
    with xr.open_dataset(FIXTURE, engine="h5netcdf") as ds:
        nu_true = float(ds.attrs["nu_true"])
        assert "make_burgers_nu_spacetime.py" in ds.attrs["source"] and ds["times"].shape == (400,)
    out = tmp_path / "nu.nc"
    rc = main(["invert", "burgers", "--unknown", "nu", "--obs", str(FIXTURE), "--res", "128", "-o", str(out),
               "--quiet"])
    assert rc == 0
    with xr.open_dataset(out, engine="h5netcdf") as r:
        est = float(r["nu"].values[0])
        assert r.attrs["unknown"] == "nu" and abs(float(r.attrs["nu"]) - est) < 1e-15
    start = get_task("burgers").unknowns["nu"].start
    assert abs(start - nu_true) / nu_true > 0.4
    assert abs(est - nu_true) / nu_true < 0.02, est
    assert (tmp_path / "nu.png").exists()


def _scalar_file(tmp_path, task_name, unknown, true, res, points, times=None, seed=0):
    task = get_task(task_name)
    grid = task.grid(res)
    u = task.unknowns[unknown]
    given = {u.given: task.sample_m(grid, 1, seed=seed)}
    setup = task.setup(unknown, res, given)
    obs = (SpaceTimePointObservation.for_problem(setup.problem, points, times) if times is not None
           else PointObservation(grid, points))
    fwd = ForwardModel(setup.problem, obs, GaussianNoise(relative=0.01))
    m_true = torch.full((1, 1, 1), true, dtype=torch.float64)
    y = fwd(m_true, seed=1)
    path = tmp_path / f"{task_name}_{unknown}.nc"
    save_observations(path, points, y.reshape(-1), grid=grid, times=times, fields=given, task=task_name,
                      noise_relative=0.01)
    return path, fwd, m_true, y


@pytest.mark.parametrize("task_name,unknown,true,res,space_time", [
    ("helmholtz", "k", 2.0, 12, False),
    ("ns", "nu", 2e-3, 12, True),
    ("ns", "amplitude", 2.0, 12, True),
])
def test_scalar_unknowns_from_the_cli(tmp_path, task_name, unknown, true, res, space_time):
    """Helmholtz k, NS viscosity and forcing amplitude: the CLI's estimate lies within 4 Cramer-Rao standard
    deviations of the truth, and the starting value (the task's nominal one) is far outside that band."""
    g = torch.Generator().manual_seed(0)
    P = 60
    pts = 0.05 + 0.9 * torch.rand(P, 2, generator=g, dtype=torch.float64)
    times = torch.ones(P, dtype=torch.float64) if space_time else None      # ns observes w at T = 1
    path, fwd, m_true, y = _scalar_file(tmp_path, task_name, unknown, true, res, pts, times)
    out = tmp_path / "r.nc"
    assert main(["invert", task_name, "--unknown", unknown, "--obs", str(path), "-o", str(out), "--quiet"]) == 0
    with xr.open_dataset(out, engine="h5netcdf") as r:
        est = float(r[unknown].values[0])
    sd = _cramer_rao_sd(fwd, m_true, y)
    start = get_task(task_name).unknowns[unknown].start
    assert abs(start - true) > 20 * sd, (start, sd)
    assert abs(est - true) < 4 * sd, (est, true, sd)


def _burgers_trajectory_points(res=32, P=200, seed=0):
    task = get_task("burgers")
    grid, problem = task.make(res)
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(P, generator=g, dtype=torch.float64)
    t = problem.record_times[0] + (1 - problem.record_times[0]) * torch.rand(P, generator=g, dtype=torch.float64)
    obs = SpaceTimePointObservation.for_problem(problem, x, t)
    u0 = task.sample_m(grid, 1, seed=seed)
    with torch.no_grad():
        y = ForwardModel(problem, obs)(u0).reshape(-1)
    return grid, problem, x, t, y, u0


def test_csv_with_an_x_t_column(tmp_path, capsys):
    """A CSV ``x,t,u`` gives a SpaceTimePointObservation with the file's points, times and values in order, and
    ``pdeinv invert burgers`` runs on it (before: "points must have shape (P, 1); got (200, 2)")."""
    grid, problem, x, t, y, u0 = _burgers_trajectory_points()
    csv = tmp_path / "obs.csv"
    np.savetxt(csv, np.stack([x.numpy(), t.numpy(), y.numpy()], 1), delimiter=",", header="x,t,u", comments="")
    obs, yy, attrs = load_observations(csv, grid, problem=problem)
    assert isinstance(obs, SpaceTimePointObservation) and attrs == {}
    assert torch.allclose(obs.times, t, atol=1e-15) and torch.allclose(obs.points[:, 0], x, atol=1e-15)
    assert torch.allclose(yy.reshape(-1), y, rtol=1e-14, atol=1e-15)
    with torch.no_grad():        # the same operator: the file's values are reproduced by the true u0
        assert torch.allclose(obs(problem(u0)).reshape(-1), y, atol=1e-12)
    out = tmp_path / "r.nc"
    assert main(["invert", "burgers", "--obs", str(csv), "--res", "32", "--opt", "max_iter=2", "-o", str(out),
                 "--quiet"]) == 0
    assert "200 points" in capsys.readouterr().out


def test_netcdf_points_with_a_time_column_and_mesh_time_array(tmp_path):
    meshio = pytest.importorskip("meshio")
    grid, problem, x, t, y, _ = _burgers_trajectory_points(P=50)
    nc = tmp_path / "xt.nc"
    save_observations(nc, torch.stack([x, t], 1), y, grid=grid, task="burgers")      # points (50, 2): (x, t)
    pts, _, _ = read_observation_file(nc, 1, allow_time=True)
    assert pts.shape == (50, 2)
    with pytest.raises(ValueError, match="space-time observations"):
        read_observation_file(nc, 1)
    vtu = tmp_path / "xt.vtu"
    meshio.write_points_cells(str(vtu), np.stack([x.numpy(), np.zeros(50), np.zeros(50)], 1), [("vertex",
                              np.arange(50)[:, None])], point_data={"y": y.numpy(), "t": t.numpy()})
    for path in (nc, vtu):
        obs, yy, _ = load_observations(path, grid, problem=problem)
        assert isinstance(obs, SpaceTimePointObservation)
        assert torch.allclose(obs.times, t) and torch.allclose(yy.reshape(-1), y)


def test_field_and_scalar_together(tmp_path):
    """--unknown u0,nu: the result holds u0 on the grid and nu as a variable; MAP lowers the misfit from the start."""
    grid, problem, x, t, y, u0 = _burgers_trajectory_points(res=32, P=150)
    path = tmp_path / "obs.nc"
    save_observations(path, x[:, None], y, grid=grid, times=t, task="burgers", noise_relative=0.01)
    out = tmp_path / "r.nc"
    assert main(["invert", "burgers", "--unknown", "u0,nu", "--obs", str(path), "--opt", "max_iter=15",
                 "-o", str(out), "--quiet"]) == 0
    with xr.open_dataset(out, engine="h5netcdf") as r:
        assert r["m"].dims == ("sample", "x") and r["m"].shape == (1, 32)
        assert r["nu"].shape == (1,) and float(r["nu"][0]) > 0
        assert r.attrs["unknown"] == "u0,nu"
        loss = r["history_loss"].values
    assert loss[-1] < 0.1 * loss[0]


def test_help_lists_the_unknowns(capsys):
    with pytest.raises(SystemExit):
        main(["invert", "--help"])
    out = capsys.readouterr().out
    assert "--unknown" in out and "unknowns per task" in out
    lines = {ln.split(":")[0].strip(): ln for ln in out.splitlines() if ln.startswith("  ") and ": " in ln}
    for name, task in TASKS.items():
        for u in task.unknown_names:
            assert u in lines[name], (name, u)
    assert "nu (scalar)" in lines["burgers"] and "k (scalar)" in lines["helmholtz"]
    assert "amplitude (scalar)" in lines["ns"]


@pytest.mark.parametrize("args,expect", [
    (["burgers", "--unknown", "k"], "unknown 'k' is not supported; task 'burgers' accepts --unknown one of ['u0', 'nu']"),
    (["darcy", "--unknown", "nu"], "one of ['a']"),
    (["burgers", "--unknown", "nu,nu"], "names an unknown twice"),
    (["ns", "--unknown", "nu,amplitude"], "exactly one field"),
    (["burgers", "--unknown", "nu", "--method", "pinn"], "recovered by --method map"),
])
def test_bad_unknown_is_a_clear_error(tmp_path, capsys, args, expect):
    _, problem, x, t, y, _ = _burgers_trajectory_points(P=20)
    path = tmp_path / "obs.nc"
    grid = get_task(args[0]).grid(8 if args[0] != "burgers" else 32)
    save_observations(path, x[:, None] if args[0] == "burgers" else torch.stack([x, x], 1), y, grid=grid,
                      times=t if args[0] == "burgers" else None, task=args[0], fields={"u0": torch.zeros(32)}
                      if args[0] == "burgers" else None)
    assert main(["invert", *args, "--obs", str(path), "-o", str(tmp_path / "r.nc")]) == 2
    err = capsys.readouterr().err
    assert expect in err, err
    assert not (tmp_path / "r.nc").exists()


def test_scalar_without_its_fixed_field_says_what_to_give(tmp_path, capsys):
    _, _, x, t, y, _ = _burgers_trajectory_points(P=20)
    csv = tmp_path / "obs.csv"
    np.savetxt(csv, np.stack([x.numpy(), t.numpy(), y.numpy()], 1), delimiter=",", header="x,t,value", comments="")
    assert main(["invert", "burgers", "--unknown", "nu", "--obs", str(csv), "-o", str(tmp_path / "r.nc")]) == 2
    err = capsys.readouterr().err
    assert "'u0'" in err and "--unknown u0,nu" in err
