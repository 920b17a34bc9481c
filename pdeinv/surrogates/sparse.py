r"""Sparse-observation baselines: neural operators trained on scattered point values.

The published FNO/DeepONet rows of the DiffusionPDE/FunDPS tables were trained
on full fields and fed sparse ones.  pdeinv's baselines are trained for the
setting they are tested in: the input is the observed field scattered on the
grid (zero where unobserved) stacked with the observation mask,

.. math::  x = [\,M \odot v,\; M\,] \in \mathbb{R}^{2C \times n_x \times n_y},

with a fresh random mask ``M`` (a ``fraction`` of the nodes) for every sample,
and the target is the full field.  *Forward* baseline: ``v = m`` (observed
coefficient), target ``u``.  *Inverse* baseline: ``v = u`` (observed state),
target ``m``.

:class:`SparseDataset` builds such training pairs (seeded per sample; fixed masks, for validation),
:class:`ResampledSparseDataset` draws a new mask every time a pair is read (training),
:func:`sparse_input` the input from a field and a mask,
:func:`scatter_observations` the input from point observations ``y`` of a
``PointObservation`` on grid nodes, and :class:`SparseOperator` is the
surrogate (FNO or DeepONet inside) registered as ``"sparse"``; a trained
inverse baseline inverts with ``pdeinv.solvers.Amortized(model)(y, fwd)``.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch
from torch.utils.data import Dataset, TensorDataset

from pdeinv.surrogates.base import Surrogate


def random_mask(shape, fraction: float, seed: int) -> torch.Tensor:
    """Boolean mask of ``round(fraction * N)`` distinct random nodes (at least one), seeded."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1]; got {fraction}")
    N = int(np.prod(shape))
    n = max(1, int(round(fraction * N)))
    g = torch.Generator().manual_seed(int(seed))
    mask = torch.zeros(N, dtype=torch.bool)
    mask[torch.randperm(N, generator=g)[:n]] = True
    return mask.reshape(tuple(shape))


