"""Images of more frames in a folder: an animated GIF, PNG or WebP gives the frame a viewer shows
first, Pillow's own frame (an APNG with a hidden default image: its first animation frame, Pillow's
frame 1, never the default image), and the notes count the images read by one frame of several."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, features

from vaekit import cli
from vaekit.data.folder import ImageOptions, read_folder

pytestmark = pytest.mark.usefixtures("places")  # HOME (and so the cache) under tmp_path


def grey(v: int) -> Image.Image:
    return Image.fromarray(np.full((6, 6), v, np.uint8), "L")


def animated(path: Path, values: tuple[int, ...], **options: Any) -> None:
    first, *more = (grey(v) for v in values)
    first.save(path, save_all=True, append_images=more, **options)


def stills(root: Path, start: int) -> list[np.ndarray]:
    """Still PNGs START..9 under root (a folder needs 10 images), as Pillow reads them."""
    for i in range(start, 10):
        grey(20 * i).save(root / f"{i}.png")
    return [pillows_frame(root / f"{i}.png", 0) for i in range(start, 10)]


def pillows_frame(path: Path, frame: int) -> np.ndarray:
    """Pillow's own frame `frame` of the file, as grey (1, H, W)."""
    with Image.open(path) as im:
        im.seek(frame)
        return np.asarray(im.convert("L"))[None]


def test_an_apngs_hidden_default_image_is_not_read(tmp_path: Path) -> None:
    root = tmp_path / "a"
    root.mkdir()
    animated(root / "0.png", (10, 200, 90), default_image=True)  # 10: the hidden default image
    animated(root / "1.png", (30, 120))  # 30: its first animation frame
    want = [pillows_frame(root / "0.png", 1), pillows_frame(root / "1.png", 0), *stills(root, 2)]
    got = read_folder(root, progress=False)
    assert np.array_equal(got.images, np.stack(want))
    assert int(got.images[0].max()) == 200  # the first animation frame, not the default image's 10
    note = got.notes["frames"]
    assert "first frame of 2 images" in note and "1 APNGs" in note and "not the default image" in note
    again = read_folder(root, progress=False)  # from the cache: the same pixels and words
    assert again.from_cache and np.array_equal(again.images, got.images) and again.notes["frames"] == note


@pytest.mark.parametrize("ext", [".gif", ".webp"])
def test_an_animated_gif_or_webp_is_counted_by_its_first_frame(tmp_path: Path, ext: str) -> None:
    if ext == ".webp" and not features.check("webp"):
        pytest.skip("this Pillow has no WebP")
    root = tmp_path / "g"
    root.mkdir()
    for i in range(3):
        animated(root / f"{i}{ext}", (10 * i + 5, 250 - 10 * i), lossless=True)
    want = [pillows_frame(root / f"{i}{ext}", 0) for i in range(3)] + stills(root, 3)
    got = read_folder(root, ImageOptions(channels=1), progress=False, cache=False)  # grey: Pillow's L
    assert np.array_equal(got.images, np.stack(want))
    assert got.notes["frames"] == "read only the first frame of 3 images of more frames"


def test_still_images_have_no_frames_note(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "s"
    root.mkdir()
    stills(root, 0)
    for i in range(3):
        grey(i).save(root / f"{i}.gif")
    assert "frames" not in read_folder(root, progress=False, cache=False).notes
    animated(root / "9.png", (1, 2), default_image=True)
    assert cli.main(["data", "info", str(root), "--json"]) == 0
    assert "not the default image" in json.loads(capsys.readouterr().out)["notes"]["frames"]
