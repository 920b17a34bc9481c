"""The one place where pdeinv imports deepxde.

deepxde picks its backend once, at first import (``DDE_BACKEND``, else a config
file, else auto-detection that may write to the user's home), and has global
side effects on torch: on a CUDA machine its import calls
``torch.set_default_device("cuda")``, and ``dde.config.set_default_float``
changes torch's default dtype.  This module

* sets ``DDE_BACKEND=pytorch`` before the first import (a user's different
  choice is overridden only for this process' deepxde, with a log message);
* restores torch's default dtype and device right after the import
  (:func:`import_deepxde`);
* offers :func:`deepxde_session`, a context manager that sets deepxde's float
  type and torch's defaults for the duration of a PINN fit, seeds the global
  RNGs that deepxde uses (``random``, NumPy, torch) and restores all of them
  on exit, so that calling a PINN leaves the caller's process state unchanged.
"""
from __future__ import annotations

import contextlib
import io
import logging
import os
import random
from typing import Optional

import numpy as np
import torch

log = logging.getLogger(__name__)

_DDE = None


@contextlib.contextmanager
def torch_defaults_preserved():
    """Restore torch's default dtype and default device on exit."""
    dtype = torch.get_default_dtype()
    device = torch.get_default_device()
    try:
        yield
    finally:
        torch.set_default_dtype(dtype)
        torch.set_default_device(device)


def import_deepxde():
    """Import deepxde on the PyTorch backend without changing torch's global defaults."""
    global _DDE
    if _DDE is not None:
        return _DDE
    prev = os.environ.get("DDE_BACKEND")
    if prev not in (None, "pytorch"):
        log.info("DDE_BACKEND=%s overridden: pdeinv uses deepxde's pytorch backend", prev)
    os.environ["DDE_BACKEND"] = "pytorch"
    try:
        buf = io.StringIO()
        with torch_defaults_preserved(), contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
            import deepxde as dde  # noqa: WPS433 (the only import of deepxde in pdeinv)
        log.debug("deepxde import said: %s", buf.getvalue().strip())
    except ImportError as err:  # pragma: no cover - deepxde is a declared dependency
        raise ImportError("pdeinv's PINN solver needs deepxde (pip install deepxde)") from err
    finally:
        if prev is None:
            os.environ.pop("DDE_BACKEND", None)
        else:
            os.environ["DDE_BACKEND"] = prev
    if dde.backend.backend_name != "pytorch":
        raise RuntimeError(f"deepxde was already imported with the {dde.backend.backend_name!r} backend; "
                           "pdeinv needs the pytorch backend (set DDE_BACKEND=pytorch before importing deepxde)")
    _DDE = dde
    return dde


@contextlib.contextmanager
def deepxde_session(dtype: torch.dtype = torch.float32, device=None, seed: Optional[int] = None):
    """Run deepxde code with float type ``dtype`` on ``device``, seeded; restore everything on exit.

    Inside the block torch's default dtype is ``dtype`` and its default device
    ``device`` (deepxde creates its tensors with the defaults), and the global
    RNGs of ``random``, NumPy and torch are seeded with ``seed`` (forked, so the
    caller's RNG streams continue unchanged afterwards).
    """
    dde = import_deepxde()
    real = dde.config.real
    old_precision = real.precision
    py_state, np_state = random.getstate(), np.random.get_state()
    device = torch.device(device) if device is not None else torch.device("cpu")
    fork_devices = [device.index or 0] if device.type == "cuda" else []
    with torch_defaults_preserved(), torch.random.fork_rng(devices=fork_devices):
        try:
            {torch.float32: real.set_float32, torch.float64: real.set_float64}[dtype]()
        except KeyError:
            raise ValueError(f"PINN dtype must be torch.float32 or torch.float64; got {dtype}") from None
        torch.set_default_dtype(dtype)
        torch.set_default_device(device)
        if seed is not None:
            random.seed(int(seed))
            np.random.seed(int(seed) % 2 ** 32)
            torch.manual_seed(int(seed))
        buf = io.StringIO()
        try:
            with contextlib.redirect_stdout(buf):   # deepxde prints warnings and summaries
                yield dde
        finally:
            if buf.getvalue().strip():
                log.debug("deepxde said: %s", buf.getvalue().strip())
            {16: real.set_float16, 32: real.set_float32, 64: real.set_float64}.get(old_precision, real.set_float32)()
            random.setstate(py_state)
            np.random.set_state(np_state)
