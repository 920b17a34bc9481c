r"""Neural Inverse Operator (NIO; Molinaro, Yang, Engquist, Mishra, ICML 2023).

NIO maps a *set* of boundary measurements to a coefficient field.  For EIT a
measurement is the pair :math:`(g_\ell, \Lambda_\sigma g_\ell)` sampled at the
``Nb`` boundary nodes, so the input is ``(B, L, C, Nb)`` with ``C = 2``
channels (Dirichlet pattern, Neumann flux) and any number ``L >= 1`` of
measurements.  The operator is the composition

.. math::  \mathcal{N}(\{u_\ell\}) = \mathcal{F}\Big(\frac1L\sum_{\ell=1}^{L} \mathcal{D}(u_\ell)\Big),
           \qquad \mathcal{D}(u)(x) = \sum_{k=1}^{p} \beta_k(u)\,\tau_k(x),

* :math:`\mathcal{D}` -- a DeepONet applied to each measurement separately:
  the *branch* :math:`\beta` is a 1-D convolutional encoder over the boundary
  values (circular padding: the perimeter is closed), the *trunk* :math:`\tau`
  an MLP over the coordinates ``x`` of the output grid (no bias term);
* the mean over :math:`\ell` -- the permutation-invariant lift: the result does
  not depend on the order of the measurements and is defined for any count;
* :math:`\mathcal{F}` -- an FNO (``neuralop.models.FNO`` with a grid positional
  embedding) from the averaged field to the coefficient.

``lift_channels = c > 1`` makes :math:`\mathcal{D}` return ``c`` fields (trunk
outputs ``c p`` functions, same branch coefficients), the FNO's input channels.
Branch and trunk are initialised variance-preservingly
(:func:`variance_preserving_init_`, with the trunk's last layer scaled by
``1/sqrt(p)``), so the lifted field is O(1) and varies with the data from the
first step; with PyTorch's default initialisation it was ~1e-3 and nearly
data-independent, and NIO trained to the training mean.

Training uses *randomised batching*: each step draws a number ``L'`` of
measurements uniformly from ``[min_measurements, L]`` and a random subset of
that size (same for the whole batch; :func:`nio_loss`), so the trained model
works with fewer measurements than it was trained on.

Departures from the authors' code (``mroberto166/nio``), chosen deliberately:
the code lifts ``[x, y, D_1/L, ..., D_L/L]`` with the ``.data`` of a linear
layer (so that layer is never trained) and draws the random subset *with*
replacement from ``[2, L)``; here the mean field goes through the FNO's own
(trained) lifting, which equals a linear lift of the mean as in the paper, and
subsets are drawn without replacement from ``[min_measurements, L]``.

Baselines of the paper, in the same module (fixed number of measurements,
input ``(B, L, C, Nb)`` as well): :class:`StackedDeepONet` (one DeepONet on
all measurements stacked), :class:`StackedFNO` (an FNO on the ``L x Nb``
measurement image resized to the output grid) and :class:`EncoderDecoder`
(a fully convolutional encoder to a latent vector and a transposed-convolution
decoder, InversionNet-style).
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from pdeinv.surrogates.base import Surrogate
from pdeinv.nn.unet import _size2


# ----------------------------------------------------------------------------- building blocks
class BoundaryEncoder(nn.Module):
    """1-D CNN over the boundary values of one measurement ``(N, C, Nb) -> (N, p)``.

    Strided circular convolutions (the perimeter is closed), adaptive average
    pooling to 8 positions, and a linear layer to ``p`` outputs.
    """

    def __init__(self, in_channels: int, out_features: int, width: int = 32, n_layers: int = 3):
        super().__init__()
        layers, c = [], in_channels
        for i in range(n_layers):
            co = width * 2 ** min(i, 2)
            layers += [nn.Conv1d(c, co, 5, stride=2, padding=2, padding_mode="circular"), nn.GELU()]
            c = co
        self.conv = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool1d(8)
        self.fc = nn.Sequential(nn.Linear(8 * c, 2 * out_features), nn.GELU(), nn.Linear(2 * out_features, out_features))

    def forward(self, x):
        return self.fc(self.pool(self.conv(x)).flatten(1))


def mlp(sizes: Sequence[int], act=nn.GELU) -> nn.Sequential:
    layers = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(act())
    return nn.Sequential(*layers)


def variance_preserving_init_(module: nn.Module, scale: float = 1.0) -> nn.Module:
    """He-normal weights and zero biases on every ``Linear``/``Conv1d`` of ``module``; the last one linear-gain.

    PyTorch's default initialisation shrinks the signal by about ``1/sqrt(3)`` per layer while its
    biases add a constant of the same order, so after the five layers of the branch the per-sample
    part of ``beta`` was ~7 % of its (sample-independent) value and the lifted field ~4e-3, varying
    by ~6e-4 between samples (EIT inclusions, 32^2): the FNO fitted the training mean through its
    positional embedding and barely used the data.  Here every
    hidden layer keeps the second moment (GELU ~ ReLU gain), the last maps it to ``scale``.
    """
    layers = [m for m in module.modules() if isinstance(m, (nn.Linear, nn.Conv1d))]
    for i, layer in enumerate(layers):
        last = i == len(layers) - 1
        nn.init.kaiming_normal_(layer.weight, nonlinearity="linear" if last else "relu")
        if last:
            layer.weight.data.mul_(scale)
        if layer.bias is not None:
            nn.init.zeros_(layer.bias)
    return module


def _grid_coords(size, dtype, device) -> torch.Tensor:
    """``(H*W, 2)`` node coordinates of the unit square (Dirichlet-type grid, ij order)."""
    x = torch.linspace(0, 1, size[0], dtype=dtype, device=device)
    y = torch.linspace(0, 1, size[1], dtype=dtype, device=device)
    X, Y = torch.meshgrid(x, y, indexing="ij")
    return torch.stack([X.reshape(-1), Y.reshape(-1)], 1)


def _make_fno(n_modes, in_channels, hidden, n_layers, out_channels=1):
    from neuralop.models import FNO as _NeuralopFNO  # lazy import (~1.6 s)
    return _NeuralopFNO(n_modes=tuple(int(k) for k in n_modes), in_channels=in_channels, out_channels=out_channels,
                        hidden_channels=hidden, n_layers=n_layers, positional_embedding="grid",
                        domain_padding=None)


class _MeasurementSurrogate(Surrogate):
    """Common part: input ``(B, L, C, Nb)`` in physical units, output ``(B, 1, *out_size)``.

    ``in_channels`` = channels per measurement (normalised per channel over all
    measurements and boundary nodes), ``n_boundary`` = values per measurement.
    """

    variable_count = False   # True if any number of measurements is accepted

    def check_input(self, x: torch.Tensor) -> None:
        C, nb = self.config["in_channels"], self.config["n_boundary"]
        if not torch.is_tensor(x) or x.dim() != 4 or x.shape[2] != C or x.shape[3] != nb:
            got = tuple(x.shape) if torch.is_tensor(x) else type(x).__name__
            raise ValueError(f"{type(self).__name__} expects measurements of shape (B, L, {C}, {nb}) "
                             f"(batch, measurements, channels, boundary values); got {got}")
        if x.shape[1] < 1:
            raise ValueError(f"{type(self).__name__} needs at least one measurement; got L = 0")
        L = self.config.get("n_measurements")
        if not self.variable_count and x.shape[1] != L:
            raise ValueError(f"{type(self).__name__} was built for exactly {L} measurements; got {x.shape[1]}")
        if not x.is_floating_point():
            raise TypeError(f"{type(self).__name__} expects a floating-point input; got {x.dtype}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        p = next(self.parameters())
        B, L, C, nb = x.shape
        z = self.input_normalizer.encode(x.to(p.dtype).reshape(B * L, C, nb)).reshape(B, L, C, nb)
        out = self.output_normalizer.decode(self.network(z))
        return out.to(x.dtype)

    @torch.no_grad()
    def fit_normalizers(self, inputs: torch.Tensor, outputs: Optional[torch.Tensor] = None):
        """``inputs`` ``(N, L, C, Nb)``, ``outputs`` ``(N, 1, H, W)``."""
        self.input_normalizer.fit(inputs.reshape(-1, inputs.shape[2], inputs.shape[3]))
        if outputs is not None:
            self.output_normalizer.fit(outputs)
        return self

    def inputs_from_observations(self, y: torch.Tensor, fwd=None) -> torch.Tensor:
        """EIT observations ``(B, L, Nb)`` (+ the patterns of ``fwd.problem``) -> ``(B, L, C, Nb)``."""
        if y.dim() == 4:
            return y
        C = self.config["in_channels"]
        if C == 1:
            return y[:, :, None]
        patterns = getattr(getattr(fwd, "problem", None), "patterns", None)
        if C != 2 or patterns is None:
            raise ValueError(f"{type(self).__name__} takes (B, L, {C}, Nb) measurements; cannot build them from "
                             f"observations of shape {tuple(y.shape)} without a forward model whose problem has "
                             "boundary patterns")
        obs = getattr(fwd, "observation", None)
        if self.config.get("difference"):
            ref = fwd.problem.reference_data(dtype=y.dtype, device=y.device)
            y = y - (obs(ref) if obs is not None and hasattr(obs, "index") else ref)
        g = patterns.to(y.dtype)
        if obs is not None and hasattr(obs, "index"):
            g = obs(g)
        if g.shape != y.shape[1:]:
            raise ValueError(f"observations {tuple(y.shape)} do not match the forward model's boundary patterns "
                             f"{tuple(g.shape)} (one row of fluxes per pattern)")
        return torch.stack([g.expand(y.shape[0], *g.shape), y], 2)


# ----------------------------------------------------------------------------- NIO
class NIO(_MeasurementSurrogate):
    r"""``NIO(n_boundary, out_size=32, in_channels=2, n_measurements=16, n_basis=64, ...)``.

    Parameters
    ----------
    n_boundary : boundary values per measurement (``4(n-1)`` for the EIT grid).
    out_size : output grid (int or pair), nodes of the unit square.
    in_channels : channels per measurement (2: Dirichlet pattern and flux).
    n_measurements : number used in training (for the record; any count >= 1 works).
    n_basis : DeepONet basis size ``p``.
    branch_width, branch_layers : 1-D CNN encoder of each measurement.
    trunk_width, trunk_layers : trunk MLP over coordinates.
    n_modes, hidden_channels, n_layers : the FNO part.
    min_measurements : smallest subset drawn by randomised batching.
    difference : the inputs are difference data (flux minus the flux of sigma = 1); for the solver's wiring.
    lift_channels : fields per measurement in the lift (``c``; the trunk outputs ``c * p`` functions, the
        branch coefficients are shared), i.e. the FNO's input channels.  1 is the paper's single field.
    """

    variable_count = True

    def __init__(self, n_boundary: int, out_size=32, in_channels: int = 2, n_measurements: int = 16,
                 n_basis: int = 64, branch_width: int = 32, branch_layers: int = 3, trunk_width: int = 64,
                 trunk_layers: int = 3, n_modes=(12, 12), hidden_channels: int = 32, n_layers: int = 4,
                 min_measurements: int = 1, difference: bool = False, lift_channels: int = 1, seed: int = 0):
        size = _size2(out_size)
        c = int(lift_channels)
        if c < 1:
            raise ValueError(f"NIO needs lift_channels >= 1; got {lift_channels}")
        super().__init__(n_boundary=int(n_boundary), out_size=size, in_channels=int(in_channels),
                         n_measurements=int(n_measurements), n_basis=int(n_basis), branch_width=int(branch_width),
                         branch_layers=int(branch_layers), trunk_width=int(trunk_width),
                         trunk_layers=int(trunk_layers), n_modes=[int(k) for k in n_modes],
                         hidden_channels=int(hidden_channels), n_layers=int(n_layers),
                         min_measurements=int(min_measurements), difference=bool(difference), lift_channels=c,
                         seed=int(seed))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            self.branch = BoundaryEncoder(int(in_channels), int(n_basis), int(branch_width), int(branch_layers))
            self.trunk = mlp([2] + [int(trunk_width)] * int(trunk_layers) + [int(n_basis) * c])
            variance_preserving_init_(self.branch)                 # beta_k ~ O(1), varying with the data
            variance_preserving_init_(self.trunk, 1.0 / math.sqrt(int(n_basis)))   # so D(u)(x) ~ O(1)
            self.fno = _make_fno(n_modes, c, int(hidden_channels), int(n_layers))
        self.register_buffer("coords", _grid_coords(size, torch.float32, None), persistent=False)

    def deeponet(self, z: torch.Tensor) -> torch.Tensor:
        r"""Per-measurement DeepONet :math:`\mathcal{D}(u_\ell)(x)`: ``(B, L, C, Nb) -> (B, L, c, H, W)``
        (``c = lift_channels`` fields per measurement, sharing the branch coefficients)."""
        B, L, C, nb = z.shape
        c = self.config.get("lift_channels", 1)
        beta = self.branch(z.reshape(B * L, C, nb)).reshape(B, L, -1)          # (B, L, p)
        tau = self.trunk(self.coords.to(z.dtype)).reshape(-1, c, beta.shape[-1])   # (HW, c, p)
        d = torch.einsum("blp,ncp->blcn", beta, tau)
        return d.reshape(B, L, c, *self.config["out_size"])

    def network(self, z: torch.Tensor) -> torch.Tensor:
        d = self.deeponet(z).mean(1)                       # permutation-invariant lift, any L >= 1
        return self.fno(d)


def random_subset(x: torch.Tensor, low: int, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Randomised batching: keep a random subset of ``L' ~ U{low..L}`` measurements (axis 1), without replacement."""
    L = x.shape[1]
    low = max(1, min(int(low), L))
    k = int(torch.randint(low, L + 1, (1,), generator=generator))
    idx = torch.randperm(L, generator=generator)[:k].to(x.device)
    return x[:, idx]


