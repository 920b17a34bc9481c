r"""The :class:`Network` base class: a grid network that keeps its constructor arguments.

Surrogates (:class:`pdeinv.surrogates.Surrogate`, ``u = G_theta(m)``), inverse operators and
diffusion denoisers (:class:`pdeinv.priors.diffusion.EDMDenoiser`) all derive from it, so they
share one checkpoint format, one loader (:func:`load`) and one training loop
(:mod:`pdeinv.nn.training`).

Contract (every network obeys it):

* ``model(m) -> u`` maps ``(B, C_in, *grid)`` to ``(B, C_out, *grid)`` in
  *physical units*: the input/output :class:`Normalizer` s live inside the
  model (as buffers), so data never has to be normalised by the caller.
  Networks run in float32; a float64 input is cast to float32 for the network
  and the output cast back to the input's dtype (gradients flow through both
  casts).
* Subclasses call ``super().__init__(**config)`` with their JSON-serialisable
  constructor arguments; ``model.save(path)`` writes them with the weights,
  so :meth:`Network.load` (= ``pdeinv.surrogates.load``) rebuilds the model
  with no config file.  The class is looked up by name in :data:`NETWORKS`
  (filled by :func:`register_network`); a checkpoint also records the module
  that defines the class, which :func:`load` imports when the class is not
  registered yet.
* Subclasses implement :meth:`network` (normalised input -> normalised output);
  :meth:`forward` does the checks, casts and (de)normalisation around it.

Checkpoint format (``torch.save`` of a dict, readable with ``weights_only=True``)::

    {"format": "pdeinv.surrogate/1", "class": <registry name>, "module": <defining module>,
     "config": <JSON string>,
     "state_dict": ..., "normalizers": {name: {"mean": ..., "std": ...}},
     "pdeinv_version": ..., "training": {optimizer, scheduler, epoch, history, ...} or absent,
     "trained_on": <JSON string: {"grid": grid.to_dict() of m, "task", "data", ...}> or absent}

``trained_on`` says what the network was trained on (``pdeinv train`` sets ``model.trained_on``
from the dataset); it is not a constructor argument, so the config stays the constructor's and
:meth:`Network.load` gives it back as the attribute ``model.trained_on`` (``None`` for checkpoints
written without it).  :func:`pdeinv.solvers.factory.check_model_grid` compares it with the grid a
solver is built for.

Writes are atomic (temporary file in the same folder, then ``os.replace``), so
an interrupted write never leaves a broken checkpoint.
"""
from __future__ import annotations

import importlib
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any, Dict, Optional

import torch
from torch import nn

from pdeinv._validation import check_finite, file_mode

log = logging.getLogger(__name__)

FORMAT = "pdeinv.surrogate/1"

#: registry name -> :class:`Network` subclass (what checkpoints name in their ``class`` entry)
NETWORKS: Dict[str, type] = {}

# checkpoints written before they recorded their module
_LEGACY_MODULES = {"diffusion": "pdeinv.priors.diffusion.denoisers"}


def register_network(name: str, cls: type) -> type:
    """Register ``cls`` under ``name`` for checkpoints; the same class may be registered again."""
    if NETWORKS.get(name, cls) is not cls:
        raise ValueError(f"network name {name!r} is already registered for {NETWORKS[name].__name__}")
    NETWORKS[name] = cls
    return cls


