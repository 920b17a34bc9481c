r"""Trained networks that ship with the package: ``pdeinv/models/`` + ``manifest.json``.

One mechanism serves forward surrogates (``darcy64-fno``), inverse operators (``darcy64-vito``)
and diffusion priors (``darcy64-uno``)::

    from pdeinv.nn import pretrained
    pretrained.available()                        # names, e.g. ['darcy64-fno', 'darcy64-uno']
    model = pretrained.load("darcy64-fno")        # a Network in eval mode, model.manifest = its entry
    pretrained.default_for("daps", "darcy", 64)   # the shipped model a method uses when none is given

and from the command line ``pdeinv invert darcy --method surrogate-map --model darcy64-fno``,
``pdeinv models`` (list, ``info NAME``, ``ship CKPT --name NAME``) and
``pdeinv train ... --init darcy64-fno`` (warm start: training continues from the shipped weights,
so the models improve from session to session).

Shipped files are ordinary pdeinv checkpoints (:mod:`pdeinv.nn.base`) with the optimiser state
removed (it would triple their size): a warm start continues from the weights and normalisers with
a fresh Adam.  A diffusion denoiser's raw weights are dropped when it has an EMA copy (the EMA
weights are what it samples with; the warm start begins from them).  The manifest entry of each file
names:

``file, sha256, bytes, class, kind`` (``surrogate`` | ``inverse`` | ``prior``), ``methods`` (the
solver methods it serves), ``task, res, grid, mode``, ``command`` (the ``pdeinv train`` command),
``data`` (the ``pdeinv generate`` command(s) of its training and validation data), ``seed``,
``commit``, ``steps`` (optimiser steps over all sessions), ``epochs``, ``sessions`` (one record per
training session), ``validation`` (held-out figures), ``health`` (diffusion priors: the health check
of :mod:`pdeinv.priors.diffusion.health`), ``learning_curve`` (file under ``benchmarks/results/``).

Nothing downloads: a file missing or altered (say, a Git LFS pointer) fails its sha256 check with a
clear error.  The shipped files together are kept under :data:`BUDGET_BYTES` (60 MB).
"""
from __future__ import annotations

import datetime
import hashlib
import json
import logging
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch

from pdeinv._validation import file_mode
from pdeinv.nn.base import Network, atomic_torch_save, checkpoint_state, read_checkpoint

log = logging.getLogger(__name__)

#: where the shipped files and their manifest live (inside the package, so ``pip install`` carries them)
MODELS_DIR = Path(__file__).resolve().parent.parent / "models"
MANIFEST = "manifest.json"
#: the size all shipped files may take together
BUDGET_BYTES = 60_000_000
KINDS = ("surrogate", "inverse", "prior")


def _dir(models_dir=None) -> Path:
    """``models_dir``, else ``$PDEINV_MODELS_DIR`` (another collection of models), else the shipped ones."""
    if models_dir is not None:
        return Path(models_dir)
    env = os.environ.get("PDEINV_MODELS_DIR")
    return Path(env) if env else MODELS_DIR


def manifest(models_dir=None) -> Dict[str, Dict[str, Any]]:
    """The manifest: model name -> entry (empty when nothing is shipped)."""
    path = _dir(models_dir) / MANIFEST
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"the model manifest {str(path)!r} is not valid JSON: {err}") from None
    return dict(data.get("models", {}))


def available(kind: Optional[str] = None, task: Optional[str] = None, method: Optional[str] = None,
              models_dir=None) -> List[str]:
    """Names of the shipped models, optionally only those of one ``kind``, ``task`` or serving ``method``."""
    out = []
    for name, e in sorted(manifest(models_dir).items()):
        if kind is not None and e.get("kind") != kind:
            continue
        if task is not None and e.get("task") != task:
            continue
        if method is not None and method not in e.get("methods", []):
            continue
        out.append(name)
    return out


def info(name: str, models_dir=None) -> Dict[str, Any]:
    """The manifest entry of ``name``; an unknown name raises ``ValueError`` listing the shipped ones."""
    entries = manifest(models_dir)
    if name not in entries:
        raise ValueError(f"no shipped model named {name!r}; shipped: {sorted(entries) or 'none'} "
                         "(or give the path of a checkpoint file)")
    return dict(entries[name], name=name)


