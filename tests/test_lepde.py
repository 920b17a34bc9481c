"""LE-PDE: latent rollout consistency, overfitting, held-out accuracy, conditioning, checkpoints."""
import math

import pytest
import torch

from pdeinv.surrogates import LEPDE, Surrogate
from pdeinv.surrogates.lepde import TrajectoryWindows, lepde_loss


def _trajectories(T=3, n=32, count=4, seed=0):
    """Decaying travelling waves u = sum_k a_k exp(-k^2 t / 2) sin(2 pi k (x - 0.3 t)), (count, T+1, 1, n)."""
    x = torch.linspace(0, 1, n + 1)[:-1]
    t = torch.arange(T + 1) * 0.1
    a = torch.randn(count, 3, generator=torch.Generator().manual_seed(seed))
    k = torch.tensor([1.0, 2.0, 3.0])
    modes = torch.exp(-0.5 * k[None, :, None] ** 2 * t[:, None, None]) * \
        torch.sin(2 * math.pi * k[None, :, None] * (x[None, None, :] - 0.3 * t[:, None, None]))
    return torch.einsum("bk,tkx->btx", a, modes)[:, :, None]


def _small(**kw):
    return LEPDE(32, ndim=1, in_frames=1, latent_dim=64, width=8, n_down=2, evo_width=128, evo_layers=1, **kw)


def test_rollout_k_steps_equals_k_single_steps():
    torch.manual_seed(0)
    m = LEPDE([16, 16], in_frames=2, latent_dim=16, width=4, n_down=2, n_static=1, evo_width=32).eval()
    hist = torch.randn(3, 2, 1, 16, 16)
    params = torch.rand(3, 1)
    with torch.no_grad():
        full = m(hist, 5, params=params)                          # (3, 5, 1, 16, 16)
        z = m.encode(m._frames_norm(hist))
        s = m.static_code(params, z)
        frames = []
        for _ in range(5):
            z = m.step(z, s)                                      # one latent step at a time
            frames.append(m._frames_denorm(m.decode(z)[:, None])[:, 0])
        assert torch.allclose(full, torch.stack(frames, 1), atol=1e-6)
        # the first k frames of a longer rollout are the k-step rollout
        assert torch.allclose(m(hist, 2, params=params), full[:, :2], atol=1e-6)
        # the static parameter enters the evolution
        assert not torch.allclose(m(hist, 3, params=params + 1), full[:, :3])
    with pytest.raises(ValueError, match="params"):
        m(hist, 2)
    with pytest.raises(ValueError, match="history"):
        m(torch.randn(3, 1, 1, 16, 16), 2, params=params)


def test_lepde_overfits_four_trajectories():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        u = _trajectories()
        m = _small()
        m.fit_normalizers(u)
        hist, fut = u[:, :1], u[:, 1:]
        steps = 800
        opt = torch.optim.Adam(m.parameters(), lr=1e-2)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
        for _ in range(steps):
            opt.zero_grad()
            loss = lepde_loss(m, (hist, fut), w_consistency=0.01)
            loss.backward()
            opt.step()
            sched.step()
        with torch.no_grad():
            pred = m(hist, 3)                                     # latent rollout, 3 frames
            rel = ((pred - fut).flatten(1).norm(dim=1) / fut.flatten(1).norm(dim=1)).mean()
        assert rel < 0.01, float(rel)
    finally:
        torch.set_num_threads(n)


