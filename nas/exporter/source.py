"""``model.py`` for one ArchSpec: the spec checked field by field (``check_spec``), then the snippets it needs
with its integers filled in (``model_source``), and a one-line description (``describe``)."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any, Mapping

from nas.errors import NasInputError
from nas.exporter.snippets import (ACTIVATION_CODE, LIFT_CODE, MIXER_CODE, NORM_CODE, STORABLE_LIFTS, _BLOCK,
                                   _DENSE_EXPERT, _FFN_BLOCK, _FPE, _MIXER_LAYER, _MIXER_NET, _MODEL, _MOE,
                                   _PATCHES, _READER_AND_LOAD, _STORED_LIFT, _TOKENS)

# ------------------------------------------------------------ validation
_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}\Z")
_HEX = re.compile(r"[0-9a-f]{16}\Z")
_SPEC_FIELDS = ("d_in", "d_out", "lift", "lift_width", "hidden_width", "depth", "activation", "norm", "lift_seed",
                "fpe_alpha", "fpe_split", "fpe_at", "moe_experts", "moe_top_k", "mixer", "patch", "in_shape")
_TRAINING_ONLY = ("fpe_at",)  # in arch.json but not in model.py: the trained model's forward pass does not read it


@dataclass(frozen=True)
class _Parts:
    """The ArchSpec, checked: ints that are ints, names from the fixed snippet tables."""

    d_in: int
    d_out: int
    d_z: int  # the width the blocks run at: the lift's width, or the token features F of a mixer without a lift
    d_h: int
    depth: int
    seed: int
    lift: str
    activation: str
    norm: str
    fpe_alpha: int
    fpe_split: str
    moe_experts: int
    moe_top_k: int
    mixer: str
    patch: int
    in_shape: tuple[int, ...]
    n_tokens: int  # T, 0 on the flat path
    features: int  # F, the features of a token (the lift's input); d_in on the flat path
    heads: int  # of the maxstate and attention mixers, else 0
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
            f"{', '.join(snippets)}); add it to nas/exporter/snippets.py"
        )
    return next(k for k in snippets if k == value)  # the table's own string, not the caller's


def check_spec(spec) -> _Parts:
    """Check every value of ``spec`` that reaches the generated code; NasInputError otherwise."""
    from nas.spaces import ACTIVATIONS, LIFTS, NORMS, ArchSpec
    from nas.spaces.blocks import MIXERS
    from nas.spaces.fpe import SPLITS
    from nas.spaces.mixers import _heads, token_grid

    if not isinstance(spec, ArchSpec):
        raise NasInputError(f"cannot export: expected an ArchSpec, found {type(spec).__name__}")
    unknown = [f.name for f in dataclasses.fields(spec) if f.name not in _SPEC_FIELDS]
    if unknown:
        raise NasInputError(
            f"cannot export: ArchSpec has fields nas export does not know yet ({', '.join(unknown)}); "
            "add them to nas/exporter/source.py (_SPEC_FIELDS, _Parts)"
        )
    lift = _name("lift", spec.lift, LIFTS, LIFT_CODE)
    activation = _name("activation", spec.activation, ACTIVATIONS, ACTIVATION_CODE)
    norm = _name("norm", spec.norm, NORMS, NORM_CODE)
    mixer = _name("mixer", spec.mixer, MIXERS, MIXER_CODE)
    if spec.fpe_split not in SPLITS:
        raise NasInputError(f"cannot export: unknown FPE split {spec.fpe_split!r}; expected one of "
                            f"{', '.join(SPLITS)}")
    split = next(s for s in SPLITS if s == spec.fpe_split)
    at = spec.fpe_at
    if type(at) not in (int, float) or not 0 <= at < 1:
        raise NasInputError(f"cannot export: ArchSpec.fpe_at must be a number in [0, 1), found {at!r}")
    d_in = _int("d_in", spec.d_in, 1)
    d_out = _int("d_out", spec.d_out, 1)
    d_z = _int("lift_width", spec.lift_width, 1)
    d_h = _int("hidden_width", spec.hidden_width, 1)
    depth = _int("depth", spec.depth, 1, 10_000)
    seed = _int("lift_seed", spec.lift_seed, 0, 2**63 - 1)
    alpha = _int("fpe_alpha", spec.fpe_alpha, 1, 1024)
    experts = _int("moe_experts", spec.moe_experts, 1, 1024)
    top_k = _int("moe_top_k", spec.moe_top_k, 1, experts)
    patch = _int("patch", spec.patch, 0)
    in_shape = tuple(_int(f"in_shape[{i}]", s, 1) for i, s in enumerate(spec.in_shape))
    if lift == "none" and d_z != d_in:
        raise NasInputError(f"cannot export: lift none needs lift_width == d_in, found {d_z} and {d_in}")
    n_tokens, features, heads = 0, d_in, 0
    if mixer != "none":
        try:
            n_tokens, features = token_grid(in_shape, patch, d_in)
        except ValueError as exc:
            raise NasInputError(f"cannot export: {exc}") from None
        if lift == "none":
            d_z = features  # no embedding: the tokens' own features are the width
        heads = _heads(d_z) if mixer in ("maxstate", "attention") else 0
    arch = {"d_in": d_in, "d_out": d_out, "lift": lift, "lift_width": spec.lift_width, "hidden_width": d_h,
            "depth": depth, "activation": activation, "norm": norm, "lift_seed": seed, "fpe_alpha": alpha,
            "fpe_split": split, "fpe_at": at, "moe_experts": experts, "moe_top_k": top_k, "mixer": mixer,
            "patch": patch, "in_shape": list(in_shape)}
    if arch != spec.to_json():
        raise NasInputError("cannot export: the ArchSpec does not round-trip through its checked values")
    arch_id = spec.arch_id
    if not _HEX.match(arch_id):
        raise NasInputError(f"cannot export: unexpected arch_id {arch_id!r}")
    return _Parts(d_in, d_out, d_z, d_h, depth, seed, lift, activation, norm, alpha, split, experts, top_k, mixer,
                  patch, in_shape, n_tokens, features, heads, arch_id, arch)


# ------------------------------------------------------------ the source
def _py_literal(value: Any) -> str:
    """An int, a checked name, or a list of ints as Python source (nothing else is accepted)."""
    if type(value) is int:
        return str(value)
    if isinstance(value, str) and (_NAME.match(value) or _HEX.match(value)):
        return f'"{value}"'
    if type(value) in (list, tuple) and all(type(v) is int for v in value):
        inner = ", ".join(str(v) for v in value) + ("," if type(value) is tuple and len(value) == 1 else "")
        return f"[{inner}]" if type(value) is list else f"({inner})"
    raise TypeError(f"not a literal the export writes: {value!r}")


def _kind(p: _Parts) -> str:
    if p.mixer != "none":
        return {"token_mlp": "Token-MLP mixer", "maxstate": "MaxState mixer", "attention": "Attention"}[p.mixer]
    if p.lift == "none":
        return "Conventional residual"  # the paper's baseline: d_z = d_in
    return "Hourglass" if p.d_h < p.d_z else "Residual"


def _lift_words(p: _Parts, store_lift: bool, d_in: int) -> str:
    if p.lift == "fixed_random":
        how = "stored" if store_lift else "regenerated from its seed"
        return f"fixed random lift {d_in} -> {p.d_z} (seed {p.seed}, {how})"
    if p.lift == "hadamard":
        return f"Hadamard lift {d_in} -> {p.d_z} (seeded signs and subset, regenerated from seed {p.seed})"
    if p.lift == "hashed":
        return f"hashed ±1 lift {d_in} -> {p.d_z} (hashed from seed {p.seed})"
    if p.lift == "learned":
        return f"learned lift {d_in} -> {p.d_z}"
    return f"no lift (d_z = {'F' if p.mixer != 'none' else 'd_in'} = {d_in})"


def describe(p: _Parts, store_lift: bool = False) -> str:
    """One line: the architecture in words (for the card and the module docstring)."""
    norm = "no norm" if p.norm == "none" else p.norm
    ffn = ""
    if p.moe_experts > 1:
        ffn = f", mixture of {p.moe_experts} {'FPE ' if p.fpe_alpha > 1 else ''}experts top-{p.moe_top_k}"
    if p.fpe_alpha > 1:
        ffn += f", FPE alpha {p.fpe_alpha} ({p.fpe_split} split)"
    block = f"residual block {p.d_z} -> {p.d_h} -> {p.d_z} ({norm}, {p.activation}{ffn})"
    if p.mixer == "none":
        return f"{_lift_words(p, store_lift, p.d_in)}; {p.depth} x {block}; head {p.d_z} -> {p.d_out}"
    grid = "x".join(str(s) for s in p.in_shape) if p.in_shape else str(p.d_in)
    tokens = f"{p.patch}x{p.patch} patches" if p.patch and len(p.in_shape) == 2 else \
        (f"chunks of {p.patch}" if p.patch else "its first axis")
    return (f"{p.n_tokens} tokens of {p.features} features ({grid} input cut into {tokens}); "
            f"{_lift_words(p, store_lift, p.features)} per token; {p.depth} x ({p.mixer} across the tokens, then "
            f"{block} on every token); mean over the tokens; head {p.d_z} -> {p.d_out}")


def _norm_call(p: _Parts, arg: str) -> str:
    return arg if p.norm == "none" else f"self.norm({arg})"


def _lift_ctor(p: _Parts, stored: bool, d_in: str) -> str:
    cls, _, seeded = LIFT_CODE[p.lift]
    return f"{cls}({d_in}, D_Z{', LIFT_SEED' if seeded and not stored else ''})"


def model_source(p: _Parts, store_lift: bool = False) -> str:
    """The text of model.py for the checked architecture ``p``."""
    lit = _py_literal
    stored = store_lift and p.lift in STORABLE_LIFTS
    mixed = p.mixer != "none"
    shape_word = "an hourglass: d_h < d_z" if p.d_h < p.d_z else "a conventional block: d_h >= d_z"
    if mixed:
        title = f"{_kind(p)} net"
        flow = ("    x (B, D_IN) -> N_TOKENS tokens (B, T, FEATURES) -> embed -> h (B, T, D_Z) -> DEPTH x "
                "(h = h + mix(norm(h)); h = h + W2 act(W1 norm(h)) on every token) -> W_out mean_T(h) (B, D_OUT)")
    else:
        title = {"Hourglass": "An hourglass MLP", "Residual": "A residual MLP"}.get(_kind(p),
                                                                                     "A conventional residual MLP")
        flow = "    x (B, D_IN) -> lift -> h (B, D_Z) -> DEPTH x (h = h + W2 act(W1 norm(h))) -> W_out h (B, D_OUT)"
    functional = p.lift == "hadamard" or mixed
    lines = [
        f'"""{title} exported by nas (arch {p.arch_id}): standalone, it needs only PyTorch.',
        "",
        f"    {describe(p, store_lift)}",
        "",
        flow,
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
        *(["import torch.nn.functional as F"] if functional else []),
        "from torch import nn",
        "",
        f"D_IN = {lit(p.d_in)}  # input features",
    ]
    if mixed:
        lines += [
            f"IN_SHAPE = {lit(p.in_shape)}  # the shape of one sample",
            f"PATCH = {lit(p.patch)}  # {'features per token' if p.patch else '0: the tokens are the first axis'}",
            f"N_TOKENS = {lit(p.n_tokens)}  # T",
            f"FEATURES = {lit(p.features)}  # F, features per token",
        ]
    lines += [
        f"D_Z = {lit(p.d_z)}  # width of the residual stream",
        f"D_H = {lit(p.d_h)}  # hidden (bottleneck) width of each block",
        f"DEPTH = {lit(p.depth)}  # {'mixer layers' if mixed else 'residual blocks'}",
        f"D_OUT = {lit(p.d_out)}  # outputs",
    ]
    if p.heads:
        lines.append(f"HEADS = {lit(p.heads)}  # heads of the mixer")
    if p.fpe_alpha > 1:
        lines.append(f"FPE_ALPHA = {lit(p.fpe_alpha)}  # FPE children per hidden neuron")
    if p.moe_experts > 1:
        lines.append(f"EXPERTS = {lit(p.moe_experts)}  # experts of each block's mixture")
        lines.append(f"TOP_K = {lit(p.moe_top_k)}  # experts each sample uses")
    if LIFT_CODE[p.lift] is not None and LIFT_CODE[p.lift][2] and not stored:
        lines.append(f"LIFT_SEED = {lit(p.seed)}  # seed of the {p.lift} lift")
    lines.append(f"ARCH_ID = {lit(p.arch_id)}")
    lines.append("ARCH = {  # the ArchSpec this file was generated for (less the training schedule's fpe_at); "
                 "load() checks arch.json against it")
    lines += [f'    "{key}": {lit(value)},' for key, value in p.arch.items() if key not in _TRAINING_ONLY]
    lines.append("}")
    src = "\n".join(lines) + "\n"

    lift_attr = "embed" if mixed else "lift"
    if LIFT_CODE[p.lift] is not None:
        src += _STORED_LIFT.replace("{lift_attr}", lift_attr) if stored else LIFT_CODE[p.lift][1]

    act_code, act_name, act_class = ACTIVATION_CODE[p.activation]
    if act_class is not None:
        src += act_class
    if p.fpe_alpha > 1:
        src += _FPE.replace("{act_code}", act_code)
    if p.moe_experts > 1:
        if p.fpe_alpha > 1:
            expert = "FPEPair(d_z, d_h, FPE_ALPHA)"
        else:
            src += _DENSE_EXPERT.replace("{act_code}", act_code)
            expert = "DenseExpert(d_z, d_h)"
        src += _MOE.replace("{expert_code}", expert)
    norm_code = NORM_CODE[p.norm]
    norm_line = "" if norm_code is None else f"        self.norm = {norm_code}\n"
    if p.moe_experts > 1 or p.fpe_alpha > 1:
        if p.moe_experts > 1:
            ffn_code = "MixtureOfExperts(d_z, d_h, EXPERTS, TOP_K)"
            ffn_words = (f"is a mixture of {p.moe_experts} {'FPE pairs' if p.fpe_alpha > 1 else 'dense experts'} "
                         f"(top-{p.moe_top_k})")
        else:
            ffn_code, ffn_words = "FPEPair(d_z, d_h, FPE_ALPHA)", f"expanded by FPE (alpha {p.fpe_alpha})"
        block = _FFN_BLOCK.replace("{ffn_code}", ffn_code).replace("{ffn_words}", ffn_words)
    else:
        block = _BLOCK.replace("{act_code}", act_code)
    src += (block
            .replace("{act_name}", act_name)
            .replace("{norm_expr}", "h" if norm_code is None else f"{p.norm}(h)")
            .replace("{d_z}", lit(p.d_z)).replace("{d_h}", lit(p.d_h)).replace("{shape_word}", shape_word)
            .replace("{norm_line}", norm_line)
            .replace("{norm_call}", _norm_call(p, "h")))

    if mixed:
        if p.patch and len(p.in_shape) == 2:
            src += _PATCHES
        else:
            how = ("consecutive chunks of PATCH features" if p.patch else
                   "the sample's first axis is the tokens, the rest their features")
            src += _TOKENS.replace("{how}", how)
        mix_class, mix_code, positions = MIXER_CODE[p.mixer]
        src += mix_code
        src += (_MIXER_LAYER.replace("{mixer}", mix_class).replace("{norm_line}", norm_line)
                .replace("{norm_call}", _norm_call(p, "h.reshape(bsz * t, d)")))
        if LIFT_CODE[p.lift] is not None:
            embed_line = f"        self.embed = {_lift_ctor(p, stored, 'FEATURES')}  # every token: F -> D_Z\n"
            embed_call = ("        h = self.embed(h.reshape(-1, FEATURES)).view(x.shape[0], N_TOKENS, D_Z)"
                          f"  # (B, {p.n_tokens}, {p.d_z})\n")
        else:
            embed_line = embed_call = ""
        if positions:
            pos_line = ("        self.pos = nn.Parameter(torch.zeros(N_TOKENS, D_Z))"
                        "  # learned positions, filled by load()\n")
            pos_call, pos_words = "        h = h + self.pos\n", " + positions"
        else:
            pos_line = pos_call = pos_words = ""
        src += (_MIXER_NET.replace("{embed_line}", embed_line).replace("{embed_call}", embed_call)
                .replace("{pos_line}", pos_line).replace("{pos_call}", pos_call).replace("{pos_words}", pos_words)
                .replace("{d_in}", lit(p.d_in)).replace("{d_z}", lit(p.d_z)).replace("{d_out}", lit(p.d_out))
                .replace("{t}", lit(p.n_tokens)).replace("{f}", lit(p.features)))
        model_class = "MixerNet"
    else:
        if LIFT_CODE[p.lift] is not None:
            lift_line = f"        self.lift = {_lift_ctor(p, stored, 'D_IN')}  # (B, {{d_in}}) -> (B, {{d_z}})\n"
            lift_call, lift_comment = "self.lift(x)", ""
        else:
            lift_line = ""
            lift_call, lift_comment = "x", "no lift: the residual stream is the input itself, d_z = d_in: "
        src += (_MODEL.replace("{lift_line}", lift_line).replace("{lift_call}", lift_call)
                .replace("{lift_comment}", lift_comment)
                .replace("{d_in}", lit(p.d_in)).replace("{d_z}", lit(p.d_z)).replace("{d_out}", lit(p.d_out)))
        model_class = "HourglassMLP"
    src += _READER_AND_LOAD.replace("{model_class}", model_class)
    return src
