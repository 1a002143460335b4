"""The end of every exported model.py: ``read_safetensors`` (a reader that needs neither the safetensors
package nor pickle) and ``load``, their source copied into it as is (``nas.exporter.source``).

``ARCH``, ``ARCH_ID`` and ``build`` are model.py's own, written before this part; ``load`` reads them by
name, so this module holds stand-ins of the three to be importable. They are never copied, and the
stand-in ``build`` refuses to run: the model to load is model.py's.
"""

from __future__ import annotations

import json
import math
import pathlib

import torch
from torch import nn

ARCH: dict = {}  # model.py: the ArchSpec it was written for
ARCH_ID = ""  # model.py: its arch_id


def build() -> nn.Module:  # model.py: the architecture, untrained
    raise RuntimeError("nas.exporter.runtime.load is the template of an exported model.py's load(): call the "
                       "load() of the model.py that `nas export` wrote (it defines build())")


def read_safetensors(path) -> dict:
    """The tensors of a .safetensors file, read without the safetensors package and without pickle.

    The format: an 8-byte little-endian header length N; N bytes of JSON
    {name: {"dtype", "shape", "data_offsets": [begin, end]}} (and an optional
    "__metadata__"); then the tensors' raw little-endian bytes, offsets
    counted from the end of the header.
    """
    dtypes = {
        "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
        "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
        "BOOL": torch.bool,
    }
    if memoryview(b"\x01\x00").cast("H")[0] != 1:
        raise RuntimeError("read_safetensors: this reader needs a little-endian machine")
    path = pathlib.Path(path)
    data = path.read_bytes()
    n = int.from_bytes(data[:8], "little") if len(data) >= 8 else -1
    if n < 2 or 8 + n > len(data):
        raise ValueError(f"{path}: not a safetensors file (bad header length)")
    header = json.loads(data[8:8 + n])
    base = 8 + n
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype = dtypes.get(info["dtype"])
        if dtype is None:
            raise ValueError(f"{path}: tensor {name!r} has dtype {info['dtype']}, which this reader does not read")
        shape = [int(s) for s in info["shape"]]
        begin, end = (int(o) for o in info["data_offsets"])
        numel = math.prod(shape)
        if end - begin != numel * dtype.itemsize or begin < 0 or base + end > len(data):
            raise ValueError(f"{path}: tensor {name!r}: its data offsets do not fit its shape or the file")
        if numel == 0:
            tensors[name] = torch.zeros(shape, dtype=dtype)
            continue
        raw = bytearray(data[base + begin:base + end])  # a copy: aligned and writable
        tensors[name] = torch.frombuffer(raw, dtype=dtype).reshape(shape)
    return tensors


def load(directory=None) -> nn.Module:
    """The exported model with its trained weights, in eval mode.

    ``directory``: the folder holding arch.json and weights.safetensors
    (default: the folder of this file).
    """
    directory = pathlib.Path(__file__).resolve().parent if directory is None else pathlib.Path(directory)
    arch = json.loads((directory / "arch.json").read_text())
    given = arch.get("arch") or {}
    if {key: given.get(key) for key in ARCH} != ARCH:
        raise ValueError(f"{directory / 'arch.json'} describes another architecture than this model.py ({ARCH_ID})")
    net = build()
    net.load_state_dict(read_safetensors(directory / "weights.safetensors"), strict=True)
    return net.eval()
