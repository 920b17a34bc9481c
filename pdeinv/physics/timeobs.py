r"""Observations of time series: a spatial observation applied at chosen record frames.

The spatial operators of :mod:`pdeinv.physics.observation` already act on any
leading axes, so ``PointObservation(grid, pts)(u)`` with ``u`` of shape
``(B, T, C, *spatial)`` gives receiver traces ``(B, T, C, P)`` at every frame.
:class:`TimeSliceObservation` keeps only some frames:

.. math:: y_{b,j,c,p} = (\mathcal{O}\, u_{b, t_j, c})_p, \qquad j = 1..J,

which is linear with adjoint
:math:`(\mathcal{O}^* y)_{b,t,c} = \sum_{j: t_j = t} \mathcal{O}^* y_{b,j,c}`
(zero on frames that are not observed).
"""
from __future__ import annotations

from typing import Sequence

import torch

from pdeinv.physics.observation import Observation


class TimeSliceObservation(Observation):
    """``TimeSliceObservation(spatial_obs, frames, n_frames)``: ``(B, T, C, *spatial) -> (B, J, C, P)``.

    ``frames``: indices (into the problem's record times) of the observed frames;
    ``n_frames``: the number ``T`` of frames the problem produces (for the adjoint and checks).
    """

    def __init__(self, spatial: Observation, frames: Sequence[int], n_frames: int):
        super().__init__()
        frames = [int(f) for f in frames]
        if not frames:
            raise ValueError("TimeSliceObservation needs at least one observed frame")
        if min(frames) < -n_frames or max(frames) >= n_frames:
            raise ValueError(f"frames {frames} out of range for a time series of {n_frames} frames")
        self.spatial, self.n_frames = spatial, int(n_frames)
        self.register_buffer("frames", torch.tensor([f % n_frames for f in frames], dtype=torch.long))
        self.grid = spatial.grid

    @classmethod
    def at_times(cls, spatial: Observation, times: Sequence[float], record_times: Sequence[float], tol: float = 1e-9):
        """Observe at the given physical ``times``, each of which must be one of ``record_times``."""
        rec = [float(t) for t in record_times]
        idx = []
        for t in times:
            hits = [i for i, r in enumerate(rec) if abs(r - float(t)) <= tol * max(1.0, abs(r))]
            if not hits:
                raise ValueError(f"time {t} is not a record time of the problem ({rec})")
            idx.append(hits[0])
        return cls(spatial, idx, len(rec))

    @property
    def n_obs(self) -> int:
        return self.spatial.n_obs

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        nd = self.grid.ndim
        if u.dim() < nd + 3 or u.shape[1] != self.n_frames:
            raise ValueError(f"TimeSliceObservation expects a time series (B, {self.n_frames}, C, "
                             f"*{tuple(self.grid.shape)}); got {tuple(u.shape)}")
        return self.spatial(u.index_select(1, self.frames.to(u.device)))

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        x = self.spatial.adjoint(y)                                   # (B, J, C, *spatial)
        out = torch.zeros((x.shape[0], self.n_frames) + tuple(x.shape[2:]), dtype=x.dtype, device=x.device)
        return out.index_add(1, self.frames.to(x.device), x)

    def extra_repr(self) -> str:
        return f"frames={self.frames.tolist()}, n_frames={self.n_frames}"