def parse_train_samples(spec) -> Optional[Dict[str, int]]:
    """``"SEED:START:STOP"`` (or a dict with those keys) -> ``{"seed", "start", "stop"}``: the training fields are
    samples ``[start, stop)`` of the task's generator stream with data seed ``seed`` (``pdeinv generate TASK
    --seed SEED``; the harness's test samples come from the same stream)."""
    if spec is None:
        return None
    if isinstance(spec, str):
        parts = spec.split(":")
        if len(parts) != 3:
            raise ValueError(f"train samples must be SEED:START:STOP (e.g. 0:0:1000); got {spec!r}")
        try:
            spec = dict(zip(("seed", "start", "stop"), (int(x) for x in parts)))
        except ValueError:
            raise ValueError(f"train samples must be three integers SEED:START:STOP; got {spec!r}") from None
    out = {k: int(spec[k]) for k in ("seed", "start", "stop")}
    if not 0 <= out["start"] < out["stop"]:
        raise ValueError(f"train samples need 0 <= START < STOP; got {out}")
    return out


def training_overlap(name: str, seed: int, start: int, stop: int, models_dir=None) -> Optional[str]:
    """Why samples ``[start, stop)`` of data seed ``seed`` are not held out for shipped model ``name`` (they
    overlap its recorded training samples), or None.  None too where the entry records no training samples
    (``train_samples`` in the manifest; ``pdeinv models ship --train-samples``)."""
    ts = info(name, models_dir).get("train_samples")
    if not ts or int(ts["seed"]) != int(seed):
        return None
    lo, hi = max(int(start), int(ts["start"])), min(int(stop), int(ts["stop"]))
    if lo >= hi:
        return None
    return (f"test samples {start}-{stop - 1} (data seed {seed}) overlap the training samples "
            f"{ts['start']}-{ts['stop'] - 1} of the shipped model {name!r}; test on samples >= {ts['stop']} "
            f"(harness: --n-train {ts['stop']})")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def path(name: str, models_dir=None, verify: bool = True) -> Path:
    """The file of the shipped model ``name``, checked against its manifest sha256."""
    e = info(name, models_dir)
    p = _dir(models_dir) / e["file"]
    if not p.exists():
        raise FileNotFoundError(f"the shipped model {name!r} has no file {str(p)!r}: the installation is "
                                "incomplete (reinstall pdeinv); nothing is downloaded")
    if verify and e.get("sha256") and _sha256(p) != e["sha256"]:
        raise ValueError(f"the shipped model file {str(p)!r} does not match its manifest (sha256): it was "
                         "altered or is a Git LFS pointer; restore it from the repository")
    return p


def load(name: str, device=None, models_dir=None) -> Network:
    """The shipped model ``name`` (eval mode) on ``device``; ``model.manifest`` holds its entry."""
    from pdeinv.nn.base import load as load_checkpoint
    e = info(name, models_dir)
    model = load_checkpoint(path(name, models_dir), map_location=device)
    if e.get("class") and type(model).registry_name() != e["class"]:
        raise ValueError(f"the shipped model {name!r} holds a {type(model).registry_name()}, but its manifest "
                         f"says {e['class']}")
    model.manifest = e
    return model


def resolve(spec, device=None, models_dir=None):
    """``spec`` as a network: a module as given, an existing checkpoint path, or a shipped model's name."""
    if spec is None or isinstance(spec, torch.nn.Module):
        return spec if spec is None or device is None else spec.to(device)
    s = str(spec)
    if os.path.exists(s):
        from pdeinv.nn.base import load as load_checkpoint
        return load_checkpoint(s, map_location=device)
    if s in manifest(models_dir):
        return load(s, device=device, models_dir=models_dir)
    raise FileNotFoundError(f"--model {s!r} is neither a checkpoint file nor a shipped model; shipped models: "
                            f"{available(models_dir=models_dir) or 'none'}")


def default_for(method: str, task: str, res: Optional[int] = None, models_dir=None) -> Optional[str]:
    """The shipped model that ``method`` uses on ``task`` (at resolution ``res``) when none is given.

    An entry may name itself the default of a method with ``"default_for": [method, ...]``; else the
    first model (by name) that serves ``method`` on ``task`` at ``res`` is taken.  ``None``: none ships.
    """
    cands = [n for n in available(task=task, method=method, models_dir=models_dir)
             if res is None or info(n, models_dir).get("res") == int(res)]
    preferred = [n for n in cands if method in info(n, models_dir).get("default_for", [])]
    return (preferred or cands or [None])[0]


