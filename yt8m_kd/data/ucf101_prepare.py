"""Preparing UCF101: videos -> JPEG frames -> frame records (TFRecord shards of one split).

Extraction (`extract_videos`): <videos>/<ClassFolder>/<name>.avi -> the frames folders of
`ucf101_splits` (<frames>/<ClassFolder>/<video stem>/frame_00001.jpg ...), resumable. Decoding
needs PyAV, the optional `video` extra, imported only when a video is decoded.

Frame records (`write_split_records`): one split packed into shards
<out>/<split name>-00000-of-0000N.tfrecord, one `tf.train.SequenceExample` per video:

  context  id          bytes  the video stem, e.g. b"v_ApplyEyeMakeup_g08_c01"
           label       int64  0-based class index (classInd number - 1)
           class_name  bytes  the class name of classInd.txt
  feature  frames      bytes  one value per frame: the encoded JPEG, in time order
  list

Videos are dealt to the shards in turn (video i to shard i mod N), so every shard holds every
class. The reader of these records is `ucf101.frame_dataset`.
"""

from __future__ import annotations

import concurrent.futures
import os
import re
import shutil
import time
from collections.abc import Iterator, Sequence
from fractions import Fraction

import numpy as np
import tensorflow as tf
from absl import logging

from yt8m_kd.data.ucf101_splits import (
    FRAME_PATTERN,
    PARTIAL_SUFFIX,
    frames_folder,
    read_class_index,
    read_split,
    video_stem,
)

_FRAME_NAME = re.compile(r"frame_(\d+)\.jpg")
VIDEO_EXTENSIONS = (".avi",)

# A video decoding fewer frames than this fraction of its container header's count is treated
# as truncated. Real AVI headers are often off by a frame or two, so a small shortfall passes.
_MIN_DECODED_FRACTION = 0.9


# ------------------------------------------------------------------------------------ extraction
def list_videos(video_dir: str, extensions: Sequence[str] = VIDEO_EXTENSIONS) -> list[str]:
    """Relative paths '<ClassFolder>/<file>' of the videos in <video_dir>/<ClassFolder>/, sorted."""
    if not os.path.isdir(video_dir):
        raise FileNotFoundError(f"video directory {video_dir} does not exist")
    videos = []
    for folder in sorted(os.listdir(video_dir)):
        path = os.path.join(video_dir, folder)
        if os.path.isdir(path):
            videos += [
                f"{folder}/{name}"
                for name in sorted(os.listdir(path))
                if name.lower().endswith(tuple(extensions))
            ]
    return videos