def nio_loss(model: NIO, batch, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Relative L2 loss with randomised batching over the number of measurements (one subset per batch)."""
    x, m = batch[0], batch[1]
    xs = random_subset(x, model.config.get("min_measurements", 1), generator) if isinstance(model, NIO) else x
    pred = model(xs)
    num = (pred - m).flatten(1).norm(dim=1)
    den = m.flatten(1).norm(dim=1).clamp_min(1e-12)
    return (num / den).mean()


# ----------------------------------------------------------------------------- baselines
class StackedDeepONet(_MeasurementSurrogate):
    r"""Baseline: one DeepONet on all ``L`` measurements stacked as channels (fixed ``L``).

    Branch: the same 1-D CNN encoder with ``L*C`` input channels; trunk: MLP
    over coordinates; output :math:`\sum_k \beta_k\tau_k(x) + b`.
    """

    def __init__(self, n_boundary: int, out_size=32, in_channels: int = 2, n_measurements: int = 16,
                 n_basis: int = 128, branch_width: int = 64, branch_layers: int = 3, trunk_width: int = 128,
                 trunk_layers: int = 4, difference: bool = False, seed: int = 0):
        size = _size2(out_size)
        super().__init__(n_boundary=int(n_boundary), out_size=size, in_channels=int(in_channels),
                         n_measurements=int(n_measurements), n_basis=int(n_basis), branch_width=int(branch_width),
                         branch_layers=int(branch_layers), trunk_width=int(trunk_width),
                         trunk_layers=int(trunk_layers), difference=bool(difference), seed=int(seed))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            self.branch = BoundaryEncoder(int(in_channels) * int(n_measurements), int(n_basis), int(branch_width),
                                          int(branch_layers))
            self.trunk = mlp([2] + [int(trunk_width)] * int(trunk_layers) + [int(n_basis)])
            self.bias = nn.Parameter(torch.zeros(1))
        self.register_buffer("coords", _grid_coords(size, torch.float32, None), persistent=False)

    def network(self, z):
        B, L, C, nb = z.shape
        beta = self.branch(z.reshape(B, L * C, nb))
        tau = self.trunk(self.coords.to(z.dtype))
        out = beta @ tau.T / math.sqrt(beta.shape[-1]) + self.bias
        return out.reshape(B, 1, *self.config["out_size"])


class StackedFNO(_MeasurementSurrogate):
    """Baseline: FNO on the measurements as an image ``(C, L, Nb)`` resized bilinearly to the output grid."""

    def __init__(self, n_boundary: int, out_size=32, in_channels: int = 2, n_measurements: int = 16,
                 n_modes=(12, 12), hidden_channels: int = 32, n_layers: int = 4, difference: bool = False,
                 seed: int = 0):
        size = _size2(out_size)
        super().__init__(n_boundary=int(n_boundary), out_size=size, in_channels=int(in_channels),
                         n_measurements=int(n_measurements), n_modes=[int(k) for k in n_modes],
                         hidden_channels=int(hidden_channels), n_layers=int(n_layers), difference=bool(difference),
                         seed=int(seed))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            self.fno = _make_fno(n_modes, int(in_channels), int(hidden_channels), int(n_layers))

    def network(self, z):
        img = z.permute(0, 2, 1, 3)                                     # (B, C, L, Nb)
        img = F.interpolate(img, size=tuple(self.config["out_size"]), mode="bilinear", align_corners=True)
        return self.fno(img)


class EncoderDecoder(_MeasurementSurrogate):
    """Baseline: fully convolutional encoder (measurement image -> latent vector) and transposed-CNN decoder."""

    def __init__(self, n_boundary: int, out_size=32, in_channels: int = 2, n_measurements: int = 16,
                 width: int = 32, latent: int = 256, difference: bool = False, seed: int = 0):
        size = _size2(out_size)
        super().__init__(n_boundary=int(n_boundary), out_size=size, in_channels=int(in_channels),
                         n_measurements=int(n_measurements), width=int(width), latent=int(latent),
                         difference=bool(difference), seed=int(seed))
        w = int(width)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            self.enc = nn.Sequential(
                nn.Conv2d(int(in_channels), w, 3, stride=(1, 2), padding=1), nn.GELU(),
                nn.Conv2d(w, 2 * w, 3, stride=2, padding=1), nn.GELU(),
                nn.Conv2d(2 * w, 4 * w, 3, stride=2, padding=1), nn.GELU(),
                nn.AdaptiveAvgPool2d((4, 4)), nn.Flatten(), nn.Linear(64 * w, int(latent)), nn.GELU())
            h0 = (math.ceil(size[0] / 8), math.ceil(size[1] / 8))
            self.h0 = h0
            self.fc = nn.Linear(int(latent), 4 * w * h0[0] * h0[1])
            self.dec = nn.Sequential(
                nn.ConvTranspose2d(4 * w, 2 * w, 4, stride=2, padding=1), nn.GELU(),
                nn.ConvTranspose2d(2 * w, w, 4, stride=2, padding=1), nn.GELU(),
                nn.ConvTranspose2d(w, w, 4, stride=2, padding=1), nn.GELU(),
                nn.Conv2d(w, 1, 3, padding=1))

    def network(self, z):
        h = self.enc(z.permute(0, 2, 1, 3))
        h = self.fc(h).reshape(z.shape[0], -1, *self.h0)
        out = self.dec(h)
        size = tuple(self.config["out_size"])
        if tuple(out.shape[-2:]) != size:   # output grids not divisible by 8: resize the last feature map
            out = F.interpolate(out, size=size, mode="bilinear", align_corners=True)
        return out


# ----------------------------------------------------------------------------- data and CLI
def eit_measurements(problem, dtn: torch.Tensor, difference: bool = False) -> torch.Tensor:
    """Stack the problem's Dirichlet patterns with DtN data ``(N, L, Nb)`` -> NIO input ``(N, L, 2, Nb)``.

    ``difference=True``: use difference data ``dtn - problem.reference_data()`` (background sigma = 1)."""
    g = problem.patterns.to(dtn.dtype)
    if difference:
        dtn = dtn - problem.reference_data(dtype=dtn.dtype, device=dtn.device)
    if dtn.dim() != 3 or tuple(dtn.shape[1:]) != tuple(g.shape):
        raise ValueError(f"DtN data of shape {tuple(dtn.shape)} do not match the problem's patterns {tuple(g.shape)}")
    return torch.stack([g.expand(dtn.shape[0], -1, -1), dtn], 2)


def eit_pairs(ds, dtype=torch.float32, difference: bool = False):
    """``(measurements (N, L, 2, Nb), sigma (N, 1, n, n))`` from an ``eit`` dataset of ``pdeinv generate``."""
    from pdeinv.data.io import dataset_tensors, grid_of
    from pdeinv.physics.eit import EIT
    sigma, dtn = dataset_tensors(ds, dtype=torch.float64)
    if dtn.dim() == 2:
        dtn = dtn[:, None]
    problem = EIT(grid_of(ds), n_patterns=dtn.shape[1])
    return eit_measurements(problem, dtn, difference).to(dtype), sigma.to(dtype)
