"""Neural-operator surrogates: learning, checkpoints, gradients through SurrogateForward,
sparse baselines and surrogate-accelerated MAP."""

import pytest
import torch
from torch.utils.data import TensorDataset

from pdeinv.checks import taylor_test
from pdeinv.metrics import relative_l2
from pdeinv.physics import ForwardModel, GaussianNoise, Grid1D, PointObservation
from pdeinv.surrogates import SURROGATES, DeepONet, FNO, SparseOperator, SurrogateForward, load
from pdeinv.surrogates.sparse import SparseDataset, random_mask, scatter_observations, sparse_input
from pdeinv.nn.training import train
from pdeinv.tasks import TASKS




@pytest.fixture(scope="module")
def darcy16():
    """260 Darcy pairs (a -> u) at 16^2 from the task's law: 160 train, 100 held out."""
    task = TASKS["darcy"]
    grid, problem = task.make(16)
    a = task.sample_m(grid, 260, seed=0)
    with torch.no_grad():
        u = problem(a)
    return grid, problem, a, u


@pytest.fixture(scope="module")
def trained_fno(darcy16):
    grid, problem, a, u = darcy16
    torch.manual_seed(0)
    x, y = a.float(), u.float()
    model = FNO(n_modes=(6, 6), hidden_channels=16, n_layers=3, seed=0)
    model.fit_normalizers(x[:160], y[:160])
    hist = train(model, TensorDataset(x[:160], y[:160]), TensorDataset(x[160:], y[160:]), epochs=25,
                 batch_size=10, lr=1e-2, seed=0, verbose=False)
    return model, hist


def _best_linear_map_error(x_train, y_train, x_test, y_test, lams=(1e1, 1e2, 1e3, 1e4, 1e5)):
    """Held-out relative L2 error of the best ridge-regularised affine map x -> y fitted to the same training pairs
    (centred, unpenalised intercept); the ridge weight is picked on the test set itself, so the baseline is
    optimistic."""
    xm, ym = x_train.flatten(1).mean(0), y_train.flatten(1).mean(0)
    X, Y = x_train.flatten(1) - xm, y_train.flatten(1) - ym
    errs = []
    for lam in lams:
        W = torch.linalg.solve(X.T @ X + lam * torch.eye(X.shape[1], dtype=X.dtype), X.T @ Y)
        pred = ((x_test.flatten(1) - xm) @ W + ym).reshape(y_test.shape)
        errs.append(float(relative_l2(pred, y_test).mean()))
    return min(errs)


def test_fno_beats_dataset_mean_and_best_linear_map_on_held_out_darcy(darcy16, trained_fno):
    """Seeded: 25 epochs on 160 samples.  On the 100 held-out pairs the FNO beats the dataset-mean predictor by 4x
    and the best (ridge, oracle weight) affine map fitted to the same 160 pairs: a -> u is nonlinear."""
    _, _, a, u = darcy16
    model, hist = trained_fno
    with torch.no_grad():
        pred = model(a[160:])                     # float64 in -> float64 out
    assert pred.dtype == torch.float64
    err = float(relative_l2(pred, u[160:]).mean())
    mean_pred = u[:160].mean(0, keepdim=True).expand_as(u[160:])
    err_mean = float(relative_l2(mean_pred, u[160:]).mean())
    err_linear = _best_linear_map_error(a[:160], u[:160], a[160:], u[160:])
    assert err < 0.25 * err_mean, (err, err_mean)
    assert err < 0.8 * err_linear, (err, err_linear)
    assert min(hist["val_loss"]) < 0.25 * hist["val_loss"][0]


