"""Figures: true / recovered / error / sensor locations, side by side.

Uses matplotlib's non-interactive Agg backend unless a backend was already
chosen, so it works on headless machines.
"""
from __future__ import annotations

import os
import tempfile
from typing import Dict, Optional

import numpy as np
import torch

from pdeinv._validation import file_mode


def _to_image(x) -> np.ndarray:
    if torch.is_tensor(x):
        x = x.detach().to("cpu", torch.float64).numpy()
    x = np.asarray(x, dtype=float)
    while x.ndim > 2:
        x = x[0]
    return x


def _sensor_xy(sensors):
    pts = getattr(sensors, "points", None)
    if pts is None:
        return None
    pts = pts.detach().cpu().numpy() if torch.is_tensor(pts) else np.asarray(pts)
    return pts


def save_figure(fig, path) -> str:
    """Save atomically (temporary file, then rename); return the path."""
    path = os.fspath(path)
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    ext = os.path.splitext(path)[1] or ".png"
    fd, tmp = tempfile.mkstemp(dir=d, prefix=f".{os.path.basename(path)}.", suffix=ext)
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=110, bbox_inches="tight")
        os.chmod(tmp, file_mode())          # mkstemp's 0600 -> what the umask gives any new file
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def compare(true=None, recovered=None, sensors=None, path=None, title: Optional[str] = None,
            extra: Optional[Dict[str, object]] = None, grid=None, cmap: str = "viridis"):
    """Panels: true field, recovered field(s), absolute error, and sensor locations.

    ``true``, ``recovered``: ``(B, C, nx, ny)`` tensors (first sample/channel is
    drawn) or 2-D arrays; ``recovered`` may be a dict ``{method: field}`` to put
    several methods side by side; ``sensors``: a ``PointObservation`` (its
    points are drawn on the true field); ``extra``: more named panels (e.g. the
    posterior std).  Saves to ``path`` if given; returns the figure.
    """
    import matplotlib
    if matplotlib.get_backend().lower() not in ("agg", "pdf", "svg", "ps", "cairo"):
        try:
            matplotlib.use("Agg", force=False)
        except Exception:  # pragma: no cover
            pass
    import matplotlib.pyplot as plt

    recs = recovered if isinstance(recovered, dict) else ({"recovered": recovered} if recovered is not None else {})
    panels = []
    t = _to_image(true) if true is not None else None
    if t is not None:
        panels.append(("true", t, cmap))
    for name, r in recs.items():
        panels.append((name, _to_image(r), cmap))
        if t is not None:
            panels.append((f"|error| ({name})", np.abs(_to_image(r) - t), "magma"))
    for name, e in (extra or {}).items():
        panels.append((name, _to_image(e), "magma"))
    pts = _sensor_xy(sensors)
    if pts is not None:
        panels.append(("sensors", t if t is not None else panels[0][1], "Greys"))
    if not panels:
        raise ValueError("nothing to plot: give true=, recovered= or extra=")
    lengths = (1.0, 1.0)
    if grid is not None and getattr(grid, "ndim", 2) == 2:
        lengths = grid.length
    elif sensors is not None and getattr(sensors, "grid", None) is not None and sensors.grid.ndim == 2:
        lengths = sensors.grid.length
    vmin = vmax = None
    if t is not None:
        vmin, vmax = float(t.min()), float(t.max())
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.2), squeeze=False)
    for ax, (name, img, cm) in zip(axes[0], panels):
        same_scale = name in ("true", "sensors") or name in recs
        im = ax.imshow(img.T, origin="lower", extent=(0, lengths[0], 0, lengths[1]), cmap=cm,
                       vmin=vmin if same_scale else None, vmax=vmax if same_scale else None)
        if name == "sensors":
            ax.scatter(pts[:, 0], pts[:, 1], s=6, c="red", marker="o", linewidths=0)
            name = f"sensors ({len(pts)})"
        ax.set_title(name, fontsize=9)
        ax.set_xticks([]); ax.set_yticks([])
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    if path is not None:
        save_figure(fig, path)
        plt.close(fig)
    return fig
