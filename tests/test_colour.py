"""Colour images (an npz X of (n, H, W, C) or (n, C, H, W)) for every task kind: the layout, patches of P×P×C,
per-channel super-resolution, PSNR over every channel, params counted on the colour widths."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml

from child import nas_cli
from nas.errors import NasInputError
from nas.evaluators.datasets import load_task
from nas.evaluators.train import evaluate
from nas.spaces import ArchSpec, TrainSpec
from nas.spaces.cost import model_cost
from nas.spaces.mixers import Tokens
from nas.spaces.stages import token_grid

H, W, C, N = 8, 8, 3, 120


def _images(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """N smooth random colour images (n, H, W, C) in [0, 1], each channel different, and 4 classes."""
    rng = np.random.default_rng(seed)
    base = rng.random((N, 1, H // 2, W // 2, C))
    x = np.kron(base, np.ones((1, 1, 2, 2, 1)))[:, 0]  # (N, H, W, C): 2×2 blocks, so patches differ per channel
    return x.astype(np.float32), rng.integers(0, 4, N)


@pytest.fixture
def colour(tmp_path):
    x, y = _images()
    hwc, chw = tmp_path / "hwc.npz", tmp_path / "chw.npz"
    np.savez(hwc, X=x, y=y)
    np.savez(chw, X=x.transpose(0, 3, 1, 2), y=y)
    return x, hwc, chw


@pytest.mark.parametrize("kind", ["classification", "denoise", "superres", "generative_classification"])
def test_both_layouts_load_as_the_same_channels_last_task(colour, kind):
    x, hwc, chw = colour
    a, b = load_task(f"npz:{hwc}", kind), load_task(f"npz:{chw}", kind)
    assert a.in_shape == b.in_shape == ((H // 2, W // 2, C) if kind == "superres" else (H, W, C))
    for split in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
        assert torch.equal(getattr(a, split), getattr(b, split)), split
    if kind != "classification":  # targets: whole colour images, every channel
        assert a.d_out == H * W * C


def test_the_layout_is_read_from_the_shape_or_given_and_an_ambiguous_shape_names_task_layout(tmp_path):
    rng = np.random.default_rng(1)
    x, y = rng.random((20, 3, 6, 3)).astype(np.float32), rng.integers(0, 2, 20)  # C first and last both fit
    np.savez(tmp_path / "amb.npz", X=x, y=y)
    with pytest.raises(NasInputError, match="task.layout"):
        load_task(f"npz:{tmp_path / 'amb.npz'}", "denoise")
    assert load_task(f"npz:{tmp_path / 'amb.npz'}", "denoise", options={"layout": "hwc"}).in_shape == (3, 6, 3)
    chw = load_task(f"npz:{tmp_path / 'amb.npz'}", "denoise", options={"layout": "chw"})
    assert chw.in_shape == (6, 3, 3)
    whole = torch.cat([chw.y_train, chw.y_val, chw.y_test])
    expect = torch.from_numpy(x.transpose(0, 2, 3, 1).reshape(20, -1))
    assert sorted(map(tuple, whole.tolist())) == sorted(map(tuple, expect.tolist()))  # the same images, channels last
    with pytest.raises(NasInputError, match="needs samples of 3 axes"):
        load_task("npz:" + str(_flat(tmp_path)), options={"layout": "hwc"})


def _flat(tmp_path):
    np.savez(tmp_path / "flat.npz", X=np.zeros((10, 12), np.float32), y=np.arange(10) % 2)
    return tmp_path / "flat.npz"


def test_a_layout_key_is_refused_for_a_dataset_without_one(tmp_path):
    (tmp_path / "s.yaml").write_text("task: {dataset: digits, layout: hwc}\nspace: {hidden_width: 8}\n")
    proc = nas_cli("run", "s.yaml", "--no-progress", cwd=tmp_path, timeout=60)
    assert proc.returncode == 2 and "s.yaml:1: task.layout" in proc.stderr, proc.stderr
    assert not (tmp_path / "nas.db").exists()


def test_patches_are_p_by_p_by_c_and_hold_exactly_their_pixels():
    x, _ = _images()
    assert token_grid((H, W, C), 2, H * W * C) == (16, 12)
    assert token_grid((H, W, C), 0, H * W * C) == (H, W * C)  # rows of pixels, each pixel's channels
    with pytest.raises(ValueError, match="do not tile"):
        token_grid((H, W, C), 3, H * W * C)
    tokens = Tokens((H, W, C), 2, H * W * C)(torch.from_numpy(x.reshape(N, -1)))
    assert tokens.shape == (N, 16, 12)
    for t, (i, j) in enumerate((i, j) for i in range(0, H, 2) for j in range(0, W, 2)):
        assert torch.equal(tokens[:, t], torch.from_numpy(x[:, i:i + 2, j:j + 2, :].reshape(N, -1)))


def test_superres_halves_each_channel_as_the_grey_images_are(colour):
    x, hwc, _ = colour
    task = load_task(f"npz:{hwc}", "superres")
    assert task.d_in == (H // 2) * (W // 2) * C and task.in_shape == (H // 2, W // 2, C)
    small = task.x_train.reshape(-1, H // 2, W // 2, C)
    clean = task.y_train.reshape(-1, H, W, C)
    for c in range(C):  # each channel: the grey down-sampling of that channel
        grey = F.interpolate(clean[..., c][:, None], size=(H // 2, W // 2), mode="bicubic", antialias=False,
                             align_corners=False)[:, 0]
        assert torch.allclose(small[..., c], grey, atol=1e-6)


@pytest.mark.parametrize("kind", ["classification", "denoise", "superres", "generative_classification"])
def test_every_kind_trains_on_colour_with_a_patch_mixer_and_counts_its_params(colour, kind):
    torch.set_num_threads(1)
    _, hwc, _ = colour
    task = load_task(f"npz:{hwc}", kind)
    spec = ArchSpec(d_in=task.d_in, d_out=task.d_out, in_shape=task.in_shape, lift="fixed_random", lift_width=32,
                    hidden_width=16, depth=1, mixer="token_mlp", patch=2)
    ev = evaluate(spec, TrainSpec(epochs=1, batch_size=32), task)
    score = "accuracy" if kind == "classification" else "psnr"
    assert np.isfinite(ev.objectives[score]) and ev.objectives["params"] == model_cost(spec).params


def test_psnr_pools_every_channel(colour):
    from nas.evaluators.train import psnr_db

    x, _, _ = colour
    t = torch.from_numpy(x.reshape(N, -1))
    noisy = t.clone()
    noisy.view(N, H, W, C)[..., 1] += 0.1  # one channel off by 0.1: MSE 0.01 / 3 over every value
    assert psnr_db(noisy, t) == pytest.approx(10 * np.log10(3 / 0.01), rel=1e-5)


@pytest.mark.parametrize("kind", ["denoise", "classification"])
def test_examples_colour_yaml_runs_on_a_colour_npz(tmp_path, kind):
    """examples/colour.yaml, as shipped but for its data (a synthetic 32×32×3 set in the CIFAR-10 npz's form),
    one epoch: `nas run` searches it for denoising and classification, each with flat and token-mixer
    candidates."""
    from pathlib import Path

    rng = np.random.default_rng(0)
    np.savez(tmp_path / "cifar10.npz", X=rng.random((60, 32, 32, 3), dtype=np.float32), y=rng.integers(0, 3, 60))
    doc = yaml.safe_load((Path(__file__).resolve().parent.parent / "examples" / "colour.yaml").read_text())
    doc["task"]["kind"] = kind
    doc.pop("objectives")  # the task's own score, params and bandwidth
    doc["train"]["epochs"] = 1
    doc["search"].update(trials=3, workers=1, sampler="random", seed=1)
    (tmp_path / "colour.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))  # `when` reads earlier labels
    proc = nas_cli("run", "colour.yaml", "--no-progress", cwd=tmp_path, timeout=400)
    assert proc.returncode == 0, proc.stderr
    shown = nas_cli("show", "colour", "--format", "json", cwd=tmp_path, timeout=60)
    trials = [t for t in json.loads(shown.stdout)["trials"] if t["state"] == "COMPLETE"]
    score = "accuracy" if kind == "classification" else "psnr"
    assert len(trials) == 3 and all(np.isfinite(t["values"][score]) for t in trials)
    assert {t["params"]["mixer"] for t in trials} == {"none", "token_mlp"}  # both paths of the file ran


def test_the_cifar_script_writes_what_nas_reads(tmp_path):
    """benchmarks/cifar_npz.py on a stand-in of CIFAR-10's Python version (its pickled batches, rows of
    (3, 32, 32) planes): the npz loads as 32×32×3 colour images, the pixels and labels where they were."""
    import pickle
    import subprocess
    import sys
    from pathlib import Path

    src = tmp_path / "cifar-10-batches-py"
    src.mkdir()
    rng = np.random.default_rng(0)
    planes = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, (4, 3072), dtype=np.uint8)
        planes[name] = data
        (src / name).write_bytes(pickle.dumps({b"data": data, b"labels": list(range(4))}))
    script = Path(__file__).resolve().parent.parent / "benchmarks" / "cifar_npz.py"
    subprocess.run([sys.executable, str(script), str(src), str(tmp_path / "c.npz"), "--dtype", "float32"], check=True,
                   capture_output=True)
    with np.load(tmp_path / "c.npz") as f:
        assert f["X"].shape == (20, 32, 32, 3) and f["X_test"].shape == (4, 32, 32, 3)
        first = planes["data_batch_1"][0].reshape(3, 32, 32)  # red plane, then green, then blue
        assert np.allclose(f["X"][0, 5, 7], first[:, 5, 7] / 255)
    task = load_task(f"npz:{tmp_path / 'c.npz'}", "superres")
    assert task.in_shape == (16, 16, 3) and task.d_out == 32 * 32 * 3 and len(task.y_test) == 4
