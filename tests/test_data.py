"""Datasets, seeded augmentation and the training/eval loaders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from attentivenas.config import DataConfig
from attentivenas.data import (
    RandomShift,
    SeededTransformDataset,
    batches_per_epoch,
    build_data,
    check_batch_size,
    digits_bundle,
    eval_loader,
    holdout_split,
    train_loader,
)
from attentivenas.errors import ConfigError


@pytest.fixture(scope="module")
def digits() -> DataConfig:
    return DataConfig(name="digits", image_size=32, random_shift=2)


def test_digits_splits_and_shapes(digits: DataConfig) -> None:
    b = build_data(digits, seed=0)
    assert (len(b.train), len(b.val), len(b.test), b.num_classes, b.image_size) == (1257, 270, 270, 10, 32)
    x, y = b.train[0]
    assert x.shape == (3, 32, 32) and 0 <= y < 10
    plain = digits_bundle(32, seed=0)  # the other contributors' entry point is unchanged
    assert torch.equal(b.val.tensors[0], plain.val.tensors[0])


def test_shift_augmentation_is_seeded_per_sample_and_epoch(digits: DataConfig) -> None:
    ds = build_data(digits, seed=3).train
    twin = build_data(digits, seed=3).train
    assert isinstance(ds, SeededTransformDataset)
    state = torch.get_rng_state()
    epoch0 = [ds[i][0] for i in range(20)]
    assert torch.equal(torch.get_rng_state(), state)  # the global RNG is left alone
    assert all(torch.equal(twin[i][0], epoch0[i]) for i in range(20))  # same seed, same images
    ds.set_epoch(1)
    moved = sum(not torch.equal(ds[i][0], epoch0[i]) for i in range(20))
    assert moved >= 10  # another epoch, other shifts
    ds.set_epoch(0)
    assert torch.equal(ds[5][0], epoch0[5])
    other = build_data(digits, seed=4).train
    assert sum(not torch.equal(other[i][0], epoch0[i]) for i in range(20)) >= 10


def test_random_shift_moves_content_and_pads_with_fill() -> None:
    x = torch.zeros(1, 6, 6)
    x[0, 2, 2] = 1.0
    torch.manual_seed(0)
    y = RandomShift(2, fill=-1.0)(x)
    assert y.shape == x.shape
    assert float(y.max()) == 1.0 and float(y.min()) in (-1.0, 0.0)
    assert RandomShift(0)(x) is x


def test_train_loader_is_deterministic_resumable_and_sharded() -> None:
    b = digits_bundle(32, seed=0)
    first = [y for _, y in train_loader(b.train, 64, seed=0, epoch=0)]
    again = [y for _, y in train_loader(b.train, 64, seed=0, epoch=0)]
    other = [y for _, y in train_loader(b.train, 64, seed=0, epoch=1)]
    assert len(first) == batches_per_epoch(1257, 64) == 19
    assert all(torch.equal(a, c) for a, c in zip(first, again, strict=True))
    assert not torch.equal(first[0], other[0])
    tail = [y for _, y in train_loader(b.train, 64, seed=0, epoch=0, skip_batches=5)]
    assert len(tail) == 14 and all(torch.equal(a, c) for a, c in zip(first[5:], tail, strict=True))
    r0 = train_loader(b.val, 16, seed=0, epoch=0, rank=0, world_size=2)
    r1 = train_loader(b.val, 16, seed=0, epoch=0, rank=1, world_size=2)
    assert len(r0) == len(r1) == batches_per_epoch(270, 16, 2) == 8
    i0, i1 = list(r0.sampler), list(r1.sampler)
    assert not set(i0) & set(i1) and len(i0) == len(i1) == 135


def test_eval_loader_shards_without_padding(digits: DataConfig) -> None:
    b = build_data(digits, seed=0)
    n0 = sum(len(y) for _, y in eval_loader(b.val, 100, rank=0, world_size=2))
    n1 = sum(len(y) for _, y in eval_loader(b.val, 100, rank=1, world_size=2))
    assert (n0, n1) == (135, 135)


def test_batch_larger_than_the_data_is_a_config_error() -> None:
    check_batch_size(100, 50, 2)
    with pytest.raises(ConfigError, match=r"data\.batch_size=64 is larger than the training split: 50 images"):
        check_batch_size(100, 64, 2)


def test_holdout_split_is_seeded_and_disjoint() -> None:
    tr, va = holdout_split(20, 5, seed=1)
    tr2, va2 = holdout_split(20, 5, seed=1)
    assert np.array_equal(va, va2) and len(va) == 5 and len(tr) == 15
    assert sorted(np.concatenate([tr, va]).tolist()) == list(range(20))
    assert not np.array_equal(va, holdout_split(20, 5, seed=2)[1])


def _image_folder(root: Path, split: str, per_class: int) -> None:
    rng = np.random.default_rng(0)
    for cls in ("cat", "dog"):
        d = root / split / cls
        d.mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)).save(d / f"{i}.png")


def test_imagefolder_layout_with_heldout_fraction(tmp_path: Path) -> None:
    _image_folder(tmp_path, "train", 5)
    _image_folder(tmp_path, "val", 2)
    cfg = DataConfig(name="imagefolder", path=str(tmp_path), image_size=16, eval_resize=18, val_size=2)
    b = build_data(cfg, seed=0)
    assert (len(b.train), len(b.val), len(b.test), b.num_classes) == (8, 2, 4, 2)
    x, y = b.train[0]
    assert x.shape == (3, 16, 16) and x.dtype == torch.float32 and y in (0, 1)
    assert torch.equal(b.train[0][0], x)  # augmentation seeded per sample
    xv, _ = b.test[0]
    assert xv.shape == (3, 16, 16)
    assert set(b.train.indices).isdisjoint(b.val.indices)


def test_imagefolder_val_dir_and_errors(tmp_path: Path) -> None:
    _image_folder(tmp_path, "train", 3)
    _image_folder(tmp_path, "val", 1)
    _image_folder(tmp_path, "holdout", 1)
    b = build_data(DataConfig(name="imagenet", path=str(tmp_path), image_size=16, eval_resize=16,
                              val_dir="holdout", auto_augment="none"))
    assert (len(b.train), len(b.val), len(b.test)) == (6, 2, 2)
    with pytest.raises(ConfigError, match=r"data\.path: dataset folder not found"):
        build_data(DataConfig(name="imagenet", path=str(tmp_path / "missing")))
    with pytest.raises(ConfigError, match=r"data\.test_dir: test folder not found"):
        build_data(DataConfig(name="imagenet", path=str(tmp_path), test_dir="test"))


def test_an_image_folder_is_read_as_a_tree_not_a_graph(tmp_path: Path) -> None:
    """Links that loop (``train/cat/loop -> ..``), that name a class twice or alias an image of
    another class are left out with one warning: each image once, under its own class, and the
    hold-out is drawn from the same images (torchvision's walk followed ``loop`` ~40 levels deep)."""
    import os
    import pickle
    import warnings

    _image_folder(tmp_path, "train", 5)
    _image_folder(tmp_path, "val", 2)
    cfg = DataConfig(name="imagefolder", path=str(tmp_path), image_size=16, eval_resize=18, val_size=2)
    plain = build_data(cfg, seed=0)
    os.symlink("..", tmp_path / "train" / "cat" / "loop")
    os.symlink("../../train", tmp_path / "train" / "dog" / "up")
    os.symlink(".", tmp_path / "train" / "self")
    os.symlink("dog", tmp_path / "train" / "hound")
    os.symlink("../dog/0.png", tmp_path / "train" / "cat" / "alias.png")
    outside = tmp_path / "extra"
    outside.mkdir()
    Image.fromarray(np.zeros((20, 24, 3), dtype=np.uint8)).save(outside / "x.png")
    os.symlink(outside, tmp_path / "train" / "dog" / "more")  # a link out of the folder is read, once
    os.symlink(outside, tmp_path / "train" / "dog" / "again")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        b = build_data(cfg, seed=0)
    messages = [str(w.message) for w in caught if "left out" in str(w.message)]
    assert len(messages) == 1 and "left out 6 linked" in messages[0] and "cat/alias.png" in messages[0]
    base = b.train.base
    assert len(base) == 11 and base.classes == ["cat", "dog"]
    assert [Path(p).parent.name for p, y in base.samples if y == 0] == ["cat"] * 5
    assert sum(Path(p).name == "x.png" for p, _ in base.samples) == 1
    assert (len(b.train), len(b.val)) == (9, 2) and set(b.train.indices).isdisjoint(b.val.indices)
    again = pickle.loads(pickle.dumps(base))  # data-loader workers started by spawn unpickle it
    assert again.samples == base.samples and again.skipped == base.skipped
    assert [p for p, _ in base.samples if "extra" not in p and "more" not in p and "again" not in p] == \
        [p for p, _ in plain.train.base.samples]  # the paths and order of a plain folder are kept


def test_many_empty_classes_are_a_short_message_naming_those_with_images(tmp_path: Path) -> None:
    for c in range(40):
        (tmp_path / "train" / f"n{c:02d}").mkdir(parents=True)
    for c in (3, 17):
        Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(tmp_path / "train" / f"n{c:02d}" / "a.png")
    (tmp_path / "val").mkdir()
    with pytest.raises(ConfigError) as info:
        build_data(DataConfig(name="imagefolder", path=str(tmp_path)))
    message = str(info.value)
    assert "38 of 40 class folders" in message and "hold no images (n00, n01, n02, n04, n05 and 33 more)" in message
    assert "images only in 2: n03, n17" in message and len(message) < 300


def test_cifar_without_files_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"data\.path: CIFAR-10 files not found .*data\.download=true"):
        build_data(DataConfig(name="cifar10", path=str(tmp_path)))
    with pytest.raises(ConfigError, match="CIFAR-100"):
        build_data(DataConfig(name="cifar100", path=str(tmp_path)))
    assert not any(tmp_path.iterdir())  # nothing was downloaded


