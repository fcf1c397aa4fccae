"""The IDX reader and writer, held against an encoder written here (struct + numpy), and every way
an IDX file can be bad: each is an IDXFormatError whose one sentence names the file, and exit
status 2 with no traceback from `vaekit data`."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

from vaekit.cli import main
from vaekit.data.idx import idx_bytes, parse_idx, read_bytes, read_idx, write_idx
from vaekit.errors import DataError, IDXFormatError

CODES = [0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E]
NATIVE = {0x08: "u1", 0x09: "i1", 0x0B: "i2", 0x0C: "i4", 0x0D: "f4", 0x0E: "f8"}
# sizes all different so that a transposed or reversed reshape shows
SHAPES = {1: (7,), 2: (3, 5), 3: (4, 3, 2), 4: (2, 3, 4, 5)}


def sample(code: int, shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """Values across the whole range of the type, its extremes and, for floats, signed zero,
    infinities, NaN and subnormals: any byte-order or sign mistake changes some of them."""
    rng = np.random.default_rng(seed)
    dtype = np.dtype(NATIVE[code])
    n = int(np.prod(shape))
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        flat = rng.integers(info.min, info.max, size=n, endpoint=True, dtype=np.int64)
        specials = [info.min, info.max, 0, 1, info.max - 1, info.min + 1]
    else:
        finfo = np.finfo(dtype)
        flat = rng.normal(scale=1e3, size=n)
        specials = [-0.0, np.inf, -np.inf, np.nan, float(finfo.max), float(finfo.tiny) / 4]
    k = min(n, len(specials))
    flat[:k] = specials[:k]
    return flat.astype(dtype).reshape(shape)


def same_bytes(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal shape, dtype and bit patterns (so NaN == NaN and -0.0 != 0.0)."""
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


# ----------------------------------------------------------------------------- reading


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize("ndim", [1, 2, 3, 4])
@pytest.mark.parametrize("code", CODES, ids=[f"0x{c:02X}" for c in CODES])
def test_reads_every_type_code_and_rank(tmp_path, encode, code, ndim, gz):
    expected = sample(code, SHAPES[ndim], seed=code * 10 + ndim)
    data = encode(expected, code)
    path = tmp_path / ("a.idx.gz" if gz else "a.idx")
    path.write_bytes(gzip.compress(data) if gz else data)

    got = read_idx(path)

    assert got.shape == SHAPES[ndim]
    assert got.dtype == np.dtype(NATIVE[code]) and got.dtype.isnative
    assert same_bytes(got, expected)
    assert got.flags.writeable  # a copy, not a read-only view of the file's bytes


def test_known_bytes_decode_to_known_values():
    """A hand-written file, so the reader is not only checked against an encoder."""
    data = bytes.fromhex("0000 0B 02 00000002 00000003") + bytes.fromhex(
        "0001 00ff 7fff 8000 ffff fffe"
    )
    got = parse_idx(data)
    assert got.tolist() == [[1, 255, 32767], [-32768, -1, -2]]


def test_gzip_is_recognized_by_its_magic_bytes_not_its_name(tmp_path, encode):
    arr = sample(0x08, (4, 3))
    plain_named_gz = tmp_path / "plain.gz"
    plain_named_gz.write_bytes(encode(arr, 0x08))
    gzip_named_plain = tmp_path / "compressed-idx3-ubyte"
    gzip_named_plain.write_bytes(gzip.compress(encode(arr, 0x08)))
    assert same_bytes(read_idx(plain_named_gz), arr)
    assert same_bytes(read_idx(gzip_named_plain), arr)
    assert read_bytes(gzip_named_plain) == encode(arr, 0x08)


def test_empty_dimension_reads_as_an_empty_array(encode):
    got = parse_idx(encode(np.zeros((0, 28, 28), np.uint8), 0x08))
    assert got.shape == (0, 28, 28) and got.dtype == np.uint8


# ----------------------------------------------------------------------------- writing


@pytest.mark.parametrize("ndim", [1, 2, 3, 4])
@pytest.mark.parametrize("code", CODES, ids=[f"0x{c:02X}" for c in CODES])
def test_writer_matches_the_reference_encoder_and_round_trips(tmp_path, encode, code, ndim):
    arr = sample(code, SHAPES[ndim], seed=ndim)
    assert idx_bytes(arr) == encode(arr, code)

    plain = write_idx(tmp_path / "a.idx", arr)
    packed = write_idx(tmp_path / "a.idx.gz", arr)
    assert plain.read_bytes() == encode(arr, code)
    assert packed.read_bytes()[:2] == b"\x1f\x8b"
    assert gzip.decompress(packed.read_bytes()) == encode(arr, code)
    assert same_bytes(read_idx(plain), arr)
    assert same_bytes(read_idx(packed), arr)


def test_writer_compress_flag_overrides_the_name(tmp_path, encode):
    arr = sample(0x0C, (3, 2))
    forced = write_idx(tmp_path / "no-suffix", arr, compress=True)
    refused = write_idx(tmp_path / "suffix.gz", arr, compress=False)
    assert gzip.decompress(forced.read_bytes()) == encode(arr, 0x0C)
    assert refused.read_bytes() == encode(arr, 0x0C)


def test_writer_accepts_other_byte_orders(encode):
    arr = sample(0x0D, (2, 3))
    assert idx_bytes(arr.astype(">f4")) == idx_bytes(arr.astype("<f4")) == encode(arr, 0x0D)


