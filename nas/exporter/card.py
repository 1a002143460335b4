"""The export's model card (``README.md``): task, objectives in readable units, the architecture in words
(``nas.spaces.stages``) and the blocks model.py holds (each by its own docstring), how to load it, how it was
found."""

from __future__ import annotations

import inspect
import math
from typing import Any

from nas.exporter.source import portable_parts
from nas.spaces import ArchSpec
from nas.spaces.stages import BlockStage, describe, kind, stage, stages

KNEE = "knee"  # --pick knee: the Pareto point nearest the ideal (nas.exporter.pick.knee)


# ------------------------------------------------------------ the model card
def _md(text: Any) -> str:
    """A value as inline Markdown code (user strings go into the card, never into code)."""
    return "`" + str(text).replace("`", "'").replace("\n", " ") + "`"


def model_card(card: dict[str, Any], folder_name: str, n_tensors: int, n_bytes: int) -> str:
    from nas.search.read.format import human_bytes, human_count
    from nas.spaces.schema import IMAGE_KINDS

    p = ArchSpec.from_json(card["arch"])
    task, obj = card["task"], card["objectives"] or {}
    directions = card["directions"] or {}
    image = task.get("kind") in IMAGE_KINDS
    title = f"{kind(p)} {p.d_in} -> {stage(stages(p), BlockStage).d_z} -> {p.d_out}"
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
    lines.append("| output | " + ("`torch.sigmoid(net(x))` is the predicted image: pixels in [0, 1], not class "
                                 "logits |" if image else "class logits (the prediction is their argmax) |"))
    train = card.get("train") or {}
    if train:
        lines.append("| training | " + ", ".join(f"{k} {_md(v)}" for k, v in train.items()) + " |")
    lines += ["", "### The blocks", "", "`model.py` holds nas's own code for them, docstrings and shape comments "
              "included:", "", "| in model.py | what it is |", "|---|---|"]
    for part in portable_parts(p, card["lift_stored"]):
        what = " ".join(inspect.getdoc(part).split("\n\n")[0].split()).replace("|", "\\|")
        lines.append(f"| `{part.__name__}` | {what} |")
    lines += ["", "## Objectives", ""]
    if obj:
        lines += ["As nas measured them.", "", "| metric | value | in the study |", "|---|---|---|"]
        for metric in [m for m in directions if m in obj] + [m for m in obj if m not in directions]:
            value = obj[metric]
            text = _metric(metric, value, human_count, human_bytes, card.get("evaluator_version"))
            lines.append(f"| {metric} | {text} | {directions.get(metric, '-')} |")
    else:
        lines.append("None recorded (exported outside a study).")
    conf = card.get("confirmed")
    if conf and conf.get("val", {}).get("mean") is not None:
        lines += ["", "### Over training seeds", "", _seeds_words(conf, obj)]
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
    if image:
        lines += [f"pixels = torch.sigmoid(net(torch.rand(1, {p.d_in})))   # (B, {p.d_in}) -> (B, {p.d_out}) "
                  "pixels in [0, 1]", "```", ""]
    else:
        lines += [f"logits = net(torch.randn(1, {p.d_in}))   # (B, {p.d_in}) -> (B, {p.d_out})", "```", ""]
    if p.lift == "fixed_random":
        lift_attr = "embed" if p.mixer != "none" else "lift"
        lines += ["The fixed random lift is " + (
            f"stored in `weights.safetensors` (`{lift_attr}.weight`, exported with `--store-lift`)."
            if card["lift_stored"]
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
        elif picked and picked != "trial" and conf:
            why = (f"chosen with `--pick {picked}`: the best {picked} ({directions.get(picked, '?')}) among the "
                   "candidates `nas confirm` trained with several seeds, the score read as its mean validation "
                   "score over those seeds")
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
              "- ONNX: not checked by nas (the `onnx` package is not a nas dependency). " + _onnx_words(p),
              "", "## Files", "",
              "| file | |", "|---|---|",
              "| `model.py` | the model's classes and `load()`; imports only torch, math, json, pathlib |",
              f"| `weights.safetensors` | {n_tensors} tensors, {human_bytes(n_bytes)} |",
              "| `arch.json` | the ArchSpec, task, training settings, objectives and provenance |",
              "| `README.md` | this card |", ""]
    return "\n".join(lines)


def _onnx_words(p: ArchSpec) -> str:
    if p.moe_experts > 1:
        return ("The mixture of experts routes samples with data-dependent shapes, so a traced ONNX graph would "
                "fix the routing of its example input: not expected to work as is.")
    if p.mixer == "maxstate":
        return "maxstate's running maximum (`torch.cummax`) has no standard ONNX op: not expected to work as is."
    if p.weights == "circulant":
        return ("The circulant W1 and W2 run FFTs on complex tensors (`torch.fft.rfft`, `irfft`), which PyTorch's "
                "ONNX exporters may not translate (ONNX has a DFT op from opset 17): not tried by nas.")
    if p.activation == "pwl_knots":
        return ("pwl_knots finds each input's segment among its learned knots with `torch.searchsorted`, which has no "
                "standard ONNX op: not expected to work as is.")
    if (p.mixer != "none" or p.lift == "hadamard" or p.activation in ("rational", "pwl", "mix") or p.fpe_alpha > 1
            or p.weights != "dense"):
        return (f"`torch.onnx.export(net, (torch.randn(1, {p.d_in}),), \"model.onnx\")` is expected to work "
                "(standard ops only), but nas has not tried it.")
    return ("Every op is a standard ONNX op (MatMul, BatchNormalization / LayerNormalization, Relu / Gelu / "
            f"Sigmoid·Mul / Tanh / Where, Add), so `torch.onnx.export(net, (torch.randn(1, {p.d_in}),), "
            "\"model.onnx\")` is expected to work.")


def _seeds_words(conf: dict[str, Any], obj: dict[str, Any]) -> str:
    """The confirmed scores in a sentence: mean ± sd and the 95 % interval over the seeds, validation and test,
    and what the exported weights (the search's own training) scored."""
    metric = conf.get("metric", "accuracy")

    def fmt(x: float) -> str:
        return f"{x:.2f} dB" if metric == "psnr" else f"{x:.4f}"

    def said(summary: dict[str, Any]) -> str:
        if summary.get("mean") is None:
            return "not measured"
        if summary.get("sd") is None:
            return f"{fmt(summary['mean'])} (one seed)"
        lo, hi = summary["ci95"]
        return f"{fmt(summary['mean'])} ± {fmt(summary['sd'])} (95 % interval {fmt(lo)} to {fmt(hi)})"

    own = obj.get(metric), obj.get(f"test_{metric}")
    text = (f"`nas confirm` trained this architecture again with {conf['seeds']} fresh training seeds "
            f"({', '.join(str(s) for s in conf.get('seed_list', []))}; same splits): validation {metric} "
            f"{said(conf['val'])}; test {metric} {said(conf['test'])} (mean ± sd over the seeds). ")
    if own[0] is not None:
        text += (f"The weights in this folder are the search's own training: validation {fmt(own[0])}"
                 + (f", test {fmt(own[1])}" if own[1] is not None else "") + ".")
    return text


def _metric(metric: str, value: Any, human_count, human_bytes, evaluator_version: int | None = None) -> str:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        return _md(value)
    before_validation = evaluator_version is not None and evaluator_version < 3
    if metric == "accuracy" and before_validation:
        return (f"{value:.4f} (test accuracy of the best-validation checkpoint; nas before 2026-12-07 selected on "
                "it)")
    if metric == "accuracy":
        return f"{value:.4f} (validation accuracy of the best-validation checkpoint: what the search selected on)"
    if metric == "test_accuracy":
        return f"{value:.4f} (test accuracy of the same checkpoint: for the record, never selected on)"
    if metric == "psnr" and evaluator_version == 1:
        return f"{value:.2f} dB (mean per-image test PSNR of the best-validation checkpoint; nas before version 2)"
    if metric == "psnr" and before_validation:
        return (f"{value:.2f} dB (test PSNR of the best-validation checkpoint: the pooled MSE's of each batch of "
                "128 images, averaged over the batches; nas before 2026-12-07 selected on it)")
    if metric == "psnr":
        return (f"{value:.2f} dB (validation PSNR of the best-validation checkpoint, what the search selected on: "
                "the pooled MSE's of each batch of 128 images, averaged over the batches)")
    if metric == "test_psnr":
        return f"{value:.2f} dB (test PSNR of the same checkpoint: for the record, never selected on)"
    if metric == "params":
        return f"{human_count(value)} ({int(value):,} stored parameters)"
    if metric == "bandwidth":
        return f"{human_bytes(value)} moved per batch-1 inference ({int(value):,} bytes)"
    if metric == "bandwidth_expected":
        split = "test" if before_validation else "validation"
        return f"{human_bytes(value)} moved per {split} sample on average, early exits taken ({value:,.0f} bytes)"
    if metric == "test_bandwidth_expected":
        return (f"{human_bytes(value)} moved per test sample on average, early exits taken ({value:,.0f} bytes; "
                "for the record)")
    if metric == "bandwidth_kept":
        return (f"{human_bytes(value)} moved per batch-1 inference with only the gated connections kept after "
                f"training ({int(value):,} bytes)")
    if metric == "latency_ms":
        return f"{value:.3f} ms (median batch-1 forward pass on the training device)"
    return f"{value:.6g}"