# --------------------------------------------------------------------------- data.on_device
def _grey_train(n: int = 96, size: int = 12, shift: int = 2, flip: bool = True, seed: int = 5) -> SeededTransformDataset:
    """A synthetic greyscale training set augmented as Fashion-MNIST's (shift, then flip)."""
    from attentivenas.data import Chain, GreyImages, RandomFlip

    gen = torch.Generator().manual_seed(0)
    images = torch.randint(1, 256, (n, size, size), dtype=torch.uint8, generator=gen)  # no pixel at the fill
    base = GreyImages(images, torch.arange(n) % 10, size, 0.25, 0.5)
    ops: list = [RandomShift(shift, fill=-0.5)] if shift else []
    ops += [RandomFlip()] if flip else []
    return SeededTransformDataset(base, None, Chain(ops), seed)


def _device_batches(dataset, batch: int = 16, seed: int = 1, epoch: int = 0, skip: int = 0, **kw):
    from attentivenas.data import epoch_batches

    cfg = DataConfig(name="digits", batch_size=batch, on_device=True)
    return list(epoch_batches(dataset, cfg, seed, epoch, kw.get("rank", 0), kw.get("world", 1), skip, "cpu"))


def test_on_device_batches_are_the_cpu_loaders_order_shapes_and_values_without_augmentation() -> None:
    plain = _grey_train(shift=0, flip=False)
    dev, cpu = _device_batches(plain), list(train_loader(plain, 16, seed=1, epoch=0))
    assert len(dev) == len(cpu) == 6
    for (x, y), (xc, yc) in zip(dev, cpu, strict=True):
        assert x.shape == xc.shape == (16, 3, 12, 12) and x.dtype == torch.float32 and y.dtype == torch.int64
        assert torch.equal(y, yc) and torch.equal(x, xc)  # bit-identical without augmentation
    digits = build_data(DataConfig(name="digits", image_size=32, train_size=300), seed=0)  # a Subset of tensors
    d, c = _device_batches(digits.train, 64), list(train_loader(digits.train, 64, seed=1, epoch=0))
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(d, c, strict=True))
    # sharded as the CPU loader: the two ranks' labels are those of its two shards
    r1 = _device_batches(plain, 8, rank=1, world=2)
    assert [torch.equal(a[1], b[1]) for a, b in zip(r1, train_loader(plain, 8, 1, 0, rank=1, world_size=2),
                                                       strict=True)] == [True] * 6


