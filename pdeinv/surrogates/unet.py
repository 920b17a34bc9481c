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

The layers are :mod:`pdeinv.nn.unet`'s (shared with ViTO); the denoiser U-Net of the
diffusion priors is :class:`pdeinv.nn.denoiser_nets.UNet`.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from pdeinv.nn.unet import ConvBlock, UNetBackbone, _size2  # noqa: F401  (shared with ViTO, NIO)
from pdeinv.surrogates.base import Surrogate


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
