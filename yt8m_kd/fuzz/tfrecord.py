"""TFRecord framing for the fuzz oracle: writing records with valid CRCs, and splitting a file's
bytes into intact records and damaged regions, independently of TensorFlow's reader and of the
reader's salvage (`yt8m_kd.data.tfrecords`, whose masked CRC32C it shares: the CRC is a standard
function, the walk is what the oracle must not share with the code it checks).

A TFRecord file is a sequence of frames, each

  uint64 length (little endian) | uint32 masked CRC32C of the length | data | uint32 masked
  CRC32C of the data

with mask(crc) = ((crc >> 15 | crc << 17) + 0xA282EAD8) mod 2**32. `split_records` walks the frames
and, where a frame is damaged (a bad length CRC, a bad data CRC, a frame running past the end of
the file), resynchronises on the next offset that starts an intact frame (length CRC and data CRC
both right): the records after a damaged region are intact and are meant to be read.
"""

from __future__ import annotations

import dataclasses
import struct

from yt8m_kd.data.tfrecords import masked_crc32c as masked_crc

_HEADER_BYTES = 12  # length + its CRC
FRAME_OVERHEAD_BYTES = 16  # header + data CRC


def frame(data: bytes) -> bytes:
    """One record framed as TFRecord, with both CRCs right."""
    length = struct.pack("<Q", len(data))
    return (
        length + struct.pack("<I", masked_crc(length)) + data + struct.pack("<I", masked_crc(data))
    )


def frame_all(records: list[bytes]) -> bytes:
    """A TFRecord file's bytes holding `records` in order."""
    return b"".join(frame(record) for record in records)


@dataclasses.dataclass(frozen=True)
class FramedFile:
    """What `split_records` found in a file's bytes."""

    records: tuple[bytes, ...]  # the data of every intact frame, in file order
    damaged: tuple[tuple[int, int], ...]  # [start, end) byte ranges of no intact frame

    @property
    def lost_bytes(self) -> int:
        return sum(end - start for start, end in self.damaged)


def _intact_frame_at(content: bytes, offset: int) -> int | None:
    """The data length of an intact frame starting at `offset`, else None."""
    if offset + _HEADER_BYTES > len(content):
        return None
    header = content[offset : offset + 8]
    (length_crc,) = struct.unpack_from("<I", content, offset + 8)
    if masked_crc(header) != length_crc:
        return None
    (length,) = struct.unpack("<Q", header)
    end = offset + _HEADER_BYTES + length
    if end + 4 > len(content):
        return None
    (data_crc,) = struct.unpack_from("<I", content, end)
    if masked_crc(content[offset + _HEADER_BYTES : end]) != data_crc:
        return None
    return length


def split_records(content: bytes) -> FramedFile:
    """The intact records of a TFRecord file's bytes and its damaged regions (module docstring)."""
    records, damaged = [], []
    offset, damage_start = 0, None
    while offset < len(content):
        length = _intact_frame_at(content, offset)
        if length is None:
            if damage_start is None:
                damage_start = offset
            offset += 1  # resynchronise: try the next byte as a frame start
            continue
        if damage_start is not None:
            damaged.append((damage_start, offset))
            damage_start = None
        records.append(content[offset + _HEADER_BYTES : offset + _HEADER_BYTES + length])
        offset += FRAME_OVERHEAD_BYTES + length
    if damage_start is not None:
        damaged.append((damage_start, len(content)))
    return FramedFile(tuple(records), tuple(damaged))
