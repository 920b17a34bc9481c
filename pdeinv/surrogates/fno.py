r"""Fourier neural operator (Li et al., ICLR 2021) from the ``neuraloperator`` package.

Each layer is :math:`v \mapsto \sigma(W v + \mathcal{F}^{-1}(R_\phi \cdot \mathcal{F}v))`
with the spectral weights :math:`R_\phi` kept on the lowest ``n_modes``
Fourier modes, between a lifting and a projection MLP.  pdeinv wraps
``neuralop.models.FNO`` (TFNO with ``factorization="tucker"``); it does not
re-implement it.  The spatial dimension is ``len(n_modes)`` (1-D or 2-D).

The model runs in float32 only (neuraloperator's spectral weights are
complex64); :meth:`Surrogate.forward` casts other float inputs at the boundary.
Normalisers inside the model make ``model(m)`` take and return physical units.

Reference: Z. Li et al., "Fourier Neural Operator for Parametric Partial
Differential Equations", ICLR 2021; neuraloperator 2.0.0 (Kossaifi et al.).
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn.functional as F

from pdeinv.surrogates.base import Surrogate

ACTIVATIONS = {"gelu": F.gelu, "tanh": torch.tanh, "silu": F.silu, "relu": F.relu, "softplus": F.softplus}


class FNO(Surrogate):
    """``FNO(in_channels=1, out_channels=1, n_modes=(12, 12), hidden_channels=32, n_layers=4, ...)``.

    Parameters
    ----------
    in_channels, out_channels : channels of ``m`` and ``u`` (2 for the sparse
        baselines: scattered values + mask).
    n_modes : Fourier modes kept per axis; its length is the spatial dimension.
    hidden_channels, n_layers : width and depth.
    activation : ``"gelu"`` (default, as neuraloperator), ``"tanh"``, ``"silu"``, ``"relu"``, ``"softplus"``.
    positional_embedding : ``"grid"`` (append x, y coordinates in [0, 1]) or ``None``.
    domain_padding : fraction of zero-padding for non-periodic data (e.g. 0.125) or ``None``.
    factorization, rank : ``None`` for a dense FNO, ``"tucker"`` + ``rank`` for TFNO.
    seed : seed of the weight initialisation (same config -> same initial weights).
    """

    def __init__(self, in_channels: int = 1, out_channels: int = 1, n_modes: Sequence[int] = (12, 12),
                 hidden_channels: int = 32, n_layers: int = 4, activation: str = "gelu",
                 positional_embedding: Optional[str] = "grid", domain_padding: Optional[float] = None,
                 factorization: Optional[str] = None, rank: float = 1.0, seed: int = 0):
        n_modes = [int(k) for k in n_modes]
        if len(n_modes) not in (1, 2, 3) or min(n_modes) < 1:
            raise ValueError(f"n_modes must list 1 to 3 positive mode counts (one per axis); got {n_modes}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; expected one of {sorted(ACTIVATIONS)}")
        super().__init__(in_channels=int(in_channels), out_channels=int(out_channels), n_modes=n_modes,
                         hidden_channels=int(hidden_channels), n_layers=int(n_layers), activation=activation,
                         positional_embedding=positional_embedding, domain_padding=domain_padding,
                         factorization=factorization, rank=float(rank), seed=int(seed))
        self.ndim = len(n_modes)
        from neuralop.models import FNO as _NeuralopFNO  # lazy: ~1.6 s import

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            self.fno = _NeuralopFNO(n_modes=tuple(n_modes), in_channels=int(in_channels),
                                    out_channels=int(out_channels), hidden_channels=int(hidden_channels),
                                    n_layers=int(n_layers), non_linearity=ACTIVATIONS[activation],
                                    positional_embedding=positional_embedding, domain_padding=domain_padding,
                                    factorization=factorization, rank=float(rank))

    def network(self, z: torch.Tensor) -> torch.Tensor:
        return self.fno(z)
