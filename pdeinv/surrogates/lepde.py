r"""LE-PDE: latent evolution of PDEs (Wu, Maruyama, Leskovec, NeurIPS 2022).

The state history is compressed once into a *global* latent vector, evolved in
latent space only, and decoded when (and where) an output is wanted:

.. math::
   z^t = E(U^{t-T_{in}+1..t}), \qquad z^{t+1} = z^t + G(z^t, q(p)), \qquad \hat U^{t+m} = D(z^{t+m}),

* ``E`` -- CNN encoder: a 3x3 (or 3) convolution then ``n_down`` strided
  convolutions (x2 channels, /2 resolution each), flattened, linear to
  ``latent_dim``;
* ``G`` -- latent evolution: a residual MLP (``evo_layers`` hidden layers of
  ``evo_width``) on ``[z, q(p)]``, where ``q`` is the *static parameter
  encoder* (an MLP of the system parameters ``p``, e.g. viscosity or forcing
  amplitude; absent when ``n_static = 0``);
* ``D`` -- decoder: linear to the coarsest feature map, ``n_down`` transposed
  convolutions, a final convolution to the frame.

Training loss (paper eq. 4-6), with ``l`` the MSE in normalised units:

.. math::
   L = \sum_{m=1}^{M} \alpha_m\, l(D(z^{t+m}), U^{t+m})
       + \lambda_{rec}\, l(D(E(U^t)), U^t)
       + \lambda_{cons} \sum_{m=1}^{M} \frac{\|z^{t+m} - E(U^{t+m})\|^2}{\|E(U^{t+m})\|^2}

(multi-step, reconstruction and latent-consistency terms; :func:`lepde_loss`).
``U^t`` is the window of ``in_frames`` frames ending at ``t``; the decoder
returns one frame, and the reconstruction target is the last frame of the
window.

Works in 1-D (``ndim=1``, fields ``(B, T, C, n)``) and 2-D (``(B, T, C, n, n)``);
``resolution`` (one entry per axis; its length is the dimension) must be
divisible by ``2^n_down``.  Departure from the authors'
code (``snap-stanford/le_pde``): their NS encoder/decoder use more layers and a
boundary-aware variant; here the encoder/decoder are the plain CNNs of the
paper's Fig. 1 and the MLP is a residual MLP as in the paper's Sec. 3.1.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from pdeinv.surrogates.base import Normalizer, Surrogate


#: ``activation=`` choices (the authors' NS runs use ELU, ``act_name=elu``)
ACTIVATIONS = {"gelu": nn.GELU, "elu": nn.ELU, "relu": nn.ReLU}


def _groups(c: int) -> int:
    """Groups for GroupNorm over ``c`` channels: 4 channels a group (at least one group)."""
    return max(1, c // 4)


def _res(resolution, ndim):
    r = [int(v) for v in (resolution if isinstance(resolution, (list, tuple)) else [resolution] * ndim)]
    if len(r) != ndim:
        raise ValueError(f"resolution must have {ndim} entries; got {resolution}")
    return r


class LEPDE(Surrogate):
    """``LEPDE(resolution, ndim=2, in_channels=1, in_frames=1, latent_dim=128, width=16, n_down=3, ...)``.

    ``norm="group"`` puts GroupNorm after each encoder/decoder convolution and ``activation="elu"``
    swaps GELU for ELU: the authors' NS settings (``normalization_type=gn``, ``act_name=elu``).

    ``model(history, n_steps=1, params=None)`` -> ``(B, n_steps, C, *grid)``: the
    next ``n_steps`` frames after ``history`` ``(B, in_frames, C, *grid)``,
    physical units; ``params`` ``(B, n_static)`` for conditioned systems.
    """

    def __init__(self, resolution, ndim: Optional[int] = None, in_channels: int = 1, in_frames: int = 1, latent_dim: int = 128,
                 width: int = 16, n_down: int = 3, n_static: int = 0, static_dim: int = 16, evo_width: int = 256,
                 evo_layers: int = 3, seed: int = 0, norm: str = "none", activation: str = "gelu"):
        if ndim is None:
            ndim = len(resolution) if isinstance(resolution, (list, tuple)) else 2
        ndim = int(ndim)
        if ndim not in (1, 2):
            raise ValueError(f"LEPDE supports ndim 1 or 2; got {ndim}")
        res = _res(resolution, ndim)
        if norm not in ("none", "group"):
            raise ValueError(f"norm must be 'none' or 'group'; got {norm!r}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}; got {activation!r}")
        if any(r % 2 ** int(n_down) for r in res):
            raise ValueError(f"resolution {res} must be divisible by 2^n_down = {2 ** int(n_down)}")
        # the spatial dimension is len(resolution): stored that way so checkpoints rebuild it
        super().__init__(resolution=res, in_channels=int(in_channels),
                         in_frames=int(in_frames), latent_dim=int(latent_dim), width=int(width), n_down=int(n_down),
                         n_static=int(n_static), static_dim=int(static_dim), evo_width=int(evo_width),
                         evo_layers=int(evo_layers), seed=int(seed), norm=str(norm), activation=str(activation))
        Conv = nn.Conv1d if ndim == 1 else nn.Conv2d
        ConvT = nn.ConvTranspose1d if ndim == 1 else nn.ConvTranspose2d
        C, w, nd = int(in_channels), int(width), int(n_down)
        self.spatial_dim = ndim
        self.param_normalizer = Normalizer(max(int(n_static), 1))
        Act = ACTIVATIONS[activation]

        def normed(c):          # the authors' "gn": GroupNorm after each convolution of the encoder/decoder
            return [nn.GroupNorm(_groups(c), c)] if norm == "group" else []

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            enc = [Conv(C * int(in_frames), w, 3, padding=1), *normed(w), Act()]
            c = w
            for _ in range(nd):
                enc += [Conv(c, 2 * c, 4, stride=2, padding=1), *normed(2 * c), Act()]
                c *= 2
            self.coarse = [r // 2 ** nd for r in res]
            self.c_coarse = c
            flat = c * math.prod(self.coarse)
            self.encoder = nn.Sequential(*enc, nn.Flatten(), nn.Linear(flat, int(latent_dim)))
            self.dec_fc = nn.Linear(int(latent_dim), flat)
            dec = []
            for _ in range(nd):
                dec += [*normed(c), Act(), ConvT(c, c // 2, 4, stride=2, padding=1)]
                c //= 2
            self.decoder = nn.Sequential(*dec, *normed(c), Act(), Conv(c, C, 3, padding=1))
            sd = int(static_dim) if int(n_static) > 0 else 0
            self.static = (nn.Sequential(nn.Linear(int(n_static), sd), Act(), nn.Linear(sd, sd))
                           if sd else None)
            layers, d_in = [], int(latent_dim) + sd
            for i in range(int(evo_layers)):
                layers += [nn.Linear(d_in if i == 0 else int(evo_width), int(evo_width)), Act()]
            layers.append(nn.Linear(int(evo_width), int(latent_dim)))
            self.evolution = nn.Sequential(*layers)

    # ------------------------------------------------------------------ normalised-space pieces
    def _frames_norm(self, u: torch.Tensor) -> torch.Tensor:
        """Normalise frames ``(B, T, C, *grid)`` channel-wise."""
        B, T = u.shape[:2]
        return self.input_normalizer.encode(u.reshape(B * T, *u.shape[2:])).reshape(u.shape)

    def _frames_denorm(self, z: torch.Tensor) -> torch.Tensor:
        B, T = z.shape[:2]
        return self.input_normalizer.decode(z.reshape(B * T, *z.shape[2:])).reshape(z.shape)

    def encode(self, hist: torch.Tensor) -> torch.Tensor:
        """Normalised window ``(B, in_frames, C, *grid)`` -> latent ``(B, latent_dim)``."""
        return self.encoder(hist.flatten(1, 2))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Latent ``(B, latent_dim)`` -> normalised frame ``(B, C, *grid)``."""
        h = self.dec_fc(z).reshape(z.shape[0], self.c_coarse, *self.coarse)
        return self.decoder(h)

    def static_code(self, params: Optional[torch.Tensor], like: torch.Tensor) -> Optional[torch.Tensor]:
        n = self.config["n_static"]
        if n == 0:
            if params is not None:
                raise ValueError("this LEPDE has no static parameters (n_static=0) but params were given")
            return None
        if params is None or params.dim() != 2 or params.shape[1] != n:
            got = None if params is None else tuple(params.shape)
            raise ValueError(f"LEPDE with n_static={n} needs params of shape (B, {n}); got {got}")
        return self.static(self.param_normalizer.encode(params.to(like.dtype)))

    def step(self, z: torch.Tensor, s: Optional[torch.Tensor] = None) -> torch.Tensor:
        r"""One latent step :math:`z \mapsto z + G([z, q(p)])`."""
        inp = z if s is None else torch.cat([z, s.expand(z.shape[0], -1)], 1)
        return z + self.evolution(inp)

    def latent_rollout(self, z: torch.Tensor, n_steps: int, s: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Latents after 1..n_steps steps, ``(B, n_steps, latent_dim)``."""
        out = []
        for _ in range(int(n_steps)):
            z = self.step(z, s)
            out.append(z)
        return torch.stack(out, 1)

    # ------------------------------------------------------------------ physical-units API
    def check_input(self, hist: torch.Tensor) -> None:
        cfg = self.config
        shape = (cfg["in_frames"], cfg["in_channels"], *cfg["resolution"])
        if not torch.is_tensor(hist) or hist.dim() != 3 + len(cfg["resolution"]) or tuple(hist.shape[1:]) != shape:
            got = tuple(hist.shape) if torch.is_tensor(hist) else type(hist).__name__
            raise ValueError(f"LEPDE expects a history of shape (B, {', '.join(map(str, shape))}) "
                             f"(batch, frames, channels, *grid); got {got}")

    def forward(self, hist: torch.Tensor, n_steps: int = 1, params: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Roll out ``n_steps`` frames after ``hist``; ``(B, n_steps, C, *grid)`` in ``hist``'s dtype."""
        self.check_input(hist)
        p = next(self.parameters())
        x = self._frames_norm(hist.to(p.dtype))
        s = self.static_code(params, x)
        zs = self.latent_rollout(self.encode(x), n_steps, s)
        B, T, D = zs.shape
        frames = self.decode(zs.reshape(B * T, D)).reshape(B, T, *x.shape[2:])
        return self._frames_denorm(frames).to(hist.dtype)

    rollout = forward

    @torch.no_grad()
    def fit_normalizers(self, trajectories: torch.Tensor, params: Optional[torch.Tensor] = None):
        """Channel statistics from trajectories ``(N, T, C, *grid)`` (and params ``(N, n_static)``).

        Inputs and outputs are frames of the same state: ``input_normalizer`` serves both."""
        self.input_normalizer.fit(trajectories.flatten(0, 1))
        if params is not None and self.config["n_static"] > 0:
            self.param_normalizer.fit(params)
        return self


def lepde_loss(model: LEPDE, batch, w_recon: float = 1.0, w_consistency: float = 1.0,
               step_weights: Optional[Sequence[float]] = None) -> torch.Tensor:
    """Multi-step + reconstruction + latent-consistency loss; ``batch = (hist, future[, params])``.

    ``hist`` ``(B, in_frames, C, *grid)``, ``future`` ``(B, M, C, *grid)`` (the next ``M`` frames).
    """
    hist, fut = batch[0], batch[1]
    params = batch[2] if len(batch) > 2 else None
    p = next(model.parameters())
    x = model._frames_norm(hist.to(p.dtype))
    y = model._frames_norm(fut.to(p.dtype))
    B, M = y.shape[:2]
    Tin = x.shape[1]
    s = model.static_code(params, x)
    z0 = model.encode(x)
    zs = model.latent_rollout(z0, M, s)                                           # (B, M, D)
    pred = model.decode(zs.flatten(0, 1)).reshape(y.shape)
    w = torch.ones(M, dtype=y.dtype, device=y.device) if step_weights is None else \
        torch.as_tensor(step_weights, dtype=y.dtype, device=y.device)
    multi = ((pred - y) ** 2).flatten(2).mean(-1).mean(0)                         # (M,)
    loss = (w * multi).sum() / w.sum()
    if w_recon:
        loss = loss + w_recon * F.mse_loss(model.decode(z0), x[:, -1])
    if w_consistency:
        full = torch.cat([x, y], 1)
        windows = torch.stack([full[:, m:m + Tin] for m in range(1, M + 1)], 1)  # (B, M, Tin, C, *g)
        zt = model.encode(windows.flatten(0, 1)).reshape(B, M, -1)
        cons = (zs - zt).pow(2).sum(-1) / zt.pow(2).sum(-1).clamp_min(1e-8)
        loss = loss + w_consistency * cons.mean()
    return loss


class TrajectoryWindows(Dataset):
    """Training windows from trajectories ``(N, T, C, *grid)``: items ``(history, future[, params])``.

    Every start time ``t`` with ``in_frames`` frames before and ``horizon`` after
    is one item; ``params`` ``(N, n_static)`` are attached per trajectory.
    """

    def __init__(self, trajectories: torch.Tensor, in_frames: int, horizon: int,
                 params: Optional[torch.Tensor] = None, dtype=torch.float32):
        if trajectories.dim() < 4:
            raise ValueError(f"trajectories must be (N, T, C, *grid); got {tuple(trajectories.shape)}")
        T = trajectories.shape[1]
        if in_frames + horizon > T:
            raise ValueError(f"trajectories have {T} frames; need in_frames + horizon = {in_frames + horizon}")
        self.u = trajectories.to(dtype)
        self.p = None if params is None else params.to(dtype)
        self.in_frames, self.horizon = int(in_frames), int(horizon)
        self.starts = T - in_frames - horizon + 1

    def __len__(self):
        return self.u.shape[0] * self.starts

    def __getitem__(self, i):
        n, t = divmod(i, self.starts)
        hist = self.u[n, t:t + self.in_frames]
        fut = self.u[n, t + self.in_frames:t + self.in_frames + self.horizon]
        return (hist, fut) if self.p is None else (hist, fut, self.p[n])
