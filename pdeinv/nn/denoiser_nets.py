r"""The networks :math:`F_\theta(x, c_\text{noise})` inside the EDM denoisers.

:class:`UNet`: pdeinv's own small U-Net (DiffusionPDE); :class:`UNONet`: neuraloperator's
U-shaped neural operator (FunDPS).  Both map ``(B, C, H, W)`` and a noise level
``c_noise (B,)`` to ``(B, C, H, W)`` in normalised units; the preconditioning around them is
:class:`pdeinv.priors.diffusion.EDMDenoiser`'s.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class _ResBlock(nn.Module):
    def __init__(self, cin, cout, emb_dim, groups=8):
        super().__init__()
        self.n1 = nn.GroupNorm(math.gcd(groups, cin), cin)
        self.c1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.emb = nn.Linear(emb_dim, 2 * cout)
        self.n2 = nn.GroupNorm(math.gcd(groups, cout), cout)
        self.c2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x, emb):
        h = self.c1(F.silu(self.n1(x)))
        scale, shift = self.emb(emb)[:, :, None, None].chunk(2, 1)
        h = self.n2(h) * (1 + scale) + shift
        h = self.c2(F.silu(h))
        return (h + self.skip(x)) / math.sqrt(2)


class UNet(nn.Module):
    r"""A small U-Net :math:`F_\theta(x, c_\text{noise})` (pdeinv's own, for DiffusionPDE).

    Residual blocks with GroupNorm and FiLM conditioning on a sinusoidal
    embedding of :math:`c_\text{noise}`; ``len(mults)`` resolution levels
    (average-pool down, nearest up, skip concatenation).  Inputs whose size is
    not a multiple of ``2**(levels-1)`` are edge-padded and cropped back.
    """

    def __init__(self, channels: int, base: int = 32, mults: Sequence[int] = (1, 2, 2), emb_dim: int = 64):
        super().__init__()
        self.emb_dim = emb_dim
        self.emb = nn.Sequential(nn.Linear(emb_dim, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.inp = nn.Conv2d(channels, base, 3, padding=1)
        chans = [base * m for m in mults]
        self.down = nn.ModuleList()
        c = base
        for ch in chans:
            self.down.append(_ResBlock(c, ch, emb_dim))
            c = ch
        self.mid = _ResBlock(c, c, emb_dim)
        self.up = nn.ModuleList()
        for i, ch in reversed(list(enumerate(chans))):
            self.up.append(_ResBlock(c + ch, chans[i - 1] if i > 0 else base, emb_dim))
            c = chans[i - 1] if i > 0 else base
        self.out = nn.Conv2d(c, channels, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        self.levels = len(chans)

    def _embed(self, c_noise):
        half = self.emb_dim // 2
        freqs = torch.exp(-math.log(1000.0) * torch.arange(half, device=c_noise.device, dtype=c_noise.dtype) / half)
        a = c_noise.reshape(-1, 1) * 100.0 * freqs
        return self.emb(torch.cat([a.cos(), a.sin()], 1))

    def forward(self, x, c_noise):
        H, W = x.shape[-2:]
        k = 2 ** (self.levels - 1)
        ph, pw = (-H) % k, (-W) % k
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode="replicate")
        emb = self._embed(c_noise)
        h = self.inp(x)
        skips = []
        for i, blk in enumerate(self.down):
            h = blk(h, emb)
            skips.append(h)
            if i < self.levels - 1:
                h = F.avg_pool2d(h, 2)
        h = self.mid(h, emb)
        for i, blk in enumerate(self.up):
            s = skips.pop()
            if h.shape[-2:] != s.shape[-2:]:
                h = F.interpolate(h, size=s.shape[-2:], mode="nearest")
            h = blk(torch.cat([h, s], 1), emb)
        return self.out(h)[..., :H, :W]


class UNONet(nn.Module):
    r"""neuraloperator's U-shaped neural operator as :math:`F_\theta(x, c_\text{noise})` (FunDPS).

    The noise level enters as an extra constant input channel; the UNO's grid
    positional embedding is on.  Spectral layers make it resolution-agnostic.
    float32 only (neuraloperator); neuraloperator is imported lazily.
    """

    def __init__(self, channels: int, hidden: int = 32, modes: int = 12, lifting: int = 64):
        super().__init__()
        import contextlib
        import io

        from neuralop.models import UNO  # lazy: ~1.6 s import
        m2 = max(modes // 2, 2)
        with contextlib.redirect_stdout(io.StringIO()):   # neuraloperator prints its skip settings
            self.uno = UNO(in_channels=channels + 1, out_channels=channels, hidden_channels=hidden,
                           lifting_channels=lifting, projection_channels=lifting, n_layers=5,
                           uno_out_channels=[hidden, 2 * hidden, 2 * hidden, 2 * hidden, hidden],
                           uno_n_modes=[[modes, modes], [m2, m2], [m2, m2], [m2, m2], [modes, modes]],
                           uno_scalings=[[1.0, 1.0], [0.5, 0.5], [1.0, 1.0], [2.0, 2.0], [1.0, 1.0]],
                           channel_mlp_skip="linear", domain_padding=None)

    def forward(self, x, c_noise):
        cn = c_noise.reshape(-1, 1, *([1] * (x.dim() - 2))).expand(x.shape[0], 1, *x.shape[2:])
        return self.uno(torch.cat([x, cn.to(x.dtype)], 1))


ARCHS = {"unet": UNet, "uno": UNONet}
