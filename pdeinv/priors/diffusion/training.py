r"""Denoising score matching for :class:`~.denoisers.EDMDenoiser`, on the surrogates' ``train`` harness.

The EDM loss (Karras et al. 2022) on normalised fields :math:`z = (x-\mu_c)/s_c`,

.. math:: \mathcal{L}(\theta) = E_{\sigma, z, n}\Big[\lambda(\sigma)\,
          \big\| D_\theta(z + \sigma n, \sigma) - z \big\|^2\Big] / (C N),
          \quad \ln\sigma\sim N(P_\text{mean}, P_\text{std}^2),\ n \sim N(0, K),

is a ``loss_fn(model, batch)`` for :func:`pdeinv.surrogates.training.train`
(batches are ``(x,)`` with ``x`` physical ``(B, C, *grid)``).  In training mode
it also updates the EMA of the weights (one step behind the optimiser; the
final update happens in :func:`train_denoiser`).  ``resolutions=[32, 64]``
resamples each batch to a random one of these grids (bilinear, node-aligned
``align_corners=True``), which is FunDPS's multi-resolution training /
fine-tuning: a neural-operator denoiser in GRF noise then serves every one of
these resolutions.

CLI: ``pdeinv train diffusion --data FILE.nc --arch uno|unet [--epochs ...] [-O noise=grf]
[-O resolutions=[32,64]] [-O channels=joint|m]``.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset

from pdeinv.priors.diffusion.denoisers import EDMDenoiser
from pdeinv.priors.diffusion.edm import as_sigma

log = logging.getLogger(__name__)


def resample(x: torch.Tensor, n: int) -> torch.Tensor:
    """Node-aligned bilinear resampling of ``(B, C, nx, ny)`` to ``(B, C, n, n)`` (identity if already there)."""
    if tuple(x.shape[-2:]) == (n, n):
        return x
    return F.interpolate(x, size=(n, n), mode="bilinear", align_corners=True)


class DenoisingLoss:
    """``loss_fn(model, batch)``: EDM denoising score matching (see the module docstring)."""

    def __init__(self, resolutions: Optional[Sequence[int]] = None):
        self.resolutions = list(resolutions) if resolutions else None

    def __call__(self, model: EDMDenoiser, batch) -> torch.Tensor:
        x = batch[0]
        if model.training:
            model.update_ema()
        if self.resolutions:
            k = int(torch.randint(len(self.resolutions), (1,)))
            x = resample(x, int(self.resolutions[k]))
        z = model.encode(x.float())
        sigma = model.schedule.sample_sigma(z.shape[0], dtype=z.dtype, device=z.device)
        n = model.noise.sample(z.shape, dtype=z.dtype, device=z.device)
        s = as_sigma(sigma, z)
        D = model.denoise(z + s * n, sigma)
        w = model.schedule.loss_weight(s)
        return (w * (D - z) ** 2).mean()


def denoising_loss(model, x: torch.Tensor, sigma, seed: int = 0) -> torch.Tensor:
    r"""Evaluation loss :math:`E_n \|D(z + \sigma n, \sigma) - z\|^2 / (CN)` at fixed noise levels (seeded)."""
    g = torch.Generator().manual_seed(int(seed))
    z = model.encode(x)
    n = model.noise.sample(z.shape, generator=g, dtype=z.dtype, device=z.device)
    s = as_sigma(sigma, z)
    with torch.no_grad():
        D = model.denoise(z + s * n, sigma)
    return ((D - z) ** 2).mean()


def train_denoiser(model: EDMDenoiser, data: torch.Tensor, val_data: Optional[torch.Tensor] = None, *,
                   epochs: int, batch_size: int = 16, lr: float = 2e-3, resolutions=None, checkpoint=None,
                   resume: bool = False, seed: int = 0, device="cpu", verbose: bool = False,
                   fit_normalizers: bool = True, **train_kw) -> dict:
    """Fit normalisers on ``data`` ``(N, C, *grid)`` (physical), train with :class:`DenoisingLoss`, finish the EMA.

    ``fit_normalizers=False`` keeps the model's normalisers (a warm start from trained weights).
    Further keywords go to :func:`pdeinv.surrogates.training.train` (scheduler, patience, ddp ...).
    Returns the history.  With ``checkpoint`` the final (EMA) model is saved there.
    """
    from pdeinv.nn.training import train
    if not resume and fit_normalizers:
        model.fit_normalizers(data)
    if model.config.get("train_res") is None:
        model.config["train_res"] = int(data.shape[-1])
    loss = DenoisingLoss(resolutions)
    hist = train(model, TensorDataset(data.float()), TensorDataset(val_data.float()) if val_data is not None else None,
                 loss_fn=loss, epochs=epochs, batch_size=batch_size, lr=lr, checkpoint=checkpoint, resume=resume,
                 seed=seed, device=device, verbose=verbose, restore_best=False, **train_kw)
    model.train()
    model.update_ema()      # the last optimiser step
    model.eval()
    if checkpoint is not None:
        model.save(checkpoint, training=None)
    return hist


def joint_fields(ds, channels: str = "joint", time_index: int = -1) -> torch.Tensor:
    """Training fields from a dataset: ``(m, u)`` stacked (``"joint"``) or ``m`` alone (``"m"``), float32."""
    from pdeinv.data.io import dataset_tensors
    m, u = dataset_tensors(ds, dtype=torch.float32)
    if u.dim() == m.dim() + 1:
        u = u[:, time_index]
    if channels == "joint":
        return torch.cat([m, u], 1)
    if channels == "m":
        return m
    raise ValueError(f"channels must be 'joint' or 'm'; got {channels!r}")
