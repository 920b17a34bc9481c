r"""Denoisers :math:`D(x_\sigma, \sigma) \approx E[x_0 \mid x_\sigma]` for the EDM samplers.

Every denoiser here is called as ``D.denoise(z, sigma)`` on *normalised*
fields ``z`` ``(B, C, *spatial)`` with noise levels ``sigma`` (a number or
``(B,)``), and exposes ``noise`` (the noise law of :mod:`.noise`) and
``schedule`` (:class:`.edm.EDMSchedule`).

* :class:`AnalyticGaussianDenoiser` -- exact for Gaussian data
  :math:`x_0 \sim N(\mu, C)` in white or GRF noise :math:`N(0, \sigma^2 K)`:

  .. math:: E[x_0 \mid x] = \mu + C (C + \sigma^2 K)^{-1} (x - \mu),

  evaluated in :math:`O(N^2)` per call from one generalised eigendecomposition
  :math:`K = LL^T`, :math:`L^{-1} C L^{-T} = V\Lambda V^T`:
  :math:`C(C+\sigma^2K)^{-1} = C L^{-T} V (\Lambda+\sigma^2)^{-1} V^T L^{-1}`.
  Used by the tests (the posterior of a GRF prior under linear observations is
  itself Gaussian) and as the "fitted Gaussian" baseline of a trained model.
* :class:`EDMDenoiser` -- a trained network with EDM preconditioning, a
  normaliser and its noise law, saved/loaded through the Surrogate checkpoint
  machinery.  ``arch="unet"``: pdeinv's own small U-Net (DiffusionPDE);
  ``arch="uno"``: neuraloperator's U-shaped neural operator (FunDPS), which
  runs at any resolution.
"""
from __future__ import annotations

import math
from typing import Dict, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from pdeinv.nn.base import Network, register_network
from pdeinv.nn.denoiser_nets import ARCHS, UNet, UNONet  # noqa: F401  (the networks F_theta)
from pdeinv.priors.diffusion.edm import EDMSchedule, as_sigma
from pdeinv.priors.diffusion.noise import make_noise

#: version of the checkpoint convention of :class:`EDMDenoiser` (2: std sigma_data, per-block UNO embedding)
FORMAT_VERSION = 2


