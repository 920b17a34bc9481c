r"""Torch datasets over pdeinv dataset files, with normalisation fitted on the training split.

:class:`FieldDataset` serves float32 ``(input, target)`` pairs from a dataset in
the ``pdeinv.dataset/1`` schema (``m`` -> ``u`` by default, or the reverse for
an inverse operator).  With ``normalize=True`` both sides are standardised by a
:class:`UnitGaussianNormalizer`,

.. math:: \tilde x = (x - \mu) / (\sigma + \epsilon),

whose statistics :math:`\mu, \sigma` are computed on *the dataset's own
samples only* — build the training dataset first and hand its normalisers to
the test dataset (:meth:`FieldDataset.split` does this), so no test
statistics leak into training.  A surrogate stores
``dataset.normalizers`` (``state_dict()``) in its checkpoint.

Sample shapes: ``(C, *spatial)``; a time-series target is ``(T, C, *spatial)``.
"""
from __future__ import annotations

from typing import Dict, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch.utils.data import Dataset

from pdeinv.data.io import dataset_tensors, grid_of, load_dataset, state_grid_of


class UnitGaussianNormalizer:
    r"""``encode(x) = (x - mean) / (std + eps)``; ``decode`` inverts it.

    ``pointwise=True`` keeps one mean/std per grid point (statistics over the
    sample axis only, as in the FNO reference code); ``False`` uses one scalar
    pair per channel.  Statistics are float64 internally; ``encode``/``decode``
    follow the dtype and device of their input.
    """

    def __init__(self, mean: torch.Tensor, std: torch.Tensor, eps: float = 1e-6):
        self.mean, self.std, self.eps = mean.detach().double(), std.detach().double(), float(eps)

    @classmethod
    def fit(cls, x: torch.Tensor, pointwise: bool = True, eps: float = 1e-6) -> "UnitGaussianNormalizer":
        """Statistics of ``x`` ``(N, ...)`` over the sample axis (and space, unless ``pointwise``)."""
        if x.shape[0] < 2:
            raise ValueError(f"need at least 2 samples to fit a normaliser; got {x.shape[0]}")
        x = x.detach().double()
        if pointwise:
            dims = (0,)
        else:  # keep the channel axis (the one before the spatial axes): x is (N, [T,] C, *spatial)
            dims = tuple(i for i in range(x.dim()) if i != 1) if x.dim() > 2 else (0,)
        return cls(x.mean(dims, keepdim=True)[0], x.std(dims, keepdim=True)[0], eps)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean.to(x.device, x.dtype)) / (self.std.to(x.device, x.dtype) + self.eps)

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        return x * (self.std.to(x.device, x.dtype) + self.eps) + self.mean.to(x.device, x.dtype)

    def state_dict(self) -> Dict[str, object]:
        return {"mean": self.mean.clone(), "std": self.std.clone(), "eps": self.eps}

    @classmethod
    def from_state_dict(cls, state: Dict[str, object]) -> "UnitGaussianNormalizer":
        return cls(torch.as_tensor(state["mean"]), torch.as_tensor(state["std"]), float(state["eps"]))

    def __repr__(self) -> str:
        return f"UnitGaussianNormalizer(shape={tuple(self.mean.shape)}, eps={self.eps})"


def train_test_split(n: int, test: Union[int, float] = 0.1, seed: int = 0) -> Tuple[np.ndarray, np.ndarray]:
    """Seeded random split of ``range(n)``: ``test`` is a count (int) or a fraction (float in (0, 1)).

    Returns sorted ``(train_idx, test_idx)``; the same seed gives the same split.
    """
    if isinstance(test, float) and not isinstance(test, bool):
        if not 0 < test < 1:
            raise ValueError(f"test fraction must be in (0, 1); got {test}")
        n_test = int(round(test * n))
    else:
        n_test = int(test)
    if not 0 < n_test < n:
        raise ValueError(f"cannot split {n} samples into {n - n_test} train / {n_test} test")
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[n_test:]), np.sort(perm[:n_test])


