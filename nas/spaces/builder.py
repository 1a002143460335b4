"""ArchSpec -> nn.Module, through a plan: the constructor calls that build it.

``plan(spec)`` turns the spec's stages (``nas.spaces.stages``) into a tree of
constructor calls: the one place where blocks are wired together. ``build``
runs the tree (``Call.build``); ``nas export`` writes the same tree out as
model.py's ``build()`` (``Call.python``; ``portable=True``: the deployed
form of the blocks that nas trains in another form). A ``Call`` evaluates its arguments in order, then
calls, as Python does, so the modules are made, and draw their random
initialisation, in the order the printed code would make them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from torch import nn

from nas.spaces.activations import neuron_scope
from nas.spaces.arch import WEIGHT_KEYS, ArchSpec
from nas.spaces.blocks import HourglassBlock, HourglassMLP, OutputBlock
from nas.spaces.vocabulary import ACTIVATIONS, CONNECTIONS, LIFTS, MIXERS, NORMS, WEIGHTS
from nas.spaces.fpe import FPEPair, MaskedPair
from nas.spaces.mixers import MixerNet
from nas.spaces.moe import DenseExpert, NasMixtureOfExperts
from nas.spaces.stages import BlockStage, HeadStage, LiftStage, TokenStage, stage, stages
from nas.spaces.structured import StructuredPair

STORABLE_LIFTS = ("fixed_random",)  # lifts whose matrix `nas export --store-lift` keeps in the weights (seed None)
WEIGHT_KEY_WORDS = {"rank": "rank of each low-rank W1 and W2", "monarch_blocks": "blocks of each monarch factor"}


@dataclass(frozen=True)
class Const:
    """A value with a name in model.py: ``D_Z = 128  # width of the residual stream``."""

    name: str
    value: Any  # an int or a tuple of ints
    comment: str


@dataclass(frozen=True)
class Call:
    """``fn(*args, **kwargs)``; each argument a plain value, a ``Const``, a ``Call`` or a ``Lazy`` one."""

    fn: Callable
    args: tuple = ()
    kwargs: tuple = ()  # ((name, value), ...)

    def build(self) -> Any:
        return self.fn(*[_value(a) for a in self.args], **{k: _value(v) for k, v in self.kwargs})

    def walk(self, consts: dict[str, Const], used: list[Any]) -> None:
        """Add the named values and the classes and functions this call uses, each part before what holds it."""
        for value in (*self.args, *(v for _, v in self.kwargs), self.fn):
            if isinstance(value, (Call, Lazy)):
                (value if isinstance(value, Call) else value.call).walk(consts, used)
            elif isinstance(value, Const):
                if consts.setdefault(value.name, value) != value:
                    raise ValueError(f"two values named {value.name}")
            elif callable(value) and not any(value is u for u in used):
                used.append(value)

    def python(self, name: Callable[[Any], str], indent: int = 0, width: int = 110, lead: int = 0) -> str:
        """This call as Python source, ``name(obj)`` naming each class and function: on one line where it fits
        (after ``lead`` characters already on it), else one argument per line."""
        def text(value: Any, prefix: str = "") -> str:
            if isinstance(value, Call):
                return value.python(name, indent + 4, width, len(prefix))
            if isinstance(value, Lazy):
                return "lambda: " + value.call.python(name, indent + 4, width, len(prefix) + len("lambda: "))
            if isinstance(value, Const):
                return value.name
            if value is None or type(value) in (int, bool):
                return repr(value)
            if callable(value):
                return name(value)
            raise TypeError(f"a plan written as code holds only ints, bools, names, calls and factories, not {value!r}")

        args = [text(a) for a in self.args] + [f"{key}={text(v, key + '=')}" for key, v in self.kwargs]
        flat = f"{name(self.fn)}({', '.join(args)})"
        if indent + lead + len(flat) <= width and "\n" not in flat:
            return flat
        return f"{name(self.fn)}(\n" + "".join(f"{' ' * (indent + 4)}{a},\n" for a in args) + " " * indent + ")"


@dataclass(frozen=True)
class Lazy:
    """``lambda: call``: a factory that makes the call each time a block asks (once per layer)."""

    call: Call


def call(fn: Callable, *args: Any, **kwargs: Any) -> Call:
    return Call(fn, args, tuple(kwargs.items()))


def _value(value: Any) -> Any:
    if isinstance(value, Call):
        return value.build()
    if isinstance(value, Lazy):
        return value.call.build
    return value.value if isinstance(value, Const) else value


