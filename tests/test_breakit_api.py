"""Break-it suite, Python API: every bad input gets a ``ValueError``/``TypeError`` (``FileNotFoundError``
for a missing file) that names what was wrong and what was expected, and the behaviours that were once
silently wrong stay right: exact data are weighted by the stated rule, batches are independent, seeds
reproduce.  Parametrised over :data:`CASES`; the count of cases tried and handled goes to
``benchmarks/results/robustness.md`` (written by ``tests/conftest.py`` at the end of a run that ran them all).

Tiny grids (8-16²) only: the whole file runs in a few seconds.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional, Tuple, Type

import pytest
import torch

import pdeinv as pi
from pdeinv.physics import ForwardModel, GaussianNoise, Grid1D, Grid2D, PointObservation
from pdeinv.tasks import TASKS

RES = 12


@dataclass(frozen=True)
class Case:
    id: str
    group: str
    what: str
    run: Callable[[dict], object]
    raises: Optional[Tuple[Type[BaseException], ...]] = (ValueError, TypeError)
    needle: str = ""            # a word the message must contain (what was wrong / what was expected)


# ----------------------------------------------------------------------------- fixtures the cases share
def _setup():
    task = TASKS["darcy"]
    grid, problem = task.make(RES)
    a = task.sample_m(grid, 2, seed=1)
    obs = PointObservation.random(grid, fraction=0.2, seed=2)
    fwd = ForwardModel(problem, obs, GaussianNoise(relative=0.01))
    y = fwd(a, seed=3)
    ptask = TASKS["poisson"]
    pgrid, pprob = ptask.make(8)
    prior, _ = ptask.latent(pgrid)
    f = prior.sample(2, seed=4)
    pobs = PointObservation.random(pgrid, fraction=0.3, seed=5)
    pfwd = ForwardModel(pprob, pobs, GaussianNoise(relative=0.05))
    py = pfwd(f, seed=6)
    return dict(task=task, grid=grid, problem=problem, a=a, obs=obs, fwd=fwd, y=y,
                ptask=ptask, pgrid=pgrid, pprob=pprob, prior=prior, f=f, pobs=pobs, pfwd=pfwd, py=py)


def _map(c, **kw):
    from pdeinv.solvers import build
    return build("map", "darcy", RES, **{"max_iter": 3, **kw})


def _mcmc(c, n=12):
    from pdeinv.solvers import build
    return build("mcmc", c["ptask"], 8, n_samples=n, n_chains=2)


def _fno(grid_n=RES):
    from pdeinv.surrogates.training import build_operator
    model = build_operator("fno", 1, 1, (grid_n, grid_n), modes=2, width=4, layers=1)
    model.trained_on = {"task": "darcy", "grid": Grid2D(grid_n).to_dict()}
    return model


def _sparse(grid_n=RES):
    from pdeinv.surrogates import SparseOperator
    return SparseOperator("fno", 1, 1, [grid_n, grid_n], options=dict(modes=2, width=4, layers=1))


# ----------------------------------------------------------------------------- positive behaviours
def _exact_data_rule(c, noise):
    """Exact data: MAP with the task's prior moves off the prior's constant field, and says what it assumed."""
    fwd = ForwardModel(c["problem"], c["obs"], noise)
    y = fwd(c["a"][:1])
    assert fwd.noise_assumed and "0.01" in fwd.noise_assumed
    s = fwd.noise_std(y)
    assert torch.allclose(s.flatten(), 0.01 * y.pow(2).mean().sqrt().flatten())
    r = _map(c, max_iter=15)(y, fwd)
    assert "noise_assumed" in r.info
    assert float(r.m.std()) > 0.1, "the exact-data solution is the prior's constant field"


def _batch_independent(solve, y):
    both = solve(y)
    for b in range(y.shape[0]):
        alone = solve(y[b:b + 1])
        assert torch.equal(both[b:b + 1], alone), f"sample {b}: a batch changes its answer"


def _mcmc_batch(c):
    s = _mcmc(c)
    _batch_independent(lambda yy: s(yy, c["pfwd"], seed=0).m, c["py"])
    dup = torch.cat([c["py"][:1], c["py"][:1]])
    m = s(dup, c["pfwd"], seed=0).m
    assert torch.equal(m[0], m[1]), "two identical problems in one batch got different answers"


def _amortized_batch(c):
    from pdeinv.solvers import Amortized
    model = _sparse()
    _batch_independent(lambda yy: Amortized(model)(yy, c["fwd"]).m, c["y"])


def _physics_batch(c):
    _batch_independent(lambda aa: c["problem"](aa), c["a"])


def _seeds(c):
    g = c["grid"]
    assert torch.equal(PointObservation.random(g, fraction=0.2, seed=7).points,
                       PointObservation.random(g, fraction=0.2, seed=7).points)
    assert not torch.equal(PointObservation.random(g, fraction=0.2, seed=7).points,
                           PointObservation.random(g, fraction=0.2, seed=8).points)
    assert torch.equal(c["fwd"](c["a"], seed=9), c["fwd"](c["a"], seed=9))
    assert not torch.equal(c["fwd"](c["a"], seed=9), c["fwd"](c["a"], seed=10))
    s = _mcmc(c)
    r1, r2, r3 = (s(c["py"], c["pfwd"], seed=k).m for k in (0, 0, 1))
    assert torch.equal(r1, r2) and not torch.equal(r1, r3)
    assert torch.equal(c["task"].sample_m(g, 1, seed=3), c["task"].sample_m(g, 1, seed=3))


def _fno_other_grid(c):
    """A resolution-free FNO trained on 12² runs on 16², logged and recorded in result.info."""
    from pdeinv.solvers import build
    grid, problem = c["task"].make(16)
    obs = PointObservation.random(grid, fraction=0.2, seed=2)
    fwd = ForwardModel(problem, obs, GaussianNoise(relative=0.01))
    y = fwd(c["task"].sample_m(grid, 1, seed=1), seed=3)
    s = build("surrogate-map", "darcy", 16, model=_fno(RES), max_iter=2)
    r = s(y, fwd)
    assert "12, 12" in r.info["model_grid"] and "16, 16" in r.info["model_grid"]


def _trained_on_roundtrip(c):
    import tempfile
    from pdeinv.surrogates import load
    model = _fno()
    with tempfile.TemporaryDirectory() as d:
        model.save(f"{d}/fno.pt")
        back = load(f"{d}/fno.pt")
    assert back.trained_on["grid"]["n"] == [RES, RES] and "trained_on" not in back.config


# ----------------------------------------------------------------------------- file-level helpers
_TMP: list = []


def _tmpfile(content: bytes, suffix=".nc"):
    import tempfile
    fd, p = tempfile.mkstemp(suffix=suffix)
    with open(fd, "wb") as fh:
        fh.write(content)
    _TMP.append(p)
    return p


def _load_corrupt(c):
    from pdeinv.data.io import load_dataset
    return load_dataset(_tmpfile(b"\x89HDF\r\n\x1a\n garbage"))


def _save_to_dir(c):
    import tempfile
    from pdeinv.data.generate import generate
    from pdeinv.data.io import save_dataset
    ds = generate("darcy", 1, 8, verbose=False)
    with tempfile.TemporaryDirectory() as d:
        save_dataset(ds, d)


def _write_on_mesh(c, shape, same=False):
    import tempfile
    from pdeinv.data.mesh import export_field, write_on_mesh
    g = Grid2D(RES)
    with tempfile.TemporaryDirectory() as d:
        export_field(f"{d}/m.vtu", g, {"a": torch.ones(1, 1, RES, RES)})
        write_on_mesh(f"{d}/m.vtu", f"{d}/m.vtu" if same else f"{d}/o.vtu", g, {"a": torch.ones(*shape)})


def _write_on_mesh_bare(c):
    """A bare (nx, ny) field is written (it used to fail with "built for (12, 12); got (12, 12)")."""
    _write_on_mesh(c, (RES, RES))


def _load_ckpt_corrupt(c):
    from pdeinv.surrogates import load
    return load(_tmpfile(b"not a checkpoint", ".pt"))


# ----------------------------------------------------------------------------- the cases
CASES = [
    # observations y
    Case("y-1d", "shapes", "1-D y", lambda c: _map(c)(c["y"][0, 0], c["fwd"]), needle="(B, C, P)"),
    Case("y-int", "dtypes", "integer y", lambda c: _map(c)(c["y"].long(), c["fwd"]), needle="floating"),
    Case("y-complex", "dtypes", "complex y", lambda c: _map(c)(c["y"].to(torch.complex128), c["fwd"]),
         needle="floating"),
    Case("y-bool", "dtypes", "boolean y", lambda c: _map(c)(c["y"] > 0, c["fwd"]), needle="floating"),
    Case("y-numpy", "dtypes", "NumPy y", lambda c: _map(c)(c["y"].numpy(), c["fwd"]), needle="torch.Tensor"),
    Case("y-list", "dtypes", "list y", lambda c: _map(c)(c["y"].tolist(), c["fwd"]), needle="torch.Tensor"),
    Case("y-length", "shapes", "y with the wrong number of points", lambda c: _map(c)(c["y"][..., :-1], c["fwd"]),
         needle="observation operator"),
    Case("y-nan", "values", "NaN in y", lambda c: _map(c)(c["y"] * float("nan"), c["fwd"]), needle="NaN"),
    Case("y-inf", "values", "inf in y", lambda c: _map(c)(c["y"] + float("inf"), c["fwd"]), needle="inf"),
    Case("y-mcmc-1d", "shapes", "1-D y to MCMC", lambda c: _mcmc(c)(c["py"][0, 0], c["pfwd"]), needle="(B, C, P)"),
    Case("y-pinn-int", "dtypes", "integer y to the PINN", lambda c: pi.solvers.build("pinn", "darcy", RES)(
        c["y"].long(), c["fwd"]), needle="floating"),
    Case("y-amortized-1d", "shapes", "1-D y to an inverse operator",
         lambda c: pi.solvers.Amortized(_sparse())(c["y"][0, 0], c["fwd"]), needle="(B, C, P)"),
    # the unknown m
    Case("m-complex", "dtypes", "complex m", lambda c: c["fwd"](c["a"].to(torch.complex128)), needle="real"),
    Case("m-int", "dtypes", "integer m", lambda c: c["fwd"](c["a"].long()), needle="floating"),
    Case("m-numpy", "dtypes", "NumPy m", lambda c: c["fwd"](c["a"].numpy()), needle="torch.Tensor"),
    Case("m-grid", "shapes", "m on another grid", lambda c: c["fwd"](torch.ones(1, 1, 8, 8, dtype=torch.float64)),
         needle="(B, C, 12, 12)"),
    Case("m-bare", "shapes", "m without batch/channel axes", lambda c: c["fwd"](c["a"][0, 0]), needle="(B, C, 12, 12)"),
    Case("m-solve-complex", "dtypes", "complex m to fwd.solve", lambda c: c["fwd"].solve(c["a"] * 1j), needle="real"),
    Case("m-surrogate-int", "dtypes", "integer m to a surrogate forward model",
         lambda c: pi.SurrogateForward(_fno(), c["obs"])(c["a"].long()), needle="floating"),
    # initial guesses
    Case("m0-shape", "shapes", "m0 of the wrong shape",
         lambda c: _map(c, m0=torch.full((1, 1, 8, 8), 7.0, dtype=torch.float64))(c["y"], c["fwd"]), needle="m0"),
    Case("m0-batch", "shapes", "m0 with 3 samples for 2 problems",
         lambda c: _map(c, m0=torch.full((3, 1, RES, RES), 7.0, dtype=torch.float64))(c["y"], c["fwd"]),
         needle="samples"),
    Case("m0-complex", "dtypes", "complex m0",
         lambda c: _map(c, m0=torch.full((1, 1, RES, RES), 7.0, dtype=torch.complex128))(c["y"], c["fwd"]),
         needle="real"),
    Case("m0-nan", "values", "NaN m0",
         lambda c: _map(c, m0=torch.full((1, 1, RES, RES), float("nan"), dtype=torch.float64))(c["y"], c["fwd"]),
         needle="NaN"),
    Case("m0-call", "shapes", "wrong-shape m0 passed to the call",
         lambda c: _map(c)(c["y"], c["fwd"], m0=torch.ones(1, 1, 5, 5, dtype=torch.float64)), needle="m0"),
    # seeds
    Case("seed-negative", "seeds", "seed=-1", lambda c: _mcmc(c)(c["py"], c["pfwd"], seed=-1), needle=">= 0"),
    Case("seed-float", "seeds", "seed=1.5", lambda c: _mcmc(c)(c["py"], c["pfwd"], seed=1.5), needle="integer"),
    Case("seed-str", "seeds", "seed='0'", lambda c: _map(c)(c["y"], c["fwd"], seed="0"), needle="integer"),
    Case("seed-bool", "seeds", "seed=True", lambda c: _map(c)(c["y"], c["fwd"], seed=True), needle="integer"),
    # noise models
    Case("noise-negative", "values", "GaussianNoise(sigma=-1)", lambda c: GaussianNoise(sigma=-1.0), needle=">= 0"),
    Case("noise-inf", "values", "GaussianNoise(relative=inf)", lambda c: GaussianNoise(relative=math.inf),
         needle="finite"),
    Case("noise-nan", "values", "GaussianNoise(sigma=nan)", lambda c: GaussianNoise(sigma=math.nan), needle=">= 0"),
    Case("noise-none", "values", "GaussianNoise()", lambda c: GaussianNoise(), needle="exactly one"),
    Case("noise-both", "values", "GaussianNoise(sigma=, relative=)", lambda c: GaussianNoise(sigma=1.0, relative=0.1),
         needle="exactly one"),
    Case("noise-str", "dtypes", "GaussianNoise(sigma='a')", lambda c: GaussianNoise(sigma="a"), needle="number"),
    # grids and observations
    Case("grid-0", "values", "Grid2D(0)", lambda c: Grid2D(0), needle=">= 3"),
    Case("grid-2", "values", "Grid2D(2)", lambda c: Grid2D(2), needle=">= 3"),
    Case("grid1d-frac", "values", "Grid1D(10.5)", lambda c: Grid1D(10.5), needle="integer"),
    Case("grid-length", "values", "Grid2D(8, length=0)", lambda c: Grid2D(8, length=0.0), needle="positive"),
    Case("obs-fraction-0", "values", "PointObservation.random(fraction=0)",
         lambda c: PointObservation.random(c["grid"], fraction=0.0, seed=0), needle="(0, 1]"),
    Case("obs-outside", "values", "sensors outside the domain",
         lambda c: PointObservation(c["grid"], torch.tensor([[0.5, 1.5]], dtype=torch.float64)), needle="domain"),
    Case("obs-grid", "shapes", "observation on another grid",
         lambda c: ForwardModel(c["problem"], PointObservation.random(Grid2D(8), fraction=0.2, seed=0)),
         needle="grid mismatch"),
    Case("obs-bare-field", "shapes", "a bare (nx, ny) field to an observation", lambda c: c["obs"](c["a"][0, 0]),
         needle="leading axes"),
    # building solvers
    Case("build-unknown", "values", "unknown method", lambda c: pi.solvers.build("nonsense", "darcy", RES),
         needle="available"),
    Case("build-option", "values", "unknown option", lambda c: pi.solvers.build("map", "darcy", RES, max_iterr=3),
         needle="its options are"),
    Case("build-no-model", "values", "surrogate-map without a model",
         lambda c: pi.solvers.build("surrogate-map", "darcy", RES), needle="needs --model"),
    Case("build-grid-tied", "shapes", "a grid-tied model on another grid",
         lambda c: pi.solvers.build("amortized", "darcy", 16, model=_sparse(RES)), needle="trained on a"),
    Case("mcmc-n", "values", "MCMC(n_samples=2)", lambda c: pi.solvers.MCMC(c["prior"], n_samples=2),
         needle="n_samples >= 4"),
    Case("mcmc-step", "values", "MCMC(step=1.5)", lambda c: pi.solvers.MCMC(c["prior"], step=1.5), needle="(0, 1]"),
    # files
    Case("load-corrupt", "files", "a corrupt netCDF dataset", _load_corrupt, needle="cannot read"),
    Case("load-missing", "files", "a missing dataset",
         lambda c: pi.data.io.load_dataset("/nonexistent/d.nc"), raises=(FileNotFoundError,), needle="no such"),
    Case("save-to-folder", "files", "save_dataset onto a folder", _save_to_dir, needle="folder"),
    Case("ckpt-corrupt", "files", "a corrupt checkpoint", _load_ckpt_corrupt, needle="not a readable"),
    Case("mesh-shape", "shapes", "write_on_mesh with a field of another grid", lambda c: _write_on_mesh(c, (8, 8)),
         needle="expected (..., 12, 12)"),
    Case("mesh-same-file", "files", "write_on_mesh onto its input mesh",
         lambda c: _write_on_mesh(c, (RES, RES), same=True), needle="replace its input"),
    Case("generate-workers-0", "values", "generate(workers=0)",
         lambda c: pi.data.generate.generate("darcy", 2, 8, workers=0, verbose=False), needle="workers"),
    Case("generate-n-0", "values", "generate(n=0)", lambda c: pi.data.generate.generate("darcy", 0, 8, verbose=False),
         needle=">= 1"),
    Case("generate-batch-0", "values", "generate(batch_size=0)",
         lambda c: pi.data.generate.generate("darcy", 2, 8, batch_size=0, verbose=False), needle=">= 1"),
    # behaviours that were once silently wrong
    Case("exact-none", "noise", "exact data, no noise model: weighted as 1 %, recorded",
         lambda c: _exact_data_rule(c, None), raises=None),
    Case("exact-sigma-0", "noise", "exact data, GaussianNoise(sigma=0): weighted as 1 %, recorded",
         lambda c: _exact_data_rule(c, GaussianNoise(sigma=0.0)), raises=None),
    Case("exact-relative-0", "noise", "exact data, GaussianNoise(relative=0): weighted as 1 %, recorded",
         lambda c: _exact_data_rule(c, GaussianNoise(relative=0.0)), raises=None),
    Case("batch-mcmc", "batches", "MCMC: each problem of a batch gets its answer alone", _mcmc_batch, raises=None),
    Case("batch-amortized", "batches", "inverse operator: batch = one by one", _amortized_batch, raises=None),
    Case("batch-physics", "batches", "Darcy solve: batch = one by one", _physics_batch, raises=None),
    Case("seeds", "seeds", "same seed same result, another seed another (points, noise, MCMC, laws)", _seeds,
         raises=None),
    Case("fno-other-grid", "shapes", "a resolution-free FNO on another grid: logged and recorded", _fno_other_grid,
         raises=None),
    Case("trained-on", "files", "the training grid survives a checkpoint round trip, config unchanged",
         _trained_on_roundtrip, raises=None),
    Case("mesh-bare-field", "shapes", "write_on_mesh with a bare (nx, ny) field", _write_on_mesh_bare, raises=None),
]


def case_nodeids():
    """Node ids of the parametrised cases (what tests/conftest.py counts for robustness.md)."""
    return [f"tests/test_breakit_api.py::test_api_case[{c.id}]" for c in CASES]


@pytest.fixture(scope="module")
def ctx():
    yield _setup()
    import os
    for p in _TMP:
        if os.path.exists(p):
            os.unlink(p)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_api_case(case, ctx):
    if case.raises is None:
        case.run(ctx)
        return
    with pytest.raises(case.raises) as err:
        case.run(ctx)
    msg = str(err.value)
    assert case.needle in msg, f"{case.id}: the message does not say {case.needle!r}: {msg}"
    assert "\n" not in msg.strip() and len(msg) < 600, f"{case.id}: not one clear line: {msg!r}"


def test_case_ids_unique():
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids))
