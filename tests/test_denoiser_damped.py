"""The damped residual (``damp_residual``) and the UNO's local path (``local=True``) of a diffusion prior."""
import math

import pytest
import torch

from pdeinv.nn.denoiser_nets import UNONet
from pdeinv.priors.diffusion.denoisers import EDMDenoiser

SMALL = dict(hidden=8, modes=4, lifting=8)


def _binary_denoiser(x, s, p=0.3):
    """Exact E[x0 | x0 + s n] for the scalar law P(x0 = 1) = p, P(x0 = 0) = 1 - p (white noise)."""
    l1 = math.log(p) - (x - 1) ** 2 / (2 * s * s)
    l0 = math.log(1 - p) - x ** 2 / (2 * s * s)
    return torch.sigmoid(l1 - l0)


def test_exact_residual_about_the_gaussian_fades_faster_than_its_jacobian():
    """The premise of the damping, on an asymmetric binary law (third cumulant != 0): D - D_G shrinks like
    sigma^-2 and its slope like sigma^-3, while D_G's slope is Var / (Var + sigma^2) ~ sigma^-2."""
    p = 0.3
    mu, var = p, p * (1 - p)
    ratios = []
    for s in (10.0, 20.0, 40.0, 80.0):
        x = torch.tensor([mu + s], dtype=torch.float64, requires_grad=True)   # one noise std from the mean
        d = _binary_denoiser(x, s, p)
        dg = mu + var / (var + s * s) * (x - mu)
        res = d - dg
        slope = torch.autograd.grad(res.sum(), x)[0]
        res, slope = float(res.detach().abs()), float(slope.abs())
        ratios.append((res * s ** 2, slope * s ** 3, slope / (var / (var + s * s))))
    big_res = [r[0] for r in ratios]
    big_slope = [r[1] for r in ratios]
    # sigma^2 |D - D_G| does not grow, and sigma^3 |slope| settles (within 10 % between sigma = 40 and 80) ...
    assert all(b <= a for a, b in zip(big_res, big_res[1:]))
    assert abs(big_slope[-1] / big_slope[-2] - 1) < 0.1
    # ... so the residual's slope relative to the Gaussian's falls like 1/sigma (halves per doubling)
    rel = [r[2] for r in ratios]
    assert all(0.4 < b / a < 0.6 for a, b in zip(rel, rel[1:]))


def _model(damp, local=False, seed=0):
    torch.manual_seed(0)
    x = torch.randn(32, 1, 12, 12)
    m = EDMDenoiser(channels=1, arch="uno", arch_kwargs=dict(SMALL, local=local), noise="grf",
                    gaussian_skip="spectral", damp_residual=damp, ema_decay=None, seed=seed)
    m.fit_normalizers(x)
    with torch.no_grad():                                  # a network with a non-zero output
        for p in m.net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return m.eval()


@pytest.mark.parametrize("damp", [True, 1.5])
def test_damping_scales_the_network_residual_by_s_sigma(tmp_path, damp):
    damped, plain = _model(damp), _model(False)
    plain.net.load_state_dict(damped.net.state_dict())
    z = torch.randn(3, 1, 12, 12, dtype=torch.float64)
    sd = damped.schedule.sigma_data
    for sigma in (0.01, 0.5, 20.0, 80.0):
        with torch.no_grad():
            dg = damped.gaussian.denoise(z, torch.full((3,), sigma), damped.noise)
            r_d = damped.denoise(z, sigma) - dg
            r_p = plain.denoise(z, sigma) - dg
        s = sd / math.sqrt(sigma ** 2 + sd ** 2) if damp is True else damp ** 2 / (sigma ** 2 + damp ** 2)
        assert torch.allclose(r_d, s * r_p, rtol=1e-6, atol=1e-9 * float(r_p.abs().max())), sigma
        assert float(r_p.abs().max()) > 0
    back = EDMDenoiser.load(damped.save(tmp_path / "d.pt")).eval()
    assert back.config["damp_residual"] == damp
    with torch.no_grad():
        assert torch.allclose(back.denoise(z, 3.0), damped.denoise(z, 3.0))
    assert "damp_residual" not in plain.config          # old configs stay as they were