def _as_shift_and_flip(out: torch.Tensor, original: torch.Tensor, s: int, fill: float) -> tuple[int, int, bool] | None:
    """The (dy, dx, flipped) that turn ``original`` (C, H, W) into ``out`` (as RandomShift, then flip)."""
    h, w = original.shape[-2:]
    padded = torch.nn.functional.pad(original, (s, s, s, s), value=fill)
    for dy in range(-s, s + 1):
        for dx in range(-s, s + 1):
            shifted = padded[..., s + dy:s + dy + h, s + dx:s + dx + w]
            for flipped in (False, True):
                if torch.equal(shifted.flip(-1) if flipped else shifted, out):
                    return dy, dx, flipped
    return None


def test_on_device_augmentation_is_a_bounded_shift_and_flip_seeded_per_sample_and_epoch() -> None:
    train = _grey_train(n=400, shift=2)
    plain = _grey_train(n=400, shift=0, flip=False)
    positions = [int(i) for i in torch.utils.data.DistributedSampler(range(400), 1, 0, seed=1)]  # type: ignore[arg-type]
    first = _device_batches(train, 40)
    assert first[0][0].shape == (40, 3, 12, 12)
    seen = []
    for b, (x, y) in enumerate(first):
        for j in range(len(y)):
            item = positions[b * 40 + j]
            found = _as_shift_and_flip(x[j], plain[item][0], 2, -0.5)
            assert found is not None, f"sample {item} is not a shift by <= 2 pixels (fill -0.5), maybe flipped"
            seen.append(found)
    assert {(dy, dx) for dy, dx, _ in seen} == {(a, b) for a in range(-2, 3) for b in range(-2, 3)}  # all 25
    assert 0.35 < np.mean([f for _, _, f in seen]) < 0.65
    # deterministic for a seed; another epoch or seed augments differently; the order is the CPU loader's
    again = _device_batches(train, 40)
    assert all(torch.equal(a[0], b[0]) for a, b in zip(first, again, strict=True))
    assert not torch.equal(first[0][0], _device_batches(train, 40, epoch=1)[0][0])
    other_seed = _SeededCopy(train, seed=6)
    assert not torch.equal(first[0][0], _device_batches(other_seed, 40)[0][0])
    assert all(torch.equal(a[1], b[1]) for a, b in zip(first, train_loader(train, 40, 1, 0), strict=True))


