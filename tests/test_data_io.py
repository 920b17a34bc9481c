"""Dataset schema, netCDF/zarr round trips, bad files, InverseResult export, torch datasets."""

import numpy as np
import pytest
import torch

from pdeinv.data import io as dio
from pdeinv.data.datasets import FieldDataset, UnitGaussianNormalizer, train_test_split
from pdeinv.physics import GaussianRandomField, Grid1D, Grid2D


def _dataset(n=6, res=10, seed=0, series=False):
    grid = Grid2D(res)
    m = GaussianRandomField(grid, basis="cosine").sample(n, seed=seed)
    u = torch.sin(m) if not series else torch.stack([k * m for k in (0.5, 1.0, 2.0)], 1)
    return dio.build_dataset(m, u, grid, task="toy", law="GRF(2, 3)", seed=seed, m_name="a", u_name="p",
                             times=[0.1, 0.2, 0.3] if series else None,
                             attrs={"k": 1.5, "nested": {"a": [1, 2]}, "flag": True, "note": "x"}), m, u


@pytest.mark.parametrize("suffix", [".nc", ".zarr"])
def test_roundtrip_preserves_values_coords_attrs(tmp_path, suffix):
    ds, m, u = _dataset()
    path = dio.save_dataset(ds, tmp_path / f"d{suffix}")
    back = dio.load_dataset(path)
    assert back.identical(ds)
    assert back.attrs["nested"] == {"a": [1, 2]} and back.attrs["flag"] is True and back.attrs["k"] == 1.5
    np.testing.assert_array_equal(back["x"].values, Grid2D(10).coords()[0].numpy())
    m2, u2 = dio.dataset_tensors(back)
    assert torch.equal(m2, m) and torch.equal(u2, u)
    assert dio.grid_of(back) == Grid2D(10)
    # overwriting is atomic and leaves no temporary files behind
    dio.save_dataset(ds, path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"d{suffix}"]


def test_time_series_and_1d(tmp_path):
    ds, m, u = _dataset(series=True)
    assert ds["u"].dims == ("sample", "time", "x", "y")
    back = dio.load_dataset(dio.save_dataset(ds, tmp_path / "ts.nc"))
    np.testing.assert_array_equal(back["time"].values, [0.1, 0.2, 0.3])
    m2, u2 = dio.dataset_tensors(back)
    assert u2.shape == (6, 3, 1, 10, 10) and torch.equal(u2, u)
    g1 = Grid1D(16)
    m1 = GaussianRandomField(g1).sample(3, seed=1)
    ds1 = dio.build_dataset(m1, 2 * m1, g1, task="toy1", law="grf", seed=1)
    back1 = dio.load_dataset(dio.save_dataset(ds1, tmp_path / "one.nc"))
    assert back1["m"].dims == ("sample", "x")
    assert torch.equal(dio.dataset_tensors(back1)[1], 2 * m1)


def _raw_write(ds, path):
    """Write without save_dataset's checks (to make broken files)."""
    ds = ds.copy()
    ds.attrs = dio.encode_attrs(ds.attrs)
    ds.to_netcdf(path, engine="h5netcdf")


def test_bad_files_raise_clear_errors(tmp_path):
    ds, _, _ = _dataset()
    with pytest.raises(FileNotFoundError, match="no such dataset"):
        dio.load_dataset(tmp_path / "missing.nc")
    good = dio.save_dataset(ds, tmp_path / "good.nc")
    raw = good.read_bytes()
    (tmp_path / "trunc.nc").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ValueError, match="cannot read .*trunc.nc"):
        dio.load_dataset(tmp_path / "trunc.nc")
    (tmp_path / "junk.nc").write_bytes(b"not a netcdf file at all" * 10)
    with pytest.raises(ValueError, match="cannot read"):
        dio.load_dataset(tmp_path / "junk.nc")
    # wrong schema: each fault is named
    _raw_write(ds.drop_vars("u"), tmp_path / "nou.nc")
    with pytest.raises(ValueError, match="variable 'u' is missing"):
        dio.load_dataset(tmp_path / "nou.nc")
    bad = ds.copy()
    del bad.attrs["law"]
    _raw_write(bad, tmp_path / "nolaw.nc")
    with pytest.raises(ValueError, match=r"attributes \['law'\] are missing"):
        dio.load_dataset(tmp_path / "nolaw.nc")
    _raw_write(ds.rename({"y": "z"}), tmp_path / "dims.nc")
    with pytest.raises(ValueError, match=r"m has dims \('sample', 'x', 'z'\)"):
        dio.load_dataset(tmp_path / "dims.nc")
    other = ds.copy()
    other.attrs["schema"] = "something/2"
    _raw_write(other, tmp_path / "schema.nc")
    with pytest.raises(ValueError, match="schema is 'something/2'"):
        dio.load_dataset(tmp_path / "schema.nc")
    nan = ds.copy(deep=True)
    nan["u"][0, 3, 3] = np.nan
    with pytest.raises(ValueError, match="'u' contains 1 NaN"):
        dio.save_dataset(nan, tmp_path / "nan.nc")
    _raw_write(nan, tmp_path / "nan.nc")
    with pytest.raises(ValueError, match="'u' contains 1 NaN"):
        dio.load_dataset(tmp_path / "nan.nc")


