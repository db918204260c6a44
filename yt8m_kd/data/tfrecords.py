"""TFRecord framing: CRC32C checks and salvaging the intact records of a damaged file.

A TFRecord file is a sequence of records, each

  uint64 length (little endian) | uint32 masked CRC32C of the 8 length bytes | data (length bytes)
  | uint32 masked CRC32C of the data

with masked_crc = ((crc >> 15) | (crc << 17)) + 0xa282ead8 (mod 2^32): the format TensorFlow's
record writer writes (docs/yt8m-format-and-metrics.md, "TFRecord framing"; tests/test_salvage.py
checks these CRCs against files TensorFlow wrote). CRC32C is the Castagnoli CRC, reflected
polynomial 0x82F63B78, computed by the google-crc32c package (crc32c(b"123456789") = 0xE3069283).

TensorFlow's reader gives up a file at its first bad record. `salvage_records` reads on from
there: a record is accepted only where its length CRC matches, its length fits in the file and its
data CRC matches, so that after a damaged region it resynchronises on the next valid record
header. What it could not read comes back as lost regions, byte ranges with the number of records
they held when that is known (a record whose header is intact but whose data is not: one).
"""

from __future__ import annotations

import dataclasses

import google_crc32c
import numpy as np
import tensorflow as tf

HEADER_BYTES = 12  # uint64 length + uint32 masked length CRC
FOOTER_BYTES = 4  # uint32 masked data CRC
OVERHEAD_BYTES = HEADER_BYTES + FOOTER_BYTES
_MASK_DELTA = 0xA282EAD8
# Offsets examined at once when looking for the next header: bounds the temporary arrays.
_SCAN_CHUNK = 1 << 20


def masked_crc32c(data: bytes) -> int:
    """The masked CRC32C TFRecord stores after a record's length and after its data."""
    crc = google_crc32c.value(bytes(data))
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


@dataclasses.dataclass(frozen=True)
class LostRegion:
    """Bytes [start, end) of a file that hold no valid record; `records` lost, None if unknown."""

    start: int
    end: int
    records: int | None


@dataclasses.dataclass(frozen=True)
class Salvaged:
    """What `salvage_records` read: (offset, data) of each valid record, and the lost regions,
    both in file order."""

    records: list[tuple[int, bytes]]
    lost: list[LostRegion]


def _u32(data: bytes | memoryview, offset: int) -> int:
    return int.from_bytes(data[offset : offset + 4], "little")


def _record_at(data: bytes | memoryview, offset: int) -> tuple[bool, int | None]:
    """(whether a valid record starts at `offset`, its end (at most the file's) when at least its
    header is valid)."""
    if offset + OVERHEAD_BYTES > len(data):
        return False, None
    length_bytes = data[offset : offset + 8]
    if masked_crc32c(length_bytes) != _u32(data, offset + 8):
        return False, None
    length = int.from_bytes(length_bytes, "little")
    end = offset + OVERHEAD_BYTES + length
    if end > len(data):  # an intact header, its record cut off by the end of the file
        return False, len(data)
    payload = data[offset + HEADER_BYTES : end - FOOTER_BYTES]
    return masked_crc32c(payload) == _u32(data, end - FOOTER_BYTES), end


def _candidates(data: np.ndarray, start: int, stop: int) -> np.ndarray:
    """Offsets in [start, stop) whose 8 length bytes give a record that fits in the file: a
    vectorised pre-filter, so that CRCs are computed at few offsets."""
    offsets = np.arange(start, stop, dtype=np.int64)
    length = np.zeros(len(offsets), np.uint64)
    for i in range(8):
        length |= data[offsets + i].astype(np.uint64) << np.uint64(8 * i)
    room = (len(data) - offsets - OVERHEAD_BYTES).astype(np.uint64)
    return offsets[length <= room]


def _next_record(data: bytes, array: np.ndarray, start: int) -> int | None:
    """The first offset >= start where a valid record starts, None if there is none."""
    last = len(data) - OVERHEAD_BYTES  # the last offset a record can start at
    for chunk_start in range(start, last + 1, _SCAN_CHUNK):
        chunk_stop = min(chunk_start + _SCAN_CHUNK, last + 1)
        for offset in _candidates(array, chunk_start, chunk_stop):
            if _record_at(data, int(offset))[0]:
                return int(offset)
    return None


def salvage_records(data: bytes, base: int = 0) -> Salvaged:
    """The valid records of `data`, the bytes of a TFRecord file from a record boundary at file
    offset `base` to its end, and what was lost; offsets are file offsets.

    At a record boundary a record is read if it is valid; one whose header is valid but whose data
    CRC is not is one lost record (its length says where the next one starts); otherwise the
    bytes up to the next offset where a valid record starts (or to the end) are lost, records
    unknown.
    """
    array = np.frombuffer(data, np.uint8)
    records: list[tuple[int, bytes]] = []
    lost: list[LostRegion] = []
    offset = 0
    while offset < len(data):
        valid, end = _record_at(data, offset)
        if valid:
            records.append((base + offset, data[offset + HEADER_BYTES : end - FOOTER_BYTES]))
            offset = end
        elif end is not None:  # the header is intact: one record whose data is damaged
            lost.append(LostRegion(base + offset, base + end, 1))
            offset = end
        else:
            resume = _next_record(data, array, offset + 1)
            stop = len(data) if resume is None else resume
            lost.append(LostRegion(base + offset, base + stop, None))
            offset = stop
    return Salvaged(records, _merged(lost))


def _merged(lost: list[LostRegion]) -> list[LostRegion]:
    """Adjacent lost regions as one (one log line per damaged region)."""
    merged: list[LostRegion] = []
    for region in lost:
        if merged and merged[-1].end == region.start:
            previous = merged.pop()
            records = (
                None
                if previous.records is None or region.records is None
                else previous.records + region.records
            )
            region = LostRegion(previous.start, region.end, records)
        merged.append(region)
    return merged


def read_from(path: str, offset: int) -> bytes:
    """The bytes of a file (local or any tf.io.gfile file system) from `offset` to its end."""
    with tf.io.gfile.GFile(path, "rb") as f:
        f.seek(offset)
        return f.read()
