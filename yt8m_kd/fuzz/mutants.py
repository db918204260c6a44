"""What a fuzz mutant is, and the byte-level mutations both data families share.

A `Mutant` is a small set of files (record shards, or a UCF101 frames root with its split files)
made from valid synthetic data by one mutation `kind`, reproducibly: the same (seed, family, kind,
index) gives the same bytes. `write` puts it on disk under a folder of its own.
"""

from __future__ import annotations

import dataclasses
import os
import zlib

import numpy as np

from yt8m_kd.fuzz import tfrecord


@dataclasses.dataclass(frozen=True)
class Mutant:
    """One fuzz case: files (relative path -> bytes) and what the reader is given."""

    family: str  # "yt8m" or "ucf101"
    kind: str
    index: int
    files: dict[str, bytes]
    source: str  # relative: a record file pattern, or a frames root (layout "folders")
    layout: str = "records"  # or "folders"
    empty_dirs: tuple[str, ...] = ()
    split_file: str | None = None  # folders only
    class_index_file: str | None = None  # folders only
    listed: tuple[tuple[str, bytes], ...] = ()  # folders: (relative folder, video id) listed

    @property
    def name(self) -> str:
        return f"{self.family}-{self.kind}-{self.index:05d}"

    def write(self, root: str) -> str:
        """Writes the files under root/<name>; returns that folder."""
        base = os.path.join(root, self.name)
        os.makedirs(base, exist_ok=True)
        for relative in self.empty_dirs:
            os.makedirs(os.path.join(base, relative), exist_ok=True)
        for relative, content in self.files.items():
            path = os.path.join(base, relative)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(content)
        return base


def rng_for(seed: int, family: str, kind: str, index: int) -> np.random.Generator:
    """The generator of one mutant: independent of the others, stable across processes."""
    return np.random.default_rng(
        [seed, zlib.crc32(family.encode()), zlib.crc32(kind.encode()), index]
    )


# ------------------------------------------------------------------------------------ bytes
def flip_bytes(rng: np.random.Generator, content: bytes, max_flips: int = 3) -> bytes:
    """1..max_flips random bytes XOR-ed with a random non-zero value (CRCs left as they were)."""
    data = bytearray(content)
    for _ in range(int(rng.integers(1, max_flips + 1))):
        position = int(rng.integers(len(data)))
        data[position] ^= int(rng.integers(1, 256))
    return bytes(data)


def flip_in_record(rng: np.random.Generator, records: list[bytes]) -> bytes:
    """Flips bytes inside one record's serialized proto and frames it again with valid CRCs: a
    reader sees an intact TFRecord frame holding whatever the flips made of the proto."""
    records = list(records)
    target = int(rng.integers(len(records)))
    records[target] = flip_bytes(rng, records[target])
    return tfrecord.frame_all(records)


def truncate(rng: np.random.Generator, content: bytes) -> bytes:
    """The file cut at a random offset in [1, len)."""
    return content[: int(rng.integers(1, len(content)))]


def random_bytes(rng: np.random.Generator, size: int) -> bytes:
    return rng.integers(0, 256, size, dtype=np.uint8).tobytes()
