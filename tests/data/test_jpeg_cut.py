"""A JPEG cut in the middle of its compressed data and given an end marker (the first half of a
real file + b'\\xff\\xd9'), which libjpeg decodes without complaint, filling the missing pixels in:
refused as a damaged image by a folder (counted, skipped with --skip-bad) and by the explorer's
upload (a 400); whole JPEGs, baseline and progressive, grey and colour, of several qualities,
decode as Pillow decodes them."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vaekit.data.folder import ImageOptions, read_folder
from vaekit.data.jpeg_check import check_jpeg_scans
from vaekit.errors import DataError
from vaekit.serve.images import decode_upload
from vaekit.serve.request import ApiError

pytestmark = pytest.mark.usefixtures("places")  # HOME (and so the cache) under tmp_path
SIDE = 48
N_GOOD = 10  # a folder of fewer images is too few to split


def photo(seed: int, mode: str) -> Image.Image:
    """A smooth image with some texture (a photograph's kind of content), SIDE x SIDE."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:SIDE, 0:SIDE]
    base = np.stack([(x * 5 + y * 2 + 40 * c) % 256 for c in range(3)], axis=-1).astype(np.float64)
    pixels = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
    return Image.fromarray(pixels, "RGB").convert(mode)


def jpeg(image: Image.Image, quality: int, progressive: bool) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=quality, progressive=progressive)
    return buf.getvalue()


GOOD = [(mode, quality, progressive) for mode in ("L", "RGB") for quality in (10, 50, 75, 95)
        for progressive in (False, True)]