def test_operators_learn_1d_smoothing_operator():
    r"""FNO (1-D) and DeepONet learn u = (1 - (2\pi)^{-2} d^2/dx^2)^{-1} m on a periodic grid of [0, 1) (exact in
    Fourier space: mode j is divided by 1 + j^2), from 200 pairs, judged on 50 held-out ones.

    The baselines are the trivial predictors, computed here on the same held-out pairs: the dataset mean, the
    identity u = m, and the spatial mean of m (exact for mode 0, which the operator leaves unchanged).  With the
    unit-length operator (-d^2/dx^2 + 1)^{-1} mode 1 is already divided by 40, the spatial mean of m is within 2 %
    of u and the test would say nothing; here it is ~30 % off, and each network must halve the best baseline's error.
    """
    from pdeinv.physics import GaussianRandomField
    grid = Grid1D(64, bc="periodic")
    m = GaussianRandomField(grid, alpha=1.5, tau=3.0).sample(250, seed=1)
    j = torch.fft.rfftfreq(64, d=1.0 / 64)                      # integer wavenumbers 0..32
    u = torch.fft.irfft(torch.fft.rfft(m, dim=-1) / (j ** 2 + 1.0), n=64, dim=-1)
    x, y = m.float(), u.float()
    errs = {}
    for name, model, lr, epochs in [
            ("fno", FNO(n_modes=(16,), hidden_channels=16, n_layers=2, seed=0), 5e-3, 12),
            ("deeponet", DeepONet((64,), branch_layers=[64], trunk_layers=[64], width=32, seed=0), 2e-3, 80)]:
        model.fit_normalizers(x[:200], y[:200])
        train(model, TensorDataset(x[:200], y[:200]), epochs=epochs, batch_size=25, lr=lr, seed=0, verbose=False)
        with torch.no_grad():
            errs[name] = float(relative_l2(model(x[200:]), y[200:]).mean())
    yt = y[200:]
    baselines = {"dataset mean": y[:200].mean(0, keepdim=True).expand_as(yt), "identity": x[200:],
                 "spatial mean of m": x[200:].mean(-1, keepdim=True).expand_as(yt)}
    base = {k: float(relative_l2(v, yt).mean()) for k, v in baselines.items()}
    best = min(base.values())
    assert errs["fno"] < 0.5 * best, (errs, base)
    assert errs["deeponet"] < 0.5 * best, (errs, base)


@pytest.mark.parametrize("kind", ["fno", "deeponet", "sparse"])
def test_save_load_gives_identical_outputs(tmp_path, kind):
    if kind == "fno":
        model = FNO(n_modes=(4, 4), hidden_channels=8, n_layers=2, seed=3)
    elif kind == "deeponet":
        model = DeepONet((12, 12), branch_layers=[32], trunk_layers=[32], width=16, seed=3)
    else:
        model = SparseOperator("fno", 1, 1, (12, 12), options=dict(modes=4, width=8, layers=2))
    cin = model.in_channels
    x = torch.randn(3, cin, 12, 12, generator=torch.Generator().manual_seed(0))
    model.fit_normalizers(x * 2 + 1, torch.randn(3, 1, 12, 12) * 5 - 2)
    path = model.save(tmp_path / "model.pt")
    again = load(path)
    assert type(again) is SURROGATES[kind] and again.config == model.config
    with torch.no_grad():
        assert torch.equal(again(x), model.eval()(x))
    assert torch.equal(again.output_normalizer.std, model.output_normalizer.std)
    assert not list(tmp_path.glob("*.tmp"))        # atomic write leaves no temporary file


