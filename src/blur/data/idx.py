"""Reader (and a small writer) for the IDX format used by MNIST-style data sets.

An IDX file is a 4-byte magic number ``0x00 0x00 <dtype> <ndim>``, then ``ndim`` big-endian
uint32 sizes, then the data in C order. Files may be gzip-compressed; compression is detected
from the gzip magic bytes, not from the file name.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np

from blur.data.errors import IDXFormatError

# IDX type codes -> big-endian numpy dtypes (the IDX spec).
IDX_DTYPES: dict[int, str] = {
    0x08: ">u1",
    0x09: ">i1",
    0x0B: ">i2",
    0x0C: ">i4",
    0x0D: ">f4",
    0x0E: ">f8",
}
_GZIP_MAGIC = b"\x1f\x8b"


def decompress_if_gzip(data: bytes, name: str = "<bytes>") -> bytes:
    """Return ``data`` gunzipped if it starts with the gzip magic, else unchanged.

    Args:
      data: The file contents.
      name: File name used in error messages.

    Returns:
      The decompressed bytes.

    Raises:
      IDXFormatError: If the gzip stream is truncated or corrupt.
    """
    if not data.startswith(_GZIP_MAGIC):
        return data
    try:
        return gzip.decompress(data)
    except (EOFError, OSError, zlib.error) as e:
        raise IDXFormatError(
            f"{name}: the gzip stream is truncated or corrupt ({e}). Delete the file and fetch it "
            "again (`blur data fetch NAME --force`)."
        ) from e


def parse_idx(data: bytes, name: str = "<bytes>", expected_dtype: int | None = 0x08) -> np.ndarray:
    """Parse the (already decompressed) bytes of an IDX file.

    Args:
      data: Raw IDX bytes.
      name: File name used in error messages.
      expected_dtype: The IDX type code the caller needs (``0x08`` = unsigned byte), or None to
        accept any type in :data:`IDX_DTYPES`.

    Returns:
      The array, shape as in the header, in native byte order.

    Raises:
      IDXFormatError: On a bad magic number, unknown or unexpected type, zero dims, or a byte
        count that does not match the header (e.g. a truncated file).
    """
    if len(data) < 4:
        raise IDXFormatError(
            f"{name}: only {len(data)} bytes; an IDX file starts with a 4-byte magic number."
        )
    zero, code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0:
        raise IDXFormatError(
            f"{name}: bad magic number 0x{data[:4].hex()}; an IDX file starts with two zero "
            "bytes, a type code and a dimension count. Is this really an (uncompressed or gzip) "
            "IDX file?"
        )
    if code not in IDX_DTYPES:
        raise IDXFormatError(
            f"{name}: unknown IDX type code 0x{code:02x} (magic 0x{data[:4].hex()}); valid codes "
            f"are {', '.join(f'0x{c:02x}' for c in IDX_DTYPES)}."
        )
    if expected_dtype is not None and code != expected_dtype:
        raise IDXFormatError(
            f"{name}: IDX type code 0x{code:02x}, expected 0x{expected_dtype:02x} (unsigned byte)."
        )
    if ndim == 0:
        raise IDXFormatError(f"{name}: the header declares 0 dimensions.")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise IDXFormatError(
            f"{name}: truncated header: {ndim} dimensions need {header} bytes, the file has "
            f"{len(data)}."
        )
    dims = struct.unpack(">" + "I" * ndim, data[4:header])
    dtype = np.dtype(IDX_DTYPES[code])
    expected = header + int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(data) != expected:
        what = "truncated" if len(data) < expected else "has trailing bytes"
        raise IDXFormatError(
            f"{name}: file {what}: the header says dims {tuple(dims)} ({expected} bytes in "
            f"all) but the file has {len(data)} bytes. Delete it and fetch it again."
        )
    array = np.frombuffer(data, dtype=dtype, offset=header).reshape(dims)
    return array.astype(dtype.newbyteorder("="), copy=False)


def read_idx(path: str | Path, expected_dtype: int | None = 0x08) -> np.ndarray:
    """Read an IDX file, gzip-compressed or raw.

    Args:
      path: Path to the file.
      expected_dtype: See :func:`parse_idx`.

    Returns:
      The array stored in the file.

    Raises:
      IDXFormatError: If the file is malformed (see :func:`parse_idx`).
      FileNotFoundError: If ``path`` does not exist.
    """
    path = Path(path)
    raw = decompress_if_gzip(path.read_bytes(), str(path))
    return parse_idx(raw, str(path), expected_dtype)


def encode_idx(array: np.ndarray) -> bytes:
    """Serialise an array as IDX bytes (uncompressed); the inverse of :func:`parse_idx`.

    Args:
      array: Any array whose dtype has an IDX type code (uint8, int8, int16, int32, float32,
        float64).

    Returns:
      The IDX file contents.
    """
    array = np.asarray(array)
    codes = {np.dtype(spec).newbyteorder("="): code for code, spec in IDX_DTYPES.items()}
    code = codes.get(array.dtype.newbyteorder("="))
    if code is None:
        raise ValueError(f"encode_idx: dtype {array.dtype} has no IDX type code.")
    header = struct.pack(">HBB", 0, code, array.ndim) + struct.pack(
        ">" + "I" * array.ndim, *array.shape
    )
    return header + np.ascontiguousarray(array, dtype=np.dtype(IDX_DTYPES[code])).tobytes()


def check_image_label_pair(
    images: np.ndarray, labels: np.ndarray, images_name: str, labels_name: str
) -> None:
    """Check that an image file and a label file belong together.

    Args:
      images: [N, H, W] array from the image file.
      labels: [N] array from the label file.
      images_name: Image file name, for messages.
      labels_name: Label file name, for messages.

    Raises:
      IDXFormatError: If the ranks are wrong or the counts differ.
    """
    if images.ndim != 3:
        raise IDXFormatError(
            f"{images_name}: expected 3 dims [N, rows, cols] for an image file, got shape "
            f"{images.shape}. Are the image and label files swapped?"
        )
    if labels.ndim != 1:
        raise IDXFormatError(
            f"{labels_name}: expected 1 dim [N] for a label file, got shape {labels.shape}."
        )
    if images.shape[0] != labels.shape[0]:
        raise IDXFormatError(
            f"image/label count mismatch: {images_name} has {images.shape[0]} images but "
            f"{labels_name} has {labels.shape[0]} labels. The two files come from different "
            "data sets or one is corrupt; fetch the data set again."
        )
