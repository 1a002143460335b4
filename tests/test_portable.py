"""nas.exporter.portable: every registered block is portable, so nas export can copy it into model.py."""

import pytest
import torch

from nas.spaces.arch import WEIGHT_KEYS
from nas.spaces.base import Linear
from nas.spaces.blocks import BatchNorm, HourglassBlock, HourglassMLP
from nas.spaces.vocabulary import ACTIVATIONS, LIFTS, MIXERS, NORMS, WEIGHTS
from nas.spaces.fpe import FPEPair, MaskedPair
from nas.spaces.lifts import HashedLift, NasHashedLift
from nas.spaces.mixers import MaxState, MixerLayer, MixerNet, NasMaxState
from nas.spaces.moe import DenseExpert, MixtureOfExperts, NasMixtureOfExperts
from nas.exporter.portable import NotPortable, portable_class, portable_source, source_of
from nas.spaces.structured import StructuredPair

REGISTERED = [(r.kind, name, r.get(name)) for r in (ACTIVATIONS, NORMS, LIFTS, MIXERS, WEIGHTS) for name in r
              if r.get(name) is not None]
WIRING = [HourglassMLP, HourglassBlock, MixerNet, MixerLayer, MaskedPair, MixtureOfExperts, DenseExpert, StructuredPair]


def standalone(objects) -> dict:
    """Run the portable source of ``objects`` in a namespace that holds only what model.py would import."""
    code = portable_source(objects)
    namespace = {"__name__": "model"}
    exec("\n".join(code.import_lines()) + "\n" + "\n".join(code.constants.values()) + "\n\n"
         + "\n\n".join(text for _, text in code.objects), namespace)
    return namespace


@pytest.mark.parametrize("kind, name, entry", REGISTERED, ids=[f"{k}-{n}" for k, n, _ in REGISTERED])
def test_every_registered_block_is_portable(kind, name, entry):
    portable = portable_class(entry)
    namespace = standalone([portable])
    copied = namespace[portable.__name__]
    assert copied is not portable and copied.__name__ == portable.__name__
    assert not any(k.startswith("nas_") for k in vars(copied)), "nas_* members are cut"
    module = {"activation": lambda: copied(6), "norm": lambda: copied(6), "lift": lambda: None,
              "mixer": lambda: copied(4, 8), "weight form": lambda: copied(6, 4, *([2] if name in WEIGHT_KEYS else []))
              }[kind]()
    if module is not None:
        assert isinstance(module, torch.nn.Module)
    if kind == "weight form":  # the copy computes what the original computes
        torch.manual_seed(0)
        original = entry(6, 4, *([2] if name in WEIGHT_KEYS else []))
        module.load_state_dict(original.state_dict())
        x = torch.randn(3, 6)
        assert torch.equal(module(x), original(x))


@pytest.mark.parametrize("cls", WIRING, ids=lambda c: c.__name__)
def test_the_blocks_that_wire_the_others_are_portable(cls):
    assert portable_class(cls) is cls
    standalone([cls])


def test_training_subclasses_give_their_portable_base():
    assert portable_class(NasHashedLift) is HashedLift
    assert portable_class(NasMaxState) is MaxState
    assert portable_class(NasMixtureOfExperts) is MixtureOfExperts
    assert portable_class(FPEPair) is MaskedPair
    with pytest.raises(NotPortable, match=r"NasHashedLift uses backend: nas\.kernels\.backend uses the module os"):
        portable_source([NasHashedLift])


def test_copies_cut_nas_members_and_keep_comments():
    text = source_of(BatchNorm)
    assert "nas_cost" not in text and "Cost" not in text and "running mean and variance" in text
    text = source_of(HourglassBlock)
    assert "nas_cost" not in text and "# (N, d_z) -> (N, d_h) -> (N, d_z)" in text
    assert source_of(Linear).rstrip().endswith("super().__init__(d_in, d_out, bias=False)")
    from nas.spaces.activations import rational_init

    assert "functools" not in source_of(rational_init)  # its cache decorator is left out


def test_what_is_not_portable_is_named():
    with pytest.raises(NotPortable, match="<lambda> is not a class or a named function"):
        portable_class(lambda width: torch.nn.Softsign())
    with pytest.raises(NotPortable, match="test_portable.standalone is not defined at the top of a nas module"):
        portable_class(standalone)
    with pytest.raises(NotPortable, match=r"uses ACTIVATIONS, a Registry"):
        portable_source([FPEPair])


@pytest.mark.parametrize("name", ["prelu", "swish", "rational", "pwl", "pwl_knots", "mix"])
def test_per_neuron_activations_copy_and_compute_what_nas_computes(name):
    """``neuron_scope`` (model.py's factory of the per-unit form) and each learnable family run from their copies."""
    from nas.spaces.activations import neuron_scope

    assert portable_class(neuron_scope) is neuron_scope
    namespace = standalone([neuron_scope, ACTIVATIONS.get(name)])
    torch.manual_seed(0)
    original = neuron_scope(ACTIVATIONS.get(name))(6)
    with torch.no_grad():
        for p in original.parameters():
            p.add_(0.1 * torch.randn_like(p))
    copied = namespace["neuron_scope"](namespace[ACTIVATIONS.get(name).__name__])(6)
    copied.load_state_dict(original.state_dict())
    x = torch.randn(5, 3, 6) * 3
    assert torch.equal(copied(x), original(x))
