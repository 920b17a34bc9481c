"""NIO: permutation invariance, any number of measurements, overfitting, held-out accuracy, checkpoints, amortised solver."""
import pytest
import torch

from pdeinv.physics import ForwardModel, Grid2D
from pdeinv.physics.eit import EIT, DtNObservation, trig_conductivity
from pdeinv.solvers import SOLVERS, Amortized
from pdeinv.surrogates import NIO, SURROGATES, Surrogate
from pdeinv.surrogates.nio import EncoderDecoder, StackedDeepONet, StackedFNO, nio_loss, random_subset



N, L = 12, 6


def _small_nio(nb, L=L, size=N):
    return NIO(nb, out_size=size, n_measurements=L, n_basis=32, branch_width=16, trunk_width=32, n_modes=(6, 6),
               hidden_channels=16, n_layers=2)


@pytest.fixture(scope="module")
def eit_data():
    grid = Grid2D(N)
    p = EIT(grid, n_patterns=L)
    sigma = trig_conductivity(grid, 4, seed=0, amplitude=3.0)
    y = p(sigma)
    x = torch.stack([p.patterns.expand(4, -1, -1), y], 2)
    return grid, p, sigma, y, x


@pytest.fixture(scope="module")
def trained(eit_data):
    """NIO overfitted on 4 EIT samples (all L measurements), Adam + cosine schedule."""
    grid, p, sigma, y, x = eit_data
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    xf, sf = x.float(), sigma.float()
    m = _small_nio(p.n_boundary)
    m.fit_normalizers(xf, sf)
    steps = 800
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    for _ in range(steps):
        opt.zero_grad()
        loss = ((m(xf) - sf) ** 2).mean() / ((sf - sf.mean()) ** 2).mean()
        loss.backward()
        opt.step()
        sched.step()
    torch.set_num_threads(n)
    return m.eval()


def test_nio_overfits_four_samples(eit_data, trained):
    grid, p, sigma, y, x = eit_data
    xf, sf = x.float(), sigma.float()
    with torch.no_grad():
        rel = ((trained(xf) - sf).flatten(1).norm(dim=1) / sf.flatten(1).norm(dim=1)).mean()
        rel_dev = ((trained(xf) - sf).flatten(1).norm(dim=1) / (sf - sf.mean(0)).flatten(1).norm(dim=1)).mean()
    assert rel < 0.01, float(rel)
    assert rel_dev < 0.05, float(rel_dev)            # also small against the sample-to-sample variation
    # the NIO loss with randomised batching runs on the same batch and is finite
    assert torch.isfinite(nio_loss(trained, (xf, sf), torch.Generator().manual_seed(0)))


def _rel(pred, true):
    return float(((pred - true).flatten(1).norm(dim=1) / true.flatten(1).norm(dim=1)).mean())


