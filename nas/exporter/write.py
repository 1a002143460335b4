"""Writing an export folder: the weights, ``arch.json``, the card and ``model.py``, checked (bit-equal outputs,
``torch.export``) under a temporary name and renamed into place, so a failed export leaves nothing."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import types
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

from nas.errors import NasInputError
from nas.exporter.card import model_card
from nas.exporter.source import check_spec, model_source
from nas.spaces import ArchSpec
from nas.spaces.builder import STORABLE_LIFTS

FORMAT = "nas-export/1"
CHECK_BATCH = 16  # random inputs the export-time equality check runs


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
    evaluator_version: int | None = None  # nas.evaluators.names.EVALUATOR_VERSION that scored it (1: before 2)
    confirmed: dict[str, Any] | None = None  # nas confirm's seeds: nas.search.read.intervals.confirmed


def export_model(spec, weights, out_dir: str | os.PathLike, meta: ExportMeta | None = None,
                 store_lift: bool = False, check_torch_export: bool = True) -> Path:
    """Write the export folder ``out_dir`` for ``spec`` with ``weights``; return its path.

    ``weights``: a safetensors file of nas's ``HourglassMLP`` state_dict (copied as
    is) or the state_dict itself. ``out_dir`` must not exist or be empty.
    """
    import torch
    from safetensors import safe_open
    from safetensors.torch import save_file

    from nas.version import __version__
    from nas.spaces import build

    p = check_spec(spec)
    meta = meta or ExportMeta()
    out = _check_out(out_dir)
    stored = bool(store_lift) and p.lift in STORABLE_LIFTS

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
        attr = "embed" if p.mixer != "none" else "lift"
        tensors[f"{attr}.weight"] = getattr(reference, attr).weight.detach().clone()  # the regenerated R, as nas has it
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
        card = _arch_json(p, meta, stored, __version__, torch.__version__)
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


def _arch_json(p: ArchSpec, meta: ExportMeta, stored: bool, nas_version: str, torch_version: str) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "arch_id": p.arch_id,
        "arch": p.to_json(),
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
        "evaluator_version": meta.evaluator_version,
        "confirmed": meta.confirmed,
        "lift_stored": stored,
        "exported_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "nas_version": nas_version,
        "torch_version": torch_version,
    }


def _check(folder: Path, source: str, reference, p: ArchSpec, check_torch_export: bool) -> dict[str, Any]:
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
    if check_torch_export and p.moe_experts > 1:
        checks["torch_export"] = ("not supported: the mixture of experts' routing has data-dependent shapes "
                                  "(tokens per expert), which torch.export cannot trace")
    elif check_torch_export and p.exits:
        checks["torch_export"] = ("not supported: early exit drops the samples that leave from the batch "
                                  "(data-dependent shapes), which torch.export cannot trace")
    elif check_torch_export:
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
