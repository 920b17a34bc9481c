r"""EDM noise schedule, preconditioning and loss weighting (Karras et al., NeurIPS 2022).

The forward (noising) process is :math:`x_\sigma = x_0 + \sigma\,n` with
:math:`n \sim N(0, K)` (``K = I`` for white noise, a normalised GRF covariance
for function-space noise; see :mod:`.noise`).  A denoiser
:math:`D(x_\sigma, \sigma) \approx E[x_0 \mid x_\sigma]` is written as

.. math::  D(x, \sigma) = c_\text{skip}(\sigma)\,x + c_\text{out}(\sigma)\,
           F_\theta\big(c_\text{in}(\sigma)\,x,\; c_\text{noise}(\sigma)\big),

.. math::  c_\text{skip} = \frac{\sigma_d^2}{\sigma^2+\sigma_d^2},\quad
           c_\text{out} = \frac{\sigma\sigma_d}{\sqrt{\sigma^2+\sigma_d^2}},\quad
           c_\text{in} = \frac{1}{\sqrt{\sigma^2+\sigma_d^2}},\quad
           c_\text{noise} = \tfrac14\ln\sigma,

trained with :math:`\ln\sigma \sim N(P_\text{mean}, P_\text{std}^2)` and weight
:math:`\lambda(\sigma) = (\sigma^2+\sigma_d^2)/(\sigma\sigma_d)^2` (unit
effective loss weight at every noise level).  Sampling uses the time steps

.. math::  \sigma_i = \Big(\sigma_\max^{1/\rho} + \tfrac{i}{N-1}
           (\sigma_\min^{1/\rho} - \sigma_\max^{1/\rho})\Big)^\rho,\quad i<N,\qquad \sigma_N = 0,

and the probability-flow ODE :math:`\mathrm d x/\mathrm d\sigma = (x - D(x,\sigma))/\sigma`
(:mod:`.sampling`).  Fields are in normalised units: the denoisers scale each channel to the standard
deviation ``sigma_data`` = 0.5, as EDM and FunDPS do (EDM's images in [-1, 1] have std ~0.5), so the
published ``P_mean = -1.2``, ``P_std = 1.2``, ``sigma_max = 80`` keep their meaning relative to the data:
5.7 % of the training noise levels have :math:`\sigma/\sigma_d > 4` (with data of std 1 and the same
``P_mean``, only 1.5 % did, and the large noise levels were under-trained).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Optional

import torch


@dataclass
class EDMSchedule:
    """EDM noise levels and preconditioning.

    Parameters
    ----------
    sigma_min, sigma_max, rho : time-step discretisation (published: 0.002, 80, 7).
    sigma_data : standard deviation of the (normalised) data: the denoisers' normalisers scale every
        channel to it (EDM / FunDPS: 0.5).
    P_mean, P_std : log-normal law of training noise levels.
    """

    sigma_min: float = 0.002
    sigma_max: float = 80.0
    rho: float = 7.0
    sigma_data: float = 0.5
    P_mean: float = -1.2
    P_std: float = 1.2

    def __post_init__(self):
        if not (0 < self.sigma_min < self.sigma_max):
            raise ValueError(f"need 0 < sigma_min < sigma_max; got {self.sigma_min}, {self.sigma_max}")
        if not self.rho > 0 or not self.sigma_data > 0 or not self.P_std > 0:
            raise ValueError("rho, sigma_data and P_std must be positive")

    # ------------------------------------------------------------------ sampling steps
    def steps(self, num_steps: int, dtype=torch.float64, device=None) -> torch.Tensor:
        r"""Noise levels :math:`\sigma_0 > \dots > \sigma_{N-1} = \sigma_\min`, then :math:`\sigma_N = 0`; ``(N+1,)``."""
        if int(num_steps) < 1:
            raise ValueError(f"num_steps must be >= 1; got {num_steps}")
        n = int(num_steps)
        i = torch.arange(n, dtype=torch.float64)
        a, b = self.sigma_max ** (1 / self.rho), self.sigma_min ** (1 / self.rho)
        s = (a + i / max(n - 1, 1) * (b - a)) ** self.rho
        return torch.cat([s, torch.zeros(1, dtype=torch.float64)]).to(dtype=dtype, device=device)

    # ------------------------------------------------------------------ preconditioning
    def c_skip(self, sigma):
        return self.sigma_data ** 2 / (sigma ** 2 + self.sigma_data ** 2)

    def c_out(self, sigma):
        return sigma * self.sigma_data / (sigma ** 2 + self.sigma_data ** 2) ** 0.5

    def c_in(self, sigma):
        return 1.0 / (sigma ** 2 + self.sigma_data ** 2) ** 0.5

    def c_noise(self, sigma):
        return torch.log(sigma) / 4 if torch.is_tensor(sigma) else math.log(sigma) / 4

    def loss_weight(self, sigma):
        r""":math:`\lambda(\sigma) = (\sigma^2+\sigma_d^2)/(\sigma\sigma_d)^2`."""
        return (sigma ** 2 + self.sigma_data ** 2) / (sigma * self.sigma_data) ** 2

    def sample_sigma(self, n: int, generator: Optional[torch.Generator] = None, dtype=torch.float32,
                     device=None) -> torch.Tensor:
        """Training noise levels, log-normal ``(n,)``."""
        z = torch.randn(n, generator=generator, dtype=torch.float64)
        return torch.exp(self.P_mean + self.P_std * z).to(dtype=dtype, device=device)

    def posterior_var(self, sigma):
        r"""Per-pixel variance of :math:`x_0 \mid x_\sigma` for scalar Gaussian data,
        :math:`r_\sigma^2 = \sigma_d^2\sigma^2/(\sigma_d^2+\sigma^2)` (used to temper guidance)."""
        return self.sigma_data ** 2 * sigma ** 2 / (self.sigma_data ** 2 + sigma ** 2)

    def to_dict(self) -> dict:
        return asdict(self)


def as_sigma(sigma, x: torch.Tensor) -> torch.Tensor:
    """Noise level(s) as a ``(B, 1, ..., 1)`` tensor broadcastable to ``x``."""
    s = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
    if s.dim() == 0:
        s = s.expand(x.shape[0])
    s = s.reshape(-1)
    if s.numel() != x.shape[0]:
        raise ValueError(f"sigma has {s.numel()} values for a batch of {x.shape[0]}")
    if not bool((s > 0).all()):
        raise ValueError("diffusion noise levels sigma must be > 0")
    return s.reshape((-1,) + (1,) * (x.dim() - 1))