class Normalizer(nn.Module):
    r"""Channel-wise affine normaliser :math:`z = (x - \mu_c)/\sigma_c`.

    Buffers ``mean`` and ``std`` have shape ``(C,)`` and are broadcast over the
    spatial axes, so the same normaliser serves every resolution (what
    resolution-invariant operators such as FNO need).  Before :meth:`fit` it is
    the identity (mean 0, std 1).
    """

    def __init__(self, channels: int = 1, eps: float = 1e-8):
        super().__init__()
        if int(channels) < 1:
            raise ValueError(f"Normalizer needs channels >= 1; got {channels}")
        self.eps = float(eps)
        self.register_buffer("mean", torch.zeros(int(channels)))
        self.register_buffer("std", torch.ones(int(channels)))

    @property
    def channels(self) -> int:
        return self.mean.numel()

    def _view(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        if x.dim() < 2 or x.shape[1] != self.channels:
            raise ValueError(f"Normalizer for {self.channels} channel(s) got a tensor of shape {tuple(x.shape)}; "
                             f"expected (B, {self.channels}, *grid)")
        return t.to(dtype=x.dtype, device=x.device).reshape(1, -1, *([1] * (x.dim() - 2)))

    @torch.no_grad()
    def fit(self, x: torch.Tensor) -> "Normalizer":
        """Set mean/std per channel from data ``x`` of shape ``(N, C, *grid)``."""
        check_finite(x, "normaliser data")
        if x.dim() < 2 or x.shape[1] != self.channels:
            raise ValueError(f"Normalizer.fit expects (N, {self.channels}, *grid); got {tuple(x.shape)}")
        xc = x.transpose(0, 1).reshape(self.channels, -1).double()
        self.mean.copy_(xc.mean(1).to(self.mean.dtype))
        self.std.copy_(xc.std(1).clamp_min(self.eps).to(self.std.dtype))
        return self

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self._view(self.mean, x)) / self._view(self.std, x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return z * self._view(self.std, z) + self._view(self.mean, z)

    def extra_repr(self) -> str:
        return f"channels={self.channels}"


def _check_json(config: Dict[str, Any]) -> Dict[str, Any]:
    try:
        return json.loads(json.dumps(config))
    except (TypeError, ValueError) as err:
        raise TypeError(f"surrogate constructor arguments must be JSON-serialisable (numbers, strings, lists, "
                        f"dicts) so that checkpoints can rebuild the model; got {config!r}: {err}") from None


def atomic_torch_save(obj: Any, path) -> Path:
    """``torch.save`` to a temporary file in the target folder, then ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, file_mode())          # mkstemp's 0600 -> what the umask gives any new file
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def read_checkpoint(path, map_location=None) -> Dict[str, Any]:
    """Read a pdeinv checkpoint dict; a missing file raises ``FileNotFoundError``, a
    corrupt, truncated or foreign file a ``ValueError`` saying so."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # zip errors, unpickling errors, EOF ... all mean "not a usable checkpoint"
        why = "it holds Python objects other than tensors" if "Weights only" in str(err) else \
            (str(err).splitlines()[0][:160] if str(err) else "")
        raise ValueError(f"{str(path)!r} is not a readable pdeinv surrogate checkpoint (corrupt, truncated, or "
                         f"not written by pdeinv): {type(err).__name__}: {why}") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        found = ckpt.get("format") if isinstance(ckpt, dict) else type(ckpt).__name__
        raise ValueError(f"{str(path)!r} is not a pdeinv surrogate checkpoint: expected format {FORMAT!r}, "
                         f"found {found!r}")
    for key in ("class", "config", "state_dict"):
        if key not in ckpt:
            raise ValueError(f"checkpoint {str(path)!r} is incomplete: missing {key!r}")
    return ckpt


def checkpoint_state(ckpt: Dict[str, Any]) -> Dict[str, Any]:
    """The weights of a checkpoint dict; a shipped denoiser keeps only its EMA weights
    (``tied_ema``, :mod:`pdeinv.nn.pretrained`), and its raw weights start from them."""
    state = ckpt["state_dict"]
    if ckpt.get("tied_ema"):
        state = {**state, **{"net." + k[len("ema_net."):]: v for k, v in state.items() if k.startswith("ema_net.")}}
    return state


def checkpoint_dict(model: nn.Module, training: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """The dict written by :meth:`Surrogate.save` (also for plain ``nn.Module`` s, whose
    ``class`` is then ``None``: such checkpoints serve to resume training only)."""
    from pdeinv import __version__
    is_sur = isinstance(model, Network)
    # tensors only (neuraloperator adds a '_metadata' dict of its init arguments, which pdeinv's config replaces)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items() if torch.is_tensor(v)}
    ckpt = {"format": FORMAT, "class": model.registry_name() if is_sur else None,
            "module": type(model).__module__ if is_sur else None,
            "config": json.dumps(model.config) if is_sur else "{}",
            "state_dict": state, "pdeinv_version": __version__,
            "normalizers": {n: {"mean": m.mean.detach().cpu(), "std": m.std.detach().cpu()}
                            for n, m in model.named_modules() if isinstance(m, Normalizer)}}
    if training is not None:
        ckpt["training"] = training
    trained_on = getattr(model, "trained_on", None)
    if trained_on:
        ckpt["trained_on"] = json.dumps(_check_json(dict(trained_on)))
    return ckpt


class Network(nn.Module):
    """Base class of pdeinv's networks; see the module docstring for the contract.

    Subclass pattern::

        class MyOp(Network):
            def __init__(self, in_channels=1, out_channels=1, width=32):
                super().__init__(in_channels=in_channels, out_channels=out_channels, width=width)
                self.net = ...
            def network(self, z):          # normalised (B, C_in, *grid) -> normalised (B, C_out, *grid)
                return self.net(z)

    ``in_channels`` / ``out_channels`` in the config create ``self.input_normalizer``
    and ``self.output_normalizer``; call :meth:`fit_normalizers` on training data.
    ``ndim=`` (spatial dimension, passed to ``super().__init__`` or set as ``self.ndim``)
    is checked by :meth:`forward`; it is not stored in the config.
    """

    #: name in :data:`NETWORKS` (default: class name lower-cased)
    name: Optional[str] = None

    def __init__(self, ndim: Optional[int] = None, **config):
        super().__init__()
        self.config = _check_json(config)
        #: what the network was trained on (``{"grid": grid.to_dict(), "task": ..., ...}``), or None
        self.trained_on: Optional[Dict[str, Any]] = None
        if ndim is not None:       # spatial dimension, checked by forward(); not a constructor argument
            self.ndim = int(ndim)
        self.input_normalizer = Normalizer(int(config.get("in_channels", 1)))
        self.output_normalizer = Normalizer(int(config.get("out_channels", 1)))

    # ------------------------------------------------------------------ registry
    @classmethod
    def registry_name(cls) -> str:
        for k, v in NETWORKS.items():
            if v is cls:
                return k
        raise ValueError(f"{cls.__name__} is not registered in pdeinv.nn.NETWORKS; register it "
                         f"(register_network('{(cls.name or cls.__name__).lower()}', {cls.__name__})) before saving")

    # ------------------------------------------------------------------ forward
    @property
    def in_channels(self) -> int:
        return self.input_normalizer.channels

    @property
    def out_channels(self) -> int:
        return self.output_normalizer.channels

    def network(self, z: torch.Tensor) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    def check_input(self, m: torch.Tensor) -> None:
        ndim = getattr(self, "ndim", None)
        if not torch.is_tensor(m):
            raise TypeError(f"{type(self).__name__} expects a torch.Tensor (B, {self.in_channels}, *grid); "
                            f"got {type(m).__name__}")
        if ndim is not None and m.dim() != 2 + int(ndim):
            raise ValueError(f"{type(self).__name__} is a {ndim}-D operator: expected input of shape "
                             f"(B, {self.in_channels}, *{ndim} grid axes); got {tuple(m.shape)}")
        if m.dim() < 3 or m.shape[1] != self.in_channels:
            raise ValueError(f"{type(self).__name__} expects {self.in_channels} input channel(s), shape "
                             f"(B, {self.in_channels}, *grid); got {tuple(m.shape)}")
        if not m.is_floating_point():
            raise TypeError(f"{type(self).__name__} expects a floating-point input; got {m.dtype}")

    def forward(self, m: torch.Tensor) -> torch.Tensor:
        """``(B, C_in, *grid)`` physical input -> ``(B, C_out, *grid)`` physical output, in ``m``'s dtype."""
        self.check_input(m)
        p = next(self.parameters(), None)
        net_dtype = p.dtype if p is not None else torch.float32
        x = m.to(net_dtype)
        out = self.output_normalizer.decode(self.network(self.input_normalizer.encode(x)))
        return out.to(m.dtype)

    @torch.no_grad()
    def fit_normalizers(self, inputs: torch.Tensor, outputs: Optional[torch.Tensor] = None) -> "Network":
        """Fit the input (and output) normalisers on training data ``(N, C, *grid)``."""
        self.input_normalizer.fit(inputs)
        if outputs is not None:
            self.output_normalizer.fit(outputs)
        return self

    # ------------------------------------------------------------------ checkpoints
    def save(self, path, training: Optional[Dict[str, Any]] = None) -> Path:
        """Write an atomic checkpoint with class name, config, weights and normalisers.

        ``training`` (optional): optimiser/scheduler state, epoch, history ... for resuming.
        """
        return atomic_torch_save(checkpoint_dict(self, training), path)

    @classmethod
    def load(cls, path, map_location=None) -> "Network":
        """Rebuild a saved network (any registered class) in eval mode.

        Raises ``ValueError`` for corrupt/foreign files, an unknown class, or a
        class that is not ``cls`` (when called on a subclass).
        """
        ckpt = read_checkpoint(path, map_location=map_location)
        name = ckpt["class"]
        if name is None:
            raise ValueError(f"{str(path)!r} holds the training state of a module that is not a registered "
                             "Network; it can resume training but not be loaded with load()")
        if name not in NETWORKS:
            module = ckpt.get("module") or _LEGACY_MODULES.get(name, "pdeinv.surrogates")
            if isinstance(module, str) and module.startswith("pdeinv."):   # only the package's own modules
                try:
                    importlib.import_module(module)
                except ImportError:
                    pass
        if name not in NETWORKS:
            raise ValueError(f"checkpoint {str(path)!r} is for network class {name!r}, which is not registered "
                             f"({sorted(NETWORKS)})")
        klass = NETWORKS[name]
        if not issubclass(klass, cls):
            raise ValueError(f"checkpoint {str(path)!r} holds a {klass.__name__}, not a {cls.__name__}")
        try:
            config = json.loads(ckpt["config"])
            model = klass(**config)
            model.load_state_dict(checkpoint_state(ckpt))
        except (TypeError, RuntimeError, json.JSONDecodeError) as err:
            raise ValueError(f"checkpoint {str(path)!r} does not fit {klass.__name__}: {err}") from None
        if ckpt.get("trained_on"):
            try:
                model.trained_on = json.loads(ckpt["trained_on"])
            except (TypeError, json.JSONDecodeError):
                log.warning("checkpoint %s: unreadable 'trained_on' record ignored", path)
        if map_location is not None:
            model.to(map_location)
        log.debug("loaded %s from %s (pdeinv %s)", klass.__name__, path, ckpt.get("pdeinv_version"))
        return model.eval()

    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def load(path, map_location=None) -> Network:
    """Load any saved network: ``pdeinv.surrogates.load("fno.ckpt")``."""
    return Network.load(path, map_location=map_location)