def test_result_to_xarray(tmp_path):
    from pdeinv.solvers.base import InverseResult
    grid = Grid2D(8)
    gen = torch.Generator().manual_seed(0)
    samples = torch.randn(5, 2, 1, 8, 8, generator=gen, dtype=torch.float64)
    res = InverseResult(m=samples.mean(0), u=2 * samples.mean(0), samples=samples,
                        history={"loss": [3.0, 2.0, 1.0], "misfit": [1.0, 0.5, 0.2], "time": [0.1]},
                        info={"method": "test", "options": {"weight": 0.1}, "bounds": (3, 12)}, grid=grid)
    ds = res.to_xarray()
    path = tmp_path / "res.nc"
    ds.to_netcdf(path, engine="h5netcdf")        # non-scalar attrs were JSON-encoded
    back = dio.open_raw(path)
    np.testing.assert_array_equal(back["m"].values, res.m[:, 0].numpy())
    np.testing.assert_array_equal(back["samples"].values, samples[:, :, 0].numpy())
    np.testing.assert_allclose(back["std"].values, samples.std(0)[:, 0].numpy(), rtol=1e-14)
    assert back["samples"].dims == ("draw", "sample", "x", "y")
    np.testing.assert_array_equal(back["history_loss"].values, [3.0, 2.0, 1.0])
    assert back["history_loss"].dims == ("iteration",) and back["history_time"].dims == ("iteration_time",)
    assert back.attrs["options"] == {"weight": 0.1} and back.attrs["method"] == "test"
    np.testing.assert_array_equal(back["x"].values, grid.coords()[0].numpy())


def test_field_dataset_normalises_with_training_statistics_only():
    ds, m, u = _dataset(n=20, seed=3)
    tr, te = train_test_split(20, test=0.25, seed=7)
    tr2, te2 = train_test_split(20, test=0.25, seed=7)
    assert np.array_equal(tr, tr2) and len(te) == 5 and not set(tr) & set(te) and set(tr) | set(te) == set(range(20))
    train, test = FieldDataset.split(ds, test=0.25, seed=7)
    assert test.normalizers is train.normalizers
    # statistics are those of the training samples, pointwise
    np.testing.assert_allclose(train.input_normalizer.mean.numpy(), m[tr].mean(0).numpy(), rtol=1e-12)
    np.testing.assert_allclose(train.target_normalizer.std.numpy(), u[tr].std(0).numpy(), rtol=1e-12)
    x, y = train.tensors()
    assert x.dtype == torch.float32 and x.shape == (15, 1, 10, 10)
    np.testing.assert_allclose(x.double().mean(0).numpy(), 0, atol=1e-5)
    # the test set is encoded with the training statistics (so it is not standardised itself)
    xt, yt = test[0]
    expected = (m[te[0]] - train.input_normalizer.mean) / (train.input_normalizer.std + 1e-6)
    torch.testing.assert_close(xt, expected.float())
    torch.testing.assert_close(test.decode_target(yt.double()), u[te[0]], rtol=1e-6, atol=1e-6)
    # normaliser state survives a round trip (what a surrogate checkpoint stores)
    again = UnitGaussianNormalizer.from_state_dict(train.target_normalizer.state_dict())
    assert torch.equal(again.mean, train.target_normalizer.mean)
    raw = FieldDataset(ds, input="u", target="m", normalize=False)
    assert torch.equal(raw[2][1], m[2].float()) and raw.normalizers is None
    with pytest.raises(ValueError, match="expected 'm' or 'u'"):
        FieldDataset(ds, input="a")