def sparse_input(field: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``(B, C, *grid)`` field and ``(B|1, *grid)`` or ``grid``-shaped mask -> ``(B, 2C, *grid)`` input."""
    if mask.dim() == field.dim() - 2:
        mask = mask[None]
    if tuple(mask.shape[-(field.dim() - 2):]) != tuple(field.shape[2:]):
        raise ValueError(f"mask of shape {tuple(mask.shape)} does not fit the field's grid {tuple(field.shape[2:])}")
    mk = mask[:, None].to(field.dtype).expand(field.shape[0], field.shape[1], *field.shape[2:])
    return torch.cat([torch.where(mk > 0, field, torch.zeros_like(field)), mk], 1)


def _sample_seed(seed: int, i: int) -> int:
    return int(np.random.SeedSequence([int(seed), int(i), 0x5EED]).generate_state(1)[0])


class SparseDataset(TensorDataset):
    """Pairs ``(sparse_input(x_i, M_i), y_i)`` with a fresh random mask ``M_i`` per sample.

    ``x``: the observed field ``(N, C, *grid)`` (``m`` for forward, ``u`` for
    inverse); ``y``: the target ``(N, C', *grid)``.  Mask ``i`` depends only on
    ``(seed, i)``.  ``.inputs``, ``.targets``, ``.masks`` hold the tensors.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, fraction: float = 0.0305, seed: int = 0):
        if x.shape[0] != y.shape[0]:
            raise ValueError(f"x has {x.shape[0]} samples but y has {y.shape[0]}")
        masks = torch.stack([random_mask(x.shape[2:], fraction, _sample_seed(seed, i)) for i in range(x.shape[0])])
        inputs = sparse_input(x, masks)
        super().__init__(inputs, y)
        self.inputs, self.targets, self.masks, self.fraction = inputs, y, masks, float(fraction)


class ResampledSparseDataset(Dataset):
    """Pairs ``(sparse_input(x_i, M), y_i)`` with a *new* random mask ``M`` each time item ``i`` is read.

    Training with a fresh point set every epoch shows the network ``N x epochs`` masks instead of
    ``N``, which it needs to invert an arbitrary set of points.  The masks come from torch's global
    generator, which :func:`pdeinv.nn.training.train` seeds per epoch: a run is reproducible and
    resumes exactly.  ``x`` ``(N, C, *grid)``, ``y`` ``(N, C', *grid)``; validate on a fixed-mask
    :class:`SparseDataset`.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, fraction: float = 0.0305):
        if x.shape[0] != y.shape[0]:
            raise ValueError(f"x has {x.shape[0]} samples but y has {y.shape[0]}")
        if not 0 < fraction <= 1:
            raise ValueError(f"fraction must be in (0, 1]; got {fraction}")
        self.x, self.y, self.fraction = x, y, float(fraction)
        self.n_nodes = int(np.prod(x.shape[2:]))
        self.n_points = max(1, int(round(self.fraction * self.n_nodes)))

    def __len__(self):
        return self.x.shape[0]

    def __getitem__(self, i):
        mask = torch.zeros(self.n_nodes, dtype=torch.bool)
        mask[torch.randperm(self.n_nodes)[:self.n_points]] = True
        return sparse_input(self.x[i:i + 1], mask.reshape(self.x.shape[2:]))[0], self.y[i]

    @property
    def inputs(self) -> torch.Tensor:
        """One draw of the inputs of every sample (for fitting normalisers), seeded so it is repeatable."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            return torch.stack([self[i][0] for i in range(len(self))])


def scatter_observations(y: torch.Tensor, observation) -> torch.Tensor:
    """Baseline input from point observations: ``y`` ``(B, C, P)`` -> ``(B, 2C, *grid)``.

    The observation must sample grid nodes (``PointObservation.random`` /
    ``from_indices``, ``MaskObservation``): its adjoint then scatters the
    values onto their nodes.
    """
    w = observation.weight
    best, j = w.max(-1)
    if not bool((best > 1 - 1e-9).all()):
        raise ValueError("sparse baselines need observations at grid nodes (PointObservation.random / "
                         "from_indices); these points interpolate between nodes")
    nodes = observation.index.gather(-1, j[:, None])[:, 0]                 # (P,) flat node of each point
    shape = tuple(observation.grid.shape)
    N = int(np.prod(shape))
    field = torch.zeros(*y.shape[:-1], N, dtype=y.dtype, device=y.device)
    field[..., nodes.to(y.device)] = y
    mask = torch.zeros(N, dtype=torch.bool, device=y.device)
    mask[nodes.to(y.device)] = True
    return sparse_input(field.reshape(*y.shape[:-1], *shape), mask.reshape(shape))


class SparseOperator(Surrogate):
    """A neural operator on sparse-observation input: ``[M * v, M] -> target``.

    ``SparseOperator(operator="fno", in_channels=1, out_channels=1, grid_shape=None, options=None)``:
    ``operator`` is ``"fno"`` or ``"deeponet"`` (built by
    :func:`pdeinv.surrogates.training.build_operator` with ``options``);
    ``in_channels`` counts the channels of the *observed field* (the network
    sees ``2 * in_channels``: values and mask).  ``model(x)`` takes the sparse
    input ``(B, 2C, *grid)`` from :func:`sparse_input`; with
    :class:`pdeinv.solvers.Amortized` the observations are scattered for it by
    :meth:`inputs_from_observations`, so an inverse baseline is used as
    ``Amortized(model)(y, fwd)``.
    """

    def __init__(self, operator: str = "fno", in_channels: int = 1, out_channels: int = 1,
                 grid_shape=None, options: Optional[dict] = None):
        if operator not in ("fno", "deeponet"):
            raise ValueError(f"operator must be 'fno' or 'deeponet'; got {operator!r}")
        if grid_shape is None:
            raise ValueError("SparseOperator needs grid_shape (the grid of the observed field)")
        super().__init__(operator=operator, in_channels=int(in_channels), out_channels=int(out_channels),
                         grid_shape=[int(n) for n in grid_shape], options=dict(options or {}))
        from pdeinv.surrogates.base import Normalizer
        from pdeinv.surrogates.training import build_operator
        self.input_normalizer = Normalizer(2 * int(in_channels))
        self.inner = build_operator(operator, 2 * int(in_channels), int(out_channels), grid_shape,
                                    **self.config["options"])
        self.ndim = len(grid_shape)

    def network(self, z: torch.Tensor) -> torch.Tensor:
        return self.inner.network(z)     # normalisation is done once, by this wrapper

    def inputs_from_observations(self, y: torch.Tensor, fwd) -> torch.Tensor:
        """Network input from point observations ``y`` of ``fwd.observation`` (grid nodes)."""
        return scatter_observations(y, fwd.observation)

    def from_field(self, field: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Prediction from a field observed where ``mask`` is True."""
        return self(sparse_input(field, mask))
