"""Networks and their machinery, shared by surrogates and diffusion denoisers.

``base``: :class:`Network` (constructor arguments kept in checkpoints, normalisers, atomic
saves, :func:`load`, the :data:`NETWORKS` registry); ``training``: the training loop
(resumable, DDP); ``unet``: U-Net layers (surrogate U-Net, ViTO); ``denoiser_nets``: the
U-Net and UNO inside EDM denoisers.  Nothing here imports surrogates, priors or solvers.
"""
from pdeinv.nn.base import NETWORKS, Network, Normalizer, load, register_network

__all__ = ["NETWORKS", "Network", "Normalizer", "load", "register_network"]
