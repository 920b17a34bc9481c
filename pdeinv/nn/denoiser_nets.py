r"""The networks :math:`F_\theta(x, c_\text{noise})` inside the EDM denoisers.

:class:`UNet`: pdeinv's own small U-Net (DiffusionPDE); :class:`UNONet`: neuraloperator's
U-shaped neural operator (FunDPS).  Both embed the noise level in every block (FiLM), and map
``(B, C, H, W)`` and a noise level ``c_noise (B,)`` to ``(B, C, H, W)`` in normalised units; the
preconditioning around them is
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
        return self.emb(sinusoidal_embedding(c_noise, self.emb_dim))

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


def sinusoidal_embedding(c_noise: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal features ``(B, dim)`` of the scalar noise level ``c_noise (B,)`` (EDM's ``c_noise = ln(sigma)/4``)."""
    half = dim // 2
    freqs = torch.exp(-math.log(1000.0) * torch.arange(half, device=c_noise.device, dtype=c_noise.dtype) / half)
    a = c_noise.reshape(-1, 1) * 100.0 * freqs
    return torch.cat([a.cos(), a.sin()], 1)


class UNONet(nn.Module):
    r"""neuraloperator's U-shaped neural operator as :math:`F_\theta(x, c_\text{noise})` (FunDPS).

    The noise level is embedded in **every block**, as in the original FunDPS/EDM networks: a
    sinusoidal embedding of :math:`c_\text{noise}` through a small MLP gives each block (the lifting
    and the five UNO blocks) a FiLM modulation ``h * (1 + scale) + shift`` of its output channels
    (initialised to zero, so an untrained model is the plain UNO).  The UNO's grid positional
    embedding is on; spectral layers make it resolution-agnostic.  float32 only (neuraloperator,
    imported lazily).  ``noise_channel=True`` also feeds :math:`c_\text{noise}` as a constant input
    channel (the earlier design; off by default).

    ``local=True`` adds a **local path** to every block: a 3×3 convolution of the block's input, resampled
    to the block's output grid (average pooling / bilinear), added to the spectral block's output before the
    FiLM, :math:`h_{k+1} = \mathrm{FNOBlock}_k(h_k) + \mathrm{Conv}^{3\times3}_k(h_k)`.  The spectral
    layers keep only ``modes`` modes, so without it the network can shape pixel-scale structure (a binary
    field's interfaces) only pointwise.  Measured on Darcy 64² (docs/daps.md): it lowers the denoising loss
    by about 5 % and removes more flipped pixels in one call, but hardly changes the draws' excess interface
    fraction (isolated-pixel speckle, ``benchmarks/prior_speckle.py``).  The convolutions start at zero (an
    untrained model is the plain UNO).  A 3×3 stencil is tied to the grid spacing: such a model serves its
    training grid.
    """

    def __init__(self, channels: int, hidden: int = 32, modes: int = 12, lifting: int = 64, emb_dim: int = 64,
                 noise_channel: bool = False, local: bool = False):
        super().__init__()
        import contextlib
        import io

        from neuralop.models import UNO  # lazy: ~1.6 s import
        m2 = max(modes // 2, 2)
        self.noise_channel, self.emb_dim = bool(noise_channel), int(emb_dim)
        outs = [hidden, 2 * hidden, 2 * hidden, 2 * hidden, hidden]
        with contextlib.redirect_stdout(io.StringIO()):   # neuraloperator prints its skip settings
            self.uno = UNO(in_channels=channels + int(self.noise_channel), out_channels=channels,
                           hidden_channels=hidden, lifting_channels=lifting, projection_channels=lifting, n_layers=5,
                           uno_out_channels=outs,
                           uno_n_modes=[[modes, modes], [m2, m2], [m2, m2], [m2, m2], [modes, modes]],
                           uno_scalings=[[1.0, 1.0], [0.5, 0.5], [1.0, 1.0], [2.0, 2.0], [1.0, 1.0]],
                           channel_mlp_skip="linear", domain_padding=None)
        self.emb = nn.Sequential(nn.Linear(emb_dim, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim), nn.SiLU())
        self.film = nn.ModuleList([nn.Linear(emb_dim, 2 * c) for c in [hidden] + outs])
        for lin in self.film:
            nn.init.zeros_(lin.weight)
            nn.init.zeros_(lin.bias)
        self.local = None
        if local:
            self.local = nn.ModuleList([nn.Conv2d(b.in_channels, b.out_channels, 3, padding=1)
                                        for b in self.uno.fno_blocks])
            for conv in self.local:
                nn.init.zeros_(conv.weight)
                nn.init.zeros_(conv.bias)

    @staticmethod
    def _modulate(h, lin, emb):
        scale, shift = lin(emb)[(...,) + (None,) * (h.dim() - 2)].chunk(2, 1)
        return h * (1 + scale) + shift

    def forward(self, x, c_noise):
        from neuralop.layers.resample import resample
        uno = self.uno
        c_noise = c_noise.reshape(-1).expand(x.shape[0])
        if self.noise_channel:
            cn = c_noise.reshape(-1, 1, *([1] * (x.dim() - 2))).expand(x.shape[0], 1, *x.shape[2:])
            x = torch.cat([x, cn.to(x.dtype)], 1)
        emb = self.emb(sinusoidal_embedding(c_noise.to(x.dtype), self.emb_dim))
        if uno.positional_embedding is not None:
            x = uno.positional_embedding(x)
        x = self._modulate(uno.lifting(x), self.film[0], emb)
        nd = uno.n_dim
        output_shape = [int(round(i * j)) for (i, j) in zip(x.shape[-nd:], uno.end_to_end_scaling_factor)]
        skips = {}
        for k in range(uno.n_layers):      # neuraloperator's UNO.forward, with the FiLM of each block
            if k in uno.horizontal_skips_map:
                skip = skips[uno.horizontal_skips_map[k]]
                factors = [m / n for (m, n) in zip(x.shape, skip.shape)][-nd:]
                x = torch.cat([x, resample(skip, factors, list(range(-nd, 0)))], dim=1)
            h = uno.fno_blocks[k](x, output_shape=output_shape if k == uno.n_layers - 1 else None)
            if self.local is not None:
                h = h + _to_shape(self.local[k](x), h.shape[-2:])
            x = self._modulate(h, self.film[k + 1], emb)
            if k in uno.horizontal_skips_map.values():
                skips[k] = uno.horizontal_skips[str(k)](x)
        return uno.projection(x)


def _to_shape(h: torch.Tensor, shape) -> torch.Tensor:
    """``(B, C, H, W)`` onto the grid ``shape``: average pooling down by an integer factor, else bilinear."""
    shape = tuple(int(v) for v in shape)
    if tuple(h.shape[-2:]) == shape:
        return h
    fh, fw = h.shape[-2] / shape[0], h.shape[-1] / shape[1]
    if fh == fw and fh == int(fh) and fh > 1:
        return F.avg_pool2d(h, int(fh))
    return F.interpolate(h, size=shape, mode="bilinear", align_corners=False)


ARCHS = {"unet": UNet, "uno": UNONet}