def test_lepde_generalises_to_held_out_trajectories():
    """Trained briefly on 80 trajectories (random amplitudes), the 3-frame latent rollout must beat the
    training-mean future on 16 held-out trajectories."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        u_tr, u_te = _trajectories(count=96, seed=1).split([80, 16])
        m = _small()
        m.fit_normalizers(u_tr)
        steps, g = 150, torch.Generator().manual_seed(0)
        opt = torch.optim.Adam(m.parameters(), lr=1e-2)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
        for _ in range(steps):
            i = torch.randperm(80, generator=g)[:16]
            opt.zero_grad()
            loss = lepde_loss(m, (u_tr[i, :1], u_tr[i, 1:]), w_consistency=0.01)
            loss.backward()
            opt.step()
            sched.step()
        rel = lambda p, t: float(((p - t).flatten(1).norm(dim=1) / t.flatten(1).norm(dim=1)).mean())  # noqa: E731
        with torch.no_grad():
            err = rel(m.eval()(u_te[:, :1], 3), u_te[:, 1:])
        mean_err = rel(u_tr[:, 1:].mean(0, keepdim=True).expand_as(u_te[:, 1:]), u_te[:, 1:])   # data-blind
        assert err < 0.8 * mean_err, (err, mean_err)
    finally:
        torch.set_num_threads(n)


def test_windows_and_loss_terms():
    u = torch.arange(2 * 6 * 4, dtype=torch.float32).reshape(2, 6, 1, 4)
    ds = TrajectoryWindows(u, in_frames=2, horizon=3)
    assert len(ds) == 2 * 2
    hist, fut = ds[3]                                             # trajectory 1, start 1
    assert torch.equal(hist, u[1, 1:3]) and torch.equal(fut, u[1, 3:6])
    with pytest.raises(ValueError, match="frames"):
        TrajectoryWindows(u, in_frames=4, horizon=3)
    m = LEPDE(4, ndim=1, in_frames=2, latent_dim=8, width=2, n_down=1, evo_width=8)
    batch = (torch.stack([ds[i][0] for i in range(4)]), torch.stack([ds[i][1] for i in range(4)]))
    full = lepde_loss(m, batch)
    only_multi = lepde_loss(m, batch, w_recon=0, w_consistency=0)
    assert float(full.detach()) > float(only_multi.detach()) > 0


def test_save_load_round_trip(tmp_path):
    u = _trajectories()
    for m in (_small(), LEPDE([16, 16], in_frames=2, latent_dim=16, width=4, n_down=2, n_static=1),
              LEPDE([16, 16], in_frames=2, latent_dim=16, width=4, n_down=2, n_static=1, norm="group",
                    activation="elu")):
        if m.spatial_dim == 1:
            m.fit_normalizers(u)
            hist, params = u[:, :1], None
        else:
            hist, params = torch.randn(2, 2, 1, 16, 16), torch.rand(2, 1)
            m.fit_normalizers(torch.randn(2, 4, 1, 16, 16), params)
        path = m.save(tmp_path / "lepde.ckpt")
        m2 = Surrogate.load(path)
        assert isinstance(m2, LEPDE) and m2.spatial_dim == m.spatial_dim
        with torch.no_grad():
            assert torch.equal(m.eval()(hist, 3, params=params), m2(hist, 3, params=params))


def test_paper_options_and_step_weights():
    """norm="group" / activation="elu" (the authors' NS settings) build GroupNorm + ELU layers; bad values are refused;
    step weights (1, 0, ...) make the multi-step term the first step's alone."""
    m = LEPDE([16, 16], in_frames=1, latent_dim=8, width=4, n_down=2, norm="group", activation="elu")
    kinds = {type(x).__name__ for x in m.modules()}
    assert {"GroupNorm", "ELU"} <= kinds and "GELU" not in kinds
    assert "GroupNorm" not in {type(x).__name__ for x in LEPDE([16, 16], latent_dim=8, width=4, n_down=2).modules()}
    with pytest.raises(ValueError, match="norm"):
        LEPDE([16, 16], norm="batch")
    with pytest.raises(ValueError, match="activation"):
        LEPDE([16, 16], activation="tanh")
    u = torch.randn(3, 5, 1, 16, 16)
    m.fit_normalizers(u)
    hist, fut = u[:, :1], u[:, 1:4]
    w1 = lepde_loss(m, (hist, fut), w_recon=0, w_consistency=0, step_weights=[1, 0, 0])
    first = lepde_loss(m, (hist, fut[:, :1]), w_recon=0, w_consistency=0)
    assert torch.allclose(w1, first, rtol=1e-5)


def test_cli_trains_lepde_and_records_steps_per_epoch_in_windows(tmp_path):
    """``pdeinv train lepde`` on a generated ns_long file: the checkpoint loads, rolls out, and records the
    optimiser steps per epoch from its training windows (not its trajectories), as the learning curves need."""
    import math

    from pdeinv.cli.app import main
    from pdeinv.nn.base import load
    data = tmp_path / "ns.nc"
    assert main(["generate", "ns_long", "--n", "6", "--res", "16", "--seed", "0", "-o", str(data), "--quiet"]) == 0
    out = tmp_path / "lepde.pt"
    assert main(["train", "lepde", "--data", str(data), "--val-fraction", "0.2", "--epochs", "1", "--batch-size", "4",
                 "-O", "in_frames=2", "-O", "horizon=2", "-O", "latent_dim=8", "-O", "width=4", "-O", "n_down=2",
                 "-O", "evo_width=16", "-O", "evo_layers=1", "-o", str(out), "--quiet"]) == 0
    model = load(out)
    n_tr = 6 - round(0.2 * 6)                                   # trajectories after the validation split
    windows = n_tr * (21 - 2 - 2 + 1)                           # 21 frames (w0 + 20), in_frames 2, horizon 2
    assert model.trained_on["n_train"] == n_tr
    assert model.trained_on["steps_per_epoch"] == math.ceil(windows / 4)
    with torch.no_grad():
        assert model(torch.zeros(1, 2, 1, 16, 16), 3).shape == (1, 3, 1, 16, 16)
