"""nas export: a study's candidate as a standalone PyTorch module that needs only torch.

The exported model is loaded in a fresh Python that cannot import nas (no site
hooks, so no editable install; only torch's site-packages on the path) and must
give exactly (torch.equal) the outputs of nas's own model, for every block the
registries hold. Over 500 lines as one module: the user-flow tests share one
module fixture, a real `nas run` (about a minute), which a split would repeat.
"""

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import sqlalchemy as sa
import torch
from safetensors.torch import load_file, save_file
from torch import nn

import nas
from nas.cli import main
from nas.errors import NasInputError
from nas.exporter import ExportMeta, best_by, check_spec, export_model, knee, model_source
from nas.exporter import write as export_write
from nas.search.read.format import human_count
from nas.search.store.models import Candidate
from nas.search.read.results import study_report
from nas.search.store.storage import Store, optuna_storage
from nas.spaces import ACTIVATIONS, LIFTS, NORMS, WEIGHTS, ArchSpec, build
from nas.spaces.activations import _LearnableActivation
from nas.spaces.blocks import DenseGates
from nas.spaces.fpe import FPEPair

pytestmark = pytest.mark.xdist_group(name="export")  # its module fixture (a real nas run) runs once

SITE = Path(torch.__file__).resolve().parent.parent  # the site-packages folder that holds torch
FILES = {"model.py", "weights.safetensors", "arch.json", "README.md"}
ALLOWED_IMPORTS = {"torch", "math", "json", "pathlib"}

_NO_NAS = """\
import sys
try:
    import nas
except ImportError:
    pass
else:
    raise SystemExit("nas is importable in the standalone process")
"""
_NOTHING_ELSE = """
_leaked = sorted(m for m in sys.modules if m.split(".")[0] in ("nas", "safetensors", "optuna", "ray"))
if _leaked:
    raise SystemExit(f"the exported model imported {_leaked}")
"""


