"""`vaekit.data.folder`: a folder of image files as one uint8 array (a user's own images), held against the
IDX reader (the same Fashion-MNIST pixels through PNG files), Pillow's own decoders and
conversions, numpy brute force (16-bit reduction, crop and pad geometry), tracemalloc (memory) and
the bad inputs a user brings."""

from __future__ import annotations

import os
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps, features

from vaekit import cli
from vaekit.data import folder as folder_mod
from vaekit.data.folder import ImageOptions, read_folder
from vaekit.data.image_decode import resize_images
from vaekit.data.load import load_dataset
from vaekit.errors import DataError

pytestmark = pytest.mark.usefixtures("places")  # HOME (and so the cache) under tmp_path

RNG = np.random.default_rng(0)


def write_pngs(root: Path, images: np.ndarray, labels: np.ndarray | None = None) -> Path:
    """images (N, H, W) or (N, H, W, 3) uint8 as ROOT/[CLASS/]NNNNN.png."""
    for i, image in enumerate(images):
        where = root if labels is None else root / f"c{int(labels[i])}"
        where.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(where / f"{i:05d}.png")
    return root


def noise(n: int, *shape: int) -> np.ndarray:
    return RNG.integers(0, 256, (n, *shape), dtype=np.uint8)


# ----------------------------------------------------------------------------- the pixels


def test_fashion_mnist_through_png_files_is_the_idx_array(fashion_dir: Path, tmp_path: Path) -> None:
    ds = load_dataset("fashion-mnist", str(fashion_dir), download=False)
    images = ds.train.images[:300, 0].numpy()
    labels = ds.train.labels[:300].numpy()  # type: ignore[union-attr]
    # class folders c0..c9, files named by their index: the folder's order is class, then index
    got = read_folder(write_pngs(tmp_path / "fm", images, labels), progress=False)
    order = np.lexsort((np.arange(300), labels))
    assert got.images.dtype == np.uint8 and got.images.shape == (300, 1, 28, 28)
    assert np.array_equal(got.images[:, 0], images[order])
    assert got.classes == tuple(f"c{c}" for c in sorted(set(labels.tolist())))
    assert np.array_equal(np.array(got.classes)[got.labels], np.array([f"c{c}" for c in labels[order]]))
    flat = read_folder(write_pngs(tmp_path / "flat", images), progress=False)
    assert flat.labels is None and flat.classes is None
    assert np.array_equal(flat.images[:, 0], images)


def test_nested_folders_are_unlabelled_and_read_in_path_order(tmp_path: Path) -> None:
    imgs = noise(12, 5, 4)
    for i, image in enumerate(imgs):
        where = tmp_path / "n" / ("deep/er" if i % 2 else "top")
        where.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(where / f"{i:02d}.png")
    (tmp_path / "n" / "notes.txt").write_text("not an image, ignored")
    (tmp_path / "n" / ".hidden.png").write_bytes(b"ignored: hidden")
    got = read_folder(tmp_path / "n", progress=False)
    assert got.labels is None
    expected = [imgs[i] for i in range(12) if i % 2] + [imgs[i] for i in range(12) if not i % 2]
    assert np.array_equal(got.images[:, 0], np.stack(expected))


@pytest.mark.parametrize("ext", [".jpg", ".bmp", ".webp"])
def test_other_formats_give_pillows_own_pixels(tmp_path: Path, ext: str) -> None:
    if ext == ".webp" and not features.check("webp"):
        pytest.skip("this Pillow has no WebP")
    root = tmp_path / "f"
    root.mkdir()
    for i, image in enumerate(noise(10, 8, 6, 3)):
        Image.fromarray(image).save(root / f"{i}{ext}")
    got = read_folder(root, progress=False)
    for i in range(10):
        with Image.open(root / f"{i}{ext}") as im:
            assert np.array_equal(got.images[i], np.asarray(im.convert("RGB")).transpose(2, 0, 1))