@pytest.mark.parametrize("dtype", ["u2", "i8", "u4", "bool", "c8"])
def test_writer_refuses_types_without_an_idx_code(dtype):
    with pytest.raises(ValueError, match="IDX"):
        idx_bytes(np.zeros((2, 2), dtype=dtype))


# ----------------------------------------------------------------------------- bad input

GOOD = struct.pack(">HBB3I", 0, 0x08, 3, 4, 3, 2) + bytes(range(24))  # 4x3x2 uint8


def _gz_cut_half(data: bytes) -> bytes:
    z = gzip.compress(data, mtime=0)
    return z[: len(z) // 2]


def _gz_no_trailer(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)[:-4]


def _gz_header_only(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)[:10]


def _gz_bad_crc(data: bytes) -> bytes:
    z = bytearray(gzip.compress(data, mtime=0))
    z[-8] ^= 0xFF  # the CRC-32 of the trailer
    return bytes(z)


def _gz_bad_deflate(data: bytes) -> bytes:
    z = bytearray(gzip.compress(data, mtime=0))
    for i in range(12, len(z) - 8, 3):
        z[i] ^= 0x5A
    return bytes(z)


def _gz_garbage(data: bytes) -> bytes:
    return b"\x1f\x8b" + b"this is not a deflate stream at all"


BAD_IDX = {
    # name: (bytes written, a word the message must contain)
    "magic-nonzero-prefix": (b"\x00\x01" + GOOD[2:], "magic"),
    "magic-unknown-type-code": (b"\x00\x00\x0a" + GOOD[3:], "magic"),
    "magic-png": (b"\x89PNG\r\n\x1a\n" + bytes(64), "magic"),
    "magic-text": (b"label,pixel0,pixel1\n3,0,255\n", "magic"),
    "zero-dimensions": (b"\x00\x00\x08\x00" + bytes(8), "dimension"),
    "empty-file": (b"", "truncated"),
    "header-cut-in-magic": (GOOD[:3], "truncated"),
    "header-cut-in-dims": (GOOD[:10], "truncated"),
    "payload-cut-by-one": (GOOD[:-1], "truncated"),
    "payload-cut-in-half": (GOOD[:-12], "truncated"),
    "payload-missing": (GOOD[:16], "truncated"),
    "payload-longer-than-dims": (GOOD + b"\x00", "dimensions"),
    "dims-smaller-than-payload": (
        struct.pack(">HBB3I", 0, 0x08, 3, 3, 3, 2) + bytes(range(24)),
        "dimensions",
    ),
    "wide-type-cut-mid-element": (struct.pack(">HBBI", 0, 0x0E, 1, 2) + bytes(12), "truncated"),
    "gzip-cut-in-half": (_gz_cut_half(GOOD * 50), "gzip"),
    "gzip-cut-before-trailer": (_gz_no_trailer(GOOD), "gzip"),
    "gzip-header-only": (_gz_header_only(GOOD), "gzip"),
    "gzip-bad-crc": (_gz_bad_crc(GOOD), "gzip"),
    "gzip-corrupt-deflate": (_gz_bad_deflate(GOOD * 50), "gzip"),
    "gzip-garbage": (_gz_garbage(GOOD), "gzip"),
    "gzip-of-truncated-idx": (gzip.compress(GOOD[:-5]), "truncated"),
}


@pytest.mark.parametrize("case", list(BAD_IDX))
def test_bad_idx_file_is_one_clear_idx_error(tmp_path, one_sentence, case):
    content, word = BAD_IDX[case]
    path = tmp_path / f"{case}-idx3-ubyte.gz"
    path.write_bytes(content)
    with pytest.raises(IDXFormatError) as info:
        read_idx(path)
    one_sentence(str(info.value), path)
    assert word in str(info.value).lower()


def test_parse_idx_names_the_source_it_is_given(one_sentence):
    with pytest.raises(IDXFormatError) as info:
        parse_idx(GOOD[:-1], name="mirror/train-images")
    one_sentence(str(info.value), "mirror/train-images")


@pytest.mark.parametrize("kind", ["missing", "directory"])
def test_unreadable_path_is_an_idx_error(tmp_path, one_sentence, kind):
    path = tmp_path / "train-images-idx3-ubyte"
    if kind == "directory":
        path.mkdir()
    with pytest.raises(IDXFormatError) as info:
        read_idx(path)
    one_sentence(str(info.value), path)


def test_idx_errors_are_data_errors():
    """Callers that catch DataError (the CLI, `vaekit data list`) also catch IDX errors."""
    assert issubclass(IDXFormatError, DataError)


@pytest.mark.parametrize(
    "case", ["magic-png", "header-cut-in-dims", "payload-cut-in-half", "dims-smaller-than-payload",
             "gzip-cut-in-half", "gzip-bad-crc", "gzip-corrupt-deflate"]
)
@pytest.mark.parametrize("role", ["train-images-idx3-ubyte", "t10k-labels-idx1-ubyte"])
def test_cli_reports_a_bad_idx_file_with_status_2(places, fake_set, cli_error, case, role):
    """A bad file in the --data-dir is the error: exit 2, one sentence naming it, no traceback."""
    directory = fake_set.write(places.home / "mydata")
    bad = directory / f"{role}.gz"
    bad.write_bytes(BAD_IDX[case][0])
    status = main(["data", "info", "fashion-mnist", "--data-dir", str(directory), "--no-download"])
    cli_error(status, bad)