def standalone(code: str, cwd: Path) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh Python where ``import nas`` fails: no site (so no editable-install hook),
    only torch's site-packages on the path, the working folder elsewhere."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PYTHONPATH"] = str(SITE)
    # the same number of threads as this process: a matrix product's rounding depends on how it is split
    threads = f"import torch\ntorch.set_num_threads({torch.get_num_threads()})\n"
    proc = subprocess.run([sys.executable, "-S", "-B", "-c", _NO_NAS + threads + code + _NOTHING_ELSE], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def run_cli(args, capsys):
    with pytest.raises(SystemExit) as exc:
        main(args)
    captured = capsys.readouterr()
    return exc.value.code, captured.out, captured.err


def imports_of(source: str) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            names.add(node.module.split(".")[0])
    return names


def jitter_activations(model: nn.Module) -> None:
    """Move every learnable activation's parameters off their initial values (pwl_knots starts as ReLU exactly, mix
    as the mean of four), so that each unit's own parameters show in the outputs."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, _LearnableActivation):
                for p in module.parameters():
                    p.add_(0.2 * torch.randn_like(p))


def nas_model(spec: ArchSpec, seed: int) -> nn.Module:
    """nas's model with random weights (learnable activations moved off their start: ``jitter_activations``) and
    non-trivial BatchNorm statistics, in eval mode."""
    torch.manual_seed(seed)
    model = build(spec)
    jitter_activations(model)
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(32, spec.d_in) * 2 + 0.5)
    return model.eval()


def inputs(d_in: int, n: int = 48, seed: int = 1) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, d_in, generator=gen) * torch.logspace(-3, 2, n).unsqueeze(1)


# ------------------------------------------------------------ every block family
_L, _A, _N, _W = LIFTS.names(), ACTIVATIONS.names(), NORMS.names(), WEIGHTS.names()
# a sample of the cross product in which every lift, activation, norm and weight form appears (the full product is
# slow); each form twice in a row, so in an hourglass and in a conventional block; each activation twice, the second
# time with activation_scope neuron (the learnable ones: one parameter set per unit)
FAMILIES = [(_L[k % len(_L)], _A[k % len(_A)], _N[k % len(_N)], _W[k // 2 % len(_W)])
            for k in range(2 * max(len(_L), len(_A), len(_N), len(_W)))]
# torch.export (about 0.3 s a model) on a subset in which every lift, activation, norm and weight form appears
EXPORTED = set(FAMILIES[:max(len(_L), len(_A), len(_N), 2 * len(_W))])


def test_every_block_family_round_trips_exactly_without_nas(tmp_path):
    cases = []
    for i, (lift, act, norm, form) in enumerate(FAMILIES):
        hidden = 8 if i % 2 else 40  # hourglass (d_h < d_z) and conventional (d_h > d_z) blocks
        spec = ArchSpec(d_in=12, d_out=5, lift=lift, lift_width=24 if lift != "none" else 0, hidden_width=hidden,
                        depth=2, activation=act, norm=norm, lift_seed=1000 + i, weights=form, rank=3,
                        monarch_blocks=4, activation_scope="neuron" if i // len(_A) % 2 else "layer")
        model = nas_model(spec, seed=i)
        state = {k: v.contiguous() for k, v in model.state_dict().items()}
        if i % 3:  # from a weights file, as nas stores them; else from the state_dict itself
            weights = tmp_path / f"w{i}.safetensors"
            save_file(state, str(weights), metadata={"arch_id": spec.arch_id})
        else:
            weights = state
        store = lift == "fixed_random" and i % 2 == 1
        out = export_model(spec, weights, tmp_path / f"exp{i}", ExportMeta(dataset="synthetic"), store_lift=store,
                           check_torch_export=False)  # torch.export is tried below, in the standalone process
        assert {p.name for p in out.iterdir()} == FILES
        source = (out / "model.py").read_text()
        assert imports_of(source) <= ALLOWED_IMPORTS, imports_of(source)
        card = json.loads((out / "arch.json").read_text())
        assert ArchSpec.from_json(card["arch"]) == spec and card["arch_id"] == spec.arch_id
        assert card["lift_stored"] is store and card["checks"]["outputs_equal_nas"] is True
        stored = load_file(str(out / "weights.safetensors"))
        assert ("lift.weight" in stored) == (lift == "learned" or store)
        if store:
            assert torch.equal(stored["lift.weight"], model.lift.weight)
        with torch.no_grad():
            want = model(inputs(spec.d_in))
        check = (lift, act, norm, form) in EXPORTED or (store and not any(c[3] for c in cases))
        cases.append((f"exp{i}", want, check, store))
    torch.save(inputs(12), tmp_path / "x.pt")

    standalone(f"""
import importlib.util
import torch
x = torch.load("x.pt", weights_only=True)
outs = {{}}
for name, check_export in {[(name, check) for name, _, check, _ in cases]!r}:
    spec = importlib.util.spec_from_file_location("m_" + name, name + "/model.py")
    m = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = m
    spec.loader.exec_module(m)
    net = m.load(name)
    assert not net.training
    with torch.no_grad():
        outs[name] = net(x)
    if not check_export:
        continue
    ep = torch.export.export(net, (torch.randn(1, x.shape[1]),))
    with torch.no_grad():
        outs[name + "/export"] = ep.module()(x[:1])
torch.save(outs, "y.pt")
""", cwd=tmp_path)
    outs = torch.load(tmp_path / "y.pt", weights_only=True)
    assert any(check and store for _, _, check, store in cases)
    for (name, want, check, _), family in zip(cases, FAMILIES):
        assert torch.equal(outs[name], want), (name, family, (outs[name] - want).abs().max())
        if check:
            torch.testing.assert_close(outs[name + "/export"], want[:1], rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------ FPE, mixtures of experts, token mixers
def trained_like(spec: ArchSpec, seed: int) -> nn.Module:
    """nas's model as training leaves it: FPE pairs built dense, then expanded and pruned (so their masks are a
    training's, not the random ones of a deployed build), BatchNorm statistics where there is one, eval mode.

    A feature split gets a random grouping of the inputs shared by all neurons, the shape of the k-means grouping
    training computes (without scikit-learn's seconds per pair).
    """
    torch.manual_seed(seed)
    model = build(spec, fresh=True)
    for module in model.modules():
        if isinstance(module, FPEPair):
            module.expand(torch.randint(module.alpha, (module.d_z,)) if module.split == "feature" else None)
    jitter_activations(model)
    with torch.no_grad():  # gated connections as training leaves them: non-zero gates, the first one pruned
        for module in model.modules():
            if isinstance(module, DenseGates) and module.gate.numel():
                module.gate.uniform_(-0.5, 0.5)
                module.keep[0] = False
                module.gate[0] = 0.0
                module.relink()
    if spec.norm == "batchnorm":
        model.train()
        with torch.no_grad():
            for _ in range(3):
                model(torch.rand(32, spec.d_in) * 2 - 0.5)
    return model.eval()


FLAT = dict(d_in=12, d_out=5, lift="learned", lift_width=24, hidden_width=8, depth=2, norm="batchnorm")
IMAGE = dict(d_in=64, d_out=10, in_shape=(8, 8), lift="learned", lift_width=16, hidden_width=12, depth=2)
COMPOSED = {  # name -> ArchSpec
    "fpe2-random": ArchSpec(**FLAT, activation="relu", fpe_alpha=2, fpe_split="random", fpe_at=0.3),
    "fpe4-feature": ArchSpec(**{**FLAT, "norm": "layernorm"}, activation="gelu", fpe_alpha=4, fpe_split="feature"),
    "moe2-top1": ArchSpec(**FLAT, activation="silu", moe_experts=2, moe_top_k=1),
    "moe4-top2": ArchSpec(**{**FLAT, "norm": "none"}, activation="tanh", moe_experts=4, moe_top_k=2),
    "moe4-top1-fpe2": ArchSpec(**FLAT, activation="swish", moe_experts=4, moe_top_k=1, fpe_alpha=2),
    "moe2-top2-fpe4": ArchSpec(**{**FLAT, "lift": "none"}, activation="prelu", moe_experts=2, moe_top_k=2,
                               fpe_alpha=4, fpe_split="feature"),
    **{f"{mixer}-patch{patch}": ArchSpec(**{**IMAGE, "norm": norm, "lift": lift}, activation="gelu", mixer=mixer,
                                          patch=patch)
       for mixer, norm in (("token_mlp", "layernorm"), ("maxstate", "batchnorm"), ("attention", "none"))
       for patch, lift in ((0, "learned"), (2, "fixed_random" if mixer == "maxstate" else "none"))},
    "linear_attention-patch0": ArchSpec(**{**IMAGE, "norm": "layernorm"}, activation="silu", mixer="linear_attention",
                                        patch=0),
    "linear_attention-patch2": ArchSpec(**{**IMAGE, "norm": "batchnorm", "lift": "fixed_random"}, activation="gelu",
                                        mixer="linear_attention", patch=2),
    # mixer_heads: a head count of the user's in place of the width's default
    **{f"{mixer}-heads{h}": ArchSpec(**{**IMAGE, "norm": "layernorm"}, activation="gelu", mixer=mixer, patch=2,
                                     mixer_heads=h)
       for mixer, h in (("maxstate", 2), ("attention", 8), ("linear_attention", 2))},
    "conv-k5-patch2": ArchSpec(**{**IMAGE, "norm": "batchnorm"}, activation="gelu", mixer="conv", mixer_kernel=5,
                               patch=2),
    "conv-k9-patch4": ArchSpec(**{**IMAGE, "norm": "none", "lift": "none"}, activation="relu", mixer="conv",
                               mixer_kernel=9, patch=4),  # 4 tokens: taps beyond the ends read only padding
    # structured W1 and W2: alone, as experts, behind mixers
    "circulant": ArchSpec(**FLAT, activation="gelu", weights="circulant"),
    "lowrank-moe2-top2": ArchSpec(**FLAT, activation="swish", moe_experts=2, moe_top_k=2, weights="lowrank", rank=3),
    "monarch-token_mlp": ArchSpec(**{**IMAGE, "norm": "layernorm"}, activation="relu", mixer="token_mlp", patch=0,
                                  weights="monarch", monarch_blocks=4),
    "circulant-maxstate-moe": ArchSpec(**{**IMAGE, "norm": "none"}, activation="pwl", mixer="maxstate", patch=2,
                                       moe_experts=2, moe_top_k=1, weights="circulant"),
    "everything": ArchSpec(**{**IMAGE, "lift": "hashed", "lift_seed": 2**40 + 3}, norm="layernorm",
                           activation="rational", mixer="maxstate", patch=2, moe_experts=2, moe_top_k=2, fpe_alpha=2,
                           fpe_split="feature"),
    "everything-attention": ArchSpec(**{**IMAGE, "lift": "hadamard", "lift_seed": 7}, norm="batchnorm",
                                     activation="pwl", mixer="attention", patch=4, moe_experts=4, moe_top_k=1,
                                     fpe_alpha=4),
    # SamOut's layer around the mixer (mixer_layer): its gated feed-forward, the α blend, the post-LayerNorm
    "maxstate-samout": ArchSpec(**{**IMAGE, "norm": "layernorm"}, activation="gelu", mixer="maxstate", patch=2,
                                mixer_layer="samout"),
    "token_mlp-samout": ArchSpec(**{**IMAGE, "lift": "none"}, activation="relu", mixer="token_mlp", patch=0,
                                 mixer_layer="samout"),
    # head w2: the last block is the output layer (the FPE paper's one-hidden-layer network at depth 1)
    "w2-dense": ArchSpec(d_in=12, d_out=5, lift="none", hidden_width=8, depth=1, norm="none", head="w2"),
    "w2-fpe2-deep": ArchSpec(**FLAT, activation="relu", fpe_alpha=2, head="w2"),
    # no head: the conventional residual MLP whose stream is the output (d_in = d_out, an image task's pixels)
    "headless": ArchSpec(d_in=12, d_out=12, lift="none", hidden_width=8, depth=2, norm="batchnorm", head="none"),
    # learnable activations per neuron (activation_scope), and the two with learned knots or mixture weights
    "pwl_knots-neuron": ArchSpec(**FLAT, activation="pwl_knots", activation_scope="neuron"),
    "mix-neuron-moe2-top2": ArchSpec(**FLAT, activation="mix", activation_scope="neuron", moe_experts=2, moe_top_k=2),
    "prelu-neuron-fpe2": ArchSpec(**FLAT, activation="prelu", activation_scope="neuron", fpe_alpha=2),
    "rational-neuron-lowrank": ArchSpec(**FLAT, activation="rational", activation_scope="neuron", weights="lowrank",
                                        rank=3),
    "pwl-neuron-conv": ArchSpec(**{**IMAGE, "norm": "layernorm"}, activation="pwl", activation_scope="neuron",
                                mixer="conv", patch=2),
    "pwl_knots-neuron-moe2-fpe4": ArchSpec(**{**FLAT, "lift": "none"}, activation="pwl_knots",
                                           activation_scope="neuron", moe_experts=2, moe_top_k=1, fpe_alpha=4,
                                           fpe_split="feature"),
    "mix-attention": ArchSpec(**{**IMAGE, "norm": "none"}, activation="mix", mixer="attention", patch=4),
    # early exit and gated connections together (exported forward in eval mode: the early exit), with the others
    "exits-gated-pwl_knots-neuron": ArchSpec(**{**FLAT, "depth": 4}, activation="pwl_knots", activation_scope="neuron",
                                             exits=1, exit_threshold=0.3, connections="gated_dense"),
    "exits2-gated-conv-monarch-moe": ArchSpec(**{**IMAGE, "depth": 4, "norm": "layernorm"}, activation="mix",
                                              mixer="conv", patch=2, exits=2, exit_threshold=0.2,
                                              connections="gated_dense", weights="monarch", monarch_blocks=4,
                                              moe_experts=2, moe_top_k=1),
}
# torch.export (a second or so a model) on FPE and each mixer; a mixture of experts' routing cannot be traced
EXPORTED_TOO = ("fpe4-feature", "token_mlp-patch2", "maxstate-patch0", "attention-patch2", "linear_attention-patch0",
                "conv-k5-patch2", "circulant", "monarch-token_mlp", "pwl_knots-neuron", "prelu-neuron-fpe2")


def test_fpe_experts_and_mixers_round_trip_exactly_without_nas(tmp_path):
    wants = {}
    for i, (name, spec) in enumerate(COMPOSED.items()):
        model = trained_like(spec, seed=i)
        state = {k: v.contiguous() for k, v in model.state_dict().items()}
        if spec.fpe_alpha > 1:  # the masks travel as persistent buffers, pruned to the dense pair's non-zeros
            masks = [k for k in state if k.endswith("mask1")]
            assert masks and all(0 < state[k].sum() < state[k].numel() for k in masks), name
        out = export_model(spec, state, tmp_path / name, ExportMeta(dataset="digits"), check_torch_export=False)
        source = (out / "model.py").read_text()
        assert imports_of(source) <= ALLOWED_IMPORTS and '"fpe_at"' not in source, name
        card = json.loads((out / "arch.json").read_text())
        assert ArchSpec.from_json(card["arch"]) == spec and card["checks"]["outputs_equal_nas"] is True
        x = inputs(spec.d_in, seed=i)
        torch.save(x, tmp_path / f"{name}.pt")
        with torch.no_grad():
            wants[name] = model(x)
    assert json.loads((tmp_path / "fpe2-random" / "arch.json").read_text())["arch"]["fpe_at"] == 0.3

    standalone(f"""
import importlib.util
import torch
outs = {{}}
for name, d_in, check_export in {[(n, s.d_in, n in EXPORTED_TOO) for n, s in COMPOSED.items()]!r}:
    spec = importlib.util.spec_from_file_location("m_" + name.replace("-", "_"), name + "/model.py")
    m = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = m
    spec.loader.exec_module(m)
    net = m.load(name)
    x = torch.load(name + ".pt", weights_only=True)
    with torch.no_grad():
        outs[name] = net(x)
    if check_export:
        ep = torch.export.export(net, (torch.randn(1, d_in),))
        with torch.no_grad():
            outs[name + "/export"] = ep.module()(x[:1])
torch.save(outs, "y.pt")
""", cwd=tmp_path)
    outs = torch.load(tmp_path / "y.pt", weights_only=True)
    for name, want in wants.items():
        assert torch.equal(outs[name], want), (name, (outs[name] - want).abs().max())
        if name in EXPORTED_TOO:
            torch.testing.assert_close(outs[name + "/export"], want[:1], rtol=1e-5, atol=1e-5)


def test_the_card_describes_the_blocks_and_an_image_task(tmp_path):
    spec = COMPOSED["everything"]
    meta = ExportMeta(dataset="digits", kind="denoise", objectives={"psnr": 21.2345, "params": 1234},
                      directions={"psnr": "maximize", "params": "minimize"})
    out = export_model(spec, trained_like(spec, seed=0).state_dict(), tmp_path / "den", meta)
    readme = (out / "README.md").read_text()
    assert ("21.23 dB (validation PSNR of the best-validation checkpoint, what the search selected on: the pooled "
            "MSE's of each batch of 128 images, averaged over the batches)") in readme
    assert "`torch.sigmoid(net(x))` is the predicted image" in readme and "torch.sigmoid(net(" in readme
    for words in ("FPE alpha 2 (feature split)", "mixture of 2 FPE experts top-2", "maxstate across the tokens",
                  "16 tokens of 4 features", "hashed ±1 lift 4 -> 16 (hashed from seed 1099511627779) per token",
                  "| `MaskedPair` | ``W2 act(W1 x [+ b1])`` with fixed 0/1 masks", "| `MixtureOfExperts` | y = Σ",
                  "| `MaxState` | MaxStateSuper", "| `HashedLift` | z = x Rᵀ", "| `Rational` | A learnable Padé",
                  "(1 + \\|b_1 x"):  # every block by its own docstring, "|" escaped in the table
        assert words in readme, words
    assert json.loads((out / "arch.json").read_text())["checks"]["torch_export"].startswith("not supported")
    flat = export_model(COMPOSED["fpe2-random"], trained_like(COMPOSED["fpe2-random"], seed=1).state_dict(),
                        tmp_path / "cls", ExportMeta(dataset="digits", kind="classification"), check_torch_export=False)
    card = (flat / "README.md").read_text()
    assert "class logits" in card and "sigmoid" not in card


def test_model_py_reads_safetensors_without_the_package(tmp_path):
    spec = ArchSpec(d_in=3, d_out=2, hidden_width=4, depth=1)
    module = {"__file__": str(tmp_path / "model.py")}
    exec(compile(model_source(check_spec(spec)), "model.py", "exec"), module)
    gen = torch.Generator().manual_seed(0)
    tensors = {
        "f32": torch.randn(3, 5, generator=gen), "f16": torch.randn(7, generator=gen).half(),
        "bf16": torch.randn(2, 3, generator=gen).bfloat16(), "f64": torch.randn(3, generator=gen).double(),
        "i64": torch.tensor(7), "i32": torch.arange(5, dtype=torch.int32), "u8": torch.arange(3, dtype=torch.uint8),
        "i8": torch.tensor([-3, 4], dtype=torch.int8), "bool": torch.tensor([True, False, True]),
        "empty": torch.zeros(0, 4),
    }
    save_file(tensors, str(tmp_path / "t.safetensors"), metadata={"k": "v"})
    got = module["read_safetensors"](tmp_path / "t.safetensors")
    want = load_file(str(tmp_path / "t.safetensors"))
    assert set(got) == set(want)
    for k in want:
        assert got[k].dtype == want[k].dtype and torch.equal(got[k], want[k]), k
    (tmp_path / "bad.safetensors").write_bytes(b"\xff" * 16)
    with pytest.raises(ValueError, match="not a safetensors file"):
        module["read_safetensors"](tmp_path / "bad.safetensors")


@pytest.mark.parametrize("changes, expect", [
    ({"activation": "relu; import os"}, r"unknown activation"),
    ({"norm": "groupnorm"}, r"unknown norm 'groupnorm'"),
    ({"lift": "fixed"}, r"unknown lift 'fixed'"),
    ({"depth": True}, r"ArchSpec.depth must be an int"),
    ({"hidden_width": 8.0}, r"ArchSpec.hidden_width must be an int"),
    ({"hidden_width": "8)\nimport os\n("}, r"ArchSpec.hidden_width must be an int"),
    ({"lift_seed": -1}, r"ArchSpec.lift_seed must be an int in \[0,"),
    ({"d_out": 0}, r"ArchSpec.d_out must be an int in \[1,"),
    ({"fpe_alpha": 2, "fpe_split": "random; import os"}, r"unknown FPE split"),
    ({"fpe_alpha": 2.0}, r"ArchSpec.fpe_alpha must be an int"),
    ({"moe_experts": 2, "moe_top_k": 2.0}, r"ArchSpec.moe_top_k must be an int"),
    ({"mixer": "attention()\nimport os", "in_shape": (2, 2)}, r"unknown mixer"),
    ({"mixer": "attention", "patch": 3, "in_shape": (2, 2)}, r"3×3 patches do not tile a 2×2 image"),
    ({"mixer": "conv", "mixer_kernel": 4, "in_shape": (2, 2)}, r"ArchSpec.mixer_kernel must be odd and at least 1 "
                                                                r"\('same' padding\), found 4"),  # its declaration
    ({"mixer": "conv", "mixer_kernel": 3.0, "in_shape": (2, 2)}, r"ArchSpec.mixer_kernel must be an int"),
], ids=["act-code", "norm", "lift", "bool", "float", "str", "seed", "d_out", "split", "alpha", "top-k", "mixer",
        "patch", "kernel-even", "kernel-float"])
def test_only_checked_values_reach_the_code(changes, expect, tmp_path):
    base = dict(d_in=4, d_out=3, lift="fixed_random", lift_width=8, hidden_width=4, depth=1, activation="relu",
                norm="batchnorm", lift_seed=0)
    spec = ArchSpec(**{**base, **changes})
    with pytest.raises(NasInputError, match=expect):
        export_model(spec, {}, tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


def test_a_registered_block_without_export_code_is_refused(tmp_path):
    ACTIVATIONS.register("softsign_for_test")(lambda width: nn.Softsign())
    try:
        spec = ArchSpec(d_in=4, d_out=3, hidden_width=4, depth=1, activation="softsign_for_test")
        model = build(spec)
        with pytest.raises(NasInputError, match="cannot export activation 'softsign_for_test': its block does not run "
                                                "without nas \\(.*<lambda> is not a class or a named function\\)"):
            export_model(spec, model.state_dict(), tmp_path / "out")
    finally:
        del ACTIVATIONS._entries["softsign_for_test"]
    assert list(tmp_path.iterdir()) == []


def test_weights_that_do_not_fit_are_refused(tmp_path):
    spec = ArchSpec(d_in=4, d_out=3, hidden_width=4, depth=1)
    other = build(ArchSpec(d_in=4, d_out=3, hidden_width=5, depth=1)).state_dict()
    with pytest.raises(NasInputError, match="does not fit arch"):
        export_model(spec, other, tmp_path / "out")
    save_file(build(spec).state_dict(), str(tmp_path / "w.safetensors"), metadata={"arch_id": "0123456789abcdef"})
    with pytest.raises(NasInputError, match="holds arch 0123456789abcdef"):
        export_model(spec, tmp_path / "w.safetensors", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_pick_rules():
    d = {"accuracy": "maximize", "params": "minimize"}
    rows = [{"number": 0, "values": {"accuracy": 0.90, "params": 100}},
            {"number": 1, "values": {"accuracy": 0.95, "params": 1000}},
            {"number": 2, "values": {"accuracy": 0.95, "params": 500}},  # ties on accuracy: fewer params wins
            {"number": 3, "values": {"accuracy": 0.94, "params": 150}}]
    assert best_by(rows, "accuracy", d)["number"] == 2
    assert best_by(rows, "params", d)["number"] == 0
    front = [rows[0], rows[2], rows[3]]
    # normalised: 0 -> (1, 0), 2 -> (0, 1), 3 -> (0.2, 0.125): the knee is 3
    assert knee(front, d)["number"] == 3
    assert knee([rows[0]], d)["number"] == 0


def test_import_nas_stays_cheap():
    proc = subprocess.run([sys.executable, "-c", "import sys, nas; assert callable(nas.export); "
                           "print(sorted(m for m in sys.modules if m in ('torch', 'optuna', 'nas.exporter')))"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == "[]", proc.stdout + proc.stderr


# ------------------------------------------------------------ a real study
SPACE = """\
name: tiny
task: {dataset: digits}
objectives: {accuracy: maximize, params: minimize, bandwidth: minimize}
space:
  lift: [fixed_random, learned, none]
  lift_width: {int: [32, 96], when: {lift: [fixed_random, learned]}}
  hidden_width: {int: [8, 32]}
  depth: {int: [1, 2]}
  activation: [relu, gelu, silu, tanh]
  norm: [batchnorm, layernorm, none]
train: {epochs: 1}
search: {sampler: random, trials: 6, workers: 1, seed: 0}
"""
ENQUEUED = [  # one candidate of each lift; the last repeats the first, so nas reuses its result and weights
    {"lift": "fixed_random", "lift_width": 64, "hidden_width": 16, "depth": 2, "activation": "gelu",
     "norm": "batchnorm"},
    {"lift": "learned", "lift_width": 48, "hidden_width": 24, "depth": 1, "activation": "tanh", "norm": "layernorm"},
    {"lift": "none", "hidden_width": 32, "depth": 2, "activation": "silu", "norm": "none"},
    {"lift": "fixed_random", "lift_width": 64, "hidden_width": 16, "depth": 2, "activation": "gelu",
     "norm": "batchnorm"},
]
FAIL_REASON = "out of memory while training (made by the test)"


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A real `nas run` of 6 candidates on digits, plus a failed and a running trial."""
    root = tmp_path_factory.mktemp("export")
    (root / "tiny.yaml").write_text(SPACE)
    url = f"sqlite:///{root / 'nas.db'}"
    pre = optuna.create_study(study_name="tiny", storage=optuna_storage(url),
                              directions=["maximize", "minimize", "minimize"])
    for params in ENQUEUED:
        pre.enqueue_trial(params)
    proc = subprocess.run([sys.executable, "-m", "nas.cli", "run", "tiny.yaml", "--no-progress"], cwd=root,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    storage = optuna_storage(url)
    st = optuna.load_study(study_name="tiny", storage=storage)
    failed = st.ask()
    storage.set_trial_system_attr(failed._trial_id, "fail_reason", FAIL_REASON)
    st.tell(failed, state=optuna.trial.TrialState.FAIL)
    running = st.ask()
    store = Store(url)
    with store.session() as s:
        first = s.scalars(sa.select(Candidate).where(Candidate.trial_number == 0)).one()
        for t, state, error in ((failed, "FAIL", FAIL_REASON), (running, "RUNNING", None)):
            s.add(Candidate(run_id=first.run_id, study_name="tiny", trial_number=t.number, trial_id=t._trial_id,
                            arch_id=first.arch_id, train_key=first.train_key, task_key=first.task_key,
                            arch=first.arch, train=first.train, values=first.values, state=state, error=error))
    store.close()
    return {"root": root, "url": url, "failed": failed.number, "running": running.number}


def candidates(url):
    store = Store(url, create=False)
    try:
        with store.session() as s:
            return {c.trial_number: c for c in s.scalars(sa.select(Candidate).where(Candidate.state == "COMPLETE"))}
    finally:
        store.close()


@pytest.mark.slow  # the module's study: a real `nas run` (Ray)
def test_the_user_flow_pick_accuracy(study, capsys):
    root, url = study["root"], study["url"]
    code, _, err = run_cli(["export", "tiny", "--pick", "accuracy", "--out", str(root / "best"), "--storage", url],
                           capsys)
    assert code == 0, err
    assert "nas: exported trial" in err
    report = study_report(url, "tiny")
    complete = [t for t in report["trials"] if t["state"] == "COMPLETE"]
    chosen = best_by(complete, "accuracy", report["directions"])
    card = json.loads((root / "best" / "arch.json").read_text())
    cand = candidates(url)[chosen["number"]]
    assert {p.name for p in (root / "best").iterdir()} == FILES
    assert card["trial"] == chosen["number"] and card["picked_by"] == "accuracy" and card["study"] == "tiny"
    assert ArchSpec.from_json(card["arch"]) == ArchSpec.from_json(cand.arch) and card["arch_id"] == cand.arch_id and card["train"] == cand.train
    assert card["objectives"] == cand.objectives and card["sampler"] == "random"
    assert card["checks"] == {"outputs_equal_nas": True, "inputs_checked": 16, "torch_export": "ok",
                              "onnx": "not checked"}
    assert card["task"] == {"dataset": "digits", "kind": "classification", "d_in": 64, "d_out": 10}
    readme = (root / "best" / "README.md").read_text()
    assert "`tiny`" in readme and "`random`" in readme and "--pick accuracy" in readme
    assert human_count(cand.objectives["params"]) in readme and "import best.model as model" in readme

    from nas.evaluators import load_task

    task = load_task("digits")
    torch.save(task.x_test, root / "x.pt")
    proc = standalone("""
import torch, best.model as m
net = m.load('best')
print(net(torch.randn(1, 64)))
with torch.no_grad():
    torch.save(net(torch.load("x.pt", weights_only=True)), "y.pt")
""", cwd=root)
    assert "tensor(" in proc.stdout
    model = build(ArchSpec.from_json(cand.arch))
    model.load_state_dict(load_file(cand.weights_path))
    model.eval()
    with torch.no_grad():
        want = model(task.x_test)
    got = torch.load(root / "y.pt", weights_only=True)
    assert torch.equal(got, want)
    correct = (got.argmax(1) == task.y_test).sum().item()
    assert correct / len(task.y_test) == pytest.approx(cand.objectives["test_accuracy"], abs=1e-9)  # the record


@pytest.mark.slow  # the module's study: a real `nas run` (Ray)
def test_every_complete_trial_exports_exactly(study, tmp_path):
    url = study["url"]
    cands = candidates(url)
    assert len(cands) == 6 and any(c.reused_from is not None for c in cands.values())
    assert {c.arch["lift"] for c in cands.values()} == {"fixed_random", "learned", "none"}
    x = inputs(64)
    for number, cand in sorted(cands.items()):
        out = nas.export("tiny", tmp_path / f"t{number}", storage=url, trial=number)
        card = json.loads((out / "arch.json").read_text())
        assert card["trial"] == number and card["picked_by"] == "trial"
        if cand.reused_from is not None:
            assert card["reused_from_trial"] is not None and "did not train it again" in (out / "README.md").read_text()
        module = {"__file__": str(out / "model.py")}
        exec(compile((out / "model.py").read_text(), str(out / "model.py"), "exec"), module)
        net = module["load"](out)
        model = build(ArchSpec.from_json(cand.arch))
        model.load_state_dict(load_file(cand.weights_path))
        model.eval()
        with torch.no_grad():
            assert torch.equal(net(x), model(x)), number


@pytest.mark.slow  # the module's study: a real `nas run` (Ray)
def test_pick_knee_and_store_lift(study, tmp_path, capsys):
    url = study["url"]
    out = nas.export("tiny", tmp_path / "knee", storage=url, pick="knee")
    report = study_report(url, "tiny")
    front = [t for t in report["trials"] if t["pareto"]]
    card = json.loads((out / "arch.json").read_text())
    assert card["trial"] == knee(front, report["directions"])["number"] and card["pareto"] is True
    assert "--pick knee" in (out / "README.md").read_text()

    fixed = min(n for n, c in candidates(url).items() if c.arch["lift"] == "fixed_random")
    code, _, err = run_cli(["export", "tiny", "--trial", str(fixed), "--store-lift", "--out", str(tmp_path / "s"),
                            "--storage", url], capsys)
    assert code == 0, err
    stored = load_file(str(tmp_path / "s" / "weights.safetensors"))
    spec = ArchSpec.from_json(candidates(url)[fixed].arch)
    assert torch.equal(stored["lift.weight"], build(spec).lift.weight)
    assert json.loads((tmp_path / "s" / "arch.json").read_text())["lift_stored"] is True
    assert "LIFT_SEED" not in (tmp_path / "s" / "model.py").read_text()


@pytest.mark.slow  # the module's study: a real `nas run` (Ray)
def test_bad_inputs_exit_2_with_one_message(study, tmp_path, capsys):
    url = study["url"]
    out = str(tmp_path / "out")

    def fails(args, *expect):
        code, stdout, err = run_cli(["export", *args, "--storage", url], capsys)
        assert code == 2, err
        assert err.startswith("nas: error: ") and "Traceback" not in err, err
        for text in expect:
            assert text in err, f"expected {text!r} in {err!r}"
        return err

    fails(["nope", "--pick", "accuracy", "--out", out], "no study 'nope'", "studies there: tiny")
    fails(["tiny", "--trial", "99", "--out", out], "study 'tiny' has no trial 99; its trials are 0 to")
    fails(["tiny", "--trial", str(study["failed"]), "--out", out], f"trial {study['failed']} of study 'tiny' failed",
          FAIL_REASON)
    fails(["tiny", "--trial", str(study["running"]), "--out", out], "still running")
    fails(["tiny", "--pick", "latency", "--out", out],
          "--pick 'latency': not an objective of study 'tiny'; expected one of accuracy, params, bandwidth, knee")
    fails(["tiny", "--out", out], "exactly one of --trial N or --pick METRIC")
    fails(["tiny", "--trial", "0", "--pick", "accuracy", "--out", out], "exactly one of")

    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    fails(["tiny", "--trial", "0", "--out", str(tmp_path / "full")], "exists and is not empty", "never overwrites")
    assert [p.name for p in (tmp_path / "full").iterdir()] == ["keep.txt"]
    (tmp_path / "afile").write_text("x")
    fails(["tiny", "--trial", "0", "--out", str(tmp_path / "afile")], "is not a folder")

    cands = candidates(url)
    number = min(n for n, c in cands.items() if c.reused_from is None)
    weights = Path(cands[number].weights_path)
    hidden = weights.with_suffix(".hidden")
    weights.rename(hidden)
    try:
        fails(["tiny", "--trial", str(number), "--out", out], f"weights file {weights} is missing")
    finally:
        hidden.rename(weights)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "full"], "an error must write nothing"

    (tmp_path / "empty").mkdir()  # an existing empty folder is fine
    code, _, err = run_cli(["export", "tiny", "--trial", str(number), "--out", str(tmp_path / "empty"),
                            "--storage", url], capsys)
    assert code == 0 and {p.name for p in (tmp_path / "empty").iterdir()} == FILES, err


def test_no_database(in_tmp, capsys):
    code, _, err = run_cli(["export", "tiny", "--pick", "accuracy", "--out", "best"], capsys)
    assert code == 2 and "no database at nas.db" in err
    assert list(in_tmp.iterdir()) == []


@pytest.mark.slow  # the module's study: a real `nas run` (Ray)
def test_a_failure_while_writing_leaves_nothing(study, tmp_path, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(export_write, "model_card", boom)
    with pytest.raises(RuntimeError, match="boom"):
        nas.export("tiny", tmp_path / "out", storage=study["url"], pick="accuracy")
    assert list(tmp_path.iterdir()) == []
