"""ViTO (U-Net + ViT bottleneck) and the plain U-Net: super-resolution shapes, overfitting, held-out accuracy, checkpoints."""
import pytest
import torch

from pdeinv.physics import GaussianRandomField, Grid2D
from pdeinv.solvers import Amortized
from pdeinv.surrogates import SURROGATES, Surrogate, UNet, ViTO
from pdeinv.surrogates.vito import ViTBottleneck


def _data():
    a = GaussianRandomField(Grid2D(16), alpha=2.0, tau=3.0).sample(4, seed=0).float()
    return torch.nn.functional.avg_pool2d(a, 2), a            # 8x8 input -> 16x16 target


def _small_vito():
    return ViTO(out_size=16, width=8, depth=2, embed_dim=32, n_heads=2, n_layers=1, seed=0)


def test_vito_overfits_four_samples():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        inp, a = _data()
        m = _small_vito()
        m.fit_normalizers(inp, a)
        steps = 700
        opt = torch.optim.Adam(m.parameters(), lr=1e-2)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
        for _ in range(steps):
            opt.zero_grad()
            loss = ((m(inp) - a) ** 2).mean() / (a ** 2).mean()
            loss.backward()
            opt.step()
            sched.step()
        with torch.no_grad():
            rel = ((m(inp) - a).flatten(1).norm(dim=1) / a.flatten(1).norm(dim=1)).mean()
        assert rel < 0.01, float(rel)
    finally:
        torch.set_num_threads(n)