def test_damp_residual_needs_the_gaussian_skip_and_a_valid_knee():
    with pytest.raises(ValueError, match="gaussian_skip"):
        EDMDenoiser(channels=1, arch="uno", arch_kwargs=SMALL, noise="grf", damp_residual=True)
    for bad in (-1.0, 0.0, "yes"):
        with pytest.raises(ValueError, match="knee"):
            EDMDenoiser(channels=1, arch="uno", arch_kwargs=SMALL, noise="grf", gaussian_skip="spectral",
                        damp_residual=bad)


def test_local_path_starts_at_zero_and_learns_pixel_scale_structure():
    """local=True is the plain UNO at initialisation; trained on a checkerboard (a pixel-scale pattern no
    4-mode spectral layer can make), the local path fits it where the plain UNO cannot."""
    torch.manual_seed(0)
    plain = UNONet(1, **SMALL)
    local = UNONet(1, **SMALL, local=True)
    local_state = local.state_dict()
    local_state.update(plain.state_dict())
    local.load_state_dict(local_state)
    x = torch.randn(2, 1, 16, 16)
    c = torch.zeros(2)
    with torch.no_grad():
        assert torch.allclose(local(x, c), plain(x, c))
    i, j = torch.meshgrid(torch.arange(16), torch.arange(16), indexing="ij")
    target = ((i + j) % 2 * 2 - 1).float().expand(2, 1, 16, 16) * x.sign()    # a checkerboard modulated by x
    losses = {}
    for name, net in (("plain", plain), ("local", local)):
        opt = torch.optim.Adam(net.parameters(), 3e-3)
        for _ in range(150):
            loss = (net(x, c) - target).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        losses[name] = float(loss)
    # the constant guess 0 has loss 1 (target +-1)
    assert losses["local"] < 0.3 and losses["local"] < 0.5 * losses["plain"]


def test_cli_trains_a_damped_local_prior(tmp_path):
    """`pdeinv train diffusion -O gaussian_skip=spectral -O damp_residual=1.5 -O local=true` reaches the model:
    the checkpoint records both options and its residual about the fitted Gaussian is damped by s(sigma)."""
    from pdeinv.cli import main
    from pdeinv.nn.base import load
    data = tmp_path / "d.nc"
    assert main(["generate", "darcy", "--n", "12", "--res", "12", "-o", str(data), "--quiet"]) == 0
    out = tmp_path / "p.pt"
    assert main(["train", "diffusion", "--data", str(data), "--epochs", "1", "--batch-size", "4", "--quiet",
                 "--arch", "uno", "-O", "hidden=8", "-O", "modes=4", "-O", "lifting=8", "-O", "local=true",
                 "-O", "gaussian_skip=spectral", "-O", "damp_residual=1.5", "-o", str(out)]) == 0
    model = load(out).eval()
    assert model.config["damp_residual"] == 1.5 and model.config["arch_kwargs"]["local"] is True
    assert model.net.local is not None and len(model.net.local) == len(model.net.uno.fno_blocks)
    z = torch.randn(2, 2, 12, 12, dtype=torch.float64)
    sigma = 40.0
    with torch.no_grad():
        dg = model.gaussian.denoise(z, torch.full((2,), sigma), model.noise)
        F = model.ema_net(model.schedule.c_in(torch.tensor(sigma)) * z.float(),
                          model.schedule.c_noise(torch.full((2,), sigma))).double()
        r = model.denoise(z, sigma) - dg
    s = 1.5 ** 2 / (sigma ** 2 + 1.5 ** 2)
    assert torch.allclose(r, s * model.schedule.c_out(sigma) * F, rtol=1e-5, atol=1e-12)
