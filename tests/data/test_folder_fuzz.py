"""A folder of images against random hostile content: mixes of good PNG files, cut files, empty
files, text named .png, good images under another extension, links to nothing, link loops, links
to /dev/zero, FIFOs, headers of 10,000 x 10,000 pixels, at the top or in nested folders. Reading it
either gives a dataset of exactly the good images (with --skip-bad: the others counted in its
note) or raises one of vaekit's one-line errors; never another exception, never a hang.

Derandomized and bounded for CI (60 examples, a few seconds); HYPOTHESIS_PROFILE=explore searches
with fresh examples, ten times as many.
"""

from __future__ import annotations

import io
import os
import shutil
import struct
import tempfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from PIL import Image

from vaekit.data.image_decode import ImageOptions
from vaekit.data.image_files import MIN_IMAGES
from vaekit.data.load import load_dataset
from vaekit.errors import VaekitError

pytestmark = pytest.mark.usefixtures("places")  # HOME (and so the cache) under tmp_path

EXPLORE = os.environ.get("HYPOTHESIS_PROFILE", "vaekit") != "vaekit"
FUZZ = settings(max_examples=600 if EXPLORE else 60, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def _png(seed: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (5, 5), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


GOOD = [_png(seed) for seed in range(4)]
# a PNG whose header says 10,000 x 10,000 grey pixels (PNG specification: IHDR), then one row
BOMB = (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", 10_000, 10_000, 8, 0, 0, 0, 0))
        + _chunk(b"IDAT", zlib.compress(b"\0" * 10_001)) + _chunk(b"IEND", b""))

# kind -> (how it is made at PATH, whether it is a good image, whether it is a bad one)
KINDS: dict[str, tuple[Callable[[Path, int], None], bool, bool]] = {
    "good": (lambda p, i: p.write_bytes(GOOD[i % len(GOOD)]), True, False),
    "cut": (lambda p, i: p.write_bytes(GOOD[i % len(GOOD)][:-30]), False, True),
    "empty": (lambda p, i: p.write_bytes(b""), False, True),
    "text": (lambda p, i: p.write_text("not an image"), False, True),
    "bomb": (lambda p, i: p.write_bytes(BOMB), False, True),
    "dangling": (lambda p, i: p.symlink_to(p.parent / f"absent{i}.png"), False, True),
    "loop": (lambda p, i: p.symlink_to(p.name), False, True),
    "zero": (lambda p, i: p.symlink_to("/dev/zero"), False, True),
    "fifo": (lambda p, i: os.mkfifo(p), False, True),
}
OTHER_NAMES = {"good": ".txt", "fifo": "", "zero": ".bin"}  # ignored files: not counted at all

FOLDERS = st.sampled_from(["", "a/", "a/b/", "c/"])
good_entry = st.tuples(st.just("good"), FOLDERS, st.just(True))
entry = st.tuples(st.sampled_from(sorted(KINDS)),  # kind
                  FOLDERS,
                  st.booleans())  # named as an image (else OTHER_NAMES, where the kind has one)
# around MIN_IMAGES good images (so that both outcomes come up), then anything, shuffled
entries = st.tuples(st.lists(good_entry, min_size=9, max_size=16), st.lists(entry, max_size=12)).flatmap(
    lambda parts: st.permutations(parts[0] + parts[1]))


def build(root: Path, entries: list[tuple[str, str, bool]]) -> tuple[int, int]:
    """Write `entries` under `root`; (good images, bad files) among the names read as images."""
    good = bad = 0
    for i, (kind, where, as_image) in enumerate(entries):
        folder = root / where
        folder.mkdir(parents=True, exist_ok=True)
        make, is_good, is_bad = KINDS[kind]
        named_image = as_image or kind not in OTHER_NAMES
        path = folder / f"{i:03d}{'.png' if named_image else OTHER_NAMES[kind]}"
        make(path, i)
        if named_image or kind in ("dangling", "loop"):  # a link to nothing is refused by any name
            good += is_good and named_image
            bad += is_bad
    return good, bad


def one_line(err: BaseException) -> None:
    message = str(err)
    assert isinstance(err, VaekitError), repr(err)
    assert message and "\n" not in message and message.endswith("."), message


@FUZZ
@given(entries=entries, skip_bad=st.sampled_from([True, True, False]),
       resize=st.booleans())
def test_a_hostile_folder_gives_its_good_images_or_one_sentence(
        deadline: Callable[[float], Any], entries: list[tuple[str, str, bool]], skip_bad: bool,
        resize: bool) -> None:
    root = Path(tempfile.mkdtemp(prefix="vaekit-fuzz-")) / "images"
    root.mkdir()
    try:
        good, bad = build(root, entries)
        options = ImageOptions(size=(4, 4) if resize else None, skip_bad=skip_bad)
        with deadline(20):
            try:
                ds = load_dataset(str(root), images=options, progress=False)
            except VaekitError as err:
                event(f"refused: {str(err).split(':')[1][:24]}")
                one_line(err)
                assert good < MIN_IMAGES or (bad and not skip_bad) or "class folder" in str(err), str(err)
                return
        event(f"read, {'some' if bad else 'no'} files skipped")
        assert good >= MIN_IMAGES and (skip_bad or not bad)
        assert len(ds.train) + len(ds.val) + len(ds.test) == good
        if bad:
            files = f"{bad} unreadable file{'' if bad == 1 else 's'} ("
            assert ds.notes["skipped"].startswith(files), ds.notes
        else:
            assert "skipped" not in ds.notes
    finally:
        shutil.rmtree(root.parent)
