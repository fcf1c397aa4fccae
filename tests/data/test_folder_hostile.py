"""A folder of images against hostile input: images whose header claims billions of pixels
(refused from the header, before anything is decoded, and without Pillow's own warning), files
that are no regular file (a link to nothing, a link loop, a FIFO that would block whoever opens
it, a link to /dev/zero that would never end), and a ~/.cache that is a file. Each is one sentence
naming it, or with --skip-bad skipped and counted in the folder's note; the images themselves are
held against the PNG files written here."""

from __future__ import annotations

import os
import struct
import warnings
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from vaekit import cli
from vaekit.data.folder import ImageOptions, read_folder
from vaekit.data.image_decode import MAX_IMAGE_PIXELS, read_header
from vaekit.data.image_files import FolderFile
from vaekit.errors import DataError

pytestmark = pytest.mark.usefixtures("places")  # HOME (and so the cache) under tmp_path

N_GOOD = 12


def good_folder(root: Path) -> np.ndarray:
    """N_GOOD grey 5x5 PNG files 000.png ... in `root`; their pixels (N, 5, 5)."""
    root.mkdir(parents=True)
    images = np.random.default_rng(0).integers(0, 256, (N_GOOD, 5, 5), dtype=np.uint8)
    for i, image in enumerate(images):
        Image.fromarray(image).save(root / f"{i:03d}.png")
    return images


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_header_only(path: Path, width: int, height: int) -> None:
    """A PNG file whose header says width x height grey pixels, followed by one row of them: a
    few hundred bytes whatever the size (PNG specification, IHDR: width, height, bit depth 8,
    colour type 0, compression, filter, interlace 0)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    row = zlib.compress(b"\0" * (width + 1))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", row)
                     + png_chunk(b"IEND", b""))


def refused_and_skipped(root: Path, named: Path, checks: tuple[Callable[..., Any], ...],
                        *words: str) -> dict[str, str]:
    """`root` is refused naming `named` (library and CLI, no warning escaping), and with skip_bad
    reads the N_GOOD good images, the note counting one skipped file; that note. `checks`: the
    fixtures one_sentence, cli_error and deadline."""
    one_sentence, cli_error, deadline = checks
    with deadline(20), warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(DataError) as info:
            read_folder(root, progress=False)
        one_sentence(str(info.value), named, *words)
        cli_error(cli.main(["data", "info", str(root)]), named)
        got = read_folder(root, ImageOptions(skip_bad=True), progress=False)
    assert got.images.shape == (N_GOOD, 1, 5, 5)
    assert got.notes["skipped"].startswith("1 unreadable file ("), got.notes
    assert named.name in got.notes["skipped"]
    return got.notes


# ----------------------------------------------------------------------------- image bombs


@pytest.mark.parametrize("side", [10_000, 15_000])  # above Pillow's warning, above its error
def test_an_image_bomb_is_refused_from_its_header(tmp_path: Path, side: int,
                                                  one_sentence: Callable[..., None],
                                                  cli_error: Callable[..., str],
                                                  deadline: Callable[[float], Any]) -> None:
    root = tmp_path / "bombs"
    good_folder(root)
    bomb = root / "bomb.png"
    png_header_only(bomb, side, side)
    assert bomb.stat().st_size < 200_000
    notes = refused_and_skipped(root, bomb, (one_sentence, cli_error, deadline),
                                f"{MAX_IMAGE_PIXELS:,}")
    assert f"1 over {MAX_IMAGE_PIXELS:,} pixels" in notes["skipped"]


def test_a_real_image_bomb_prints_no_pillow_warning(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """A complete 10,000 x 10,000 PNG of one colour (100 KB): refused before it is decoded."""
    root = tmp_path / "bomb"
    good_folder(root)
    Image.new("L", (10_000, 10_000)).save(root / "big.png")
    assert cli.main(["data", "info", str(root)]) == 2
    err = capsys.readouterr().err
    assert "DecompressionBomb" not in err and "Traceback" not in err
    assert f"{MAX_IMAGE_PIXELS:,}" in err and "big.png" in err


def test_the_cap_itself_is_read(tmp_path: Path) -> None:
    """An image of exactly MAX_IMAGE_PIXELS pixels passes the header check, one more row does not."""
    side = 8192
    assert side * side == MAX_IMAGE_PIXELS
    for height, refused in ((side, False), (side + 1, True)):
        path = tmp_path / f"{height}.png"
        png_header_only(path, side, height)
        f = FolderFile(str(path), path.name, -1)
        problem = read_header(f)
        assert f.shape == (height, side) and (problem is not None) == refused
        if problem is not None:
            assert f"{side}x{height} pixels" in problem.sentence


# ----------------------------------------------------------------------------- special files


SPECIAL: dict[str, Callable[[Path], None]] = {
    "dangling link": lambda p: p.symlink_to(p.parent / "nowhere.png"),
    "link loop": lambda p: p.symlink_to(p.name),
    "FIFO": lambda p: os.mkfifo(p),
    "link to /dev/zero": lambda p: p.symlink_to("/dev/zero"),
}


@pytest.mark.parametrize("case", list(SPECIAL))
def test_a_special_file_named_as_an_image_is_refused_or_skipped_and_counted(
        tmp_path: Path, case: str, one_sentence: Callable[..., None], cli_error: Callable[..., str],
        deadline: Callable[[float], Any]) -> None:
    root = tmp_path / "special"
    good_folder(root)
    special = root / "050.png"
    SPECIAL[case](special)
    refused_and_skipped(root, special, (one_sentence, cli_error, deadline))


@pytest.mark.parametrize("case", ["dangling link", "link loop"])
def test_a_link_that_leads_nowhere_may_be_a_missing_folder(
        tmp_path: Path, case: str, one_sentence: Callable[..., None], cli_error: Callable[..., str],
        deadline: Callable[[float], Any]) -> None:
    """A link without an image's extension that cannot be followed could be a folder of images
    that is gone: refused (or skipped and counted), not silently left out."""
    root = tmp_path / "links"
    good_folder(root)
    link = root / "more"
    SPECIAL[case](link)
    refused_and_skipped(root, link, (one_sentence, cli_error, deadline))


def test_a_fifo_or_device_with_another_name_is_ignored_like_any_other_file(
        tmp_path: Path, deadline: Callable[[float], Any]) -> None:
    root = tmp_path / "others"
    good_folder(root)
    os.mkfifo(root / "pipe")
    (root / "zero.bin").symlink_to("/dev/zero")
    with deadline(20):
        got = read_folder(root, progress=False)
    assert got.images.shape == (N_GOOD, 1, 5, 5) and "skipped" not in got.notes


def test_a_link_loop_of_folders_is_read_once(tmp_path: Path) -> None:
    """A link back up the tree is followed at most once (the images are not read twice)."""
    root = tmp_path / "tree"
    good_folder(root / "a")
    (root / "a" / "up").symlink_to("..")
    got = read_folder(root, progress=False)
    assert got.images.shape[0] == N_GOOD


def test_a_link_beside_a_class_folder_to_it_is_a_class_of_its_own(tmp_path: Path) -> None:
    """A folder reached by two paths (the real one and a link beside it) is read under each, as
    a link to a file is: neither is dropped, whichever sorts first."""
    root = tmp_path / "classes"
    images = good_folder(root / "z")
    os.symlink(root / "z", root / "a")  # sorts before the real folder
    got = read_folder(root, progress=False)
    assert got.classes == ("a", "z")
    assert got.labels is not None
    for label in (0, 1):
        assert np.array_equal(got.images[got.labels == label][:, 0], images)


def test_a_link_to_a_file_and_to_a_folder_are_both_read_twice(tmp_path: Path) -> None:
    root = tmp_path / "flat"
    images = good_folder(root / "sub")
    os.symlink(root / "sub" / "000.png", root / "sub" / "link.png")
    os.symlink(root / "sub", root / "again")
    got = read_folder(root, progress=False)  # again/ and sub/ both hold 000.png and link.png
    assert got.classes == ("again", "sub") and got.images.shape[0] == 2 * (N_GOOD + 1)
    assert sum(np.array_equal(got.images[i, 0], images[0]) for i in range(len(got.images))) == 4


def test_a_deep_link_up_the_tree_beside_a_sibling_link_ends(
        tmp_path: Path, deadline: Callable[[float], Any]) -> None:
    """Links to every folder above (the top, a parent) end the walk there, and are not counted;
    a sibling link to a folder that holds such a loop is read once more, and ends too."""
    root = tmp_path / "loops"
    images = good_folder(root / "a" / "b")
    os.symlink(root, root / "a" / "b" / "top")
    os.symlink(root / "a", root / "a" / "b" / "parent")
    os.symlink("..", root / "a" / "b" / "up")
    os.symlink(root / "a", root / "c")
    with deadline(20):
        got = read_folder(root, progress=False)
    assert got.images.shape[0] == 2 * N_GOOD  # a/b/*.png and c/b/*.png
    assert np.array_equal(got.images[:N_GOOD, 0], images)
    assert np.array_equal(got.images[N_GOOD:, 0], images)


# ----------------------------------------------------------------------------- the cache


def test_a_cache_that_is_a_file_reads_the_folder_uncached(tmp_path: Path, places: object,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    home = Path(os.environ["HOME"])
    (home / ".cache").write_text("not a folder")
    root = tmp_path / "uncached"
    images = good_folder(root)
    got = read_folder(root, progress=False)
    assert np.array_equal(got.images[:, 0], images)
    assert got.cache_path is None and got.notes["cache"].startswith("not cached")
    assert str(home / ".cache") in got.notes["cache"]
    assert cli.main(["data", "info", str(root)]) == 0
    assert "not cached" in capsys.readouterr().out
    assert (home / ".cache").read_text() == "not a folder"  # nothing of the user's is touched


@pytest.mark.parametrize("xdg", ["absolute", "relative", "empty"])
def test_the_cache_is_under_xdg_cache_home_when_that_is_absolute(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, xdg: str) -> None:
    """The XDG Base Directory specification: $XDG_CACHE_HOME when set to an absolute path; a
    relative or empty one is ignored, and the cache is ~/.cache."""
    from vaekit.data import registry

    home = Path(os.environ["HOME"])
    value = {"absolute": str(tmp_path / "xdg"), "relative": "xdg", "empty": ""}[xdg]
    monkeypatch.setenv("XDG_CACHE_HOME", value)
    monkeypatch.chdir(tmp_path)  # a relative value, if it were used, would land in tmp_path/xdg
    root = tmp_path / "pictures"
    images = good_folder(root)
    got = read_folder(root, progress=False)
    assert np.array_equal(got.images[:, 0], images) and got.cache_path is not None
    base = tmp_path / "xdg" if xdg == "absolute" else home / ".cache"
    assert got.cache_path.parent == base / "vaekit" / "folders"
    assert registry.cache_dir("mnist") == base / "vaekit" / "mnist"  # the downloads' cache too
    assert read_folder(root, progress=False).from_cache
    other = home / ".cache" if xdg == "absolute" else tmp_path / "xdg"
    assert not other.exists()


def test_a_file_named_png_holding_another_format_is_refused_by_content(tmp_path, capsys):
    """PostScript named .png reached Pillow's EPS plugin (Ghostscript on the user's file); a TIFF
    named .png was decoded although the formats are PNG, JPEG, BMP, GIF and WebP."""
    from PIL import Image

    from vaekit.cli import main

    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 8 8\n"
    for name, write in (("eps", lambda p: p.write_bytes(eps)),
                        ("tiff", lambda p: Image.new("L", (8, 8)).save(p, format="TIFF"))):
        folder = tmp_path / name
        folder.mkdir()
        for i in range(4):
            Image.new("L", (8, 8), i * 40).save(folder / f"{i}.png")
        write(folder / "e.png")
        assert main(["data", "info", str(folder)]) == 2
        err = capsys.readouterr().err
        assert "e.png: not a PNG, JPEG" in err and err.count("\n") == 1, err


def test_a_class_folder_whose_name_is_not_utf8_is_refused(tmp_path, capsys):
    import os

    from PIL import Image

    from vaekit.cli import main

    for name in (b"ok", b"\xff\xfe"):
        os.makedirs(os.path.join(os.fsencode(tmp_path), name))
        for i in range(3):
            Image.new("L", (8, 8), i * 40).save(os.path.join(os.fsencode(tmp_path), name, b"%d.png" % i))
    assert main(["data", "info", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "not printable UTF-8" in err and err.count("\n") == 1, err


def test_links_that_double_the_paths_at_each_level_stop_at_the_visit_bound(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """d0/{a,b} -> d1, d1/{a,b} -> d2, ...: no loop, but 2^depth paths; the walk stops at the bound
    of folders entered, in one sentence, where it would take 2^20 walks."""
    from vaekit.data import image_files
    monkeypatch.setattr(image_files, "MAX_FOLDER_VISITS", 500)
    depth = 20
    for level in range(depth):
        (tmp_path / f"d{level}").mkdir()
    for level in range(depth - 1):
        for name in ("a", "b"):
            os.symlink(tmp_path / f"d{level + 1}", tmp_path / f"d{level}" / name)
    with pytest.raises(DataError) as refused:
        image_files.list_images(tmp_path / "d0")
    assert "500 folders entered" in str(refused.value) and str(tmp_path / "d0") in str(refused.value)


def test_a_folder_whose_own_path_is_not_utf8_is_read_and_cached(tmp_path: Path) -> None:
    """The folder's path (not a class name inside it) holds a byte that is not UTF-8: read the
    same as under a plain name, the second time from the cache the first one wrote."""
    plain = good_folder(tmp_path / "plain")
    odd = Path(os.fsdecode(os.path.join(os.fsencode(tmp_path), b"img\xff\xfe")))
    good_folder(odd)
    first = read_folder(odd, ImageOptions(), progress=False)
    second = read_folder(odd, ImageOptions(), progress=False)
    assert not first.from_cache and second.from_cache
    np.testing.assert_array_equal(second.images.reshape(plain.shape), plain)