def test_same_config_same_initial_weights():
    a, b = FNO(n_modes=(4, 4), hidden_channels=8, seed=5), FNO(n_modes=(4, 4), hidden_channels=8, seed=5)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def test_corrupt_or_foreign_checkpoint_raises_clear_error(tmp_path):
    model = FNO(n_modes=(4, 4), hidden_channels=8, n_layers=2)
    path = model.save(tmp_path / "fno.pt")
    data = path.read_bytes()
    (tmp_path / "trunc.pt").write_bytes(data[: len(data) // 3])
    with pytest.raises(ValueError, match="not a readable pdeinv surrogate checkpoint"):
        load(tmp_path / "trunc.pt")
    (tmp_path / "garbage.pt").write_bytes(b"this is not a checkpoint" * 10)
    with pytest.raises(ValueError, match="corrupt, truncated"):
        load(tmp_path / "garbage.pt")
    torch.save({"weights": torch.zeros(3)}, tmp_path / "foreign.pt")
    with pytest.raises(ValueError, match="expected format 'pdeinv.surrogate/1'"):
        load(tmp_path / "foreign.pt")
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "missing.pt")
    with pytest.raises(ValueError, match="DeepONet"):        # right file, wrong class asked for
        DeepONet.load(path)


def test_bad_input_is_rejected():
    model = FNO(n_modes=(4, 4), hidden_channels=8, n_layers=2)
    with pytest.raises(ValueError, match="input channel"):
        model(torch.zeros(1, 2, 8, 8))
    with pytest.raises(ValueError, match="2-D operator"):
        model(torch.zeros(1, 1, 8))
    don = DeepONet((8, 8), branch_layers=[8], trunk_layers=[8], width=8)
    with pytest.raises(ValueError, match="tied to its grid"):
        don(torch.zeros(1, 1, 16, 16))
    with pytest.raises(TypeError, match="JSON"):
        FNO(n_modes=(4, 4), hidden_channels=8, domain_padding=object())


def test_deeponet_import_keeps_torch_defaults():
    dtype = torch.get_default_dtype()
    DeepONet((8, 8), branch_layers=[8], trunk_layers=[8], width=8)
    assert torch.get_default_dtype() == dtype
    assert torch.empty(1).device.type == "cpu"


@pytest.mark.parametrize("kind", ["fno", "deeponet"])
def test_taylor_test_through_surrogate_forward(kind):
    """Gradient of the misfit w.r.t. float64 m through the float32 network.

    The remainder must stay far above float32 round-off of the objective
    (~1e-7 relative), so the step h0 is chosen to make the first remainder
    ~1e-2 of J; over the 4 halvings the O(h^2) term then dominates and the
    observed rate is 2 (a wrong gradient gives 1).
    """
    grid = TASKS["darcy"].grid(16)
    if kind == "fno":
        model = FNO(n_modes=(6, 6), hidden_channels=8, n_layers=2, seed=1)
    else:
        model = DeepONet((16, 16), branch_layers=[32], trunk_layers=[32], width=16, activation="tanh", seed=1)
    a = TASKS["darcy"].sample_m(grid, 2, seed=4)
    model.fit_normalizers(a.float(), torch.randn(2, 1, 16, 16))
    obs = PointObservation.random(grid, n=30, seed=2)
    fwd = SurrogateForward(model, obs)
    with torch.no_grad():
        y = fwd.A(a * 1.1)
    assert y.dtype == torch.float64
    dm = TASKS["darcy"].sample_m(grid, 2, seed=5) - 7.5
    rate, res = taylor_test(lambda m: fwd.misfit(m, y).sum(), a, dm, h0=0.4, n=4, return_residuals=True)
    assert rate > 1.8, (rate, res)
    assert all(p.grad is None for p in model.parameters())     # weights frozen: gradients go to m only


def test_sparse_inputs_match_point_observations():
    """The sparse baseline input built from observations y equals the one built from the field and mask."""
    grid = TASKS["poisson"].grid(16)
    u = torch.randn(2, 1, 16, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    obs = PointObservation.random(grid, fraction=0.0305, seed=7)
    x = scatter_observations(obs(u), obs)
    torch.testing.assert_close(x, sparse_input(u, obs.mask()), rtol=1e-12, atol=0)   # node values, exact to round-off
    assert int(x[:, 1].sum()) == 2 * obs.n_obs
    assert torch.equal(x[:, 0] != 0, x[:, 1].bool() & (u[:, 0] != 0))
    ds = SparseDataset(u.float(), u.float(), fraction=0.1, seed=0)
    assert ds.masks.flatten(1).sum(1).tolist() == [26, 26]                # round(0.1 * 256) fresh per sample
    assert not torch.equal(ds.masks[0], ds.masks[1])
    assert torch.equal(ds.masks[0], random_mask((16, 16), 0.1, seed=int(__import__("numpy").random.SeedSequence(
        [0, 0, 0x5EED]).generate_state(1)[0])))
    bilinear = PointObservation(grid, [[0.51, 0.5]])
    with pytest.raises(ValueError, match="grid nodes"):
        scatter_observations(bilinear(u), bilinear)


def test_surrogate_map_then_refinement_on_simulator(darcy16, trained_fno):
    """Darcy coefficient through the trained FNO; simulator refinement lowers the true misfit."""
    from pdeinv.solvers import SOLVERS, SurrogateMAP
    from pdeinv.metrics import error_rate
    grid, problem, a, u = darcy16
    model, _ = trained_fno
    a_true = a[250:251]
    obs = PointObservation.random(grid, fraction=0.25, seed=3)
    fwd = ForwardModel(problem, obs, noise=GaussianNoise(relative=0.01))
    y = fwd(a_true, seed=1)
    solver = SOLVERS["surrogate-map"](model, prior="tv", weight=1e-2, bounds=(3.0, 12.0), max_iter=60,
                                      refine_iter=15)
    res = solver(y, fwd)
    assert isinstance(solver, SurrogateMAP)
    with torch.no_grad():
        mis_start = float(fwd.misfit(torch.full_like(a_true, 7.5), y))
        mis_sur = float(fwd.misfit(res.m_surrogate, y))
        mis_ref = float(fwd.misfit(res.m, y))
    # baseline: the data-blind start (the constant 7.5 between the two phases); at the truth the misfit is
    # ~ n_obs / 2 = 32 (chi-square), far below either
    assert mis_sur < 0.03 * mis_start, (mis_sur, mis_start)    # the surrogate alone explains 97 % of the misfit
    assert mis_ref < 0.5 * mis_sur, (mis_ref, mis_sur)         # simulator steps remove the model error
    # classification error against the data-blind guess: the best constant field misclassifies the minority phase
    frac = float((a_true >= 7.5).double().mean())
    blind = min(frac, 1 - frac)
    err_sur, err_ref = float(error_rate(res.m_surrogate, a_true)), float(error_rate(res.m, a_true))
    assert err_sur < 0.5 * blind and err_ref < 0.5 * blind, (err_sur, err_ref, blind)
    assert err_ref <= err_sur, (err_sur, err_ref)
    assert res.history["stage"][0] == 0 and res.history["stage"][-1] == 1


class _Biased(torch.nn.Module):
    """A 'surrogate' that is the simulator plus a fixed smooth bias field: exact Jacobian, wrong values."""

    def __init__(self, problem, bias):
        super().__init__()
        self.problem, self.bias = problem, bias
        self.scale = torch.nn.Parameter(torch.ones(()))      # SurrogateForward freezes parameters

    def forward(self, m):
        return self.problem(m) * self.scale + self.bias.to(m.dtype)


def test_defect_correction_removes_a_surrogate_bias():
    """With the simulator's own Jacobian and a biased output, one defect correction gives the simulator's MAP
    (the fixed point is exact here); the uncorrected surrogate MAP is off by the bias's effect."""
    from pdeinv.solvers import SurrogateMAP
    task = TASKS["poisson"]
    grid, problem = task.make(16)
    m_true = task.sample_m(grid, 1, seed=3)
    x = torch.linspace(0, 1, 16, dtype=torch.float64)
    u_true = problem(m_true)
    bias = 0.2 * float(u_true.std()) * torch.sin(3 * x)[:, None] * torch.cos(2 * x)[None, :]
    obs = PointObservation.random(grid, fraction=0.2, seed=1)
    fwd = ForwardModel(problem, obs, noise=GaussianNoise(relative=0.01))
    y = fwd(m_true, seed=2)
    prior = task.map_options["prior"]
    kw = dict(prior=prior, max_iter=1000, gtol=1e-10)
    ref = SurrogateMAP(_Biased(problem, 0 * bias), **kw)(y, fwd).m       # the simulator's MAP, same optimiser
    plain = SurrogateMAP(_Biased(problem, bias), **kw)(y, fwd)
    fixed = SurrogateMAP(_Biased(problem, bias), corrections=2, correction_iter=1000, **kw)(y, fwd)
    d_plain = float(relative_l2(plain.m, ref))
    d_fixed = float(relative_l2(fixed.m, ref))
    assert d_plain > 0.05, d_plain                          # the bias matters at 1 % noise
    assert d_fixed < 1e-3 * d_plain, (d_fixed, d_plain)     # exact up to the optimiser's tolerance
    c = fixed.info["corrections"]
    assert len(c) == 2 and c[1]["misfit_before"] < c[0]["misfit_before"]
    with pytest.raises(ValueError, match="corrections"):
        SurrogateMAP(_Biased(problem, bias), corrections=-1)