# =============================================================================== analytic
class AnalyticGaussianDenoiser:
    r"""Exact posterior-mean denoiser for Gaussian data.

    Parameters
    ----------
    moments : either a pair ``(mean (C*N,), cov (C*N, C*N))`` for one fixed grid, or a
        callable ``spatial -> (mean, cov)`` (e.g. a GRF law evaluated at any
        resolution).  Vectors are channel-major flattenings of ``(C, *spatial)``.
    noise : the diffusion noise (white or GRF), applied to each channel.
    channels : number of channels ``C``.
    schedule : an :class:`EDMSchedule` (its ``sigma_data`` is taken from the data
        if not given).
    jitter : relative diagonal added to ``K`` for the Cholesky factor.
    """

    def __init__(self, moments, noise=None, channels: int = 1, schedule: Optional[EDMSchedule] = None,
                 jitter: float = 1e-10, normalize: bool = True):
        self.noise = make_noise(noise)
        self.channels = int(channels)
        self._moments = moments
        self._cache: Dict[Tuple[int, ...], tuple] = {}
        self.jitter = float(jitter)
        self.normalize = bool(normalize)
        if schedule is None:
            schedule = EDMSchedule()
            if not callable(moments) and not normalize:
                schedule.sigma_data = float(torch.as_tensor(moments[1]).diagonal().mean().sqrt())
        self.schedule = schedule

    @classmethod
    def fit(cls, data: torch.Tensor, noise=None, ridge: float = 1e-6, **kw) -> "AnalyticGaussianDenoiser":
        """The Gaussian with the empirical mean and covariance of ``data`` ``(N, C, *spatial)``."""
        x = data.detach().to(torch.float64).flatten(1)
        mu = x.mean(0)
        xc = x - mu
        cov = xc.T @ xc / max(x.shape[0] - 1, 1)
        cov = cov + ridge * cov.diagonal().mean() * torch.eye(cov.shape[0], dtype=cov.dtype)
        return cls((mu, cov), noise=noise, channels=data.shape[1], **kw)

    def moments(self, spatial: Sequence[int]):
        """``(mean, cov)`` on a grid of this spatial shape."""
        spatial = tuple(int(s) for s in spatial)
        if callable(self._moments):
            return self._moments(spatial)
        mu, cov = self._moments
        n = self.channels * int(math.prod(spatial))
        if mu.numel() != n:
            raise ValueError(f"this analytic denoiser was built for {mu.numel()} values per sample; a field "
                             f"(C={self.channels}, {spatial}) has {n}")
        return torch.as_tensor(mu, dtype=torch.float64), torch.as_tensor(cov, dtype=torch.float64)

    def _stats(self, spatial):
        """Per-channel mean and physical size of one normalised unit (zeros/ones if ``normalize=False``):
        the normalised fields have mean pointwise std ``schedule.sigma_data`` (0.5), as a trained model's."""
        mu, C = self.moments(spatial)
        if not self.normalize:
            return torch.zeros(self.channels, dtype=torch.float64), torch.ones(self.channels, dtype=torch.float64)
        mu_c = mu.reshape(self.channels, -1).mean(1)
        sd_c = C.diagonal().reshape(self.channels, -1).mean(1).sqrt()
        return mu_c, sd_c / self.schedule.sigma_data

    def channel_std(self, spatial) -> list:
        """Physical size of one normalised unit per channel (the data's std / ``sigma_data``)."""
        return [float(v) for v in self._stats(spatial)[1]]

    def sample(self, n: int, spatial: Sequence[int], **kw) -> torch.Tensor:
        """``n`` unconditional draws in physical units by the EDM sampler (see :func:`.sampling.sample_prior`)."""
        from pdeinv.priors.diffusion.sampling import sample_prior
        return sample_prior(self, n, spatial, **kw)

    def _factors(self, spatial):
        spatial = tuple(int(s) for s in spatial)
        if spatial not in self._cache:
            mu, C = self.moments(spatial)
            mc, sc = self._stats(spatial)
            npix = int(math.prod(spatial))
            d = sc.repeat_interleave(npix)
            mu = (mu - mc.repeat_interleave(npix)) / d
            C = C / d[:, None] / d[None, :]
            Kc = self.noise.covariance(spatial, dtype=torch.float64)
            K = torch.block_diag(*([Kc] * self.channels))
            K = K + self.jitter * K.diagonal().mean() * torch.eye(K.shape[0], dtype=K.dtype)
            L = torch.linalg.cholesky(K)
            Linv = torch.linalg.solve_triangular(L, torch.eye(K.shape[0], dtype=K.dtype), upper=False)
            M = Linv @ C @ Linv.T
            lam, V = torch.linalg.eigh(0.5 * (M + M.T))
            lam = lam.clamp_min(0)
            W = C @ Linv.T @ V          # (N, N)
            P = V.T @ Linv              # (N, N)
            self._cache[spatial] = (mu, W, lam, P, mc, sc)
        return self._cache[spatial]

    def denoise(self, z: torch.Tensor, sigma) -> torch.Tensor:
        """:math:`E[x_0 | x_\\sigma = z]` for normalised ``z`` ``(B, C, *spatial)`` (see :meth:`encode`)."""
        if z.shape[1] != self.channels:
            raise ValueError(f"denoiser for {self.channels} channel(s) got {tuple(z.shape)}")
        mu, W, lam, P = (t.to(dtype=z.dtype, device=z.device) for t in self._factors(z.shape[2:])[:4])
        s = as_sigma(sigma, z).reshape(-1, 1)
        v = (z.flatten(1) - mu) @ P.T / (lam + s ** 2)
        return (mu + v @ W.T).reshape(z.shape)

    __call__ = denoise

    def _affine(self, x):
        mc, sc = (t.to(dtype=x.dtype, device=x.device).reshape(1, -1, *([1] * (x.dim() - 2)))
                  for t in self._factors(x.shape[2:])[4:])
        return mc, sc

    def encode(self, x):
        """Physical -> normalised (per-channel mean/std of the Gaussian)."""
        mc, sc = self._affine(x)
        return (x - mc) / sc

    def decode(self, z):
        """Normalised -> physical."""
        mc, sc = self._affine(z)
        return z * sc + mc