def test_nio_generalises_to_held_out_conductivities():
    """Trained briefly on 80 EIT samples, NIO must beat the training-mean conductivity on 16 held-out samples."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        grid = Grid2D(N)
        p = EIT(grid, n_patterns=L)
        sigma = trig_conductivity(grid, 96, seed=1, amplitude=3.0).float()
        x = torch.stack([p.patterns.expand(96, -1, -1), p(sigma.double())], 2).float()
        (xtr, xte), (s_tr, s_te) = x.split([80, 16]), sigma.split([80, 16])
        m = _small_nio(p.n_boundary)
        m.fit_normalizers(xtr, s_tr)
        var = ((s_tr - s_tr.mean()) ** 2).mean()
        steps, g = 150, torch.Generator().manual_seed(0)
        opt = torch.optim.Adam(m.parameters(), lr=1e-2)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
        for _ in range(steps):
            i = torch.randperm(80, generator=g)[:16]
            opt.zero_grad()
            loss = ((m(xtr[i]) - s_tr[i]) ** 2).mean() / var
            loss.backward()
            opt.step()
            sched.step()
        with torch.no_grad():
            err = _rel(m.eval()(xte), s_te)
        mean_err = _rel(s_tr.mean(0, keepdim=True).expand_as(s_te), s_te)      # the data-blind predictor
        assert err < 0.8 * mean_err, (err, mean_err)
    finally:
        torch.set_num_threads(n)


def test_permutation_invariance_and_any_count(eit_data, trained):
    grid, p, sigma, y, x = eit_data
    m = trained
    with torch.no_grad():
        out = m(x.float())
        for seed in range(3):
            perm = torch.randperm(L, generator=torch.Generator().manual_seed(seed))
            assert torch.allclose(m(x[:, perm].float()), out, rtol=1e-5, atol=1e-5)
        for k in (1, 2, 5, 6, 11):                                   # any count >= 1, also more than trained on
            xs = x[:, torch.arange(k) % L].float()
            o = m(xs)
            assert o.shape == (4, 1, N, N) and torch.isfinite(o).all()
        # the lift is a mean: repeating every measurement twice changes nothing
        assert torch.allclose(m(torch.cat([x, x], 1).float()), out, rtol=1e-5, atol=1e-5)
        # ... while dropping measurements does change the answer (the model uses them)
        assert float((m(x[:, :3].float()) - out).abs().max()) > 1e-2
    with pytest.raises(ValueError, match="at least one"):
        m(x[:, :0].float())
    with pytest.raises(ValueError, match="expects measurements"):
        m(x[..., :10].float())


def test_randomised_batching_subset():
    x = torch.arange(10.0).reshape(1, 10, 1, 1).expand(2, 10, 1, 1)
    g = torch.Generator().manual_seed(0)
    sizes = set()
    for _ in range(50):
        s = random_subset(x, 3, g)
        sizes.add(s.shape[1])
        vals = s[0, :, 0, 0].tolist()
        assert len(set(vals)) == len(vals) and 3 <= len(vals) <= 10          # without replacement
        assert torch.equal(s[0], s[1])                                         # one subset per batch
    assert min(sizes) == 3 and max(sizes) == 10


def test_save_load_and_amortized_solver(tmp_path, eit_data):
    grid, p, sigma, y, x = eit_data
    m = _small_nio(p.n_boundary)
    m.fit_normalizers(x.float(), sigma.float())
    path = m.save(tmp_path / "nio.ckpt")
    m2 = Surrogate.load(path)
    assert isinstance(m2, NIO) and SURROGATES["nio"] is NIO
    with torch.no_grad():
        assert torch.equal(m.eval()(x.float()), m2(x.float()))
    fwd = ForwardModel(p, DtNObservation(p.n_boundary))
    res = Amortized(m2)(y, fwd)
    assert res.m.dtype == y.dtype and res.m.shape == sigma.shape
    with torch.no_grad():
        assert torch.allclose(res.m, m2(x).double(), atol=1e-6)
    assert SOLVERS["amortized"] is Amortized
    p3 = EIT(grid, patterns=p.patterns[:3])                         # fewer patterns than trained on
    res2 = Amortized.load(path)(y[:, :3], ForwardModel(p3, DtNObservation(p.n_boundary)))
    assert res2.m.shape == sigma.shape


def test_baselines_fixed_count(eit_data):
    grid, p, sigma, y, x = eit_data
    for cls in (StackedDeepONet, StackedFNO, EncoderDecoder):
        kw = dict(n_modes=(6, 6), hidden_channels=8, n_layers=1) if cls is StackedFNO else {}
        b = cls(p.n_boundary, out_size=N, n_measurements=L, **kw)
        b.fit_normalizers(x.float(), sigma.float())
        out = b(x.float())
        assert out.shape == sigma.shape
        with pytest.raises(ValueError, match=f"exactly {L}"):
            b(x[:, :3].float())


def test_difference_data_path(eit_data):
    """difference=True: the solver subtracts the sigma = 1 response, exactly as eit_measurements does."""
    from pdeinv.surrogates.nio import eit_measurements
    grid, p, sigma, y, x = eit_data
    ref = p.reference_data()
    assert float((p(torch.ones_like(sigma[:1]))[0] - ref).abs().max()) == 0.0
    xd = eit_measurements(p, y, difference=True)
    assert torch.allclose(xd[:, :, 1], y - ref) and torch.equal(xd[:, :, 0], x[:, :, 0])
    m2 = NIO(p.n_boundary, out_size=N, n_measurements=L, n_basis=16, branch_width=8, trunk_width=16, n_modes=(4, 4),
             hidden_channels=8, n_layers=1, difference=True)
    m2.fit_normalizers(xd.float(), sigma.float())
    res = Amortized(m2)(y, ForwardModel(p, DtNObservation(p.n_boundary)))
    with torch.no_grad():
        assert torch.allclose(res.m, m2(xd).double(), atol=1e-6)


def test_nio_uses_boundary_data_on_inclusions():
    """eit_inclusions (background 1, 1-3 discs of 2-5 or 0.2-0.5): the training mean is a poor guess and the DtN data
    are informative.  Briefly trained with randomised batching, NIO given all measurements must beat the
    training-mean predictor clearly on held-out samples.  (Before the variance-preserving initialisation of the
    lift, NIO stayed at the training mean here.)"""
    from pdeinv.surrogates.nio import eit_measurements
    from pdeinv.tasks import TASKS
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        n_tr, n_te = 240, 40
        grid = Grid2D(N)
        p = EIT(grid, n_patterns=L)
        task = TASKS["eit_inclusions"]
        s_tr, s_te = task.sample_m(grid, n_tr, seed=1), task.sample_m(grid, n_te, seed=2)
        x_tr = eit_measurements(p, p(s_tr), difference=True).float()
        x_te = eit_measurements(p, p(s_te), difference=True).float()
        s_tr, s_te = s_tr.float(), s_te.float()
        m = NIO(p.n_boundary, out_size=N, n_measurements=L, difference=True, n_basis=32, branch_width=16,
                trunk_width=32, n_modes=(6, 6), hidden_channels=16, n_layers=2, lift_channels=4)
        m.fit_normalizers(x_tr, s_tr)
        steps, g = 600, torch.Generator().manual_seed(0)
        opt = torch.optim.Adam(m.parameters(), lr=3e-3)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
        for _ in range(steps):
            i = torch.randperm(n_tr, generator=g)[:16]
            opt.zero_grad()
            loss = nio_loss(m, (x_tr[i], s_tr[i]), g)
            loss.backward()
            opt.step()
            sched.step()
        m.eval()
        with torch.no_grad():
            err_all = _rel(m(x_te), s_te)
        mean_err = _rel(s_tr.mean(0, keepdim=True).expand_as(s_te), s_te)      # the data-blind predictor
        assert err_all < 0.8 * mean_err, (err_all, mean_err)
    finally:
        torch.set_num_threads(n)