def test_gif_gives_its_first_frame(tmp_path: Path) -> None:
    root = tmp_path / "g"
    root.mkdir()
    firsts = []
    for i in range(10):
        a, b = (Image.fromarray(np.full((6, 6), v, np.uint8), "L") for v in (10 * i, 250 - 10 * i))
        a.save(root / f"{i}.gif", save_all=True, append_images=[b])
        with Image.open(root / f"{i}.gif") as im:
            firsts.append(np.asarray(im.convert("L"))[None])  # a palette of greys: grey
    got = read_folder(root, progress=False)
    assert np.array_equal(got.images, np.stack(firsts))


def test_16_bit_png_keeps_the_high_byte(tmp_path: Path) -> None:
    root = tmp_path / "s"
    root.mkdir()
    values = RNG.integers(0, 65536, (10, 5, 7), dtype=np.uint16)
    for i, v in enumerate(values):
        Image.fromarray(v).save(root / f"{i}.png")  # mode I;16
    got = read_folder(root, progress=False)
    assert np.array_equal(got.images[:, 0], (values // 256).astype(np.uint8))  # brute force
    assert "16-bit" in got.notes and "10" in got.notes["16-bit"]


def test_palette_and_alpha_are_converted_and_said(tmp_path: Path) -> None:
    root = tmp_path / "p"
    root.mkdir()
    rgb = noise(10, 6, 6, 3)
    expected = []
    for i, image in enumerate(rgb):
        im = Image.fromarray(image)
        if i < 5:
            pal = im.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
            pal.save(root / f"{i}.png")
            expected.append(np.asarray(pal.convert("RGB")))
        else:
            rgba = np.concatenate([image, noise(1, 6, 6, 1)[0]], axis=2)
            Image.fromarray(rgba, "RGBA").save(root / f"{i}.png")
            expected.append(image)  # the alpha dropped, the colours kept
    got = read_folder(root, progress=False)
    assert np.array_equal(got.images, np.stack(expected).transpose(0, 3, 1, 2))
    assert "5" in got.notes["palette"] and "5" in got.notes["alpha"]


@pytest.mark.parametrize("suffix", [".gif", ".png"])
def test_a_palette_of_greys_is_read_as_grey(tmp_path: Path, suffix: str) -> None:
    """A grey image saved as GIF (Pillow writes it with a palette of greys), or a PNG of a grey
    palette, is grey data: one channel, each pixel the grey its palette entry names, the images as
    written; a palette with one colour among its greys is colour (three channels)."""
    root = tmp_path / "g"
    root.mkdir()
    grey = noise(10, 5, 7, 1)[..., 0]
    for i, image in enumerate(grey):
        im = Image.fromarray(image)
        (im if suffix == ".gif" else im.convert("P")).save(root / f"{i}{suffix}")
        assert Image.open(root / f"{i}{suffix}").mode == "P"
    got = read_folder(root, progress=False)
    assert got.images.shape == (10, 1, 5, 7) and np.array_equal(got.images[:, 0], grey)
    assert "10" in got.notes["grey palette"] and "palette" not in got.notes
    coloured = Image.open(root / f"0{suffix}")
    palette = coloured.getpalette() or []
    palette[0:3] = [255, 0, 0]  # one entry no grey
    coloured.putpalette(palette)
    coloured.save(root / f"0{suffix}")
    assert read_folder(root, progress=False).images.shape[1] == 3


def test_a_transparent_colour_is_said_as_dropped(tmp_path: Path) -> None:
    """A PNG's transparent palette entry or colour (its tRNS chunk), which Pillow keeps beside the
    pixels, is dropped as an alpha channel is, and said so; the pixels are Pillow's own."""
    root = tmp_path / "t"
    root.mkdir()
    grey = noise(10, 5, 5, 3)
    expected = []
    for i, image in enumerate(grey):
        pal = Image.fromarray(image).convert("P", palette=Image.Palette.ADAPTIVE, colors=8)
        if i < 3:
            pal.save(root / f"{i}.png", transparency=1)
        else:
            pal.save(root / f"{i}.png")
        expected.append(np.asarray(pal.convert("RGB")))
    Image.fromarray(grey[0]).save(root / "z.png", transparency=(0, 0, 0))  # after 0..9.png
    expected.append(grey[0])
    got = read_folder(root, progress=False)
    assert np.array_equal(got.images, np.stack(expected).transpose(0, 3, 1, 2))
    assert got.notes["alpha"] == "dropped the alpha channel of 4 images"
    assert "10" in got.notes["palette"]


def test_grey_stays_grey_colour_stays_colour_and_the_conversions(tmp_path: Path) -> None:
    grey = write_pngs(tmp_path / "grey", noise(10, 4, 4))
    assert read_folder(grey, progress=False).images.shape[1] == 1
    mixed = write_pngs(tmp_path / "mixed", noise(10, 4, 4))
    Image.fromarray(noise(1, 4, 4, 3)[0]).save(mixed / "99999.png")
    got = read_folder(mixed, progress=False)
    assert got.images.shape[1] == 3  # one colour image: all RGB, grey replicated
    assert np.array_equal(got.images[0, 0], got.images[0, 1])
    as_grey = read_folder(mixed, ImageOptions(channels=1), progress=False)
    with Image.open(mixed / "99999.png") as im:
        assert np.array_equal(as_grey.images[-1, 0], np.asarray(im.convert("L")))  # ITU-R 601-2
    assert "colour images to grey" in as_grey.notes["channels"]
    as_rgb = read_folder(grey, ImageOptions(channels=3), progress=False)
    assert np.array_equal(as_rgb.images[:, 0], as_rgb.images[:, 2])


def test_crop_takes_the_centre_and_pad_centres_on_black(tmp_path: Path) -> None:
    tall = np.repeat((np.arange(20, dtype=np.uint8) * 10)[:, None], 10, axis=1)  # row r holds 10 r
    root = write_pngs(tmp_path / "t", np.stack([tall] * 10))
    crop = read_folder(root, ImageOptions(size=(10, 10), fit="crop"), progress=False)
    assert np.array_equal(crop.images[0, 0], tall[5:15])  # scale 1: the centred 10 rows, exactly
    flat = np.full((10, 20), 200, np.uint8)
    wide = write_pngs(tmp_path / "w", np.stack([flat] * 10))
    pad = read_folder(wide, ImageOptions(size=(10, 10), fit="pad"), progress=False).images[0, 0]
    # scale 1/2: a 5x10 image placed at row (10 - 5) // 2 = 2, black above and below
    assert np.all(pad[2:7] == 200) and np.all(pad[:2] == 0) and np.all(pad[7:] == 0)
    same = read_folder(root, ImageOptions(size=(20, 10)), progress=False)
    assert np.array_equal(same.images[0, 0], tall)  # the target size: untouched


def test_resize_images_applies_the_folder_rules_to_arrays(tmp_path: Path) -> None:
    images = noise(10, 12, 9)
    options = ImageOptions(size=(6, 6), fit="crop")
    by_folder = read_folder(write_pngs(tmp_path / "r", images), options, progress=False).images
    assert np.array_equal(resize_images(images[:, None], options), by_folder)
    assert resize_images(images[:, None], ImageOptions()) is not None


# ----------------------------------------------------------------------------- the cache


def test_the_second_read_comes_from_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = write_pngs(tmp_path / "c", noise(12, 5, 5), np.arange(12) % 2)
    first = read_folder(root, progress=False)
    assert not first.from_cache and first.cache_path is not None and first.cache_path.is_file()

    def no_decoding(*_a: object, **_k: object) -> None:
        raise AssertionError("an image was decoded")

    with monkeypatch.context() as m:
        m.setattr(folder_mod, "decode", no_decoding)
        m.setattr(folder_mod, "read_header", no_decoding)
        second = read_folder(root, progress=False)
    assert second.from_cache
    assert np.array_equal(second.images, first.images) and np.array_equal(second.labels, first.labels)
    assert second.classes == first.classes


@pytest.mark.parametrize("change", ["rewrite", "touch", "add", "remove", "options", "same-size-and-mtime"])
def test_a_change_rebuilds_the_cache(tmp_path: Path, change: str) -> None:
    root = write_pngs(tmp_path / "c", noise(12, 5, 5))
    read_folder(root, progress=False)
    options = ImageOptions()
    target = root / "00003.png"
    if change == "rewrite":
        Image.fromarray(np.zeros((5, 5), np.uint8)).save(target)
    elif change == "same-size-and-mtime":  # as `cp -p` or `rsync -t` leave a file of another version
        st = target.stat()
        data = bytearray(target.read_bytes())
        inverted = Image.fromarray(255 - np.asarray(Image.open(target)))
        inverted.save(target)
        if target.stat().st_size != st.st_size:  # a PNG of other pixels, padded to the old size
            target.write_bytes(data)
            pytest.skip("the inverted PNG has another size")
        os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    elif change == "touch":
        st = target.stat()
        os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    elif change == "add":
        Image.fromarray(np.zeros((5, 5), np.uint8)).save(root / "99999.png")
    elif change == "remove":
        target.unlink()
    else:
        options = ImageOptions(channels=3)
    again = read_folder(root, options, progress=False)
    assert not again.from_cache
    if change == "rewrite":
        assert not again.images[3].any()
    assert again.images.shape[0] == {"add": 13, "remove": 11}.get(change, 12)
    assert read_folder(root, options, progress=False).from_cache


def test_a_damaged_cache_file_is_decoded_again(tmp_path: Path) -> None:
    root = write_pngs(tmp_path / "c", noise(12, 5, 5))
    first = read_folder(root, progress=False)
    assert first.cache_path is not None
    first.cache_path.write_bytes(first.cache_path.read_bytes()[:100])  # cut
    again = read_folder(root, progress=False)
    assert not again.from_cache and np.array_equal(again.images, first.images)


def test_another_folders_cache_file_copied_over_this_ones_is_a_miss(tmp_path: Path) -> None:
    """Two folders alike in all that `agrees` can check (12 grey 5x5 images, no classes): the
    key stored in a cache file tells one from the other, and a foreign file is decoded again."""
    a_images, b_images = noise(12, 5, 5), noise(12, 5, 5)
    a = read_folder(write_pngs(tmp_path / "a", a_images), progress=False)
    b_root = write_pngs(tmp_path / "b", b_images)
    b = read_folder(b_root, progress=False)
    assert a.cache_path is not None and b.cache_path is not None and a.cache_path != b.cache_path
    b.cache_path.write_bytes(a.cache_path.read_bytes())  # a's cache under b's name
    again = read_folder(b_root, progress=False)
    assert not again.from_cache
    assert np.array_equal(again.images[:, 0], b_images)  # the PNG files' pixels, not a's
    assert read_folder(b_root, progress=False).from_cache  # rebuilt under b's own key


def rewrite_cache(target: Path, **members: np.ndarray) -> None:
    """The cache file `target` with `members` replaced, written as a user's numpy would."""
    with np.load(target, allow_pickle=False) as z:
        kept = {name: z[name] for name in z.files}
    kept.update(members)
    np.savez(target, **kept)


def labelled_folder(root: Path) -> Path:
    """6 grey 8x8 PNGs in each of cat/ and dog/."""
    for i, image in enumerate(noise(12, 8, 8)):
        where = root / ("cat" if i < 6 else "dog")
        where.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(where / f"{i:02d}.png")
    return root


EDITS: dict[str, Callable[[np.ndarray, np.ndarray, np.ndarray], dict[str, np.ndarray]]] = {
    "images x3": lambda x, y, r: {"images": np.concatenate([x] * 3), "labels": np.concatenate([y] * 3),
                                  "rows": np.concatenate([r] * 3)},
    "images x3, rows counted on": lambda x, y, r: {
        "images": np.concatenate([x] * 3), "labels": np.repeat(y, 3), "rows": np.arange(36)},
    "a third class": lambda x, y, r: {"classes": np.array(["cat", "dog", "cow"])},
    "classes renamed": lambda x, y, r: {"classes": np.array(["cow", "dog"])},
    "64x64 images": lambda x, y, r: {"images": np.zeros((12, 1, 64, 64), np.uint8)},
    "3 channels of grey": lambda x, y, r: {"images": np.zeros((12, 3, 8, 8), np.uint8)},
    "labels swapped": lambda x, y, r: {"labels": 1 - y},
    "images left out": lambda x, y, r: {"images": x[:10], "labels": y[:10], "rows": r[:10]},
    "rows out of order": lambda x, y, r: {"rows": r[::-1].copy()},
    "rows past the listing": lambda x, y, r: {"rows": r + 1},
    "no rows": lambda x, y, r: {"rows": np.zeros(0, np.int64)},
}


@pytest.mark.parametrize("edit", list(EDITS))
def test_a_cache_that_disagrees_with_the_folder_is_decoded_again(tmp_path: Path, edit: str) -> None:
    """A cache file edited (or another folder's under this key) is held against the listing: the
    classes, the images' rows and labels, their size against a header, their channels."""
    root = labelled_folder(tmp_path / "cls")
    first = read_folder(root, progress=False)
    assert first.cache_path is not None and np.array_equal(first.rows, np.arange(12))
    assert read_folder(root, progress=False).from_cache
    assert first.labels is not None
    rewrite_cache(first.cache_path, **EDITS[edit](first.images, first.labels, first.rows))
    again = read_folder(root, progress=False)
    assert not again.from_cache and again.classes == ("cat", "dog")
    assert np.array_equal(again.images, first.images) and np.array_equal(again.labels, first.labels)
    assert read_folder(root, progress=False).from_cache


def test_a_cache_with_skipped_files_is_read_back(tmp_path: Path) -> None:
    """With --skip-bad the rows leave out the files skipped, and the cache still agrees."""
    root = labelled_folder(tmp_path / "cls")
    (root / "cat" / "00.png").write_text("not an image")
    options = ImageOptions(skip_bad=True)
    first = read_folder(root, options, progress=False)
    assert np.array_equal(first.rows, np.arange(1, 12)) and len(first.images) == 11
    again = read_folder(root, options, progress=False)
    assert again.from_cache and np.array_equal(again.images, first.images)
    assert np.array_equal(again.rows, first.rows) and "skipped" in again.notes


def test_a_cache_of_grey_and_colour_images_is_read_back(tmp_path: Path) -> None:
    """The first file grey, a later one in colour: 3 channels, the grey replicated, and the cache
    agrees."""
    root = write_pngs(tmp_path / "mixed", noise(11, 5, 5))
    Image.fromarray(noise(1, 5, 5, 3)[0]).save(root / "99999.png")
    first = read_folder(root, progress=False)
    assert first.images.shape == (12, 3, 5, 5) and "channels" in first.notes
    assert read_folder(root, progress=False).from_cache


def exif_with_orientation(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation  # ExifTags.Base.Orientation
    return exif.tobytes()


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
@pytest.mark.parametrize("orientation", range(1, 9))
def test_the_exif_orientation_turns_an_image_upright(tmp_path: Path, orientation: int, fmt: str) -> None:
    """Images stored 6x8 (HxW) with an EXIF orientation read as Pillow's `ImageOps.exif_transpose`
    shows them (8x6 for 5..8, the turns), counted in the note 'orientation'; a JPEG and a PNG
    (its eXIf chunk) alike."""
    root = tmp_path / "exif"
    root.mkdir()
    suffix = ".jpg" if fmt == "JPEG" else ".png"
    for i, image in enumerate(noise(12, 6, 8, 3)):
        Image.fromarray(image).save(root / f"{i:02d}{suffix}", fmt, exif=exif_with_orientation(orientation))
    expected = []
    for i in range(12):
        with Image.open(root / f"{i:02d}{suffix}") as im:
            expected.append(np.asarray(ImageOps.exif_transpose(im).convert("RGB")).transpose(2, 0, 1))
    got = read_folder(root, progress=False)
    assert got.images.shape == ((12, 3, 8, 6) if orientation >= 5 else (12, 3, 6, 8))
    assert np.array_equal(got.images, np.stack(expected))
    if orientation == 1:
        assert "orientation" not in got.notes
    else:
        assert got.notes["orientation"] == ("turned 12 images upright by their EXIF orientation "
                                            "(rotated or mirrored)")
    assert read_folder(root, progress=False).from_cache


def test_a_damaged_exif_block_is_ignored(tmp_path: Path) -> None:
    root = tmp_path / "exif"
    root.mkdir()
    images = noise(12, 6, 8)
    for i, image in enumerate(images):
        Image.fromarray(image).save(root / f"{i:02d}.png", exif=b"Exif\0\0MM\0*\0\0\0\x08\xff\xff")
    got = read_folder(root, progress=False)
    assert np.array_equal(got.images[:, 0], images) and "orientation" not in got.notes


# ----------------------------------------------------------------------------- bad input


def truncated_png(path: Path) -> None:
    Image.fromarray(noise(1, 5, 5)[0]).save(path)
    path.write_bytes(path.read_bytes()[:-30])


BAD: dict[str, Callable[[Path], str]] = {}


def bad(name: str) -> Callable[[Callable[[Path], str]], Callable[[Path], str]]:
    def register(make: Callable[[Path], str]) -> Callable[[Path], str]:
        BAD[name] = make
        return make
    return register


@bad("no images")
def _(root: Path) -> str:
    root.mkdir()
    (root / "readme.txt").write_text("x")
    return str(root)


@bad("not an image")
def _(root: Path) -> str:
    write_pngs(root, noise(12, 5, 5))
    (root / "00004.png").write_text("this is text")
    return str(root / "00004.png")


@bad("truncated")
def _(root: Path) -> str:
    write_pngs(root, noise(12, 5, 5))
    truncated_png(root / "00002.png")
    return str(root / "00002.png")


@bad("mixed sizes")
def _(root: Path) -> str:
    write_pngs(root, noise(12, 5, 5))
    Image.fromarray(noise(1, 6, 5)[0]).save(root / "00007.png")
    return "--image-size"


@bad("empty class folder")
def _(root: Path) -> str:
    write_pngs(root, noise(12, 5, 5), np.arange(12) % 2)
    (root / "c9").mkdir()
    return str(root / "c9")


@bad("too few")
def _(root: Path) -> str:
    write_pngs(root, noise(9, 5, 5))
    return str(root)


@bad("one image")  # counted in words: "1 image", not "1 images"
def _(root: Path) -> str:
    write_pngs(root, noise(1, 5, 5))
    return f"{root}: 1 image; need at least 10"


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_one_sentence_naming_it(tmp_path: Path, case: str, one_sentence: Callable[..., None],
                                             cli_error: Callable[..., str]) -> None:
    root = tmp_path / "bad"
    named = BAD[case](root)
    with pytest.raises(DataError) as info:
        read_folder(root, progress=False)
    one_sentence(str(info.value), named)
    cli_error(cli.main(["data", "info", str(root)]), named)


def test_skip_bad_skips_and_counts(tmp_path: Path) -> None:
    root = write_pngs(tmp_path / "s", noise(12, 5, 5))
    truncated_png(root / "00002.png")
    (root / "00005.png").write_text("not an image")
    got = read_folder(root, ImageOptions(skip_bad=True), progress=False)
    assert got.images.shape[0] == 10
    assert got.notes["skipped"].startswith("2 unreadable files")


def test_a_skipped_file_does_not_set_the_channels(tmp_path: Path) -> None:
    """A colour PNG whose pixels turn out truncated is skipped; the array is then that of the grey
    images kept (one channel, not three), each the PNG it came from."""
    grey = noise(12, 5, 5)
    root = write_pngs(tmp_path / "s", grey)
    bad = root / "00000-bad.png"
    Image.fromarray(noise(1, 5, 5, 3)[0]).save(bad)
    bad.write_bytes(bad.read_bytes()[:-30])
    got = read_folder(root, ImageOptions(skip_bad=True), progress=False, cache=False)
    assert got.images.shape == (12, 1, 5, 5)
    np.testing.assert_array_equal(got.images[:, 0], grey)
    assert got.notes["skipped"] == "1 unreadable file (first: 00000-bad.png)"  # one, in the singular
    assert "channels" not in got.notes


def truncated_folder(root: Path) -> tuple[str, ...]:
    """Two classes of 12 grey PNGs, one of them cut: what a run under --skip-bad must say."""
    write_pngs(root, noise(24, 5, 5), np.repeat(np.arange(2), 12))
    truncated_png(root / "c0" / "00003.png")
    return ("1 unreadable file (", "c0/00003.png")


def rgba_folder(root: Path) -> tuple[str, ...]:
    """Two classes of 12 RGB PNGs, one of them RGBA: its alpha channel dropped, said so."""
    write_pngs(root, noise(24, 5, 5, 3), np.repeat(np.arange(2), 12))
    Image.fromarray(noise(1, 5, 5, 4)[0], "RGBA").save(root / "c1" / "00013.png")
    return ("dropped the alpha channel of 1 image",)  # in the singular


@pytest.mark.parametrize("make", [truncated_folder, rgba_folder], ids=["skipped", "alpha"])
@pytest.mark.parametrize("command", [["train", "--hidden", "8", "--latent", "2"],
                                     ["classify", "--preset", "dense"]], ids=["train", "classify"])
def test_train_and_classify_print_the_notes_of_data_info(
        make: Callable[[Path], tuple[str, ...]], command: list[str], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """--skip-bad promises to say how many files it skipped: train and classify print each note of
    `vaekit data info` on the folder (skipped files with the first, an alpha channel dropped) once
    at the start, on stderr; the cache's note aside, which says whether this read decoded or
    reused the cache."""
    root = tmp_path / "f"
    said = make(root)
    flags = ["--skip-bad"] if make is truncated_folder else []
    assert cli.main(["data", "info", str(root), *flags]) == 0
    info = [line.removeprefix("note").strip() for line in capsys.readouterr().out.splitlines()
            if line.startswith("note") and not line.startswith("note         cache:")]
    assert len(info) == 1 and all(words in info[0] for words in said), info
    status = cli.main([*command, "--data", str(root), *flags, "--epochs", "1", "--out", str(tmp_path / "run"),
                       "--no-progress", "--threads", "1"])
    err = capsys.readouterr().err
    assert status == 0, err
    notes = [line.removeprefix("note: ") for line in err.splitlines()
             if line.startswith("note: ") and not line.startswith("note: cache:")]
    assert notes == info, err


def test_neither_folder_nor_array_file(tmp_path: Path, one_sentence: Callable[..., None]) -> None:
    path = tmp_path / "photo.txt"
    path.write_text("x")
    for name in (str(path), str(tmp_path / "absent")):
        with pytest.raises(DataError) as info:
            load_dataset(name)
        one_sentence(str(info.value), name)


# ----------------------------------------------------------------------------- memory, progress


def test_memory_is_the_final_array_plus_one_image(tmp_path: Path) -> None:
    """tracemalloc's peak above the final array is the file list (per file, whatever the image
    size) plus one image: 600 images of 48x48 cost no more above their array than 600 of 8x8 do,
    but for a few images' bytes (a second copy of the array would be 4 MB more)."""
    def overhead(side: int) -> tuple[int, int]:
        root = write_pngs(tmp_path / f"m{side}", noise(600, side, side, 3))
        tracemalloc.start()
        got = read_folder(root, progress=False, cache=False)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return peak - got.images.nbytes, got.images.nbytes

    small, _ = overhead(8)
    big, array = overhead(48)
    one_image = 48 * 48 * 3
    assert big - small <= 4 * one_image + 64 * 1024, (big, small, array)
    assert big < array / 2  # the bookkeeping is well below the array itself


def test_a_progress_bar_while_decoding(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = write_pngs(tmp_path / "b", noise(12, 5, 5))
    read_folder(root, progress=True, cache=False)
    assert "decoding" in capsys.readouterr().err


def test_data_info_describes_a_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    root = write_pngs(tmp_path / "d", noise(20, 6, 6, 3), np.arange(20) % 2)
    assert cli.main(["data", "info", str(root), "--image-size", "4", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["image_shape"] == [3, 4, 4] and info["classes"] == ["c0", "c1"]
    assert sum(info["counts"].values()) == 20 and "resized" in info["notes"]