def _SeededCopy(dataset: SeededTransformDataset, seed: int) -> SeededTransformDataset:
    return SeededTransformDataset(dataset.base, dataset.indices, dataset.transform, seed)


def test_on_device_resume_mid_epoch_gives_the_same_remaining_batches() -> None:
    train = _grey_train(n=160, shift=2)
    state = torch.get_rng_state()
    whole = _device_batches(train, 16, epoch=3)
    tail = _device_batches(train, 16, epoch=3, skip=4)
    assert torch.equal(state, torch.get_rng_state())  # the global generator is left alone
    assert len(whole) == 10 and len(tail) == 6
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(whole[4:], tail, strict=True))


def test_on_device_setting_auto_true_and_unsupported_data() -> None:
    from attentivenas.data import DeviceTrainLoader, epoch_batches, supports_device

    train = _grey_train()
    auto = DataConfig(name="digits", batch_size=16)
    assert auto.on_device == "auto"
    assert not isinstance(epoch_batches(train, auto, 0, 0, 0, 1, 0, "cpu"), DeviceTrainLoader)  # auto: CPU loader
    assert isinstance(epoch_batches(train, auto.model_copy(update={"on_device": True}), 0, 0, 0, 1, 0, "cpu"),
                      DeviceTrainLoader)
    epoch_batches(train, auto.model_copy(update={"on_device": True}), 0, 2, 0, 1, 0, "cpu")
    assert train.epoch == 2  # set as the CPU loader sets it (BN calibration draws from the same data set)
    odd = SeededTransformDataset(train.base, None, lambda x: x, 0)  # an op the device path does not know
    assert not supports_device(odd)
    with pytest.raises(ConfigError, match=r"data\.on_device=true needs an in-memory tensor data set"):
        epoch_batches(odd, auto.model_copy(update={"on_device": True}), 0, 0, 0, 1, 0, "cpu")
    with pytest.raises(ValueError, match=r"data\.on_device=true needs an in-memory data set"):
        DataConfig(name="imagefolder", path="/x", on_device=True)
