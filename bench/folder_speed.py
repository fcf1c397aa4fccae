"""A folder of many small images through `vaekit.data.folder` (a user's own images): seconds to decode it
the first time, seconds to load it from the cache the second time, and the memory the decode used
against the final uint8 array.

The folder is written first (not timed): N PNG files of Fashion-MNIST's training images (cycled;
random images if the dataset is not on this machine) in torchvision's ImageFolder layout, one
sub-folder per class. Then, in this process:

  decode   `read_folder(..., cache=True)` on a cold cache: every file opened, decoded into the
           one preallocated array, the array written to the cache
  cache    `read_folder` again: the key checked (a stat per file), the array read back
  memory   tracemalloc's peak during the decode (numpy's allocations are traced) against the
           bytes of the final array: the law is "never more than the final array plus one image"

Target: the second run starts in about a second (at 60,000 images); peak / array <= 1.05.
Run: .venv/bin/python bench/folder_speed.py [--images 100000] [--dir DIR] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from vaekit.data.folder import ImageOptions, read_folder


def source_images(n: int) -> tuple[np.ndarray, np.ndarray, str]:
    """(n, 28, 28) uint8 images and their labels: Fashion-MNIST's training set, cycled, else random."""
    from vaekit.data.load import load_dataset
    from vaekit.errors import DataError

    try:
        ds = load_dataset("fashion-mnist", download=False)
        images, labels = ds.train.images[:, 0].numpy(), ds.train.labels.numpy()  # type: ignore[union-attr]
        what = "Fashion-MNIST training images"
    except DataError:
        rng = np.random.default_rng(0)
        images = rng.integers(0, 256, (10_000, 28, 28), dtype=np.uint8)
        labels, what = np.arange(10_000) % 10, "random 28x28 images"
    index = np.arange(n) % images.shape[0]
    return images[index], labels[index], what


def write_folder(root: Path, n: int) -> str:
    images, labels, what = source_images(n)
    for c in range(10):
        (root / f"class{c}").mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.fromarray(images[i]).save(root / f"class{labels[i]}" / f"{i:06d}.png", compress_level=1)
    return what


def measure(root: Path) -> dict[str, Any]:
    options = ImageOptions()
    tracemalloc.start()
    t0 = time.perf_counter()
    first = read_folder(root, options, progress=False)
    decode = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    t0 = time.perf_counter()
    second = read_folder(root, options, progress=False)
    cached = time.perf_counter() - t0
    assert second.from_cache and not first.from_cache
    assert np.array_equal(first.images, second.images)
    return {"images": int(first.images.shape[0]), "decode_seconds": round(decode, 2),
            "cache_seconds": round(cached, 3), "speedup": round(decode / cached, 1),
            "array_mb": round(first.images.nbytes / 2**20, 1), "peak_traced_mb": round(peak / 2**20, 1),
            "peak_over_array": round(peak / first.images.nbytes, 3)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=100_000, help="files in the folder (default: 100000)")
    p.add_argument("--dir", help="where to write the folder (default: a temporary directory)")
    p.add_argument("--json", action="store_true", help="print the row as JSON")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.dir) if args.dir else Path(tmp) / "images"
        os.environ["HOME"] = tmp  # a cold cache of our own: ~/.cache/vaekit/folders under tmp
        t0 = time.perf_counter()
        what = write_folder(root, args.images)
        row = {"source": what, "write_seconds": round(time.perf_counter() - t0, 1), **measure(root),
               "load_average": os.getloadavg()[0]}
    if args.json:
        print(json.dumps(row))
        return
    print(f"{row['images']:,} PNG files ({what}), written in {row['write_seconds']} s")
    print(f"decode (cold cache)  {row['decode_seconds']:8.2f} s")
    print(f"cache (second run)   {row['cache_seconds']:8.3f} s   ({row['speedup']}x faster)")
    print(f"memory               peak {row['peak_traced_mb']} MiB traced for an array of {row['array_mb']} "
          f"MiB ({row['peak_over_array']}x)")
    print(f"load average {row['load_average']:.2f}")


if __name__ == "__main__":
    main()
