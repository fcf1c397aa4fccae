"""The IDX file format of MNIST, Fashion-MNIST and KMNIST: read and write, plain or gzip.

Format (LeCun et al., http://yann.lecun.com/exdb/mnist/, "THE IDX FILE FORMAT"):
bytes 0-1 are zero, byte 2 is the element type code, byte 3 the number of dimensions d; then d
big-endian uint32 sizes; then the payload, prod(sizes) elements, big-endian, row-major.
Gzip files are recognized by their magic bytes (1f 8b), whatever their name.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np

from vaekit.errors import IDXFormatError

# type code -> big-endian numpy dtype
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
GZIP_MAGIC = b"\x1f\x8b"


def read_raw(path: str | Path) -> bytes:
    """The bytes of the file at `path`, as they are on disk (no decompression)."""
    path = Path(path)
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise IDXFormatError(f"{path}: file not found.") from None
    except IsADirectoryError:
        raise IDXFormatError(f"{path}: is a directory, expected an IDX file.") from None
    except OSError as err:  # permission denied, an I/O error
        raise IDXFormatError(f"{path}: cannot be read ({err.strerror or err}).") from None


def decompress(raw: bytes, path: str | Path) -> bytes:
    """`raw` decompressed when it is a gzip stream (detected by magic bytes), else `raw` itself;
    `path` names the file in the error."""
    if raw[:2] != GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except (EOFError, gzip.BadGzipFile, zlib.error, OSError) as err:
        raise IDXFormatError(
            f"{path}: the gzip stream is cut or corrupt ({err})."
        ) from None


def read_bytes(path: str | Path) -> bytes:
    """The contents of `path`, decompressed when it is a gzip file (detected by magic bytes)."""
    return decompress(read_raw(path), path)


def parse_idx(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Parse IDX bytes into a native-endian numpy array of the header's shape."""
    if len(data) < 4:
        raise IDXFormatError(f"{name}: truncated: {len(data)} bytes, shorter than an IDX header.")
    zero, code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or code not in IDX_DTYPES:
        raise IDXFormatError(
            f"{name}: not an IDX file: magic number 0x{data[:4].hex()}, expected 0x0000 followed "
            f"by a type code in {{{', '.join(f'0x{c:02x}' for c in IDX_DTYPES)}}} and a dimension count."
        )
    if ndim == 0:
        raise IDXFormatError(f"{name}: IDX header declares 0 dimensions; expected at least 1.")
    header_len = 4 + 4 * ndim
    if len(data) < header_len:
        raise IDXFormatError(
            f"{name}: truncated: the header declares {ndim} dimensions but the file ends at "
            f"byte {len(data)}."
        )
    dims = struct.unpack(f">{ndim}I", data[4:header_len])
    dtype = IDX_DTYPES[code]
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    found = len(data) - header_len
    shape = "x".join(str(d) for d in dims)
    if found < expected:
        raise IDXFormatError(
            f"{name}: truncated: the header says {shape} ({expected} bytes of data) "
            f"but only {found} bytes follow it."
        )
    if found > expected:
        raise IDXFormatError(
            f"{name}: the header's dimensions {shape} ({expected} bytes of data) do not match "
            f"the payload of {found} bytes."
        )
    arr = np.frombuffer(data, dtype=dtype, offset=header_len).reshape(dims)
    return arr.astype(dtype.newbyteorder("="), copy=True)


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (plain or gzip) into a numpy array; raise IDXFormatError if it is bad."""
    return parse_idx(read_bytes(path), name=str(path))


def idx_bytes(array: np.ndarray) -> bytes:
    """Encode an array as IDX bytes (the inverse of `parse_idx`)."""
    array = np.asarray(array)
    matches = [c for c, d in IDX_DTYPES.items()
               if array.dtype.kind == d.kind and array.dtype.itemsize == d.itemsize]
    if not matches:
        raise ValueError(f"dtype {array.dtype} has no IDX type code")
    code = matches[0]
    dtype = IDX_DTYPES[code]
    if not 1 <= array.ndim <= 255:
        raise ValueError("IDX arrays have 1 to 255 dimensions")
    header = struct.pack(">HBB", 0, code, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array, dtype=dtype).tobytes()


def write_idx(path: str | Path, array: np.ndarray, compress: bool | None = None) -> Path:
    """Write `array` as IDX; gzip it when `compress` is true (default: when the name ends in .gz)."""
    path = Path(path)
    data = idx_bytes(array)
    if compress if compress is not None else path.suffix == ".gz":
        data = gzip.compress(data, mtime=0)
    path.write_bytes(data)
    return path
