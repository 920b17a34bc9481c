r"""ViTO: a U-Net with a Vision-Transformer bottleneck (Ovadia, Kahana, Stinis, Turkel, Karniadakis, 2023).

ViTO learns inverse maps with super-resolution, e.g. a 16x16 Darcy pressure
-> the 64x64 permeability, a coarse vorticity ``w(T)`` -> the fine ``w0``, a
wave field at the final time -> the initial state.  The architecture:

1. the (coarse) input is interpolated bilinearly to the output grid;
2. a U-Net encoder (:class:`~pdeinv.surrogates.unet.UNetBackbone`) brings it
   to a latent feature map :math:`z \in \mathbb{R}^{C\times h\times w}`
   (``h = H/2^depth``);
3. the latent map is cut into ``patch_size``-square patches, each embedded
   linearly to ``embed_dim`` with a learned position embedding, and passed
   through ``n_layers`` pre-norm Transformer encoder blocks (multi-head
   self-attention with ``n_heads`` heads + MLP of ratio ``mlp_ratio``); the
   tokens are mapped back to patches by a transposed convolution and added to
   :math:`z` (residual);
4. the U-Net decoder with skip connections returns the output field.

Departures, chosen deliberately: the paper's released code was not available
here; this implementation follows the paper's description (U-Net encoder, ViT
over latent patches, U-Net decoder, bilinear up-sampling of the input).  The
position embedding is learned for the latent grid of ``out_size`` and
interpolated bilinearly when a different output size is used.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from pdeinv.surrogates.base import Surrogate
from pdeinv.nn.unet import UNetBackbone, _size2


class ViTBottleneck(nn.Module):
    """Transformer over ``patch_size`` patches of a ``(B, C, h, w)`` feature map; residual output."""

    def __init__(self, channels: int, latent_size, patch_size: int = 1, embed_dim: int = 64, n_heads: int = 4,
                 n_layers: int = 2, mlp_ratio: float = 2.0, dropout: float = 0.0):
        super().__init__()
        h, w = latent_size
        if h % patch_size or w % patch_size:
            raise ValueError(f"the latent grid {h}x{w} is not divisible by patch_size={patch_size}; "
                             "choose out_size divisible by 2^depth * patch_size")
        if embed_dim % n_heads:
            raise ValueError(f"embed_dim={embed_dim} must be divisible by n_heads={n_heads}")
        self.patch = patch_size
        self.grid = (h // patch_size, w // patch_size)
        self.embed = nn.Conv2d(channels, embed_dim, patch_size, stride=patch_size)
        self.pos = nn.Parameter(torch.zeros(1, embed_dim, *self.grid))
        nn.init.trunc_normal_(self.pos, std=0.02)
        layer = nn.TransformerEncoderLayer(embed_dim, n_heads, int(mlp_ratio * embed_dim), dropout=dropout,
                                           activation="gelu", batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(embed_dim)
        self.unembed = nn.ConvTranspose2d(embed_dim, channels, patch_size, stride=patch_size)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        t = self.embed(z)                                        # (B, D, gh, gw)
        pos = self.pos
        if tuple(t.shape[-2:]) != tuple(pos.shape[-2:]):
            pos = F.interpolate(pos, size=t.shape[-2:], mode="bilinear", align_corners=False)
        t = t + pos
        B, D, gh, gw = t.shape
        tok = self.norm(self.blocks(t.flatten(2).transpose(1, 2)))   # (B, N, D)
        t = tok.transpose(1, 2).reshape(B, D, gh, gw)
        out = self.unembed(t)
        if out.shape[-2:] != z.shape[-2:]:
            out = F.interpolate(out, size=z.shape[-2:], mode="bilinear", align_corners=False)
        return z + out


class ViTO(Surrogate):
    """``ViTO(in_channels=1, out_channels=1, out_size=64, width=16, depth=3, patch_size=1, embed_dim=64, ...)``.

    ``forward(y)``: ``(B, Cin, h, w)`` (any resolution) -> ``(B, Cout, *out_size)``,
    physical units.  Parameter counts are small by design (``width=16``,
    ``depth=3``, 2 transformer blocks: about 0.3 M).

    ``sparse=True``: the network was trained on scattered point values, input
    ``[M * u, M]`` (``pdeinv.surrogates.sparse.sparse_input``, ``in_channels`` = 2 x the
    observed channels); :meth:`inputs_from_observations` then scatters point observations
    at grid nodes onto the grid (any number and placement of points) instead of reading a
    coarse square grid.
    """

    def __init__(self, in_channels: int = 1, out_channels: int = 1, out_size=64, width: int = 16, depth: int = 3,
                 patch_size: int = 1, embed_dim: int = 64, n_heads: int = 4, n_layers: int = 2,
                 mlp_ratio: float = 2.0, seed: int = 0, sparse: bool = False):
        size = _size2(out_size)
        if size is None:
            raise ValueError("ViTO needs out_size (the output grid)")
        super().__init__(in_channels=int(in_channels), out_channels=int(out_channels), out_size=size,
                         width=int(width), depth=int(depth), patch_size=int(patch_size), embed_dim=int(embed_dim),
                         n_heads=int(n_heads), n_layers=int(n_layers), mlp_ratio=float(mlp_ratio),
                         seed=int(seed), sparse=bool(sparse), ndim=2)
        latent = [math.ceil(s / 2 ** int(depth)) for s in size]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            chans = int(width) * 2 ** int(depth)
            vit = ViTBottleneck(chans, latent, int(patch_size), int(embed_dim), int(n_heads), int(n_layers),
                                float(mlp_ratio))
            self.net = UNetBackbone(int(in_channels), int(out_channels), int(width), int(depth), bottleneck=vit)

    def network(self, z: torch.Tensor) -> torch.Tensor:
        size = tuple(self.config["out_size"])
        if tuple(z.shape[-2:]) != size:
            z = F.interpolate(z, size=size, mode="bilinear", align_corners=True)
        return self.net(z)

    def inputs_from_observations(self, y: torch.Tensor, fwd=None) -> torch.Tensor:
        """Observations -> network input: a ``(B, C, P)`` (or single-channel ``(B, P)``) vector of values
        on a coarse square grid, in the grid's node order (first axis slowest), is reshaped to
        ``(B, C, sqrt(P), sqrt(P))``; fields pass through.  A ``sparse`` ViTO scatters the values of
        ``fwd.observation`` (points at grid nodes) into ``[M * u, M]``."""
        if self.config.get("sparse"):
            if fwd is None or getattr(fwd, "observation", None) is None:
                raise ValueError("a sparse ViTO needs the forward model's observation (where the points are)")
            from pdeinv.surrogates.sparse import scatter_observations
            return scatter_observations(y if y.dim() == 3 else y[:, None], fwd.observation)
        if y.dim() == 2:
            y = y[:, None]
        if y.dim() == 3:
            r = int(round(math.sqrt(y.shape[-1])))
            if r * r != y.shape[-1]:
                raise ValueError(f"ViTO takes a field on a square coarse grid; got {y.shape[-1]} observations "
                                 "per channel, which is not a square number")
            return y.reshape(y.shape[0], y.shape[1], r, r)
        return y


def coarsen(u: torch.Tensor, size) -> torch.Tensor:
    """Values of a node field ``(B, C, n, n)`` at the nodes of a coarse ``size`` grid of the same square
    (bilinear interpolation; exact node values where the grids share nodes)."""
    size = tuple(_size2(size))
    if tuple(u.shape[-2:]) == size:
        return u
    return F.interpolate(u, size=size, mode="bilinear", align_corners=True)