def plan(spec: ArchSpec, fresh: bool = False, portable: bool = False, store_lift: bool = False) -> Call:
    """The constructor calls that build ``spec``'s model.

    ``fresh``: the model is about to be trained from scratch (an FPE pair
    starts dense); otherwise it is the deployed structure, which trained
    weights load into. ``portable``: the calls model.py makes (an FPE pair as
    the ``MaskedPair`` it deploys as; with ``store_lift`` a fixed random lift
    read from the weights rather than regenerated from its seed).
    """
    parts = stages(spec)
    tokens, lift, blocks, head = (stage(parts, kind) for kind in (TokenStage, LiftStage, BlockStage, HeadStage))
    blocks.check_weights()
    act, norm = ACTIVATIONS.get(blocks.activation), NORMS.get(blocks.norm)
    if blocks.activation_scope == "neuron":  # the factory of the per-unit form: neuron_scope(PReLU) in model.py
        act = call(neuron_scope, act)
    d_in = Const("D_IN", spec.d_in, "input features")
    d_z = Const("D_Z", blocks.d_z, "width of the residual stream")
    d_h = Const("D_H", blocks.d_h, "hidden (bottleneck) width of each block")
    lift_in = d_in if tokens is None else Const("FEATURES", tokens.features, "F, features per token")
    lift_call = None
    if lift.name != "none":
        if lift.seed is None:
            lift_call = call(LIFTS.get(lift.name), lift_in, d_z)
        elif store_lift and lift.name in STORABLE_LIFTS:
            lift_call = call(LIFTS.get(lift.name), lift_in, d_z, seed=None)  # R: in the weights
        else:
            seed = Const("LIFT_SEED", lift.seed, f"seed of the {lift.name} lift")
            lift_call = call(LIFTS.get(lift.name), lift_in, d_z, seed=seed)
    ffn = _ffn(spec, blocks, d_z, d_h, act, fresh, portable)
    block = Lazy(call(HourglassBlock, d_z, d_h, norm=norm, ffn=ffn) if ffn is not None else
                 call(HourglassBlock, d_z, d_h, norm=norm, act=act))
    depth = Const("DEPTH", blocks.depth, "residual blocks" if tokens is None else "mixer layers")
    d_out = Const("D_OUT", head.d_out, "outputs")
    exits = {"exits": Const("EXITS", head.exits, "an exit head after every EXITS-th block before the last"),
             "exit_threshold": Const("EXIT_THRESHOLD", head.threshold,
                                     "a sample leaves at the first head whose top softmax probability reaches it")} \
        if head.exits else {}
    gates = CONNECTIONS.get(blocks.connections)  # None: residual, each block reads the one before it alone
    extra = {} if gates is None else {"gates": call(gates, depth, d_z)}
    if not head.linear:
        extra["head"] = False
    if head.w2:  # the last block is the output layer: W2 maps d_h -> d_out, with biases (OutputBlock)
        out_ffn = _ffn(spec, blocks, d_z, d_h, act, fresh, portable, d_out=d_out)
        extra["last"] = Lazy(call(OutputBlock, d_z, d_h, d_out, norm=norm, ffn=out_ffn) if out_ffn is not None else
                             call(OutputBlock, d_z, d_h, d_out, norm=norm, act=act))
    if tokens is None:
        return call(HourglassMLP, lift=lift_call, block=block, depth=depth, d_z=d_z, d_out=d_out, **exits, **extra)
    kernel = {"kernel": Const("KERNEL", blocks.kernel, "the conv mixer's kernel size over the tokens")} \
        if blocks.kernel else {}
    if blocks.heads:
        kernel["heads"] = Const("HEADS", blocks.heads, "the mixer's heads")
    if blocks.layer != "nas":  # SamOut's layer: its gated feed-forward of width d_h instead of nas's block
        kernel.update(samout=True, hidden=d_h)
    return call(MixerNet, Const("IN_SHAPE", tokens.in_shape, "the shape of one sample"),
                Const("PATCH", tokens.patch, "features per token" if tokens.patch else "0: the first axis is the tokens"),
                d_in, embed=lift_call, d=d_z, mixer=MIXERS.get(blocks.mixer), norm=norm, block=block, depth=depth,
                d_out=d_out, **kernel, **exits, **extra)


def _ffn(spec: ArchSpec, blocks: BlockStage, d_z: Const, d_h: Const, act: Callable | Call, fresh: bool,
         portable: bool, d_out: Const | None = None) -> Call | None:
    """The block's ``W2 act(W1 ·)`` part where the spec changes it; None for the plain dense pair.

    FPE (α > 1) replaces the pair by an FPE pair, a structured weight form by
    a ``StructuredPair`` (the two do not compose: ``BlockStage.check_weights``);
    a mixture of experts puts ``experts`` such pairs (dense, FPE or
    structured) behind a router.
    """
    pair = None
    if blocks.fpe_alpha > 1:
        alpha = Const("FPE_ALPHA", blocks.fpe_alpha, "FPE children of each hidden neuron")
        out = {} if d_out is None else {"d_out": d_out, "bias": True}  # the output layer: to d_out, with b1
        pair = (call(MaskedPair, d_z, d_h, alpha, act=act, **out) if portable else
                call(FPEPair, d_z, d_h, blocks.activation, alpha, blocks.fpe_split, spec.fpe_at, expanded=not fresh,
                     **out, **({"per_neuron": True} if blocks.activation_scope == "neuron" else {})))
    elif d_out is not None:  # the dense output layer: OutputBlock's own W1, b1, act, W2
        return None
    elif blocks.weights != "dense":
        form, key = WEIGHTS.get(blocks.weights), WEIGHT_KEYS.get(blocks.weights)
        arg = () if key is None else (Const(key.upper(), blocks.weights_arg, WEIGHT_KEY_WORDS[key]),)
        # the activation module itself: PReLU(D_H), or PReLU(D_H, per_neuron=True) with one parameter set per unit
        act_module = call(act.args[0], d_h, per_neuron=True) if isinstance(act, Call) else call(act, d_h)
        pair = call(StructuredPair, w1=call(form, d_z, d_h, *arg), act=act_module, w2=call(form, d_h, d_z, *arg))
    if blocks.experts == 1:
        return pair
    expert = pair if pair is not None else call(DenseExpert, d_z, d_h, act=act)
    return call(NasMixtureOfExperts, d_z, Const("EXPERTS", blocks.experts, "experts of each block's mixture"),
                Const("TOP_K", blocks.top_k, "experts each sample uses"), expert=Lazy(expert))


def build(spec: ArchSpec, fresh: bool = False) -> nn.Module:
    """Build the candidate ``spec`` describes (on the current default device).

    ``fresh=True`` builds it to be trained from scratch (an FPE layer starts
    dense); the default builds the deployed structure, which trained weights
    load into and whose cost the objectives count.
    """
    return plan(spec, fresh=fresh).build()
