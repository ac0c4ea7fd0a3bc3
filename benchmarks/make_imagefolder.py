"""Fashion-MNIST written as an ImageFolder of 28x28 PNGs (issue 38's user case), for end-to-end runs.

    python benchmarks/make_imagefolder.py --out /tmp/fm-folder [--train 3000] [--val 1000] [--seed 0]

writes ``OUT/train/<class>/<n>.png`` (a seeded, class-balanced draw of ``--train`` images from the
60,000 training images) and ``OUT/val/<class>/<n>.png`` (a seeded, class-balanced draw of ``--val``
of the 10,000 test images), greyscale PNGs at the images' own 28x28. The IDX files are those of
Debian's ``dataset-fashion-mnist`` package (``--idx`` to read another folder). An existing ``OUT``
holding other files is refused.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

#: Fashion-MNIST's class names, prefixed with their label so that folders sort as the labels
CLASSES = ("0-tshirt", "1-trouser", "2-pullover", "3-dress", "4-coat", "5-sandal", "6-shirt", "7-sneaker",
           "8-bag", "9-boot")


def balanced_draw(labels: np.ndarray, total: int, seed: int) -> np.ndarray:
    """Sorted positions of ``total`` images, ``total // classes`` per class (the first classes get one
    more when it does not divide), drawn with ``seed``."""
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    per, extra = divmod(total, len(classes))
    keep = []
    for i, c in enumerate(classes):
        pool = np.flatnonzero(labels == c)
        keep.append(rng.choice(pool, size=per + (1 if i < extra else 0), replace=False))
    return np.sort(np.concatenate(keep))


def write_split(images: np.ndarray, labels: np.ndarray, keep: np.ndarray, folder: Path) -> dict[str, int]:
    """Write ``images[keep]`` as ``folder/<class>/<position>.png``; the count per class."""
    from PIL import Image  # heavy: PIL only when writing

    counts: dict[str, int] = {}
    for i in keep:
        name = CLASSES[int(labels[i])]
        (folder / name).mkdir(parents=True, exist_ok=True)
        Image.fromarray(images[i], mode="L").save(folder / name / f"{int(i):05d}.png")
        counts[name] = counts.get(name, 0) + 1
    return counts


def make_fashion_folder(out: Path, n_train: int = 3000, n_val: int = 1000, seed: int = 0,
                        idx_dir: str | Path = "/usr/share/datasets/fashion-mnist") -> dict[str, object]:
    """Write the folder (see the module doc); a summary of what was written."""
    from attentivenas.data import fashion_mnist_files, read_idx

    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise SystemExit(f"{out} exists and is not empty; remove it or choose another --out")
    files = fashion_mnist_files(Path(idx_dir))
    arrays = {k: read_idx(p, 3 if k.endswith("images") else 1, "Fashion-MNIST file") for k, p in files.items()}
    train_keep = balanced_draw(arrays["train_labels"], n_train, seed)
    val_keep = balanced_draw(arrays["test_labels"], n_val, seed + 1)
    summary = {
        "source": str(idx_dir), "seed": seed,
        "train": write_split(arrays["train_images"], arrays["train_labels"], train_keep, out / "train"),
        "val": write_split(arrays["test_images"], arrays["test_labels"], val_keep, out / "val"),
    }
    return summary


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--train", type=int, default=3000, help="training images (class-balanced)")
    ap.add_argument("--val", type=int, default=1000, help="val/ images, from the test set (class-balanced)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--idx", default="/usr/share/datasets/fashion-mnist", help="folder of the four IDX files")
    args = ap.parse_args(argv)
    summary = make_fashion_folder(args.out, args.train, args.val, args.seed, args.idx)
    json.dump(summary, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
