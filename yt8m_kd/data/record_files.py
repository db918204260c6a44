"""One TFRecord file of either data family, read as numbered items with its damage accounted for.

Both readers (`yt8m.frame_dataset`, `ucf101.frame_dataset`) read each records file through
`parsed_file`, which gives, in file order, one element per item of the file:

  (index, item, fields, gap, gap_error)

- index: the item's number in the file (0-based; lost regions are numbered too).
- item: {"serialized", "offset", "end" (its byte range), "code", "error", "lost_bytes",
  "lost_records"}. code RECORD (0) is a record; END (-1) the file's end (one per file, last);
  `corrupt_code` a damaged region: bytes no valid record could be read from, with its one-line
  `error` and the bytes (and, where countable, records) it lost.
- fields: the family's `parse(serialized)` of a record (for other items, of empty bytes). Only
  the parse can fail (bytes that are not a SequenceExample of the family's schema); such a
  record is dropped and leaves a gap in the indices.
- gap: how many records just before this item did not parse (0 almost always), and gap_error its
  one-line message (`unparsable_message`). A reader reports a gap with the item after it, so a
  file's unparsable records are reported in order even when they are its last ones (the END item
  follows them).

How. TensorFlow's TFRecordDataset is read with `ignore_errors()` (at a read error it gives up the
file), its records followed by an end element (`item_batches`); a `scan` over them gives every
record its byte offset (a record takes its length + 16 bytes on disk) and its index, so the end
element knows whether the file was read to its end (its size from tf.io.gfile.stat, when the
pipeline is built). Records are not batched for this: `Dataset.batch` copies their bytes, which
cost more than the scan's function call per record. Only for a damaged file does more run: with
`salvage` (skip mode) a py_function reads the file from the damage point with
`tfrecords.salvage_records`, resynchronising on valid TFRecord headers
(CRC32C checked), and returns the records it finds and one item per lost region; without it
(strict mode), one `corrupt_code` item for the rest of the file. Intact files never reach the
py_function.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import tensorflow as tf

from yt8m_kd.data import tfrecords

# Item codes: a record, and a file's end. A family's corrupt_file code marks a damaged region.
RECORD = 0
END = -1


@dataclasses.dataclass(frozen=True)
class FileMessages:
    """A family's one-line messages about a file's damage.

    damaged(path, offset, size) -> tf string: strict mode, the bytes from `offset` to the end could
      not be read.
    lost_region(path, region, size) -> str: skip mode, one region `salvage_records` could not read
      (plain Python, in the py_function).
    unparsable(path, gap, start, end, size, previous_id) -> tf string: `gap` intact records in
      bytes [start, end) whose bytes are not the family's SequenceExample; previous_id is the id of
      the record before them ("" at the start of the file).
    """

    damaged: Callable[..., tf.Tensor]
    lost_region: Callable[[str, tfrecords.LostRegion, int], str]
    unparsable: Callable[..., tf.Tensor]


def after_record(previous_id: tf.Tensor, words: str, shown_id: Callable) -> tf.Tensor:
    """Where unparsable records stand, for `FileMessages.unparsable`: ", <words> <shown id of the
    record before them>", or ", the first records of the file"."""
    return tf.cond(
        tf.strings.length(previous_id) > 0,
        lambda: tf.strings.join([", ", words, " ", shown_id(previous_id)]),
        lambda: tf.constant(", the first records of the file"),
    )


def _items(serialized, offset, end, code, error, lost_bytes=None, lost_records=None):
    """A batch of items of a file: records, lost regions or its end."""
    count = tf.shape(offset)[0]
    zeros = tf.zeros([count], tf.int64)
    return {
        "serialized": serialized,
        "offset": offset,
        "end": end,
        "code": code,
        "error": error,
        "lost_bytes": zeros if lost_bytes is None else lost_bytes,
        "lost_records": zeros if lost_records is None else lost_records,
    }


def _one_item(serialized, offset, end, code, error="", lost_bytes=0, lost_records=0):
    return _items(
        tf.reshape(serialized, [1]),
        tf.reshape(tf.cast(offset, tf.int64), [1]),
        tf.reshape(tf.cast(end, tf.int64), [1]),
        tf.reshape(tf.cast(code, tf.int32), [1]),
        tf.reshape(error, [1]),
        tf.reshape(tf.cast(lost_bytes, tf.int64), [1]),
        tf.reshape(tf.cast(lost_records, tf.int64), [1]),
    )


def _salvage_items(path, offset, size, corrupt_code: int, messages: FileMessages):
    """The items of a damaged file from `offset` (where TensorFlow's reader gave up) to its end:
    the records `tfrecords.salvage_records` finds and a corrupt item per lost region."""

    def salvage(path, offset, size):
        path, offset, size = path.numpy().decode(), int(offset), int(size)
        found = tfrecords.salvage_records(tfrecords.read_from(path, offset), base=offset)
        rows = [
            (data, start, start + len(data) + tfrecords.OVERHEAD_BYTES, RECORD, "", 0, 0)
            for start, data in found.records
        ]
        for region in found.lost:
            rows.append(
                (
                    b"",
                    region.start,
                    region.end,
                    corrupt_code,
                    messages.lost_region(path, region, size),
                    region.end - region.start,
                    region.records or 0,
                )
            )
        rows.sort(key=lambda row: row[1])
        columns = list(zip(*rows, strict=True)) if rows else [()] * 7
        dtypes = (np.object_, np.int64, np.int64, np.int32, np.object_, np.int64, np.int64)
        return [np.array(column, dtype) for column, dtype in zip(columns, dtypes, strict=True)]

    tout = [tf.string, tf.int64, tf.int64, tf.int32, tf.string, tf.int64, tf.int64]
    columns = tf.py_function(salvage, [path, offset, size], tout)
    columns = [tf.ensure_shape(column, [None]) for column in columns]
    return _items(*columns)