class FieldDataset(Dataset):
    """``FieldDataset(path_or_ds, input="m", target="u", normalize=True, indices=None, normalizers=None)``.

    ``path_or_ds``: a dataset file (netCDF/zarr) or an ``xarray.Dataset``.
    ``input``/``target``: ``"m"`` or ``"u"``.  ``indices``: the samples this
    dataset serves (e.g. a training split).  ``normalizers``: a dict
    ``{"input": ..., "target": ...}`` of fitted :class:`UnitGaussianNormalizer`
    (from the training dataset); if None and ``normalize``, they are fitted on
    this dataset's own samples.

    ``ds[i]`` -> ``(input, target)`` float32 tensors, normalised if
    ``normalize``.  ``decode_target(y)`` maps a network output back to
    physical units.
    """

    def __init__(self, path_or_ds, input: str = "m", target: str = "u", normalize: bool = True,
                 indices: Optional[Sequence[int]] = None, normalizers: Optional[Dict[str, UnitGaussianNormalizer]] = None,
                 pointwise: bool = True):
        ds = load_dataset(path_or_ds) if not hasattr(path_or_ds, "data_vars") else path_or_ds
        for role, name in (("input", input), ("target", target)):
            if name not in ("m", "u"):
                raise ValueError(f"{role}={name!r}; expected 'm' or 'u'")
        m, u = dataset_tensors(ds)
        if indices is not None:
            idx = torch.as_tensor(np.asarray(indices), dtype=torch.long)
            if idx.numel() == 0 or int(idx.min()) < 0 or int(idx.max()) >= m.shape[0]:
                raise ValueError(f"indices must lie in [0, {m.shape[0]}); got {idx.min()}..{idx.max()}")
            m, u = m[idx], u[idx]
        fields = {"m": m, "u": u}
        self.grid, self.state_grid = grid_of(ds), state_grid_of(ds)
        self.attrs = dict(ds.attrs)
        self.input_name, self.target_name = input, target
        x, y = fields[input], fields[target]
        self.normalize = bool(normalize)
        if self.normalize:
            if normalizers is None:
                normalizers = {"input": UnitGaussianNormalizer.fit(x, pointwise=pointwise),
                               "target": UnitGaussianNormalizer.fit(y, pointwise=pointwise)}
            x, y = normalizers["input"].encode(x), normalizers["target"].encode(y)
        self.normalizers = normalizers if self.normalize else None
        self.x, self.y = x.float().contiguous(), y.float().contiguous()

    @property
    def input_normalizer(self) -> Optional[UnitGaussianNormalizer]:
        return None if self.normalizers is None else self.normalizers["input"]

    @property
    def target_normalizer(self) -> Optional[UnitGaussianNormalizer]:
        return None if self.normalizers is None else self.normalizers["target"]

    def __len__(self) -> int:
        return self.x.shape[0]

    def __getitem__(self, i):
        return self.x[i], self.y[i]

    def tensors(self) -> Tuple[torch.Tensor, torch.Tensor]:
        """All ``(input, target)`` pairs as two float32 tensors (normalised if ``normalize``)."""
        return self.x, self.y

    def decode_target(self, y: torch.Tensor) -> torch.Tensor:
        return y if self.target_normalizer is None else self.target_normalizer.decode(y)

    def decode_input(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.input_normalizer is None else self.input_normalizer.decode(x)

    @classmethod
    def split(cls, path_or_ds, test: Union[int, float] = 0.1, seed: int = 0, **kwargs):
        """``(train, test)`` datasets from one file; the test set uses the training normalisers."""
        ds = load_dataset(path_or_ds) if not hasattr(path_or_ds, "data_vars") else path_or_ds
        tr, te = train_test_split(ds.sizes["sample"], test, seed)
        train = cls(ds, indices=tr, **kwargs)
        test_ds = cls(ds, indices=te, normalizers=train.normalizers, **kwargs)
        return train, test_ds
