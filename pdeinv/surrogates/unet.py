r"""A plain convolutional U-Net surrogate (Ronneberger et al., 2015), also the backbone of ViTO.

Encoder: ``depth`` levels of two 3x3 convolutions (GroupNorm, GELU) with
channel count ``width * 2^level``, separated by 2x2 average pooling; a
bottleneck at the coarsest level (two convolutions, or any module passed as
``bottleneck`` -- ViTO puts a Vision Transformer there); decoder: 2x2
transposed convolutions, concatenation with the encoder feature of the same
level (skip connection), two convolutions; a 1x1 output convolution.  Sizes
that are not divisible by ``2^depth`` are handled by resizing the upsampled
feature to its skip's size.

Super-resolution: with ``out_size`` given, the input is first interpolated
bilinearly to ``out_size`` (the network then works at the output resolution),
so a 16x16 pressure field maps to a 64x64 permeability.

This module is the *surrogate* U-Net; the denoiser U-Net of the diffusion
priors lives separately in ``pdeinv.priors.diffusion``.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from .base import Surrogate


def _groups(c: int) -> int:
    for g in (8, 4, 2, 1):
        if c % g == 0:
            return g
    return 1


class ConvBlock(nn.Module):
    """Two (3x3 conv -> GroupNorm -> GELU) layers."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(cin, cout, 3, padding=1), nn.GroupNorm(_groups(cout), cout), nn.GELU(),
            nn.Conv2d(cout, cout, 3, padding=1), nn.GroupNorm(_groups(cout), cout), nn.GELU())

    def forward(self, x):
        return self.net(x)


class UNetBackbone(nn.Module):
    """Encoder/decoder with skips; ``bottleneck`` (optional) maps the coarsest feature ``(B, C, h, w)`` to itself."""

    def __init__(self, in_channels: int, out_channels: int, width: int = 32, depth: int = 3,
                 bottleneck: Optional[nn.Module] = None):
        super().__init__()
        chans = [width * 2 ** i for i in range(depth + 1)]
        self.down = nn.ModuleList()
        c = in_channels
        for i in range(depth):
            self.down.append(ConvBlock(c, chans[i]))
            c = chans[i]
        self.mid = ConvBlock(c, chans[depth])
        self.bottleneck = bottleneck
        self.up = nn.ModuleList()
        self.dec = nn.ModuleList()
        for i in reversed(range(depth)):
            self.up.append(nn.ConvTranspose2d(chans[i + 1], chans[i], 2, stride=2))
            self.dec.append(ConvBlock(2 * chans[i], chans[i]))
        self.out = nn.Conv2d(chans[0], out_channels, 1)
        self.bottleneck_channels = chans[depth]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for blk in self.down:
            x = blk(x)
            skips.append(x)
            x = F.avg_pool2d(x, 2, ceil_mode=True)
        x = self.mid(x)
        if self.bottleneck is not None:
            x = self.bottleneck(x)
        for up, dec, s in zip(self.up, self.dec, reversed(skips)):
            x = up(x)
            if x.shape[-2:] != s.shape[-2:]:
                x = F.interpolate(x, size=s.shape[-2:], mode="bilinear", align_corners=False)
            x = dec(torch.cat([x, s], 1))
        return self.out(x)


def _size2(s) -> Optional[list]:
    if s is None:
        return None
    s = [int(v) for v in (s if isinstance(s, (list, tuple)) else (s, s))]
    if len(s) != 2 or min(s) < 2:
        raise ValueError(f"out_size must be an int or a pair of ints >= 2; got {s}")
    return s


class UNet(Surrogate):
    """``UNet(in_channels=1, out_channels=1, width=32, depth=3, out_size=None, seed=0)``: ``(B,Cin,h,w) -> (B,Cout,H,W)``.

    ``out_size``: output grid ``(H, W)`` for super-resolution (input resized
    bilinearly first); ``None`` keeps the input size.
    """

    def __init__(self, in_channels: int = 1, out_channels: int = 1, width: int = 32, depth: int = 3,
                 out_size=None, seed: int = 0):
        if int(depth) < 1 or int(width) < 1:
            raise ValueError(f"UNet needs depth >= 1 and width >= 1; got depth={depth}, width={width}")
        super().__init__(in_channels=int(in_channels), out_channels=int(out_channels), width=int(width),
                         depth=int(depth), out_size=_size2(out_size), seed=int(seed), ndim=2)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            self.net = UNetBackbone(int(in_channels), int(out_channels), int(width), int(depth))

    def resize_input(self, z: torch.Tensor) -> torch.Tensor:
        size = self.config.get("out_size")
        if size is not None and list(z.shape[-2:]) != list(size):
            z = F.interpolate(z, size=tuple(size), mode="bilinear", align_corners=True)
        return z

    def network(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(self.resize_input(z))
