"""Write an npz nas reads (``examples/colour.yaml``) from a local copy of CIFAR-10's Python version.

nas downloads nothing: point this at the folder ``cifar-10-batches-py`` of your own copy (the archive
``cifar-10-python.tar.gz`` from its authors, unpacked). It writes ``X`` (n, 32, 32, 3) and ``X_test`` (10,000, 32,
32, 3) with pixels in [0, 1] (``--dtype``: float16 by default, 2 bytes a value) and the labels ``y`` / ``y_test``.

    python benchmarks/cifar_npz.py PATH/cifar-10-batches-py examples/cifar10.npz [--train 10000] [--dtype float32]
"""

from __future__ import annotations

import argparse
import pickle
import sys
from pathlib import Path

import numpy as np


def batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 batch: images (n, 32, 32, 3) uint8 (its rows are (3, 32, 32) planes) and labels (n,)."""
    with path.open("rb") as f:
        d = pickle.load(f, encoding="bytes")  # the authors' own pickles, from the user's copy
    x = np.asarray(d[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return x, np.asarray(d[b"labels"], dtype=np.int64)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("source", type=Path, help="the folder cifar-10-batches-py")
    ap.add_argument("out", type=Path, help="the npz to write")
    ap.add_argument("--train", type=int, default=None, help="keep the first N training images (default: all 50,000)")
    ap.add_argument("--dtype", choices=["float16", "float32"], default="float16")
    args = ap.parse_args()
    files = [args.source / f"data_batch_{i}" for i in range(1, 6)] + [args.source / "test_batch"]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        sys.exit(f"{args.source}: not CIFAR-10's Python version (missing {', '.join(missing)})")
    parts = [batch(f) for f in files[:5]]
    x, y = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    if args.train is not None:
        x, y = x[:args.train], y[:args.train]
    x_test, y_test = batch(files[5])
    scale = np.dtype(args.dtype).type(255)
    np.savez(args.out, X=x.astype(args.dtype) / scale, y=y, X_test=x_test.astype(args.dtype) / scale, y_test=y_test)
    print(f"{args.out}: X {x.shape}, X_test {x_test.shape}, pixels in [0, 1] ({args.dtype})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
