"""Input checks shared by the package: each raises an error that says what was
wrong and what was expected.  (Also :func:`file_mode`, the mode atomic writers give their files.)"""
from __future__ import annotations

from typing import Sequence

import torch


def check_finite(x: torch.Tensor, name: str = "input") -> torch.Tensor:
    """Raise ``ValueError`` if ``x`` holds NaN or inf."""
    if not torch.is_tensor(x):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.is_floating_point() or x.is_complex():
        bad = ~torch.isfinite(x)
        if bool(bad.any()):
            n_nan = int(torch.isnan(x).sum())
            n_inf = int(bad.sum()) - n_nan
            raise ValueError(
                f"{name} contains {n_nan} NaN and {n_inf} inf values (of {x.numel()}); "
                "expected finite numbers"
            )
    return x


def check_field(x: torch.Tensor, spatial: Sequence[int], name: str = "field", channels=None) -> torch.Tensor:
    """Check that ``x`` is a finite ``(B, C, *spatial)`` tensor.

    ``channels``: required channel count, or None for any.
    """
    if not torch.is_tensor(x):
        raise TypeError(f"{name} must be a torch.Tensor of shape (B, C, {', '.join(map(str, spatial))}), "
                        f"got {type(x).__name__}")
    spatial = tuple(int(s) for s in spatial)
    expected = f"(B, {channels if channels is not None else 'C'}, {', '.join(map(str, spatial))})"
    if x.dim() != 2 + len(spatial) or tuple(x.shape[2:]) != spatial:
        raise ValueError(f"{name} has shape {tuple(x.shape)}; expected {expected} on this grid")
    if channels is not None and x.shape[1] != channels:
        raise ValueError(f"{name} has {x.shape[1]} channels; expected {expected}")
    return check_finite(x, name)


def check_positive(x: torch.Tensor, name: str = "field", what: str = "values") -> torch.Tensor:
    """Raise ``ValueError`` unless every entry of ``x`` is > 0."""
    check_finite(x, name)
    mn = float(x.detach().min())
    if not mn > 0:
        raise ValueError(f"{name} must be strictly positive ({what}); its minimum is {mn:g}")
    return x


def file_mode() -> int:
    """The mode a new file gets under the process's umask (``0o666 & ~umask``).

    Atomic writes go through a temporary file, which ``tempfile.mkstemp`` creates with mode 0600;
    the writers give it this mode before renaming it into place, so the result has the permissions
    any other file written by the user would have.
    """
    import os
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask
