"""``nas export``: one candidate of a study as a standalone PyTorch module.

``export_candidate`` picks a candidate of a study (``--trial N``, or
``--pick METRIC`` / ``--pick knee``) and ``export_model`` writes a folder
that needs only PyTorch:

- ``model.py``: readable classes for exactly the blocks the architecture uses,
  a safetensors reader and ``load(directory)``; no ``nas`` import;
- ``weights.safetensors``: the trained tensors (a fixed random lift is
  regenerated from its seed, or stored with ``store_lift=True``);
- ``arch.json``: the ArchSpec, the task, the training settings, the measured
  objectives and where the candidate came from;
- ``README.md``: a model card.

``model.py`` is generated from a fixed set of snippets; the only varying parts
are integer literals of the ArchSpec (checked to be ints) and choices among the
snippets by block name (checked against the registries and the snippet
tables). No string a user wrote ever reaches the code. Every export is checked
before it is put in place: the exported model's outputs must equal
(``torch.equal``) nas's own model's on random inputs, and
``torch.export.export`` is tried on it. The folder is written next to
``out_dir`` under a temporary name and renamed into place at the end, so a
failed export leaves nothing behind.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import shutil
import tempfile
import types
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

from nas.errors import NasInputError

FORMAT = "nas-export/1"
KNEE = "knee"
CHECK_BATCH = 16  # random inputs the export-time equality check runs

# -------------------------------------------------------------- the snippets
# Each table maps a registry name to the code that mirrors nas's module op for op
# (nas/spaces/blocks.py). A registry name without an entry here cannot be exported.

ACTIVATION_CODE = {
    "relu": ("nn.ReLU()", "relu"),
    "gelu": ('nn.GELU()  # the exact (erf) GELU, approximate="none"', "gelu"),
    "silu": ("nn.SiLU()", "silu"),
    "tanh": ("nn.Tanh()", "tanh"),
}

NORM_CODE = {
    "batchnorm": "nn.BatchNorm1d(d_z, affine=False)  # running mean and variance from training, no affine",
    "layernorm": "nn.LayerNorm(d_z, elementwise_affine=False)  # no affine",
    "none": None,  # no norm: the block reads h directly
}

LIFT_KINDS = ("fixed_random", "learned", "none")

_FIXED_LIFT = '''

class FixedRandomLift(nn.Module):
    """z = x R^T with R ~ N(0, 1/d_in): seeded and never trained.

    R is not stored: it is regenerated from its seed with PyTorch's CPU
    generator, exactly as nas does (nas.spaces.blocks.FixedRandomLift).
    """

    def __init__(self, d_in: int, d_z: int, seed: int):
        super().__init__()
        self.d_in, self.d_z, self.seed = d_in, d_z, seed
        gen = torch.Generator(device="cpu").manual_seed(seed)
        r = torch.randn(d_z, d_in, generator=gen, device="cpu") / math.sqrt(d_in)  # (d_z, d_in)
        self.register_buffer("weight", r, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, d_in) -> (B, d_z)
        return x @ self.weight.t()
'''

_STORED_LIFT = '''

class FixedRandomLift(nn.Module):
    """z = x R^T with R ~ N(0, 1/d_in): seeded and never trained.

    Exported with --store-lift: R is read from weights.safetensors
    ("lift.weight") instead of being regenerated from its seed.
    """

    def __init__(self, d_in: int, d_z: int):
        super().__init__()
        self.d_in, self.d_z = d_in, d_z
        self.register_buffer("weight", torch.zeros(d_z, d_in))  # (d_z, d_in), filled by load()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, d_in) -> (B, d_z)
        return x @ self.weight.t()
'''

_LEARNED_LIFT = '''

class LearnedLift(nn.Linear):
    """z = W_in x: a trained, bias-free linear layer."""

    def __init__(self, d_in: int, d_z: int):
        super().__init__(d_in, d_z, bias=False)  # weight: (d_z, d_in)
'''

_BLOCK = '''

class HourglassBlock(nn.Module):
    """h + W2 {act_name}(W1 {norm_expr}): the residual block, no biases.

    d_z -> d_h -> d_z; here d_z = {d_z} and d_h = {d_h} ({shape_word}).
    """

    def __init__(self, d_z: int, d_h: int):
        super().__init__()
{norm_line}        self.w1 = nn.Linear(d_z, d_h, bias=False)  # weight: (d_h, d_z)
        self.act = {act_code}
        self.w2 = nn.Linear(d_h, d_z, bias=False)  # weight: (d_z, d_h)

    def forward(self, h: torch.Tensor) -> torch.Tensor:  # (B, d_z) -> (B, d_z)
        return h + self.w2(self.act(self.w1({norm_call})))  # (B, d_z) -> (B, d_h) -> (B, d_z)
'''

_MODEL = '''

class HourglassMLP(nn.Module):
    """lift -> DEPTH x HourglassBlock -> head: x (B, D_IN) -> logits (B, D_OUT)."""

    def __init__(self):
        super().__init__()
{lift_line}        self.blocks = nn.ModuleList(HourglassBlock(D_Z, D_H) for _ in range(DEPTH))  # (B, {d_z}) each
        self.head = nn.Linear(D_Z, D_OUT, bias=False)  # W_out: (B, {d_z}) -> (B, {d_out})

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, {d_in}) -> (B, {d_out})
        h = {lift_call}  # {lift_comment}(B, {d_z})
        for block in self.blocks:
            h = block(h)  # (B, {d_z})
        return self.head(h)  # (B, {d_out})
'''

_READER_AND_LOAD = '''

# ------------------------------------------------------------ loading
_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
    "BOOL": torch.bool,
}


def read_safetensors(path) -> dict:
    """The tensors of a .safetensors file, read without the safetensors package and without pickle.

    The format: an 8-byte little-endian header length N; N bytes of JSON
    {name: {"dtype", "shape", "data_offsets": [begin, end]}} (and an optional
    "__metadata__"); then the tensors' raw little-endian bytes, offsets
    counted from the end of the header.
    """
    if memoryview(b"\\x01\\x00").cast("H")[0] != 1:
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
        dtype = _DTYPES.get(info["dtype"])
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


def load(directory=None) -> HourglassMLP:
    """The exported model with its trained weights, in eval mode.

    ``directory``: the folder holding arch.json and weights.safetensors
    (default: the folder of this file).
    """
    directory = pathlib.Path(__file__).resolve().parent if directory is None else pathlib.Path(directory)
    arch = json.loads((directory / "arch.json").read_text())
    if arch.get("arch") != ARCH:
        raise ValueError(f"{directory / 'arch.json'} describes another architecture than this model.py ({ARCH_ID})")
    net = HourglassMLP()
    net.load_state_dict(read_safetensors(directory / "weights.safetensors"), strict=True)
    return net.eval()
'''


# ------------------------------------------------------------ validation
_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}\Z")
_HEX = re.compile(r"[0-9a-f]{16}\Z")
_SPEC_FIELDS = ("d_in", "d_out", "lift", "lift_width", "hidden_width", "depth", "activation", "norm", "lift_seed")


@dataclass(frozen=True)
class _Parts:
    """The ArchSpec, checked: ints that are ints, names from the fixed snippet tables."""

    d_in: int
    d_out: int
    d_z: int
    d_h: int
    depth: int
    seed: int
    lift: str
    activation: str
    norm: str
    arch_id: str
    arch: dict[str, Any]  # ArchSpec.to_json(), of the checked values only


def _int(name: str, value: Any, low: int, high: int = 2**31 - 1) -> int:
    if type(value) is not int or not low <= value <= high:
        raise NasInputError(f"cannot export: ArchSpec.{name} must be an int in [{low}, {high}], found {value!r}")
    return value


def _name(kind: str, value: Any, registry, snippets: Mapping[str, Any]) -> str:
    if not isinstance(value, str) or value not in registry:
        raise NasInputError(f"cannot export: {registry.unknown_message(value)}")
    if value not in snippets or not _NAME.match(value):
        raise NasInputError(
            f"cannot export {kind} {value!r}: nas export has no code for it yet (it knows "
            f"{', '.join(snippets)}); add it to nas/search/export.py"
        )
    return next(k for k in snippets if k == value)  # the table's own string, not the caller's


def check_spec(spec) -> _Parts:
    """Check every value of ``spec`` that reaches the generated code; NasInputError otherwise."""
    from nas.spaces import ACTIVATIONS, LIFTS, NORMS, ArchSpec

    if not isinstance(spec, ArchSpec):
        raise NasInputError(f"cannot export: expected an ArchSpec, found {type(spec).__name__}")
    fields = tuple(f.name for f in dataclasses.fields(spec))
    unknown = [f for f in fields if f not in _SPEC_FIELDS]
    if unknown:
        raise NasInputError(
            f"cannot export: ArchSpec has fields nas export does not know yet ({', '.join(unknown)}); "
            "add them to nas/search/export.py"
        )
    lift = _name("lift", spec.lift, LIFTS, dict.fromkeys(LIFT_KINDS))
    activation = _name("activation", spec.activation, ACTIVATIONS, ACTIVATION_CODE)
    norm = _name("norm", spec.norm, NORMS, NORM_CODE)
    d_in = _int("d_in", spec.d_in, 1)
    d_out = _int("d_out", spec.d_out, 1)
    d_z = _int("lift_width", spec.lift_width, 1)
    d_h = _int("hidden_width", spec.hidden_width, 1)
    depth = _int("depth", spec.depth, 1, 10_000)
    seed = _int("lift_seed", spec.lift_seed, 0, 2**63 - 1)
    if lift == "none" and d_z != d_in:
        raise NasInputError(f"cannot export: lift none needs lift_width == d_in, found {d_z} and {d_in}")
    arch = {"d_in": d_in, "d_out": d_out, "lift": lift, "lift_width": d_z, "hidden_width": d_h, "depth": depth,
            "activation": activation, "norm": norm, "lift_seed": seed}
    if arch != spec.to_json():
        raise NasInputError("cannot export: the ArchSpec does not round-trip through its checked values")
    arch_id = spec.arch_id
    if not _HEX.match(arch_id):
        raise NasInputError(f"cannot export: unexpected arch_id {arch_id!r}")
    return _Parts(d_in, d_out, d_z, d_h, depth, seed, lift, activation, norm, arch_id, arch)


# ------------------------------------------------------------ the source
def _py_literal(value: Any) -> str:
    """An int or a checked name as Python source (nothing else is accepted)."""
    if type(value) is int:
        return str(value)
    if isinstance(value, str) and (_NAME.match(value) or _HEX.match(value)):
        return f'"{value}"'
    raise TypeError(f"not a literal the export writes: {value!r}")


def _kind(p: _Parts) -> str:
    if p.lift == "none":
        return "Conventional residual"  # the paper's baseline: d_z = d_in
    return "Hourglass" if p.d_h < p.d_z else "Residual"


def describe(p: _Parts, store_lift: bool = False) -> str:
    """One line: the architecture in words (for the card and the module docstring)."""
    if p.lift == "fixed_random":
        how = "stored" if store_lift else "regenerated from its seed"
        lift = f"fixed random lift {p.d_in} -> {p.d_z} (seed {p.seed}, {how})"
    elif p.lift == "learned":
        lift = f"learned lift {p.d_in} -> {p.d_z}"
    else:
        lift = f"no lift (d_z = d_in = {p.d_in})"
    norm = "no norm" if p.norm == "none" else p.norm
    return (f"{lift}; {p.depth} x residual block {p.d_z} -> {p.d_h} -> {p.d_z} ({norm}, {p.activation}); "
            f"head {p.d_z} -> {p.d_out}")


def model_source(p: _Parts, store_lift: bool = False) -> str:
    """The text of model.py for the checked architecture ``p``."""
    lit = _py_literal
    stored = store_lift and p.lift == "fixed_random"
    kind = {"Hourglass": "An hourglass", "Residual": "A residual"}.get(_kind(p), "A conventional residual")
    shape_word = "an hourglass: d_h < d_z" if p.d_h < p.d_z else "a conventional block: d_h >= d_z"
    lines = [
        f'"""{kind} MLP exported by nas (arch {p.arch_id}): standalone, it needs only PyTorch.',
        "",
        f"    {describe(p, store_lift)}",
        "",
        "    x (B, D_IN) -> lift -> h (B, D_Z) -> DEPTH x (h = h + W2 act(W1 norm(h))) -> W_out h (B, D_OUT)",
        "",
        "``load(directory)`` reads arch.json and weights.safetensors from the folder",
        "and returns the model in eval mode. Generated by ``nas export``: the",
        "classes mirror nas's modules op for op, so the outputs equal nas's bit for",
        "bit on the same device and dtype.",
        '"""',
        "",
        "import json",
        "import math",
        "import pathlib",
        "",
        "import torch",
        "from torch import nn",
        "",
        f"D_IN = {lit(p.d_in)}  # input features",
        f"D_Z = {lit(p.d_z)}  # width of the residual stream",
        f"D_H = {lit(p.d_h)}  # hidden (bottleneck) width of each block",
        f"DEPTH = {lit(p.depth)}  # residual blocks",
        f"D_OUT = {lit(p.d_out)}  # outputs",
    ]
    if p.lift == "fixed_random" and not stored:
        lines.append(f"LIFT_SEED = {lit(p.seed)}  # seed of the fixed random lift")
    lines.append(f"ARCH_ID = {lit(p.arch_id)}")
    lines.append("ARCH = {  # the ArchSpec this file was generated for; load() checks arch.json against it")
    lines += [f'    "{key}": {lit(value)},' for key, value in p.arch.items()]
    lines.append("}")
    src = "\n".join(lines) + "\n"

    if p.lift == "fixed_random":
        src += _STORED_LIFT if stored else _FIXED_LIFT
    elif p.lift == "learned":
        src += _LEARNED_LIFT

    act_code, act_name = ACTIVATION_CODE[p.activation]
    norm_code = NORM_CODE[p.norm]
    src += (_BLOCK
            .replace("{act_name}", act_name)
            .replace("{norm_expr}", "h" if norm_code is None else f"{p.norm}(h)")
            .replace("{d_z}", lit(p.d_z)).replace("{d_h}", lit(p.d_h)).replace("{shape_word}", shape_word)
            .replace("{norm_line}", "" if norm_code is None else f"        self.norm = {norm_code}\n")
            .replace("{act_code}", act_code)
            .replace("{norm_call}", "h" if norm_code is None else "self.norm(h)"))

    if p.lift == "fixed_random":
        lift_line = ("        self.lift = FixedRandomLift(D_IN, D_Z)  # (B, {d_in}) -> (B, {d_z})\n" if stored else
                     "        self.lift = FixedRandomLift(D_IN, D_Z, LIFT_SEED)  # (B, {d_in}) -> (B, {d_z})\n")
        lift_call, lift_comment = "self.lift(x)", ""
    elif p.lift == "learned":
        lift_line = "        self.lift = LearnedLift(D_IN, D_Z)  # W_in: (B, {d_in}) -> (B, {d_z})\n"
        lift_call, lift_comment = "self.lift(x)", ""
    else:
        lift_line = ""
        lift_call, lift_comment = "x", "no lift: the residual stream is the input itself, d_z = d_in: "
    src += (_MODEL.replace("{lift_line}", lift_line).replace("{lift_call}", lift_call)
            .replace("{lift_comment}", lift_comment)
            .replace("{d_in}", lit(p.d_in)).replace("{d_z}", lit(p.d_z)).replace("{d_out}", lit(p.d_out)))
    src += _READER_AND_LOAD
    return src


# ------------------------------------------------------------ the export
@dataclass
class ExportMeta:
    """Where an exported candidate came from (all optional: a model built outside a study has none)."""

    study: str | None = None
    trial: int | None = None
    sampler: str | None = None
    picked_by: str | None = None  # "trial", an objective's name, or "knee"
    dataset: str | None = None
    kind: str | None = None
    train: dict[str, Any] | None = None  # TrainSpec.to_json()
    objectives: dict[str, float] = field(default_factory=dict)  # every metric nas measured
    directions: dict[str, str] = field(default_factory=dict)  # the study's objectives
    pareto: bool | None = None
    complete_trials: int | None = None
    reused_from_trial: int | None = None  # the trial whose training (and weights file) this one reused


def export_model(spec, weights, out_dir: str | os.PathLike, meta: ExportMeta | None = None,
                 store_lift: bool = False, check_torch_export: bool = True) -> Path:
    """Write the export folder ``out_dir`` for ``spec`` with ``weights``; return its path.

    ``weights``: a safetensors file of nas's ``HourglassMLP`` state_dict (copied as
    is) or the state_dict itself. ``out_dir`` must not exist or be empty.
    """
    import torch
    from safetensors import safe_open
    from safetensors.torch import save_file

    import nas
    from nas.spaces import build

    p = check_spec(spec)
    meta = meta or ExportMeta()
    out = _check_out(out_dir)
    stored = bool(store_lift) and p.lift == "fixed_random"

    if isinstance(weights, Mapping):
        weights_file = None
        tensors = {k: v.detach().cpu().contiguous() for k, v in weights.items()}
        file_meta = {"arch_id": p.arch_id}
    else:
        weights_file = Path(weights)
        if not weights_file.is_file():
            raise NasInputError(f"weights file {weights_file} is missing")
        try:
            with safe_open(str(weights_file), framework="pt") as f:
                file_meta = dict(f.metadata() or {})
                tensors = {k: f.get_tensor(k) for k in f.keys()}
        except Exception as exc:
            raise NasInputError(f"weights file {weights_file}: not a readable safetensors file ({exc})") from None
        if file_meta.get("arch_id", p.arch_id) != p.arch_id:
            raise NasInputError(f"weights file {weights_file} holds arch {file_meta['arch_id']}, "
                                f"not this candidate's {p.arch_id}")

    with torch.device("cpu"):
        reference = build(spec)
    try:
        reference.load_state_dict(tensors, strict=True)
    except RuntimeError as exc:
        where = f"weights file {weights_file}" if weights_file else "the state_dict"
        raise NasInputError(f"{where} does not fit arch {p.arch_id}: {' '.join(str(exc).split())[:500]}") from None
    reference.eval()
    if stored:
        tensors["lift.weight"] = reference.lift.weight.detach().clone()  # the regenerated R, as nas has it
        file_meta["lift"] = "stored"

    source = model_source(p, store_lift=stored)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".nas-export", dir=out.parent))
    except OSError as exc:
        raise NasInputError(f"--out {out}: cannot write there: {exc.strerror or exc}") from None
    try:
        (tmp / "model.py").write_text(source)
        if weights_file is not None and not stored:
            shutil.copyfile(weights_file, tmp / "weights.safetensors")
        else:
            save_file(tensors, str(tmp / "weights.safetensors"), metadata=file_meta)
        card = _arch_json(p, meta, stored, nas.__version__, torch.__version__)
        (tmp / "arch.json").write_text(json.dumps(card, indent=2) + "\n")
        card["checks"] = _check(tmp, source, reference, p, check_torch_export)
        (tmp / "arch.json").write_text(json.dumps(card, indent=2) + "\n")
        (tmp / "README.md").write_text(model_card(card, out.name, len(tensors),
                                                  (tmp / "weights.safetensors").stat().st_size))
        tmp.chmod(0o777 & ~_umask())
        try:
            os.rename(tmp, out)  # atomic; replaces only an empty folder
        except OSError:
            raise NasInputError(f"--out {out}: it appeared, not empty, while exporting; nothing was written")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _check_out(out_dir: str | os.PathLike) -> Path:
    out = Path(out_dir).expanduser()
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise NasInputError(f"--out {out}: exists and is not a folder; nas export never overwrites")
    if out.is_dir() and any(out.iterdir()):
        raise NasInputError(f"--out {out}: the folder exists and is not empty; nas export never overwrites "
                            "(choose a new folder)")
    return out.absolute()


def _arch_json(p: _Parts, meta: ExportMeta, stored: bool, nas_version: str, torch_version: str) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "arch_id": p.arch_id,
        "arch": p.arch,
        "task": {"dataset": meta.dataset, "kind": meta.kind, "d_in": p.d_in, "d_out": p.d_out},
        "train": meta.train,
        "objectives": meta.objectives,
        "directions": meta.directions,
        "study": meta.study,
        "trial": meta.trial,
        "sampler": meta.sampler,
        "picked_by": meta.picked_by,
        "pareto": meta.pareto,
        "complete_trials": meta.complete_trials,
        "reused_from_trial": meta.reused_from_trial,
        "lift_stored": stored,
        "exported_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "nas_version": nas_version,
        "torch_version": torch_version,
    }


def _check(folder: Path, source: str, reference, p: _Parts, check_torch_export: bool) -> dict[str, Any]:
    """Load the export as a user would and compare it with nas's model; try torch.export on it."""
    import torch

    module = types.ModuleType("_nas_export_check")
    module.__file__ = str(folder / "model.py")
    exec(compile(source, module.__file__, "exec"), module.__dict__)  # our generated code; no .pyc left behind
    net = module.load(folder)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(CHECK_BATCH, p.d_in, generator=gen) * torch.logspace(-2, 2, CHECK_BATCH).unsqueeze(1)
    with torch.no_grad():
        want, got = reference(x), net(x)
    if got.shape != want.shape or not torch.equal(got, want):
        diff = (got - want).abs().max().item() if got.shape == want.shape else f"shape {tuple(got.shape)}"
        raise RuntimeError(f"bug in nas export: the exported arch {p.arch_id} does not reproduce nas's outputs "
                           f"(max difference {diff})")
    checks: dict[str, Any] = {"outputs_equal_nas": True, "inputs_checked": CHECK_BATCH}
    if check_torch_export:
        try:
            ep = torch.export.export(net, (torch.randn(1, p.d_in),))
            x1 = x[:1]
            with torch.no_grad():
                diff = (ep.module()(x1) - net(x1)).abs().max().item()
            checks["torch_export"] = "ok" if diff <= 1e-5 * (1 + net(x1).abs().max().item()) else \
                f"exported, but its outputs differ by {diff:.3g}"
        except Exception as exc:  # recorded, not fatal: the module itself is fine
            checks["torch_export"] = f"failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    else:
        checks["torch_export"] = "not checked"
    checks["onnx"] = "not checked"
    return checks


# ------------------------------------------------------------ the model card
def _md(text: Any) -> str:
    """A value as inline Markdown code (user strings go into the card, never into code)."""
    return "`" + str(text).replace("`", "'").replace("\n", " ") + "`"


def model_card(card: dict[str, Any], folder_name: str, n_tensors: int, n_bytes: int) -> str:
    from nas.search.format import human_bytes, human_count
    from nas.spaces import ArchSpec

    p = check_spec(ArchSpec.from_json(card["arch"]))
    task, obj = card["task"], card["objectives"] or {}
    directions = card["directions"] or {}
    title = f"{_kind(p)} MLP {p.d_in} -> {p.d_z} -> {p.d_out}"
    if card["study"] is not None:
        title += f": trial {card['trial']} of study {_md(card['study'])}"
    lines = [f"# {title}", "",
             f"Exported by `nas export` (nas {card['nas_version']}, PyTorch {card['torch_version']}) on "
             f"{card['exported_at']}.", "",
             "## The model", "", "| | |", "|---|---|",
             f"| architecture | {describe(p, card['lift_stored'])} |",
             f"| arch_id | `{p.arch_id}` |"]
    if task.get("dataset"):
        lines.append(f"| trained on | {task.get('kind') or 'classification'} on {_md(task['dataset'])} "
                     f"({p.d_in} inputs, {p.d_out} outputs) |")
    else:
        lines.append(f"| task | {p.d_in} inputs, {p.d_out} outputs (not recorded) |")
    train = card.get("train") or {}
    if train:
        lines.append("| training | " + ", ".join(f"{k} {_md(v)}" for k, v in train.items()) + " |")
    lines += ["", "## Objectives", ""]
    if obj:
        lines += ["As nas measured them.", "", "| metric | value | in the study |", "|---|---|---|"]
        for metric in [m for m in directions if m in obj] + [m for m in obj if m not in directions]:
            value = obj[metric]
            lines.append(f"| {metric} | {_metric(metric, value, human_count, human_bytes)} | "
                         f"{directions.get(metric, '-')} |")
    else:
        lines.append("None recorded (exported outside a study).")
    imp = folder_name if folder_name.isidentifier() else None
    lines += ["", "## Load it", "",
              "It needs only PyTorch: `model.py` reads `weights.safetensors` itself (no nas, no safetensors "
              "package, nothing pickled).", "", "```python", "import torch"]
    if imp:
        lines += [f"import {imp}.model as model   # from the folder that holds {imp}/",
                  f'net = model.load("{imp}")   # eval mode']
    else:
        lines += ["import importlib.util",
                  'spec = importlib.util.spec_from_file_location("model", "PATH/TO/THIS/FOLDER/model.py")',
                  "model = importlib.util.module_from_spec(spec); spec.loader.exec_module(model)",
                  'net = model.load("PATH/TO/THIS/FOLDER")   # eval mode']
    lines += [f"logits = net(torch.randn(1, {p.d_in}))   # (B, {p.d_in}) -> (B, {p.d_out})", "```", ""]
    if p.lift == "fixed_random":
        lines += ["The fixed random lift is " + (
            "stored in `weights.safetensors` (`lift.weight`, exported with `--store-lift`)." if card["lift_stored"]
            else "not stored: `model.py` regenerates it from its seed with PyTorch's CPU generator, as nas does "
                 "(export with `--store-lift` to keep the matrix in the file instead)."), ""]
    lines += ["## How it was found", ""]
    if card["study"] is not None:
        picked = card["picked_by"]
        n = card.get("complete_trials")
        among = f" among the {n} complete trials" if n is not None else ""
        if picked == KNEE:
            why = ("chosen with `--pick knee`: the point of the Pareto front closest (Euclidean) to the ideal "
                   "point, each objective min-max normalised over the front")
        elif picked and picked != "trial":
            why = f"chosen with `--pick {picked}`: the best {picked} ({directions.get(picked, '?')}){among}"
        else:
            why = f"chosen with `--trial {card['trial']}`"
        lines.append(f"Study {_md(card['study'])}, trial {card['trial']}, sampler {_md(card['sampler'])}; {why}.")
        if card.get("pareto") is not None:
            lines += ["", f"On the study's Pareto front: {'yes' if card['pareto'] else 'no'}."]
        if card.get("reused_from_trial") is not None:
            lines += ["", f"nas did not train it again: it had the same architecture, training settings and task as "
                          f"trial {card['reused_from_trial']}, whose weights these are."]
    else:
        lines.append("Not recorded (exported outside a study).")
    checks = card.get("checks", {})
    te = checks.get("torch_export", "not checked")
    lines += ["", "## Checks", "",
              f"- Outputs equal to nas's own model (`torch.equal`, CPU float32) on {checks.get('inputs_checked')} "
              "random inputs: checked at export time.",
              f"- `torch.export.export(net, (torch.randn(1, {p.d_in}),))`: "
              + ("works (checked at export time)." if te == "ok" else f"{te}."),
              "- ONNX: not checked by nas (the `onnx` package is not a nas dependency). Every op is a standard "
              "ONNX op (MatMul, BatchNormalization / LayerNormalization, Relu / Gelu / Sigmoid·Mul / Tanh, Add), so "
              f"`torch.onnx.export(net, (torch.randn(1, {p.d_in}),), \"model.onnx\")` is expected to work.",
              "", "## Files", "",
              "| file | |", "|---|---|",
              "| `model.py` | the model's classes and `load()`; imports only torch, math, json, pathlib |",
              f"| `weights.safetensors` | {n_tensors} tensors, {human_bytes(n_bytes)} |",
              "| `arch.json` | the ArchSpec, task, training settings, objectives and provenance |",
              "| `README.md` | this card |", ""]
    return "\n".join(lines)


def _metric(metric: str, value: Any, human_count, human_bytes) -> str:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        return _md(value)
    if metric == "accuracy":
        return f"{value:.4f} (test accuracy of the best-validation checkpoint)"
    if metric == "params":
        return f"{human_count(value)} ({int(value):,} stored parameters)"
    if metric == "bandwidth":
        return f"{human_bytes(value)} moved per batch-1 inference ({int(value):,} bytes)"
    if metric == "latency_ms":
        return f"{value:.3f} ms (median batch-1 forward pass on the training device)"
    return f"{value:.6g}"


# ------------------------------------------------------------ choosing a candidate
def best_by(rows: list[dict[str, Any]], metric: str, directions: Mapping[str, str]) -> dict[str, Any]:
    """The best row by ``metric``; ties broken by the other objectives in order, then the lower trial number."""
    order = [metric] + [m for m in directions if m != metric]

    def key(row):
        return tuple((-1 if directions[m] == "maximize" else 1) * row["values"][m] for m in order) + (row["number"],)

    return min(rows, key=key)


def knee(rows: list[dict[str, Any]], directions: Mapping[str, str]) -> dict[str, Any]:
    """The Pareto-front row closest to the ideal point.

    Each objective is min-max normalised over ``rows`` (the front) so that 0 is
    the front's best value and 1 its worst (an objective equal on the whole
    front counts 0); the knee is the row at the smallest Euclidean distance
    from the all-zero ideal point (ties: the lower trial number).
    """
    metrics = list(directions)
    lo = {m: min(r["values"][m] for r in rows) for m in metrics}
    hi = {m: max(r["values"][m] for r in rows) for m in metrics}

    def norm(row, m):
        if hi[m] == lo[m]:
            return 0.0
        v = row["values"][m]
        return (hi[m] - v) / (hi[m] - lo[m]) if directions[m] == "maximize" else (v - lo[m]) / (hi[m] - lo[m])

    return min(rows, key=lambda r: (math.sqrt(sum(norm(r, m) ** 2 for m in metrics)), r["number"]))


