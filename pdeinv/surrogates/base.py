"""The :class:`Surrogate` base: a neural operator on grids, ``u = G_theta(m)`` (forward) or
``m = N_theta(y)`` (inverse).  The machinery (config, normalisers, checkpoints) is
:class:`pdeinv.nn.base.Network`'s; a surrogate is a network registered in
``pdeinv.surrogates.SURROGATES``."""
from __future__ import annotations

from pdeinv.nn.base import Network, Normalizer, atomic_torch_save, checkpoint_dict, load, read_checkpoint  # noqa: F401


class Surrogate(Network):
    """Base class of neural-operator surrogates (see :class:`pdeinv.nn.base.Network` for the contract)."""
