"""The command line: demo -> observations file -> invert reproduces the demo's inversion; clear errors."""
import json
import subprocess
import sys

import numpy as np
import pytest
import xarray as xr

from pdeinv.cli.app import main


def test_demo_then_invert_roundtrip(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--res", "32", "--max-iter", "60", "--quiet", "-o", str(out), "--seed", "3"]) == 0
    metrics = json.loads((out / "metrics_darcy.json").read_text())
    assert metrics["res"] == 32
    for f in ("darcy_inverse.nc", "darcy_inverse.png", "observations.nc"):
        assert (out / f).stat().st_size > 0
    demo = xr.load_dataset(out / "darcy_inverse.nc", engine="h5netcdf")
    truth = demo["m_true"].values
    assert set(np.unique(truth)) == {3.0, 12.0}
    # the reported error rate is that of the saved result, and beats the best data-blind answer (the majority
    # class everywhere, error rate = the minority fraction) by at least 20 %
    rate = float(np.mean((demo["m"].values >= 7.5) != (truth >= 7.5)))
    assert metrics["samples"][0]["error_rate"] == pytest.approx(rate, abs=1e-6)
    frac = float(np.mean(truth >= 7.5))
    assert rate < 0.8 * min(frac, 1 - frac), (rate, frac)
    # the user's path: invert the observations the demo wrote, with the same (task default) settings
    res = tmp_path / "inv.nc"
    assert main(["invert", "darcy", "--obs", str(out / "observations.nc"), "--quiet", "-o", str(res),
                 "--opt", "max_iter=60"]) == 0
    inv = xr.load_dataset(res, engine="h5netcdf")
    np.testing.assert_allclose(inv["m"].values, demo["m"].values, rtol=1e-8, atol=1e-8)
    assert "misfit" in capsys.readouterr().out


def test_invert_errors_are_clear(tmp_path, capsys):
    assert main(["invert", "darcy", "--obs", str(tmp_path / "missing.nc"), "--quiet"]) == 2
    assert "does not exist" in capsys.readouterr().err
    bad = tmp_path / "bad.nc"
    bad.write_bytes(b"\x89HDF\r\n\x1a\n this is not a netCDF file")
    assert main(["invert", "darcy", "--obs", str(bad), "--quiet", "--res", "16"]) == 2
    assert "cannot read" in capsys.readouterr().err
    assert main(["invert", "nosuchtask", "--obs", str(bad), "--quiet"]) == 2
    assert "unknown task" in capsys.readouterr().err


def test_console_script_help():
    r = subprocess.run([sys.executable, "-m", "pdeinv.cli.app", "--help"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0
    for cmd in ("generate", "train", "invert", "benchmark", "demo"):
        assert cmd in r.stdout


def test_invert_reads_a_mesh_file(tmp_path):
    """Sensors + values written to a VTU point cloud (as another code would) are inverted like the netCDF file:
    the same sensors and values in an observations netCDF give the same recovered field."""
    import meshio
    import torch
    import pdeinv as pi
    from pdeinv.cli.observations import save_observations
    task = pi.tasks.TASKS["darcy"]
    grid, prob = task.make(24)
    a = task.sample_m(grid, 1, seed=4)
    obs = pi.PointObservation.random(grid, fraction=0.1, seed=5)
    y = pi.ForwardModel(prob, obs)(a)
    pts = obs.points.numpy()
    mesh = meshio.Mesh(np.c_[pts, np.zeros(len(pts))], [("vertex", np.arange(len(pts))[:, None])],
                       point_data={"pressure": y[0, 0].numpy()})
    mesh.write(tmp_path / "sensors.vtu")
    save_observations(tmp_path / "sensors.nc", obs.points, y, task="darcy", res=24)
    common = ["--res", "24", "--sigma", "1e-4", "--quiet", "--opt", "max_iter=80"]
    assert main(["invert", "darcy", "--obs", str(tmp_path / "sensors.vtu"), "--field", "pressure",
                 "-o", str(tmp_path / "inv_vtu.nc")] + common) == 0
    assert main(["invert", "darcy", "--obs", str(tmp_path / "sensors.nc"), "-o", str(tmp_path / "inv_nc.nc")]
                + common) == 0
    m_vtu = xr.load_dataset(tmp_path / "inv_vtu.nc", engine="h5netcdf")["m"].values
    m_nc = xr.load_dataset(tmp_path / "inv_nc.nc", engine="h5netcdf")["m"].values
    np.testing.assert_allclose(m_vtu, m_nc, rtol=1e-8, atol=1e-8)
    # and the recovery beats the best data-blind answer (the majority class everywhere) by at least 20 %
    m = torch.as_tensor(m_vtu)[:, None]
    frac = float((a >= 7.5).double().mean())
    assert float(pi.metrics.error_rate(m, a)) < 0.8 * min(frac, 1 - frac), (float(pi.metrics.error_rate(m, a)), frac)