def test_vito_generalises_to_held_out_fields():
    """8x8 -> 16x16 super-resolution of GRF fields: trained briefly on 128 fields, ViTO must beat the training-mean
    field on 32 held-out ones."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        a = GaussianRandomField(Grid2D(16), alpha=2.0, tau=3.0).sample(160, seed=1).float()
        inp = torch.nn.functional.avg_pool2d(a, 2)
        (a_tr, a_te), (i_tr, i_te) = a.split([128, 32]), inp.split([128, 32])
        m = _small_vito()
        m.fit_normalizers(i_tr, a_tr)
        steps, g = 150, torch.Generator().manual_seed(0)
        opt = torch.optim.Adam(m.parameters(), lr=1e-2)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
        for _ in range(steps):
            i = torch.randperm(128, generator=g)[:32]
            opt.zero_grad()
            loss = ((m(i_tr[i]) - a_tr[i]) ** 2).mean() / (a_tr ** 2).mean()
            loss.backward()
            opt.step()
            sched.step()
        rel = lambda p, t: float(((p - t).flatten(1).norm(dim=1) / t.flatten(1).norm(dim=1)).mean())  # noqa: E731
        with torch.no_grad():
            err = rel(m.eval()(i_te), a_te)
        mean_err = rel(a_tr.mean(0, keepdim=True).expand_as(a_te), a_te)      # the data-blind predictor
        assert err < 0.8 * mean_err, (err, mean_err)
    finally:
        torch.set_num_threads(n)


def test_vito_transformer_sees_the_whole_latent_grid():
    """Self-attention mixes all patches: perturbing one latent patch changes every output patch."""
    torch.manual_seed(0)
    vit = ViTBottleneck(8, (4, 4), patch_size=1, embed_dim=16, n_heads=2, n_layers=1).eval()
    z = torch.randn(1, 8, 4, 4)
    z2 = z.clone()
    z2[..., 0, 0] += 1.0
    with torch.no_grad():
        d = (vit(z2) - vit(z) - (z2 - z)).abs().sum(1)[0]       # change beyond the residual path
    assert bool((d > 1e-6).all())


def test_shapes_resolution_and_parameter_counts():
    m = ViTO(out_size=32, width=8, depth=2, embed_dim=32, n_heads=2, n_layers=1)
    for r in (8, 16, 32):                                      # any input resolution -> the output grid
        assert m(torch.randn(2, 1, r, r)).shape == (2, 1, 32, 32)
    u = UNet(out_size=32, width=8, depth=2)
    assert u(torch.randn(2, 1, 8, 8)).shape == (2, 1, 32, 32)
    assert m.n_parameters() < 2 * u.n_parameters()
    with pytest.raises(ValueError, match="divisible"):
        ViTO(out_size=28, depth=2, patch_size=2)


def test_save_load_round_trip(tmp_path):
    inp, a = _data()
    for m in (_small_vito(), UNet(out_size=16, width=8, depth=2)):
        m.fit_normalizers(inp, a)
        path = m.save(tmp_path / f"{type(m).__name__}.ckpt")
        m2 = Surrogate.load(path)
        assert type(m2) is type(m) and SURROGATES[m2.registry_name()] is type(m)
        with torch.no_grad():
            assert torch.equal(m.eval()(inp), m2(inp))


def test_amortized_from_coarse_point_values():
    """Observations (B, 1, P) on a square coarse grid are reshaped to a field by the solver."""
    inp, a = _data()
    m = _small_vito()
    m.fit_normalizers(inp, a)
    y = inp.double().reshape(4, 1, 64)
    res = Amortized(m)(y, None)
    assert res.m.shape == (4, 1, 16, 16) and res.m.dtype == torch.float64
    with torch.no_grad():
        assert torch.allclose(res.m.float(), m.eval()(inp), atol=1e-6)
    with pytest.raises(ValueError, match="square"):
        Amortized(m)(torch.zeros(1, 1, 60, dtype=torch.float64), None)


def test_resampled_sparse_masks_are_fresh_reproducible_and_exact():
    """ResampledSparseDataset: a new point set on every read, the right count, values only where observed,
    and the same sequence under the same torch seed (so `pdeinv train --resume` replays it)."""
    from pdeinv.surrogates.sparse import ResampledSparseDataset
    x = torch.randn(3, 1, 8, 8)
    ds = ResampledSparseDataset(x, x, fraction=0.25)
    torch.manual_seed(5)
    a = [ds[0][0] for _ in range(2)]
    torch.manual_seed(5)
    b = ds[0][0]
    assert torch.equal(a[0], b) and not torch.equal(a[0][1], a[1][1])
    for inp in a:
        mask = inp[1]
        assert int(mask.sum()) == 16
        assert torch.equal(inp[0], torch.where(mask > 0, x[0, 0], torch.zeros_like(mask)))
    with pytest.raises(ValueError, match="fraction"):
        ResampledSparseDataset(x, x, fraction=0.0)


def test_sparse_vito_inverts_scattered_points_from_the_cli(tmp_path):
    """`pdeinv train vito --sparse F` -> a ViTO that takes point observations anywhere on the grid through
    `Amortized` (same answer as scattering by hand, per sample alone or in a batch), and after a short training
    on Darcy pairs beats the training-mean field on held-out samples observed at fresh random points."""
    from pdeinv.cli.app import main
    from pdeinv.data.io import dataset_tensors, load_dataset
    from pdeinv.physics import ForwardModel, PointObservation
    from pdeinv.surrogates import load
    from pdeinv.surrogates.sparse import scatter_observations
    from pdeinv.tasks import TASKS
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        data = tmp_path / "d.nc"
        assert main(["generate", "darcy", "--n", "200", "--res", "16", "--seed", "3", "-o", str(data), "--quiet"]) == 0
        ckpt = tmp_path / "vito.pt"
        assert main(["train", "vito", "--data", str(data), "--sparse", "0.25", "--epochs", "12", "--batch-size", "16",
                     "--lr", "3e-3", "-O", "width=8", "-O", "depth=2", "-O", "embed_dim=32", "-O", "n_heads=2",
                     "-O", "n_layers=1", "-o", str(ckpt), "--quiet"]) == 0
        model = load(ckpt)
        assert model.config["sparse"] and model.config["in_channels"] == 2
        task = TASKS["darcy"]
        grid, problem = task.make(16)
        a = task.sample_m(grid, 8, seed=99)                     # held out: another seed than the training data
        with torch.no_grad():
            u = problem(a)
        errs, mean_errs, m_tr = [], [], dataset_tensors(load_dataset(data))[0].mean(0, keepdim=True)
        for i in range(a.shape[0]):
            obs = PointObservation.random(grid, fraction=0.25, seed=100 + i)
            fwd = ForwardModel(problem, obs)
            y = obs(u[i:i + 1])
            res = Amortized(model)(y, fwd)
            with torch.no_grad():
                direct = model(scatter_observations(y, obs).float())
            assert torch.allclose(res.m.float(), direct, atol=1e-6)
            errs.append(float((res.m - a[i:i + 1]).norm() / a[i:i + 1].norm()))
            mean_errs.append(float((m_tr - a[i:i + 1]).norm() / a[i:i + 1].norm()))
        # a batch of two samples sharing one point set gives each the answer it gets alone
        obs = PointObservation.random(grid, fraction=0.25, seed=7)
        fwd = ForwardModel(problem, obs)
        both = Amortized(model)(obs(u[:2]), fwd).m
        one = Amortized(model)(obs(u[1:2]), fwd).m
        assert torch.allclose(both[1:2], one, atol=1e-5)
        assert sum(errs) / len(errs) < 0.8 * sum(mean_errs) / len(mean_errs), (errs, mean_errs)
        with pytest.raises(ValueError, match="observation"):
            Amortized(model)(obs(u[:1]), None)
    finally:
        torch.set_num_threads(n)


def test_amortized_refinement_is_map_from_the_network_answer():
    """`build("amortized", ..., refine_iter=N)`: N MAP iterations with the task's prior and bounds on the true simulator,
    started from the operator's answer pulled inside the bounds, i.e. exactly MAP(m0=that start, max_iter=N); the MAP
    objective falls from the start, the network's own answer is kept, and N < 0 or a missing forward model is refused."""
    from pdeinv.physics import ForwardModel, GaussianNoise, PointObservation
    from pdeinv.solvers import MAP, build
    from pdeinv.tasks import TASKS
    task = TASKS["darcy"]
    grid, problem = task.make(16)
    a = task.sample_m(grid, 1, seed=5)
    obs = PointObservation.random(grid, fraction=0.25, seed=6)
    fwd = ForwardModel(problem, obs, GaussianNoise(relative=0.01))
    y = fwd(a, seed=7)
    model = ViTO(2, 1, out_size=16, width=4, depth=2, embed_dim=8, n_heads=2, n_layers=1, sparse=True)
    model.fit_normalizers(torch.randn(4, 2, 16, 16), a.float().expand(4, -1, -1, -1) + torch.randn(4, 1, 16, 16))
    res = build("amortized", task, 16, model=model, refine_iter=5)(y, fwd)
    start = res.m_network.clamp(3.0 + 0.09, 12.0 - 0.09)
    ref = MAP(**task.map_options, max_iter=5)(y, fwd, m0=start)
    assert torch.allclose(res.m, ref.m, atol=1e-10) and res.info["refine_iterations"] == ref.info["iterations"]
    assert res.history["loss"][-1] < res.history["loss"][0]
    assert torch.allclose(res.m_network, Amortized(model)(y, fwd).m)
    with pytest.raises(ValueError, match="refine_iter"):
        Amortized(model, refine_iter=-1)
    with pytest.raises(ValueError, match="forward model"):
        Amortized(model, refine_iter=2)(y, None)