def check_serves(name_or_entry, task: str, res: Optional[int] = None) -> None:
    """Refuse a task or grid the shipped model was not trained for (``ValueError``).

    Another task is refused; another resolution is refused for networks tied to their grid
    (``fixed_grid`` in the entry); the solver factory warns about the rest
    (:func:`pdeinv.solvers.factory.check_model_grid`).
    """
    e = info(name_or_entry) if isinstance(name_or_entry, str) else name_or_entry
    if e.get("task") != task:
        raise ValueError(f"the shipped model {e.get('name')!r} was trained on the {e.get('task')!r} task, not "
                         f"{task!r}; shipped for {task!r}: {available(task=task) or 'none'}")
    if res is not None and e.get("fixed_grid") and int(res) != int(e.get("res")):
        raise ValueError(f"the shipped model {e.get('name')!r} serves only res={e.get('res')} (its grid is built in)"
                         f"; got res={res}")


# ---------------------------------------------------------------------------------- writing (ship)
def git_commit(cwd=None) -> Optional[str]:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=cwd or MODELS_DIR.parent,
                              capture_output=True, text=True, check=True).stdout.strip() or None
    except (OSError, subprocess.CalledProcessError):
        return None


def shippable(ckpt: Dict[str, Any]) -> Dict[str, Any]:
    """A checkpoint dict without optimiser state and without a denoiser's raw weights beside its EMA."""
    out = {k: v for k, v in ckpt.items() if k != "training"}
    sd = dict(ckpt["state_dict"])
    if any(k.startswith("ema_net.") for k in sd):
        sd = {k: v for k, v in sd.items() if not k.startswith("net.")}
        out["tied_ema"] = True
    out["state_dict"] = sd
    return out


