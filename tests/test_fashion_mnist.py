"""Fashion-MNIST from its IDX files (Debian's dataset-fashion-mnist), train_size subsets, IDX safety."""

from __future__ import annotations

import gzip
import os
import shutil
import struct
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch

from attentivenas.config import DataConfig, parse_config
from attentivenas.data import FASHION_MNIST_DIR, build_data, labels_of, read_idx
from attentivenas.errors import ConfigError

FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
         "t10k-labels-idx1-ubyte.gz")
HAVE_PACKAGE = all((Path(FASHION_MNIST_DIR) / f).is_file() for f in FILES)
#: CI runs as root with apt-get, and `make test` installs the package there: it must not skip
MUST_HAVE = os.environ.get("CI") == "true" and hasattr(os, "geteuid") and os.geteuid() == 0 and bool(
    shutil.which("apt-get"))
needs_package = pytest.mark.skipif(
    not HAVE_PACKAGE and not MUST_HAVE, reason=f"Fashion-MNIST is not in {FASHION_MNIST_DIR}: `make test` installs the Debian package "
    "dataset-fashion-mnist where it runs as root with apt-get; elsewhere run `apt-get install dataset-fashion-mnist`")


def _idx(path: Path, array: np.ndarray, gz: bool = True) -> None:
    body = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    data = body + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(data) if gz else data)


def _fake(root: Path, train: int = 40, test: int = 20, gz: bool = True) -> Path:
    rng = np.random.default_rng(0)
    suffix = ".gz" if gz else ""
    for part, n in (("train", train), ("t10k", test)):
        _idx(root / f"{part}-images-idx3-ubyte{suffix}", rng.integers(0, 255, (n, 28, 28)), gz)
        _idx(root / f"{part}-labels-idx1-ubyte{suffix}", np.arange(n) % 10, gz)
    return root


def test_a_fake_fashion_mnist_folder_builds_with_a_stratified_holdout(tmp_path: Path) -> None:
    b = build_data(DataConfig(name="fashion_mnist", path=str(_fake(tmp_path)), val_fraction=0.25, random_shift=1))
    assert (len(b.train), len(b.val), len(b.test), b.num_classes, b.image_size) == (30, 10, 20, 10, 28)
    assert np.bincount(labels_of(b.val)).tolist() == [1] * 10  # every class keeps its share
    x, y = b.train[0]
    assert x.shape == (3, 28, 28) and x.dtype == torch.float32 and 0 <= y < 10
    assert torch.equal(b.train[0][0], x)  # augmentation seeded per sample
    assert b.holdout["held_out"] == 10 and b.holdout["pool"] == 40
    (tmp_path / "raw").mkdir()
    raw = build_data(DataConfig(name="fashion_mnist", path=str(_fake(tmp_path / "raw", gz=False)), image_size=32))
    assert raw.test[0][0].shape == (3, 32, 32)


def test_train_size_is_a_seeded_stratified_subset(tmp_path: Path) -> None:
    cfg = DataConfig(name="fashion_mnist", path=str(_fake(tmp_path, train=200)), train_size=50)
    a, b = build_data(cfg), build_data(cfg)
    assert len(a.train) == 50 and np.bincount(labels_of(a.train)).tolist() == [5] * 10
    assert [a.train[i][1] for i in range(50)] == [b.train[i][1] for i in range(50)]
    assert a.holdout["train_size"] == 50
    digits = build_data(DataConfig(name="digits", image_size=16, train_size=100))
    assert len(digits.train) == 100 and len(set(labels_of(digits.train).tolist())) == 10


def test_a_missing_folder_names_the_package(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="apt-get install dataset-fashion-mnist"):
        build_data(DataConfig(name="fashion_mnist", path=str(tmp_path)))


@pytest.mark.parametrize(("train", "test", "part"), [(0, 20, "train"), (40, 0, "test")])
def test_files_of_no_images_are_named_not_held_out_1_of_0(tmp_path: Path, train: int, test: int, part: str) -> None:
    with pytest.raises(ConfigError, match=rf"the Fashion-MNIST {part} files in .* hold 0 images") as info:
        build_data(DataConfig(name="fashion_mnist", path=str(_fake(tmp_path, train=train, test=test))))
    assert "of 0" not in str(info.value)


