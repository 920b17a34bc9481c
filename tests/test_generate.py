"""Dataset generation: the data satisfy the PDE, seeding is independent of batching and Dask workers,
interrupted runs resume to the same file, recipes and the cache, the CLI."""
import numpy as np
import pytest
import torch

import pdeinv.data.generate as gen
from pdeinv.data.io import dataset_tensors, load_dataset
from pdeinv.tasks import TASKS, Task

RES = 12


@pytest.fixture(scope="module")
def reference():
    return gen.generate("darcy", 8, RES, seed=5, batch_size=3, verbose=False)


def test_darcy_data_satisfy_the_pde_and_the_law(reference):
    m, u = dataset_tensors(reference)
    assert set(torch.unique(m).tolist()) == {3.0, 12.0}
    grid, problem = TASKS["darcy"].make(RES)
    r = problem.residual(m, u)
    # the residual is scaled like the PDE (f = 1), so round-off level means the pair (m, u) solves it
    assert float(r.abs().max()) < 1e-9
    assert float(u[..., 0, :].abs().max()) == 0.0 and float(u.abs().max()) > 1e-3
    assert reference.attrs["task"] == "darcy" and reference.attrs["seed"] == 5 and "law" in reference.attrs


def test_seeding_independent_of_batch_size_and_prefix(reference):
    other = gen.generate("darcy", 8, RES, seed=5, batch_size=8, verbose=False)
    assert other.identical(reference)
    prefix = gen.generate("darcy", 5, RES, seed=5, batch_size=2, verbose=False)
    assert prefix.identical(reference.isel(sample=slice(0, 5)))
    tail = gen.generate("darcy", 3, RES, seed=5, start=5, verbose=False)   # a recipe's test split
    np.testing.assert_array_equal(tail["m"].values, reference["m"].values[5:])
    assert list(tail["sample"].values) == [5, 6, 7]
    m_other = gen.generate("darcy", 8, RES, seed=6, verbose=False)["m"].values
    assert not np.array_equal(m_other, reference["m"].values)
    # the rule itself: sample i is the task's draw with seed sample_seed(seed, i)
    grid = TASKS["darcy"].grid(RES)
    m3 = TASKS["darcy"].sample_m(grid, 1, seed=gen.sample_seed(5, 3))
    np.testing.assert_array_equal(m3[0, 0].numpy(), reference["m"].values[3])


def test_dask_two_workers_equals_serial(tmp_path, reference):
    ds = gen.generate("darcy", 8, RES, seed=5, batch_size=2, verbose=False, workers=2, out=tmp_path / "d.zarr").load()
    np.testing.assert_array_equal(ds["m"].values, reference["m"].values)
    np.testing.assert_array_equal(ds["u"].values, reference["u"].values)
    assert ds.attrs == reference.attrs
    assert ds.identical(reference)
    assert not (tmp_path / "d.zarr.parts").exists()


def test_resume_after_interruption(tmp_path, monkeypatch, reference):
    out = tmp_path / "d.nc"
    real = gen._solve_chunk
    calls = []

    def failing(task, res, seed, start, stop, *a, **k):
        if start >= 6:
            raise KeyboardInterrupt("simulated kill")
        calls.append(start)
        return real(task, res, seed, start, stop, *a, **k)

    monkeypatch.setattr(gen, "_solve_chunk", failing)
    with pytest.raises(KeyboardInterrupt):
        gen.generate("darcy", 8, RES, seed=5, batch_size=3, verbose=False, out=out)
    assert not out.exists() and sorted(p.name for p in (tmp_path / "d.nc.parts").glob("part-*")) == \
        ["part-000000000-000000003.nc", "part-000000003-000000006.nc"]

    def counting(task, res, seed, start, stop, *a, **k):
        calls.append(start)
        return real(task, res, seed, start, stop, *a, **k)

    monkeypatch.setattr(gen, "_solve_chunk", counting)
    calls.clear()
    ds = gen.generate("darcy", 8, RES, seed=5, batch_size=3, verbose=False, out=out, keep_parts=True)
    assert calls == [6]                      # only the missing chunk was computed
    assert ds.identical(reference) and load_dataset(out).identical(reference)
    # a lost part is regenerated, the others reused
    (tmp_path / "d.nc.parts" / "part-000000003-000000006.nc").unlink()
    calls.clear()
    assert gen.generate("darcy", 8, RES, seed=5, batch_size=3, verbose=False, out=out).identical(reference)
    assert calls == [3] and not (tmp_path / "d.nc.parts").exists()
    # parts of a different run are not mixed in
    (tmp_path / "e.nc.parts").mkdir()
    (tmp_path / "e.nc.parts" / "manifest.json").write_text('{"seed": 1}')
    with pytest.raises(ValueError, match="parts of a different generation run"):
        gen.generate("darcy", 8, RES, seed=5, verbose=False, out=tmp_path / "e.nc")