def _atomic_text(text: str, target: Path) -> None:
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=target.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, file_mode())
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def ship(checkpoint, name: str, *, kind: str, methods: List[str], command: str, data: List[str],
         validation: Dict[str, Any], health: Optional[Dict[str, Any]] = None, learning_curve: Optional[str] = None,
         fixed_grid: bool = False, default_for_methods: Optional[List[str]] = None, notes: str = "",
         overwrite: bool = False, steps_per_epoch: Optional[int] = None, train_samples=None,
         models_dir=None) -> Dict[str, Any]:
    """Copy a trained checkpoint into the shipped models under ``name`` and record its manifest entry.

    The step count adds this run's optimiser steps (from the checkpoint's training record) to those
    of the model it was warm-started from (``trained_on["init"]``), so ``steps`` counts every session.
    ``train_samples`` (``"SEED:START:STOP"``): the generator samples it was trained on, so that the harness
    refuses to test it on them (:func:`training_overlap`).
    An existing ``name`` needs ``overwrite=True`` (its sessions are kept).  Refused: a total size over
    :data:`BUDGET_BYTES`.  ``steps_per_epoch`` serves checkpoints that do not record it.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}; got {kind!r}")
    train_samples = parse_train_samples(train_samples)
    d = _dir(models_dir)
    d.mkdir(parents=True, exist_ok=True)
    entries = manifest(d)
    if name in entries and not overwrite:
        raise ValueError(f"a shipped model {name!r} exists; pass overwrite=True (--overwrite) to replace it")
    ck = read_checkpoint(checkpoint, map_location="cpu")
    if ck.get("class") is None:
        raise ValueError(f"{str(checkpoint)!r} is not a loadable network checkpoint")
    trained_on = json.loads(ck["trained_on"]) if ck.get("trained_on") else {}
    spe = trained_on.get("steps_per_epoch") or steps_per_epoch
    if spe is None and ck.get("training") and trained_on.get("n_train"):
        spe = -(-int(trained_on["n_train"]) // int(ck["training"]["settings"]["batch_size"]))
    run_steps = int(spe or 0) * _epochs_of(ck, checkpoint)
    init = trained_on.get("init") or {}
    prior_steps = int(init.get("steps", 0))
    file = f"{name}.pt"
    target = d / file
    atomic_torch_save(shippable(ck), target)
    size = target.stat().st_size
    total = size + sum((d / e["file"]).stat().st_size for n, e in entries.items()
                       if n != name and (d / e["file"]).exists())
    if total > BUDGET_BYTES:
        target.unlink()
        raise ValueError(f"shipping {name!r} ({size / 1e6:.1f} MB) would bring the shipped models to "
                         f"{total / 1e6:.1f} MB, over the {BUDGET_BYTES / 1e6:.0f} MB budget")
    grid = trained_on.get("grid") or {}
    n = grid.get("n")
    res = int(n[0] if isinstance(n, (list, tuple)) else n) if n else None
    commit = git_commit()
    session = {"date": datetime.date.today().isoformat(), "commit": commit, "steps": run_steps,
               "init": init.get("from"), "command": command}
    old = entries.get(name, {})
    entry = {
        "file": file, "sha256": _sha256(target), "bytes": size, "class": ck["class"], "kind": kind,
        "methods": list(methods), "task": trained_on.get("task"), "res": res, "grid": grid,
        "mode": trained_on.get("mode"), "fixed_grid": bool(fixed_grid),
        "command": command, "data": list(data), "seed": json.loads(ck["config"]).get("seed", 0),
        "commit": commit, "steps": prior_steps + run_steps, "epochs": _epochs_of(ck, checkpoint),
        "n_train": trained_on.get("n_train"),
        "sessions": list(old.get("sessions", [])) + [session],
        "validation": validation, "health": health, "learning_curve": learning_curve, "notes": notes,
    }
    operator = json.loads(ck["config"]).get("operator")
    if operator:                     # a SparseOperator's network (fno / deeponet): the harness row it serves
        entry["operator"] = operator
    if default_for_methods:
        entry["default_for"] = list(default_for_methods)
    if train_samples:
        entry["train_samples"] = train_samples
    entries[name] = entry
    _atomic_text(json.dumps({"format": "pdeinv.models/1", "models": entries}, indent=1, sort_keys=True) + "\n",
                 d / MANIFEST)
    log.info("shipped %s (%s, %.1f MB; all shipped models %.1f MB)", name, ck["class"], size / 1e6, total / 1e6)
    return dict(entry, name=name)


def _epochs_of(ck: Dict[str, Any], checkpoint) -> int:
    """Epochs of the run that wrote ``ck``: from its training state, else from its CSV log."""
    tr = ck.get("training")
    if tr is not None:
        return int(tr.get("epoch", 0))
    from pdeinv.nn.training import log_path
    lp = log_path(checkpoint)
    if lp.exists():
        lines = [ln for ln in lp.read_text().splitlines()[1:] if ln.strip()]
        return len(lines)
    return 0


def warm_start(model: Network, spec, device=None) -> Dict[str, Any]:
    """Load the weights and normalisers of ``spec`` (a shipped name or a checkpoint path) into ``model``.

    The two must be the same class with the same constructor arguments.  Returns the ``init`` record
    (``from``, ``steps``) that the training record keeps, so the shipped step count spans sessions.
    """
    from pdeinv.nn.base import load as load_checkpoint
    s = str(spec)
    if os.path.exists(s):
        file, src = s, load_checkpoint(s, map_location="cpu")
        rec = getattr(src, "trained_on", None) or {}
        steps = int((rec.get("init") or {}).get("steps", 0))
    else:
        file, src = path(s), load(s)
        steps = int(src.manifest.get("steps", 0))
    if type(src) is not type(model):
        raise ValueError(f"--init {s!r} is a {type(src).__name__}; this run trains a {type(model).__name__}")
    for k in ("train_res",):        # recorded by the training run itself, not chosen by the user
        if model.config.get(k) is None and src.config.get(k) is not None:
            model.config[k] = src.config[k]
    a, b = dict(src.config), dict(model.config)
    if a != b:
        diff = {k: (a.get(k), b.get(k)) for k in set(a) | set(b) if a.get(k) != b.get(k)}
        raise ValueError(f"--init {s!r} was built with other settings (init, now): {diff}; use the same options")
    model.load_state_dict(checkpoint_state(read_checkpoint(file, map_location="cpu")))
    if device is not None:
        model.to(device)
    return {"from": s, "steps": steps}