def gaussian_posterior(mean: torch.Tensor, cov: torch.Tensor, H: torch.Tensor, y: torch.Tensor,
                       noise_var) -> Tuple[torch.Tensor, torch.Tensor]:
    r"""Posterior of :math:`x \sim N(\mu, C)` given :math:`y = Hx + e`, :math:`e \sim N(0, \Gamma)`.

    ``noise_var``: a number or a vector (diagonal :math:`\Gamma`).  Returns
    ``(mean, cov)`` with :math:`\mu + CH^T(HCH^T+\Gamma)^{-1}(y - H\mu)` and
    :math:`C - CH^T(HCH^T+\Gamma)^{-1}HC`.
    """
    G = torch.as_tensor(noise_var, dtype=cov.dtype)
    G = torch.diag(G.expand(H.shape[0])) if G.dim() <= 1 else G
    S = H @ cov @ H.T + G
    Kg = torch.linalg.solve(S, H @ cov).T           # C H^T S^{-1}
    m = mean + Kg @ (y - H @ mean)
    P = cov - Kg @ H @ cov
    return m, 0.5 * (P + P.T)


# =============================================================================== trained denoiser
class EDMDenoiser(Network):
    r"""A trained EDM denoiser with its normaliser, noise law and schedule; a :class:`~pdeinv.nn.base.Network`.

    ``EDMDenoiser(channels=2, arch="unet"|"uno", arch_kwargs={}, noise="white"|"grf"|dict,
    schedule={}, channel_names=["m", "u"], seed=0, gaussian_skip=None)``.  ``gaussian_skip="spectral"``
    (GRF noise only): the skip term ``c_skip z`` becomes the Wiener filter of a Gaussian fitted per mode to
    the training fields (:mod:`.spectral`, fitted by :meth:`fit_normalizers`), and the network's last layer
    starts at zero, so it learns only what that Gaussian misses; the model then serves its training grid.
    ``damp_residual`` (with ``gaussian_skip`` only) damps that residual at large noise,
    :math:`D = D_G + s(\sigma)\,c_\text{out}\,F_\theta`.  For any law with finite third moments the exact
    :math:`D - D_G` shrinks like :math:`\sigma^{-2}` at large :math:`\sigma` and its Jacobian like
    :math:`\sigma^{-3}` (the non-Gaussian cumulants are swamped by the noise), while :math:`D_G`'s Jacobian,
    positive definite, is of order :math:`\sigma^{-2}`.  Undamped (:math:`c_\text{out} \to \sigma_d`), a
    network Jacobian error of order :math:`\sigma_d/\sigma` outweighs :math:`D_G`'s and :math:`\kappa` turns
    negative (the first darcy64-uno, issue 13).  A number :math:`\sigma_c` gives
    :math:`s = \sigma_c^2/(\sigma^2+\sigma_c^2)`: then :math:`s\,c_\text{out} \sim \sigma^{-2}`, the exact
    residual's own rate, so :math:`F_\theta` stays of order one and its Jacobian term falls like
    :math:`\sigma^{-3}`, below :math:`D_G`'s for any bounded network Jacobian.  ``True`` gives the milder
    :math:`s = \sigma_d/\sqrt{\sigma^2+\sigma_d^2}` (the residual's Jacobian term then has :math:`D_G`'s
    order, and :math:`\kappa` can still dip below zero).  At :math:`\sigma \ll \sigma_c` nothing changes.

    ``denoise(z, sigma)`` works on normalised fields (what the samplers use);
    ``model(x, sigma)`` takes and returns physical units.  ``encode``/``decode``
    convert between the two with the per-channel normaliser fitted on the
    training data (:meth:`fit_normalizers`), scaled to the schedule's ``sigma_data``
    (0.5 by default, as in EDM/FunDPS: the training noise law and the sampling
    schedule are relative to it).  The full schedule is kept in the config.
    Checkpoints written before this convention (data of std 1, UNO without the
    per-block noise embedding) are refused with a clear error: retrain them.  ``model.save(path)`` /
    ``EDMDenoiser.load(path)`` go through the Surrogate checkpoints; the tuned
    guidance weights (``guidance_weights``) are kept in the config.  With
    ``ema_decay`` an exponential moving average of the weights (``ema_net``, part
    of the state dict, so resuming is exact) is kept by the training loss and
    used for denoising in eval mode; the raw weights train.
    """

    name = "diffusion"

    def __init__(self, channels: int = 2, arch: str = "unet", arch_kwargs: Optional[dict] = None,
                 noise="white", schedule: Optional[dict] = None, channel_names: Optional[Sequence[str]] = None,
                 ndim: int = 2, seed: int = 0, guidance_weights: Optional[dict] = None, train_res: Optional[int] = None,
                 ema_decay: Optional[float] = 0.995, in_channels: Optional[int] = None,
                 out_channels: Optional[int] = None, gaussian_skip: Optional[str] = None,
                 damp_residual=False):
        for k, v in (("in_channels", in_channels), ("out_channels", out_channels)):
            if v is not None and int(v) != int(channels):   # (kept in the config by the Surrogate base)
                raise ValueError(f"{k}={v} differs from channels={channels}")
        if arch not in ARCHS:
            raise ValueError(f"unknown denoiser architecture {arch!r}; expected one of {sorted(ARCHS)}")
        noise_obj = make_noise(noise)
        if gaussian_skip not in (None, "spectral"):
            raise ValueError(f"gaussian_skip must be None or 'spectral'; got {gaussian_skip!r}")
        if gaussian_skip and noise_obj.kind != "grf":
            raise ValueError("gaussian_skip='spectral' needs GRF noise (noise='grf'): its basis diagonalises K")
        if damp_residual is not False and damp_residual is not None and not (
                damp_residual is True or (isinstance(damp_residual, (int, float)) and damp_residual > 0)):
            raise ValueError(f"damp_residual must be False, True or a knee sigma_c > 0; got {damp_residual!r}")
        if damp_residual and not gaussian_skip:
            raise ValueError("damp_residual damps the residual about a fitted Gaussian: it needs "
                             "gaussian_skip='spectral'")
        channel_names = list(channel_names) if channel_names is not None else [f"c{i}" for i in range(channels)]
        if len(channel_names) != int(channels):
            raise ValueError(f"channel_names {channel_names} do not match channels={channels}")
        super().__init__(in_channels=int(channels), out_channels=int(channels), channels=int(channels), arch=arch,
                         arch_kwargs=dict(arch_kwargs or {}), noise=noise_obj.to_dict(),
                         schedule=EDMSchedule(**(schedule or {})).to_dict(), channel_names=channel_names, ndim=int(ndim),
                         seed=int(seed), guidance_weights=dict(guidance_weights or {}), train_res=train_res,
                         ema_decay=ema_decay, **({"gaussian_skip": gaussian_skip} if gaussian_skip else {}),
                         **({"damp_residual": damp_residual if damp_residual is True else float(damp_residual)}
                            if damp_residual else {}))
        self.noise = noise_obj
        self.schedule = EDMSchedule(**(schedule or {}))
        # marks the convention (normalised std = sigma_data, per-block noise embedding); see load_state_dict
        self.register_buffer("format_version", torch.tensor(FORMAT_VERSION, dtype=torch.long))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            self.net = ARCHS[arch](int(channels), **(arch_kwargs or {}))
        self.gaussian = None
        if gaussian_skip:
            from pdeinv.priors.diffusion.spectral import SpectralGaussian
            self.gaussian = SpectralGaussian(int(channels))
            _zero_output(self.net)          # an untrained model is exactly the fitted Gaussian
        self.ema_net = None
        if ema_decay is not None:
            if not 0 < float(ema_decay) < 1:
                raise ValueError(f"ema_decay must be in (0, 1) or None; got {ema_decay}")
            import copy
            self.ema_net = copy.deepcopy(self.net)
            for p in self.ema_net.parameters():
                p.requires_grad_(False)
            self.register_buffer("ema_steps", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def update_ema(self) -> None:
        r"""EMA of the weights, :math:`\bar\theta \leftarrow d\,\bar\theta + (1-d)\theta` with the warm-up
        :math:`d = \min(d_\text{max}, (1+t)/(10+t))`; the EMA weights denoise in eval mode."""
        if self.ema_net is None:
            return
        t = int(self.ema_steps)
        d = min(float(self.config["ema_decay"]), (1 + t) / (10 + t))
        for pe, p in zip(self.ema_net.parameters(), self.net.parameters()):
            pe.mul_(d).add_(p.detach(), alpha=1 - d)
        for be, b in zip(self.ema_net.buffers(), self.net.buffers()):
            be.copy_(b)
        self.ema_steps += 1

    @property
    def channel_names(self):
        return list(self.config["channel_names"])

    @property
    def guidance_weights(self) -> dict:
        """Guidance weights chosen by :func:`~.guidance.tune_guidance` (empty if never tuned)."""
        return dict(self.config.get("guidance_weights") or {})

    def set_guidance_weights(self, key: str, weights: dict) -> None:
        """Record tuned weights under ``key`` (``"<mode>/<physics>"``); saved with the checkpoint."""
        gw = dict(self.config.get("guidance_weights") or {})
        gw[str(key)] = {k: float(v) for k, v in weights.items()}
        self.config["guidance_weights"] = gw

    # ------------------------------------------------------------------ units
    def channel_std(self, spatial=None) -> list:
        """Physical size of one normalised unit per channel (the normaliser's std / ``sigma_data``)."""
        return [float(v) / self.schedule.sigma_data for v in self.input_normalizer.std]

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Physical -> normalised (per-channel std ``sigma_data``)."""
        return self.input_normalizer.encode(x) * self.schedule.sigma_data

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Normalised -> physical."""
        return self.input_normalizer.decode(z / self.schedule.sigma_data)

    def sample(self, n: int, spatial: Optional[Sequence[int]] = None, **kw) -> torch.Tensor:
        """``n`` unconditional draws in physical units (default grid: the training grid); see
        :func:`.sampling.sample_prior`."""
        from pdeinv.priors.diffusion.sampling import sample_prior
        if spatial is None:
            res = self.config.get("train_res")
            if res is None:
                raise ValueError("give spatial=(nx, ny): this model records no training grid")
            spatial = (int(res),) * int(self.config.get("ndim", 2))
        return sample_prior(self, n, spatial, **kw)

    def load_state_dict(self, state_dict, strict: bool = True, **kw):
        if strict and "format_version" not in state_dict:
            raise RuntimeError("this denoiser checkpoint predates pdeinv's EDM convention (data scaled to std "
                               "sigma_data = 0.5, noise level embedded in every UNO block); retrain it with "
                               "`pdeinv train diffusion`")
        return super().load_state_dict(state_dict, strict=strict, **kw)

    @torch.no_grad()
    def fit_normalizers(self, inputs: torch.Tensor, outputs=None) -> "EDMDenoiser":
        self.input_normalizer.fit(inputs)
        self.output_normalizer.fit(inputs)
        if self.gaussian is not None:
            self.gaussian.fit(self.encode(inputs.to(torch.float64)), self.noise)
        return self

    # ------------------------------------------------------------------ denoising
    def denoise(self, z: torch.Tensor, sigma) -> torch.Tensor:
        r""":math:`D(z, \sigma) = c_\text{skip} z + c_\text{out} F(c_\text{in} z, c_\text{noise})` (normalised units;
        with ``gaussian_skip`` the fitted Gaussian's :math:`D_G(z, \sigma)` replaces :math:`c_\text{skip} z`, and
        ``damp_residual`` multiplies :math:`c_\text{out}` by :math:`s(\sigma)`:
        :math:`\sigma_d/\sqrt{\sigma^2+\sigma_d^2}` for ``True``, :math:`\sigma_c^2/(\sigma^2+\sigma_c^2)` for a
        number :math:`\sigma_c`).

        The network runs in float32; the result is in ``z``'s dtype.
        """
        if z.dim() < 3 or z.shape[1] != self.in_channels:
            raise ValueError(f"denoiser expects (B, {self.in_channels}, *grid); got {tuple(z.shape)}")
        s = as_sigma(sigma, z)
        sch = self.schedule
        zf, sf = z.float(), s.float()
        net = self.ema_net if (self.ema_net is not None and not self.training) else self.net
        Fx = net(sch.c_in(sf) * zf, sch.c_noise(sf.reshape(-1)))
        skip = sch.c_skip(s) * z if self.gaussian is None else self.gaussian.denoise(z, s.reshape(-1), self.noise)
        c = sch.c_out(s)
        damp = self.config.get("damp_residual")
        if damp is True:
            c = c * sch.sigma_data / (s ** 2 + sch.sigma_data ** 2) ** 0.5
        elif damp:
            c = c * damp ** 2 / (s ** 2 + damp ** 2)
        return skip + c * Fx.to(z.dtype)

    def forward(self, x: torch.Tensor, sigma=None) -> torch.Tensor:
        """Denoise a physical field ``x`` at normalised noise level ``sigma`` (default ``sigma_min``)."""
        self.check_input(x)
        sigma = self.schedule.sigma_min if sigma is None else sigma
        return self.decode(self.denoise(self.encode(x), sigma))

    def network(self, z):  # Surrogate interface: denoise a nearly clean field
        return self.denoise(z, self.schedule.sigma_min)


def _zero_output(net: nn.Module) -> None:
    """Zero the last layer of a denoiser network (``F_theta = 0`` at initialisation)."""
    if hasattr(net, "uno"):
        last = net.uno.projection.fcs[-1]
    elif isinstance(getattr(net, "out", None), nn.Conv2d):
        last = net.out
    else:
        raise ValueError(f"do not know the output layer of {type(net).__name__}")
    nn.init.zeros_(last.weight)
    if last.bias is not None:
        nn.init.zeros_(last.bias)


register_network("diffusion", EDMDenoiser)