def cut(data: bytes) -> bytes:
    """The file up to the middle of its compressed data (from its first scan to its end), and an
    end marker."""
    scan = data.index(b"\xff\xda")
    return data[: scan + (len(data) - scan) // 2] + b"\xff\xd9"


def test_whole_jpegs_decode_as_pillow_decodes_them(tmp_path: Path) -> None:
    root = tmp_path / "good"
    root.mkdir()
    expected = []
    for i, (mode, quality, progressive) in enumerate(GOOD):
        data = jpeg(photo(i, mode).convert("RGB"), quality, progressive)
        (root / f"{i:02d}.jpg").write_bytes(data)
        expected.append(np.asarray(Image.open(io.BytesIO(data))).transpose(2, 0, 1))
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            check_jpeg_scans(data, np.asarray(im))  # no complaint
    got = read_folder(root, ImageOptions(), progress=False)
    assert np.array_equal(got.images, np.stack(expected)) and "skipped" not in got.notes


@pytest.mark.parametrize("mode, quality, progressive", GOOD)
def test_a_jpeg_cut_short_with_an_end_marker_is_refused(tmp_path: Path, one_sentence, mode: str,
                                                        quality: int, progressive: bool) -> None:
    root = tmp_path / "folder"
    root.mkdir()
    for i in range(N_GOOD):
        photo(i, mode).save(root / f"{i:02d}.png")
    damaged = cut(jpeg(photo(N_GOOD, mode), quality, progressive))
    (root / "cut.jpg").write_bytes(damaged)
    with pytest.raises(DataError) as err:
        read_folder(root, ImageOptions(), progress=False)
    one_sentence(str(err.value), str(root / "cut.jpg"))
    got = read_folder(root, ImageOptions(skip_bad=True), progress=False)
    assert got.images.shape[0] == N_GOOD and "cut.jpg" in got.notes["skipped"]
    with pytest.raises(ApiError) as upload:
        decode_upload(base64.b64encode(damaged).decode("ascii"), (1, 8, 8))
    assert upload.value.status == 400


def scans_of(data: bytes) -> list[tuple[int, int]]:
    """(start, end) of each scan of a JPEG: its SOS segment and the compressed data after it, found
    by walking the markers (T.81 B.1.1.2: in compressed data FF is followed by 00 or a restart)."""
    i, found = 2, []
    while data[i + 1] != 0xD9:
        j = i + 2 + int.from_bytes(data[i + 2:i + 4], "big")
        if data[i + 1] == 0xDA:
            while True:
                j = data.index(b"\xff", j)
                if data[j + 1] == 0 or 0xD0 <= data[j + 1] <= 0xD7:
                    j += 2
                    continue
                break
            found.append((i, j))
        i = j
    return found


def many_scans(scans: int) -> bytes:
    """A progressive JPEG whose shortest scan is repeated until it has `scans` scans: each a pass of
    the decoder over the whole image, for a few bytes."""
    data = jpeg(photo(0, "L"), 75, True)
    found = scans_of(data)
    start, end = min(found, key=lambda s: s[1] - s[0])
    last = found[-1][1]
    out = data[:last] + data[start:end] * (scans - len(found)) + data[last:]
    assert len(scans_of(out)) == scans
    return out


def test_a_jpeg_of_more_scans_than_any_encoder_writes_is_refused_before_it_is_decoded(
        tmp_path: Path, one_sentence) -> None:
    from vaekit.data.jpeg_check import MAX_JPEG_SCANS

    root = tmp_path / "folder"
    root.mkdir()
    for i in range(N_GOOD):
        photo(i, "L").save(root / f"{i:02d}.png")
    (root / "most.jpg").write_bytes(many_scans(MAX_JPEG_SCANS))
    assert read_folder(root, ImageOptions(), progress=False).images.shape[0] == N_GOOD + 1
    decode_upload(base64.b64encode(many_scans(MAX_JPEG_SCANS)).decode("ascii"), (1, 8, 8))
    (root / "more.jpg").write_bytes(many_scans(MAX_JPEG_SCANS + 1))
    with pytest.raises(DataError) as err:
        read_folder(root, ImageOptions(), progress=False)
    one_sentence(str(err.value), str(root / "more.jpg"), f"a JPEG that has {MAX_JPEG_SCANS + 1} scans")
    got = read_folder(root, ImageOptions(skip_bad=True), progress=False)
    assert got.images.shape[0] == N_GOOD + 1 and "more.jpg" in got.notes["skipped"]
    with pytest.raises(ApiError) as upload:
        decode_upload(base64.b64encode(many_scans(MAX_JPEG_SCANS + 1)).decode("ascii"), (1, 8, 8))
    assert upload.value.status == 413
    assert f"the field 'image' is a JPEG that has {MAX_JPEG_SCANS + 1} scans" in upload.value.args[0]


def many_scan_mpo(copies: int) -> bytes:
    """An MPO (two progressive JPEG frames; Pillow opens it from the JPEG plugin) whose second
    frame's last scan is repeated `copies` more times."""
    buf = io.BytesIO()
    photo(0, "RGB").save(buf, "MPO", save_all=True, append_images=[photo(1, "RGB")], progressive=True)
    data = buf.getvalue()
    with Image.open(io.BytesIO(data)) as im:
        offset = im.mpinfo[0xB002][0]["Size"]  # the second frame follows the first
    start, end = scans_of(data[offset:])[-1]
    start, end = start + offset, end + offset
    return data[:end] + data[start:end] * copies + data[end:]


def test_an_mpo_of_more_scans_than_any_encoder_writes_is_refused_as_a_jpeg_is(
        tmp_path: Path, one_sentence) -> None:
    whole = many_scan_mpo(0)
    with Image.open(io.BytesIO(whole), formats=["JPEG"]) as im:
        assert im.format == "MPO"
        expected = np.asarray(im.convert("L"))
    got, _ = decode_upload(base64.b64encode(whole).decode("ascii"), (1, SIDE, SIDE))
    assert np.array_equal(got[0].numpy(), expected)  # a whole MPO: its first frame
    root = tmp_path / "folder"
    root.mkdir()
    for i in range(N_GOOD):
        photo(i, "L").save(root / f"{i:02d}.png")
    (root / "more.jpg").write_bytes(many_scan_mpo(200))
    with pytest.raises(DataError) as err:
        read_folder(root, ImageOptions(), progress=False)
    one_sentence(str(err.value), str(root / "more.jpg"), "scans")
    with pytest.raises(ApiError) as upload:
        decode_upload(base64.b64encode(many_scan_mpo(200)).decode("ascii"), (1, 8, 8))
    assert upload.value.status == 413 and "scans" in upload.value.args[0]


def test_an_mpo_whose_first_frame_is_cut_short_is_refused(tmp_path: Path, one_sentence) -> None:
    """The frame an MPO shows is its first: cut short and given an end marker, it is refused as a
    cut JPEG is, the frames after it whole."""
    whole = many_scan_mpo(0)
    with Image.open(io.BytesIO(whole)) as im:
        size = im.mpinfo[0xB002][0]["Size"]
    damaged = cut(whole[:size]) + whole[size:]
    root = tmp_path / "folder"
    root.mkdir()
    for i in range(N_GOOD):
        photo(i, "L").save(root / f"{i:02d}.png")
    (root / "cut.jpg").write_bytes(damaged)
    with pytest.raises(DataError) as err:
        read_folder(root, ImageOptions(), progress=False)
    one_sentence(str(err.value), str(root / "cut.jpg"))
    with pytest.raises(ApiError) as upload:
        decode_upload(base64.b64encode(damaged).decode("ascii"), (1, 8, 8))
    assert upload.value.status == 400