def _resized_size(width: int, height: int, short_side: int | None) -> tuple[int, int]:
    if short_side is None:
        return width, height
    scale = short_side / min(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def decode_video(
    path: str, fps: float | None = None, short_side: int | None = None
) -> Iterator[np.ndarray]:
    """RGB frames [h, w, 3] uint8 of a video file, in time order.

    Args:
      path: a local video file (PyAV/FFmpeg reads it).
      fps: frames per second to resample to by timestamps: output frame j (time j / fps from the
        first frame) is the source frame shown at that time, so lower rates drop frames and higher
        ones repeat them. None keeps every decoded frame.
      short_side: resize so that the shorter side has this many pixels, keeping the aspect ratio
        (area averaging when shrinking, bicubic when enlarging). None keeps the size.

    Raises (while iterating):
      av.FFmpegError (a ValueError): the file cannot be opened or decoded.
      ValueError: no video stream, or fewer frames than 90% of what the header lists (a
        truncated file: FFmpeg then stops early without an error).
    """
    import av  # the `video` extra; only extraction needs it

    target_rate = None if fps is None else Fraction(fps).limit_denominator(1001)
    if target_rate is not None and target_rate <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    with av.open(path) as container:
        if not container.streams.video:
            raise ValueError("no video stream")
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate
        if target_rate is not None and not rate:
            raise ValueError("the file gives no frame rate to resample from")
        period = 1 / Fraction(rate) if rate else None
        header_frames = stream.frames  # 0 when the container does not say
        decoded, emitted, start = 0, 0, None
        for frame in container.decode(stream):
            width, height = _resized_size(frame.width, frame.height, short_side)
            shrink = width * height < frame.width * frame.height
            image = frame.to_ndarray(
                format="rgb24",
                width=width,
                height=height,
                interpolation="AREA" if shrink else "BICUBIC",
            )
            decoded += 1
            if target_rate is None:
                yield image
                continue
            if frame.pts is not None and stream.time_base is not None:
                shown = frame.pts * Fraction(stream.time_base)
            else:
                shown = (decoded - 1) * period
            start = shown if start is None else start
            # Exact fractions: a target time never misses its frame by a rounding error.
            end = shown - start + period
            while emitted / target_rate < end:
                yield image
                emitted += 1
    if decoded == 0:
        raise ValueError("no frames decoded")
    if header_frames and decoded < _MIN_DECODED_FRACTION * header_frames:
        raise ValueError(
            f"decoded {decoded} of the {header_frames} frames its header lists (truncated?)"
        )


def _extract_one(
    source: str, destination: str, fps: float | None, short_side: int | None, quality: int
) -> int:
    """Writes one video's frames to <destination> via <destination>.partial; returns the count."""
    partial = destination + PARTIAL_SUFFIX
    if os.path.exists(partial):  # left by an interrupted run: redo the video
        shutil.rmtree(partial)
    os.makedirs(partial)
    try:
        count = 0
        for count, image in enumerate(decode_video(source, fps, short_side), start=1):
            jpeg = tf.io.encode_jpeg(image, quality=quality).numpy()
            with open(os.path.join(partial, f"frame_{count:05d}.jpg"), "wb") as f:
                f.write(jpeg)
        os.rename(partial, destination)  # atomic: the folder exists only when complete
        return count
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise


def extract_videos(
    video_dir: str,
    output_dir: str,
    *,
    fps: float | None = None,
    short_side: int | None = None,
    jpeg_quality: int = 95,
    num_workers: int = 1,
    progress: bool = True,
    videos: Sequence[str] | None = None,
) -> dict:
    """Decodes <video_dir>/<Class>/<name>.avi into <output_dir>/<Class>/<name>/frame_00001.jpg ...

    Resumable: a video whose frame folder exists is skipped (the folder appears only when
    complete); frames left in a <name>.partial folder by an interrupted run are discarded and
    the video redone. A video that cannot be decoded is logged (absl, naming the file), counted,
    and the run goes on. Local paths only (PyAV reads local files).

    Args:
      video_dir: the UCF-101 folder (one sub-folder per class).
      output_dir: the frames root; created if missing.
      fps: resample to this frame rate by timestamps (see `decode_video`); None keeps all.
      short_side: resize frames to this short side; None keeps the size.
      jpeg_quality: 0-100, for tf.io.encode_jpeg.
      num_workers: videos extracted at once (threads: FFmpeg and TensorFlow release the GIL).
      progress: show a progress bar (keras.utils.Progbar, on stdout).
      videos: relative paths '<Class>/<name>.avi' to extract; None: every video found.

    Returns:
      {"videos", "extracted", "skipped", "failed", "failed_videos", "frames_written",
       "seconds"}: videos considered, newly extracted, skipped as already done, failed (and
      their relative paths), frames written by this run, and wall time.
    """
    started = time.perf_counter()
    if videos is None:
        videos = list_videos(video_dir)
    summary = {
        "videos": len(videos),
        "extracted": 0,
        "skipped": 0,
        "failed": 0,
        "failed_videos": [],
        "frames_written": 0,
    }
    todo = []
    for relative in videos:
        destination = os.path.join(output_dir, os.path.splitext(relative)[0])
        if os.path.isdir(destination):
            summary["skipped"] += 1
        else:
            todo.append((relative, destination))
    for folder in {os.path.dirname(destination) for _, destination in todo}:
        os.makedirs(folder, exist_ok=True)

    def work(item: tuple[str, str]) -> tuple[str, int | None]:
        relative, destination = item
        source = os.path.join(video_dir, relative)
        try:
            return relative, _extract_one(source, destination, fps, short_side, jpeg_quality)
        except (ValueError, OSError, tf.errors.OpError) as e:  # av.FFmpegError is a ValueError
            logging.error("cannot extract frames of %s: %s", source, e)
            return relative, None

    progbar = None
    if progress and todo:
        import keras

        progbar = keras.utils.Progbar(len(todo), unit_name="video")
    pool = concurrent.futures.ThreadPoolExecutor(num_workers) if num_workers > 1 else None
    try:
        results = pool.map(work, todo) if pool is not None else map(work, todo)
        for done, (relative, count) in enumerate(results, start=1):
            if count is None:
                summary["failed"] += 1
                summary["failed_videos"].append(relative)
            else:
                summary["extracted"] += 1
                summary["frames_written"] += count
            if progbar is not None:
                progbar.update(done)
    finally:
        if pool is not None:
            # On Ctrl-C, finish only the videos in progress, not the whole queue.
            pool.shutdown(wait=True, cancel_futures=True)
    summary["seconds"] = time.perf_counter() - started
    return summary


def format_extraction_summary(summary: dict) -> str:
    text = (
        f"{summary['extracted']} videos extracted ({summary['frames_written']} frames), "
        f"{summary['skipped']} skipped as already done, {summary['failed']} failed"
    )
    if summary["failed_videos"]:
        text += f" ({', '.join(summary['failed_videos'])})"
    return text + f"; {summary['seconds']:.1f} s"


# ------------------------------------------------------------------------------------ records
def make_record(video_id: str, label: int, class_name: str, frames: Sequence[bytes]) -> bytes:
    """A serialized SequenceExample in the schema of the module docstring."""
    example = tf.train.SequenceExample()
    context = example.context.feature
    context["id"].bytes_list.value.append(video_id.encode())
    context["label"].int64_list.value.append(int(label))
    context["class_name"].bytes_list.value.append(class_name.encode())
    frame_list = example.feature_lists.feature_list["frames"]
    frame_list.feature.extend(
        tf.train.Feature(bytes_list=tf.train.BytesList(value=[jpeg])) for jpeg in frames
    )
    return example.SerializeToString(deterministic=True)


def frame_files(folder: str) -> list[str]:
    """The frame_NNNNN.jpg files of a video's folder in time order.

    Raises:
      FileNotFoundError: no such folder, no frames in it, or a gap in the numbering 1, 2, ..., n.
    """
    if not tf.io.gfile.isdir(folder):
        raise FileNotFoundError(f"no frame folder {folder}")
    numbered = sorted(
        (int(match.group(1)), name)
        for name in tf.io.gfile.listdir(folder)
        if (match := _FRAME_NAME.fullmatch(name))
    )
    if not numbered:
        raise FileNotFoundError(f"no {FRAME_PATTERN} frames in {folder}")
    for expected, (number, name) in enumerate(numbered, start=1):
        if number != expected:
            raise FileNotFoundError(f"{folder}: frame {expected} missing (found {name})")
    return [os.path.join(folder, name) for _, name in numbered]


def shard_path(output_dir: str, split_name: str, shard_index: int, num_shards: int) -> str:
    return os.path.join(output_dir, f"{split_name}-{shard_index:05d}-of-{num_shards:05d}.tfrecord")


def write_split_records(
    frames_dir: str,
    split_file: str,
    class_index_file: str,
    output_dir: str,
    *,
    num_shards: int = 1,
    split_name: str | None = None,
    skip_missing: bool = False,
    progress: bool = False,
) -> dict:
    """Packs the extracted frames of one split into SequenceExample shards (schema above).

    Membership and labels come from the official split file (trainlist labels checked against the
    folder, testlist labels from the folder). Each shard is written under a temporary name and
    renamed when complete.

    Args:
      frames_dir: the frames root written by `extract_videos`.
      split_file, class_index_file: e.g. ucfTrainTestlist/trainlist01.txt and classInd.txt.
      output_dir: created if missing.
      num_shards: files to write (videos are dealt to them in turn).
      split_name: file name prefix; default: the split file's name without extension
        (trainlist01).
      skip_missing: skip (log and count) a listed video without frames instead of failing.
      progress: show a progress bar.

    Returns:
      {"split", "videos", "frames", "missing", "missing_videos", "shards"}.

    Raises:
      SplitFileError: a bad line in a split file.
      FileNotFoundError: a listed video without a frame folder or frames (unless skip_missing).
    """
    if num_shards < 1:
        raise ValueError(f"num_shards must be >= 1, got {num_shards}")
    class_names = read_class_index(class_index_file)
    listed = read_split(split_file, class_names)
    if split_name is None:
        split_name = os.path.splitext(os.path.basename(split_file))[0]
    tf.io.gfile.makedirs(output_dir)
    paths = [shard_path(output_dir, split_name, i, num_shards) for i in range(num_shards)]
    summary = {"split": split_name, "videos": 0, "frames": 0, "missing": 0, "missing_videos": []}
    progbar = None
    if progress:
        import keras

        progbar = keras.utils.Progbar(len(listed), unit_name="video")
    writers = [tf.io.TFRecordWriter(path + ".tmp") for path in paths]
    complete = False
    try:
        for position, (relative, label) in enumerate(listed):
            try:
                files = frame_files(frames_folder(frames_dir, relative))
            except FileNotFoundError as e:
                if not skip_missing:
                    raise FileNotFoundError(
                        f"video {relative} of {split_file}: {e} (extract it first, or skip "
                        "missing videos)"
                    ) from e
                logging.warning("skipping video %s of %s: %s", relative, split_file, e)
                summary["missing"] += 1
                summary["missing_videos"].append(relative)
                continue
            jpegs = []
            for path in files:
                with tf.io.gfile.GFile(path, "rb") as f:
                    jpegs.append(f.read())
            record = make_record(video_stem(relative), label, class_names[label], jpegs)
            writers[summary["videos"] % num_shards].write(record)
            summary["videos"] += 1
            summary["frames"] += len(jpegs)
            if progbar is not None:
                progbar.update(position + 1)
        complete = True
    finally:
        for writer in writers:
            writer.close()
        if not complete:  # leave no half-written shards behind
            for path in paths:
                tf.io.gfile.remove(path + ".tmp")
    for path in paths:
        tf.io.gfile.rename(path + ".tmp", path, overwrite=True)
    summary["shards"] = paths
    return summary
