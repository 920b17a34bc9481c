r"""DeepONet (Lu et al., Nat. Mach. Intell. 2021) from deepxde's PyTorch backend.

.. math::  G_\theta(m)(x) = \sum_{k=1}^{p} b_k(m)\, t_k(x) + b_0

The *branch* MLP reads the input field on the grid, flattened
(``in_channels * prod(grid_shape)`` numbers), the *trunk* MLP reads the output
coordinates ``x`` (node coordinates scaled to [0, 1]); pdeinv wraps
``deepxde.nn.DeepONetCartesianProd`` (one branch evaluation per sample, shared
trunk over all grid nodes).  Unlike FNO a DeepONet is tied to the grid its
branch was built for (``grid_shape``).

deepxde is imported lazily, with ``DDE_BACKEND=pytorch`` set first, and torch's
global default dtype and device are saved and restored around the import
(deepxde changes them when CUDA is present: LIBRARIES.md).  The network runs in
float32.

Reference: L. Lu, P. Jin, G. Pang, Z. Zhang, G. E. Karniadakis, "Learning
nonlinear operators via DeepONet", Nature Machine Intelligence 3 (2021).
"""
from __future__ import annotations

from typing import Sequence

import torch

from pdeinv._deepxde import torch_defaults_preserved
from pdeinv.surrogates.base import Surrogate

ACTIVATIONS = ("tanh", "relu", "gelu", "silu", "sin", "elu")


def import_deepxde():
    """deepxde's ``DeepONetCartesianProd``, imported through :mod:`pdeinv._deepxde` (the one place
    that imports deepxde: PyTorch backend, torch's global defaults restored)."""
    from pdeinv._deepxde import import_deepxde as _import
    _import()
    with torch_defaults_preserved():
        from deepxde.nn.pytorch.deeponet import DeepONetCartesianProd
    return DeepONetCartesianProd


class DeepONet(Surrogate):
    """``DeepONet(grid_shape, in_channels=1, out_channels=1, branch_layers=(256, 256), trunk_layers=(128, 128), width=128)``.

    Parameters
    ----------
    grid_shape : grid of both input and output fields, e.g. ``(64, 64)`` or ``(128,)``.
    in_channels, out_channels : channels of ``m`` and ``u`` (2 input channels for
        the sparse baselines: scattered values + mask).  ``out_channels > 1`` uses
        deepxde's ``"independent"`` multi-output strategy.
    branch_layers, trunk_layers : hidden widths of the two MLPs.
    width : number ``p`` of basis functions (last layer of both nets).
    activation : deepxde activation name (``"relu"`` default, ``"tanh"``, ``"gelu"``, ``"silu"``, ``"sin"``).
        With ``"gelu"`` the Darcy DeepONet stalled at the mean predictor (25 % relative L2 after
        30 epochs at 32², 500 samples) where ``"relu"`` reached 8 %.
    seed : seed of the weight initialisation.
    """

    def __init__(self, grid_shape: Sequence[int], in_channels: int = 1, out_channels: int = 1,
                 branch_layers: Sequence[int] = (256, 256), trunk_layers: Sequence[int] = (128, 128),
                 width: int = 128, activation: str = "relu", seed: int = 0):
        grid_shape = [int(s) for s in grid_shape]
        if len(grid_shape) not in (1, 2, 3) or min(grid_shape) < 2:
            raise ValueError(f"grid_shape must list 1 to 3 axis sizes >= 2; got {grid_shape}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; expected one of {ACTIVATIONS}")
        super().__init__(grid_shape=grid_shape, in_channels=int(in_channels), out_channels=int(out_channels),
                         branch_layers=[int(w) for w in branch_layers], trunk_layers=[int(w) for w in trunk_layers],
                         width=int(width), activation=activation, seed=int(seed))
        self.ndim = len(grid_shape)
        DeepONetCartesianProd = import_deepxde()
        n_in = int(in_channels) * int(torch.tensor(grid_shape).prod())
        d = len(grid_shape)
        nout = int(out_channels)
        with torch.random.fork_rng(devices=[]), torch_defaults_preserved():
            torch.manual_seed(int(seed))
            torch.set_default_dtype(torch.float32)
            self.net = DeepONetCartesianProd(
                [n_in, *self.config["branch_layers"], int(width)],
                [d, *self.config["trunk_layers"], int(width)],
                activation, "Glorot normal", num_outputs=nout,
                multi_output_strategy=None if nout == 1 else "independent")
        axes = [torch.linspace(0.0, 1.0, n) for n in grid_shape]
        pts = torch.stack([g.reshape(-1) for g in torch.meshgrid(*axes, indexing="ij")], 1)
        self.register_buffer("points", pts.float(), persistent=False)   # (N, d) trunk inputs

    def check_input(self, m: torch.Tensor) -> None:
        super().check_input(m)
        if list(m.shape[2:]) != self.config["grid_shape"]:
            raise ValueError(f"this DeepONet was built for grid {tuple(self.config['grid_shape'])}; got a field of "
                             f"shape {tuple(m.shape)} (DeepONet's branch net is tied to its grid)")

    def network(self, z: torch.Tensor) -> torch.Tensor:
        B = z.shape[0]
        out = self.net((z.reshape(B, -1), self.points.to(z.dtype)))        # (B, N) or (B, N, C_out)
        if out.dim() == 2:
            out = out[:, None]
        else:
            out = out.transpose(1, 2)
        return out.reshape(B, self.out_channels, *self.config["grid_shape"])