def test_a_training_set_of_no_images_is_named() -> None:
    from attentivenas.data import holdout_count

    with pytest.raises(ConfigError, match="training data holds no images") as info:
        holdout_count(DataConfig(name="cifar10", path="x"), 0)
    assert "1 of 0" not in str(info.value)


def test_hostile_idx_files_are_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "x.gz"
    bad.write_bytes(gzip.compress(b"\x00\x00\x08\x03" + struct.pack(">3I", 5, 28, 28) + b"\x00" * 10))
    with pytest.raises(ConfigError, match="holds 10 bytes of values; its header announces 3920"):
        read_idx(bad, 3)
    huge = tmp_path / "huge"
    huge.write_bytes(b"\x00\x00\x08\x03" + struct.pack(">3I", 5, 99999, 28))
    with pytest.raises(ConfigError, match="implausible dimensions"):
        read_idx(huge, 3)
    wrong = tmp_path / "wrong"
    wrong.write_bytes(b"\x00\x00\x0d\x01" + struct.pack(">I", 1) + b"\x00" * 4)  # floats
    with pytest.raises(ConfigError, match="not an IDX file of unsigned bytes with 1 dimension"):
        read_idx(wrong, 1)
    torn = tmp_path / "torn.gz"
    torn.write_bytes(gzip.compress(b"\x00\x00\x08\x01" + struct.pack(">I", 4) + b"\x01" * 4)[:-6])
    with pytest.raises(ConfigError, match="cannot be read"):
        read_idx(torn, 1)


@pytest.mark.parametrize("gz", [False, True])
def test_an_idx_header_claiming_more_than_the_file_holds_allocates_nothing_that_size(tmp_path: Path, gz: bool) -> None:
    """A small file announcing 100,000 x 28 x 28 = 78 MB is refused before that much is allocated
    (a raw file by its size on disk, a gzip one by decompressing at most the announced size + 1)."""
    lie = tmp_path / ("lie.gz" if gz else "lie")
    data = b"\x00\x00\x08\x03" + struct.pack(">3I", 100_000, 28, 28) + b"\x07" * 4000
    lie.write_bytes(gzip.compress(data) if gz else data)
    tracemalloc.start()
    try:
        with pytest.raises(ConfigError, match=f"{lie}.* holds 4000 bytes of values; its header announces 78400000$"):
            read_idx(lie, 3)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20, f"reading a 4 KB file peaked at {peak} bytes"


def test_a_crafted_idx_header_of_1e14_bytes_is_one_line(tmp_path: Path) -> None:
    crafted = tmp_path / "crafted"  # 10^7 x 4096 x 4096: every dimension within its bound
    crafted.write_bytes(b"\x00\x00\x08\x03" + struct.pack(">3I", 10_000_000, 4096, 4096) + b"\x00" * 16)
    with pytest.raises(ConfigError, match=f"{crafted} holds 16 bytes of values; its header announces 167772160000000"):
        read_idx(crafted, 3)
    longer = tmp_path / "longer.gz"  # a gzip body longer than announced: no more than count + 1 bytes read
    longer.write_bytes(gzip.compress(b"\x00\x00\x08\x01" + struct.pack(">I", 4) + b"\x01" * 10_000))
    with pytest.raises(ConfigError, match="holds 4\\+ bytes of values; its header announces 4"):
        read_idx(longer, 1)
    raw = tmp_path / "raw"  # the exact size still reads
    raw.write_bytes(b"\x00\x00\x08\x01" + struct.pack(">I", 3) + b"\x01\x02\x03")
    assert read_idx(raw, 1).tolist() == [1, 2, 3]


def test_the_config_defaults_to_the_debian_folder_and_28_pixels() -> None:
    c = parse_config({"data": {"name": "fashion_mnist"}})
    assert c.data.path is None and c.data.image_size == 28
    assert parse_config({"data": {"name": "fashion_mnist", "image_size": 32}}).data.image_size == 32


@needs_package
def test_the_debian_package_reads_as_published() -> None:
    b = build_data(DataConfig(name="fashion_mnist"))
    assert (len(b.train), len(b.val), len(b.test)) == (54000, 6000, 10000)
    assert np.bincount(labels_of(b.test)).tolist() == [1000] * 10
    x, _ = b.test[0]
    assert x.shape == (3, 28, 28) and abs(float(x.mean())) < 2.0