def export_candidate(storage_url: str, study: str, out_dir: str | os.PathLike, trial: int | None = None,
                     pick: str | None = None, store_lift: bool = False) -> Path:
    """Export one candidate of ``study``: ``trial`` by number, or ``pick`` (an objective or ``knee``).

    Returns the folder written. Bad input raises NasInputError with one message.
    """
    import sqlalchemy as sa

    from nas.search.models import Candidate, Run
    from nas.search.results import study_report
    from nas.search.storage import Store, redact
    from nas.spaces import ArchSpec, TrainSpec

    if (trial is None) == (pick is None):
        raise NasInputError("pass exactly one of --trial N or --pick METRIC (an objective of the study, or knee)")
    if trial is not None and (type(trial) is not int):
        raise NasInputError(f"--trial: expected a trial number, found {trial!r}")
    _check_out(out_dir)
    report = study_report(storage_url, study)  # an unknown study: an error listing the studies
    directions = report["directions"]
    complete = [t for t in report["trials"] if t["state"] == "COMPLETE" and set(t["values"]) >= set(directions)]
    if pick is not None:
        if pick not in directions and pick != KNEE:
            raise NasInputError(f"--pick {pick!r}: not an objective of study {study!r}; expected one of "
                                f"{', '.join(list(directions) + [KNEE])}")
        if not complete:
            raise NasInputError(f"study {study!r} has no complete candidate to pick from yet")
        if pick in directions:
            row = best_by(complete, pick, directions)
        else:
            row = knee([t for t in complete if t["pareto"]] or complete, directions)
    else:
        rows = {t["number"]: t for t in report["trials"]}
        if trial not in rows:
            numbers = sorted(rows)
            have = f"its trials are {numbers[0]} to {numbers[-1]}" if numbers else "it has no trials"
            raise NasInputError(f"--trial {trial}: study {study!r} has no trial {trial}; {have}")
        row = rows[trial]
        if row["state"] != "COMPLETE":
            state = {"FAIL": "failed", "PRUNED": "pruned", "RUNNING": "still running"}.get(row["state"],
                                                                                      row["state"].lower())
            why = f": {row['error']}" if row.get("error") else ""
            raise NasInputError(f"--trial {trial}: trial {trial} of study {study!r} {state}, it has no trained "
                                f"model to export{why}")
    number = row["number"]

    store = Store(storage_url, create=False)
    try:
        if not store.has_nas_tables():
            raise NasInputError(f"study {study!r} has no nas records in {redact(storage_url)}")
        with store.session() as s:
            cand = s.scalars(sa.select(Candidate).where(Candidate.study_name == study,
                                                        Candidate.trial_number == number)).first()
            if cand is None:
                raise NasInputError(f"trial {number} of study {study!r} has no nas record (made outside nas?)")
            run = s.get(Run, cand.run_id)
            original = s.get(Candidate, cand.reused_from) if cand.reused_from is not None else None
            sampler = run.sampler if run is not None else None
            reused_from = original.trial_number if original is not None and original.study_name == study else None
    finally:
        store.close()
    if not cand.weights_path:
        raise NasInputError(f"trial {number} of study {study!r} has no stored weights")
    weights = Path(cand.weights_path)
    if not weights.is_file():
        raise NasInputError(f"trial {number} of study {study!r}: its weights file {weights} is missing "
                            "(moved or deleted?)")
    try:
        spec = ArchSpec.from_json(dict(cand.arch))
    except (TypeError, ValueError) as exc:
        raise NasInputError(f"trial {number} of study {study!r}: cannot read its architecture: {exc}") from None
    try:
        train = TrainSpec.from_json(dict(cand.train)).to_json()
    except (TypeError, ValueError):
        train = dict(cand.train)
    kind, _, dataset = (cand.task_key or "").partition("|")
    meta = ExportMeta(
        study=study, trial=number, sampler=sampler, picked_by=pick if pick is not None else "trial",
        dataset=dataset or None, kind=kind or None, train=train, objectives=dict(cand.objectives or {}),
        directions=dict(directions), pareto=bool(row["pareto"]), complete_trials=len(complete),
        reused_from_trial=reused_from,
    )
    return export_model(spec, weights, out_dir, meta, store_lift=store_lift)