def test_time_series_task_gets_a_time_dim():
    from pdeinv.physics import Grid2D

    class Decay(torch.nn.Module):
        record_times = [0.0, 0.5, 1.0]

        def forward(self, m):
            return torch.stack([m * np.exp(-t) for t in self.record_times], 1)

    task = Task(name="decay", grid=lambda r: Grid2D(r), problem=lambda g, **k: Decay(),
                sample_m=lambda g, n, seed=0: torch.randn(n, 1, *g.shape, generator=torch.Generator().manual_seed(seed),
                                                          dtype=torch.float64), attrs={"law": "white noise"})
    ds = gen.generate(task, 4, 6, seed=0, batch_size=3, verbose=False)
    assert ds["u"].dims == ("sample", "time", "x", "y")
    np.testing.assert_array_equal(ds["time"].values, [0.0, 0.5, 1.0])
    m, u = dataset_tensors(ds)
    torch.testing.assert_close(u[:, 2], m * np.exp(-1.0), rtol=1e-15, atol=0)


def test_recipes_cache_and_cli(tmp_path, monkeypatch):
    from pathlib import Path
    for p in sorted(Path(__file__).resolve().parents[1].glob("datasets/*.toml")):
        rec = gen.load_recipe(p)
        assert rec["task"] in TASKS and rec["res"] >= 16 and rec["n_test"] >= 1
    for name in ("darcy", "poisson", "helmholtz"):
        assert gen.load_recipe(Path(__file__).resolve().parents[1] / "datasets" / f"{name}.toml")["res"] == 64
    with pytest.raises(ValueError, match=r"lacks the keys \['seed'\]"):
        gen.load_recipe({"task": "darcy", "res": 8, "n_train": 2, "n_test": 1})
    with pytest.raises(ValueError, match="unknown task 'nope'"):
        gen.load_recipe({"task": "nope", "res": 8, "n_train": 2, "n_test": 1, "seed": 0})

    rec = {"task": "poisson", "res": 10, "n_train": 4, "n_test": 2, "seed": 1}
    n_calls = []
    real = gen.generate
    monkeypatch.setattr(gen, "generate", lambda *a, **k: (n_calls.append(1), real(*a, **k))[1])
    monkeypatch.setenv("PDEINV_CACHE", str(tmp_path / "cache"))
    test1 = gen.cached_dataset(rec, "test")
    test2 = gen.cached_dataset(dict(rec, description="same data"), "test")
    assert len(n_calls) == 1 and test2.identical(test1)
    assert list(test1["sample"].values) == [4, 5]
    gen.cached_dataset(dict(rec, seed=2), "test")                 # new content -> new file
    assert len(n_calls) == 2 and len(list((tmp_path / "cache").glob("*.nc"))) == 2
    train = gen.cached_dataset(rec, "train", n=3)
    assert train.sizes["sample"] == 3

    from pdeinv.cli.app import main
    out = tmp_path / "cli.nc"
    assert main(["generate", "darcy", "--n", "3", "--res", "10", "--seed", "5", "-o", str(out), "--quiet"]) == 0
    np.testing.assert_array_equal(load_dataset(out)["m"].values,
                                  real("darcy", 3, 10, seed=5, verbose=False)["m"].values)
    recipe = tmp_path / "r.toml"
    recipe.write_text('task = "poisson"\nres = 10\nn_train = 4\nn_test = 2\nseed = 1\n')
    assert main(["generate", "--recipe", str(recipe), "--split", "test", "-o", str(tmp_path / "t.nc"), "--quiet"]) == 0
    assert load_dataset(tmp_path / "t.nc").identical(test1)
    assert main(["generate", "nosuchtask", "--n", "2", "-o", str(tmp_path / "x.nc"), "--quiet"]) == 2
