r"""Convolutional U-Net layers shared by the surrogate U-Net, ViTO and NIO.

:class:`UNetBackbone`: ``depth`` levels of two 3x3 convolutions (GroupNorm, GELU) with
``width * 2^level`` channels, 2x2 average pooling down, 2x2 transposed convolutions up,
skip concatenation; an optional ``bottleneck`` module at the coarsest level (ViTO puts a
Vision Transformer there).  Inputs ``(B, C_in, H, W)`` -> ``(B, C_out, H, W)``.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn


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
