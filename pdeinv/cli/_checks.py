"""Checks every sub-command runs on its arguments *before* any work starts.

* :func:`check_ranges` -- counts, fractions and levels in range (``--res 0``, ``--n-train -1``,
  ``--workers 0`` ... are refused, not read as "use the default");
* :func:`check_device` -- ``--device`` names a device this machine has (``cuda`` without a GPU is
  refused before anything is computed or read from a cache);
* :func:`check_output` -- an output path that is writable, is not one of the inputs, and is not
  an existing file unless ``--overwrite`` is given.

:func:`pdeinv.cli.app.main` runs the first two for every sub-command (``benchmark`` included);
each sub-command calls :func:`check_output` for its outputs.  Errors are ``ValueError`` s with one
line saying what was wrong and what is expected; the dispatcher prints them without a traceback.
This module imports nothing heavy at import time (no torch), so ``--help`` stays fast.
"""
from __future__ import annotations

import os
import tempfile
from typing import Iterable, Optional, Sequence

#: options that count something: an integer >= 1 when given (``None`` = the default)
COUNTS = ("res", "n", "n_train", "n_test", "n_samples", "max_iter", "map_iter", "epochs", "batch_size",
          "workers", "threads", "steps", "denoiser_steps", "patience", "modes", "width", "layers")
#: options that are fractions in (0, 1]
FRACTIONS = ("obs", "sparse")
#: options that must be >= 0
NON_NEGATIVE = ("noise", "sigma", "weight_decay")
#: options that must be > 0
POSITIVE = ("lr",)


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def check_ranges(args) -> None:
    """Raise ``ValueError`` for an out-of-range value among the parsed ``args`` (those it has)."""
    import math

    def val(name):      # an option of the same name may be a path elsewhere (invert --obs FILE): skipped
        v = getattr(args, name, None)
        return v if isinstance(v, (int, float)) and not isinstance(v, bool) else None

    for name in COUNTS:
        v = val(name)
        if v is not None and (int(v) != v or v < 1):
            raise ValueError(f"{_flag(name)} must be an integer >= 1; got {v}")
    for name in FRACTIONS:
        v = val(name)
        if v is not None and not (0 < v <= 1):
            raise ValueError(f"{_flag(name)} is a fraction of the grid nodes in (0, 1]; got {v}")
    for name in NON_NEGATIVE:
        v = val(name)
        if v is not None and not (v >= 0 and math.isfinite(v)):
            raise ValueError(f"{_flag(name)} must be a finite number >= 0; got {v}")
    for name in POSITIVE:
        v = val(name)
        if v is not None and not (v > 0 and math.isfinite(v)):
            raise ValueError(f"{_flag(name)} must be a finite number > 0; got {v}")
    v = val("seed")
    if v is not None and (int(v) != v or v < 0):
        raise ValueError(f"--seed must be an integer >= 0; got {v}")
    v = val("val_fraction")
    if v is not None and not (0 <= v < 1):
        raise ValueError(f"--val-fraction is the share of the data held out for validation, in [0, 1); got {v}")


def check_device(device: Optional[str]):
    """The ``torch.device`` for ``--device``, or ``ValueError`` if this machine does not have it."""
    import torch
    try:
        dev = torch.device(device or "cpu")
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"--device {device!r} is not a torch device ({err}); expected e.g. cpu, cuda, cuda:1, mps") \
            from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            why = "torch was built without CUDA" if torch.version.cuda is None else "no CUDA GPU is visible"
            raise ValueError(f"--device {device}: {why} on this machine (torch.cuda.is_available() is False); "
                             "use --device cpu")
        n = torch.cuda.device_count()
        if dev.index is not None and dev.index >= n:
            raise ValueError(f"--device {device}: this machine has {n} CUDA device(s) (cuda:0 .. cuda:{n - 1})")
    elif dev.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ValueError(f"--device {device}: the Apple MPS backend is not available here; use --device cpu")
    elif dev.type != "cpu":
        raise ValueError(f"--device {device}: pdeinv runs on cpu, cuda or mps; got device type {dev.type!r}")
    return dev


def _same_path(a: str, b: str) -> bool:
    if os.path.exists(a) and os.path.exists(b):
        try:
            return os.path.samefile(a, b)
        except OSError:
            pass
    return os.path.realpath(a) == os.path.realpath(b)


def _writable_dir(path: str) -> None:
    """Raise ``ValueError`` unless a file can be created in the folder of ``path`` (or the nearest
    existing folder above it, which the write would create the rest of)."""
    d = os.path.dirname(os.path.abspath(path))
    probe = d
    while not os.path.exists(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    if not os.path.isdir(probe):
        raise ValueError(f"cannot write {path!r}: {probe!r} is a file, not a folder")
    try:
        fd, tmp = tempfile.mkstemp(dir=probe, prefix=".pdeinv-write-test-")
    except OSError as err:
        raise ValueError(f"cannot write {path!r}: the folder {probe!r} is not writable ({err.strerror or err})") \
            from None
    os.close(fd)
    os.unlink(tmp)


def check_output(path: str, *, inputs: Iterable[Optional[str]] = (), overwrite: bool = False,
                 what: str = "output", folder: bool = False, allow_existing: bool = False,
                 flag: str = "-o", example: str = "out.nc") -> str:
    """Check an output path before the work starts; returns it.

    Refused: an output that is one of ``inputs``; an existing output (unless ``overwrite`` or
    ``allow_existing``); a folder where a file is expected (``folder=False``, except a ``.zarr`` store)
    or a file where a folder is expected (``folder=True``); a location that cannot be written.
    """
    if not path:
        raise ValueError(f"{flag}: the {what} path is empty")
    for inp in inputs:
        if inp and _same_path(path, inp):
            raise ValueError(f"{flag} {path!r} is also an input ({inp!r}); an output never replaces an input: "
                             "give another output path")
    if os.path.exists(path):
        is_store = str(path).rstrip("/").endswith(".zarr")
        if folder and not os.path.isdir(path):
            raise ValueError(f"{flag} {path!r} is a file; the {what} goes into a folder: give a folder name")
        if not folder and os.path.isdir(path) and not is_store:
            raise ValueError(f"{flag} {path!r} is a folder; the {what} is a file: give a file name "
                             f"(e.g. {os.path.join(path, example)!r})")
        if not (overwrite or allow_existing):
            raise ValueError(f"{flag} {path!r} exists; pass --overwrite to replace it, or give another path")
    _writable_dir(os.path.join(path, "x") if folder else path)
    return path


def check_outputs(paths: Sequence[str], **kwargs) -> None:
    """:func:`check_output` for several paths of one command (same inputs and ``overwrite``)."""
    for p in paths:
        check_output(p, **kwargs)


def check_benchmark_args(args) -> None:
    """What ``pdeinv benchmark`` must refuse before it touches its cache: a device this machine does not
    have and out-of-range counts (``--n-test 0``, ...).  :func:`pdeinv.cli.app.main` already runs it for
    every sub-command; the benchmark CLI may call it itself when it is run without the dispatcher."""
    check_ranges(args)
    check_device(getattr(args, "device", None))