def item_batches(
    path: tf.Tensor,
    size: tf.Tensor,
    *,
    salvage: bool,
    corrupt_code: int,
    messages: FileMessages,
    start: tuple[tf.Tensor, tf.Tensor] | None = None,
) -> tf.data.Dataset:
    """The items of one file in file order, as batches (dicts of [b] tensors: the item fields and
    "index", the item's number in the file) for the caller to unbatch: a batch of one per record,
    then the file's end batch (its lost regions, salvaged records and END item).

    start: (index, offset) of the first item to give, a record read before (the items before it
    are skipped: read again, not given); None: the start of the file.

    One scan function call per record and no batching of records: batching (`Dataset.batch`)
    copies every record's bytes into the batch, which measured a quarter of a 300-frame record's
    read and parse (benchmarks/yt8m_benchmark.py); a record here goes on in a batch of one made by
    `expand_dims`, whose unbatching measured no such cost."""
    records = tf.data.TFRecordDataset(path).ignore_errors()
    if start is not None:
        records = records.skip(start[0])
    elements = tf.data.Dataset.zip((records, tf.data.Dataset.from_tensors(False).repeat()))
    elements = elements.concatenate(tf.data.Dataset.from_tensors((tf.constant(""), True)))

    def locate(state, element):
        offset, count = state
        serialized, is_end = element

        def file_end():
            # The end element has no record: its offset is where TensorFlow's reader stopped.
            last = _one_item(b"", size, size, END)
            if salvage:
                rest = _salvage_items(path, offset, size, corrupt_code, messages)
            else:
                rest = _one_item(
                    b"",
                    offset,
                    size,
                    corrupt_code,
                    messages.damaged(path, offset, size),
                    size - offset,
                )
            return tf.cond(
                offset < size,
                lambda: {k: tf.concat([rest[k], last[k]], 0) for k in last},
                lambda: last,
            )

        end = offset + tf.cast(tf.strings.length(serialized), tf.int64) + tfrecords.OVERHEAD_BYTES

        def record():
            return _items(
                tf.expand_dims(serialized, 0),
                tf.reshape(offset, [1]),
                tf.reshape(end, [1]),
                tf.constant([RECORD], tf.int32),
                tf.constant([""]),
            )

        items = tf.cond(is_end, file_end, record)
        items["index"] = count + tf.range(tf.shape(items["offset"], out_type=tf.int64)[0])
        state = (tf.where(is_end, offset, end), count + 1)
        return state, items

    first = (tf.constant(0, tf.int64), tf.constant(0, tf.int64)) if start is None else start
    return elements.scan((first[1], first[0]), locate)


def file_items(
    path: tf.Tensor, size: tf.Tensor, *, salvage: bool, corrupt_code: int, messages: FileMessages
) -> tf.data.Dataset:
    """(index, item) of every item of one file, in file order (module docstring)."""
    batches = item_batches(
        path, size, salvage=salvage, corrupt_code=corrupt_code, messages=messages
    )
    return batches.unbatch().map(lambda item: (item.pop("index"), item))


def parsed_file(
    path: tf.Tensor,
    size: tf.Tensor,
    *,
    parse: Callable[[tf.Tensor], dict[str, tf.Tensor]],
    salvage: bool,
    corrupt_code: int,
    messages: FileMessages,
    deterministic: bool,
) -> tf.data.Dataset:
    """(index, item, fields, gap, gap_error) of every item of one file (module docstring).
    `parse(serialized)` gives a dict with at least "video_id"."""
    items = file_items(path, size, salvage=salvage, corrupt_code=corrupt_code, messages=messages)

    def fields(index, item):
        # The only step that fails: such records leave gaps in the indices (`find_gaps`).
        return index, item, parse(item["serialized"])

    parsed = items.map(
        fields, num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic
    ).ignore_errors()

    def find_gaps(state, element):
        next_index, previous_end, previous_id = state
        index, item, proto = element
        gap = index - next_index
        gap_error = tf.cond(
            gap > 0,
            lambda: messages.unparsable(path, gap, previous_end, item["offset"], size, previous_id),
            lambda: tf.constant(""),
        )
        is_record = item["code"] == RECORD
        state = (index + 1, item["end"], tf.where(is_record, proto["video_id"], previous_id))
        return state, (index, item, proto, gap, gap_error)

    start = (tf.constant(0, tf.int64), tf.constant(0, tf.int64), tf.constant(""))
    return parsed.scan(start, find_gaps)
