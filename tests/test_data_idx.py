"""The IDX reader on tiny synthetic files: good files, and clear errors for bad ones."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from blur.data import IDXFormatError, encode_idx, read_idx
from blur.data.idx import check_image_label_pair, parse_idx


def idx_bytes(array: np.ndarray) -> bytes:
    """IDX bytes written by hand: 0x0000, type 0x08, ndim, big-endian dims, data."""
    array = np.asarray(array, np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    return header + array.tobytes()


IMAGES = np.arange(3 * 2 * 4, dtype=np.uint8).reshape(3, 2, 4)
LABELS = np.asarray([7, 0, 255], np.uint8)


def test_reads_raw_and_gz(tmp_path: Path):
    raw = tmp_path / "imgs-idx3-ubyte"
    raw.write_bytes(idx_bytes(IMAGES))
    gz = tmp_path / "labels-idx1-ubyte.gz"
    gz.write_bytes(gzip.compress(idx_bytes(LABELS)))
    np.testing.assert_array_equal(read_idx(raw), IMAGES)
    np.testing.assert_array_equal(read_idx(gz), LABELS)
    assert read_idx(raw).dtype == np.uint8 and read_idx(raw).shape == (3, 2, 4)
    # Compression is detected from the content, not the name.
    odd = tmp_path / "no-suffix"
    odd.write_bytes(gzip.compress(idx_bytes(IMAGES)))
    np.testing.assert_array_equal(read_idx(odd), IMAGES)


def test_encode_roundtrip_other_dtypes():
    a = np.arange(6, dtype=np.int32).reshape(2, 3) - 3
    np.testing.assert_array_equal(parse_idx(encode_idx(a), expected_dtype=None), a)
    assert encode_idx(IMAGES) == idx_bytes(IMAGES)


def test_bad_magic(tmp_path: Path):
    p = tmp_path / "bad-magic"
    p.write_bytes(b"\x12\x34" + idx_bytes(LABELS)[2:])
    with pytest.raises(IDXFormatError, match=r"bad-magic: bad magic number 0x12340801"):
        read_idx(p)
    p.write_bytes(b"\x00\x00\x07\x01" + idx_bytes(LABELS)[4:])
    with pytest.raises(IDXFormatError, match="unknown IDX type code 0x07"):
        read_idx(p)
    p.write_bytes(encode_idx(np.zeros(3, np.int32)))
    with pytest.raises(IDXFormatError, match="type code 0x0c, expected 0x08"):
        read_idx(p)
    p.write_bytes(b"\x00\x00")
    with pytest.raises(IDXFormatError, match="only 2 bytes"):
        read_idx(p)


def test_truncated(tmp_path: Path):
    data = idx_bytes(IMAGES)
    p = tmp_path / "train-images-idx3-ubyte"
    p.write_bytes(data[:-5])
    with pytest.raises(
        IDXFormatError,
        match=r"train-images-idx3-ubyte: file truncated.*"
        r"dims \(3, 2, 4\) \(40 bytes in all\).*35 bytes",
    ):
        read_idx(p)
    p.write_bytes(data[:10])
    with pytest.raises(IDXFormatError, match="truncated header"):
        read_idx(p)
    p.write_bytes(data + b"\x00")
    with pytest.raises(IDXFormatError, match="trailing bytes"):
        read_idx(p)
    gz = tmp_path / "t.gz"
    gz.write_bytes(gzip.compress(data)[:-12])
    with pytest.raises(IDXFormatError, match=r"t.gz: the gzip stream is truncated or corrupt"):
        read_idx(gz)


def test_image_label_count_mismatch():
    with pytest.raises(IDXFormatError, match=r"count mismatch: imgs has 3 images but labs has 2"):
        check_image_label_pair(IMAGES, LABELS[:2], "imgs", "labs")
    with pytest.raises(IDXFormatError, match="expected 3 dims"):
        check_image_label_pair(LABELS, LABELS, "imgs", "labs")
    with pytest.raises(IDXFormatError, match="expected 1 dim"):
        check_image_label_pair(IMAGES, IMAGES, "imgs", "labs")
