"""UCF101: split files, frame extraction, frame records, and a tf.data pipeline of clips.

Official layout (and that of `ucf101_synthetic`):

  UCF-101/<ClassFolder>/v_<Class>_gXX_cYY.avi   one folder per class, gXX the group (actor/scene)
  ucfTrainTestlist/classInd.txt                 "1 ApplyEyeMakeup": 1-based index, class name
  ucfTrainTestlist/trainlist0N.txt              "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1"
  ucfTrainTestlist/testlist0N.txt               "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi"

A video's class is its folder: the test lists carry no label, and in the real data a file name
may spell the class differently from its folder (HandstandPushups/v_HandStandPushups_g01_c01.avi).
Blank lines and CRLF line ends are accepted.

Extracted frames (`extract_videos`): <frames>/<ClassFolder>/<video stem>/frame_00001.jpg, 1-based
and numbered without gaps, in time order. A video's folder appears only once all its frames are
written (they go to <stem>.partial first), so a folder that exists is complete.

Frame records (`write_split_records`): one split packed into shards
<out>/<split name>-00000-of-0000N.tfrecord, one `tf.train.SequenceExample` per video:

  context  id          bytes  the video stem, e.g. b"v_ApplyEyeMakeup_g08_c01"
           label       int64  0-based class index (classInd number - 1)
           class_name  bytes  the class name of classInd.txt
  feature  frames      bytes  one value per frame: the encoded JPEG, in time order
  list

Videos are dealt to the shards in turn (video i to shard i mod N), so every shard holds every
class.

Pipeline (`frame_dataset`) batches, the batch contract of DESIGN.md:

  video_id    [B] string
  frames      [B, T, S, S, 3] uint8, T = num_frames, S = image_size; a video with n < T frames
              gives its n frames in order followed by T - n all-zero frames
  num_frames  [B] int32 = min(n, T)
  labels      [B] int32, 0-based

Temporal sampling, over the whole video (n frames), split into T equal segments
[floor(i n / T), floor((i + 1) n / T)): eval takes each segment's centre floor((2i + 1) n / 2T)
(the `uniform` rule of sampling.py), training one random frame per segment (TSN, Wang et al.
2016). Only the T chosen JPEGs are decoded. Spatial: resize so that the short side is
`resize_short_side` (default round(S * 256 / 224): 112 -> 128, 224 -> 256; bilinear with
antialiasing), then eval takes the centre S x S crop and training one random crop and a random
horizontal flip, the same for every frame of a clip. The few-frame student's k frames are picked
from these T later, by `sampling.select_frames`.

Bad input gives a tf.errors.InvalidArgumentError that names the file (or frame folder) and the
video id: a record without frames, a label outside [0, num_classes) (when the classes are known),
a frame that is not a complete JPEG (it does not start with the SOI marker FFD8 and end with the
EOI marker FFD9: random bytes, a truncated file). Damage inside a JPEG that keeps both markers
fails in TensorFlow's decoder, whose message names neither. The split-file parsers raise
`SplitFileError` naming the file and line.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from fractions import Fraction

import numpy as np
import tensorflow as tf
from absl import logging

from yt8m_kd.data.yt8m import list_files

FRAME_PATTERN = "frame_*.jpg"
_FRAME_NAME = re.compile(r"frame_(\d+)\.jpg")
PARTIAL_SUFFIX = ".partial"  # an extraction in progress; never read as a video's frames
VIDEO_EXTENSIONS = (".avi",)

# Short side before cropping = image size * 256 / 224, the usual ImageNet-style ratio.
_RESIZE_RATIO = 256 / 224

# A video decoding fewer frames than this fraction of its container header's count is treated
# as truncated. Real AVI headers are often off by a frame or two, so a small shortfall passes.
_MIN_DECODED_FRACTION = 0.9

# Files read at once by the records pipeline; fixed, so that the record order does not depend on
# the machine (as in yt8m.py).
_DEFAULT_CYCLE_LENGTH = 16

_JPEG_SOI = b"\xff\xd8"
_JPEG_EOI = b"\xff\xd9"


class SplitFileError(ValueError):
    """A bad line in classInd.txt or a train/test list; the message names the file and line."""


# ------------------------------------------------------------------------------------ split files
def _read_lines(path: str) -> list[tuple[int, str]]:
    """(1-based line number, stripped line) of the non-blank lines."""
    with tf.io.gfile.GFile(path, "r") as f:
        text = f.read()
    text = text.lstrip("\ufeff")  # a byte order mark some editors add
    return [
        (number, line.strip()) for number, line in enumerate(text.splitlines(), 1) if line.strip()
    ]


def read_class_index(path: str) -> list[str]:
    """Class names in index order from classInd.txt ("1 ApplyEyeMakeup" per line).

    Raises:
      SplitFileError: a line that is not "<index> <name>", indices that are not 1, 2, ..., N in
        order, a repeated name, or no classes (the message names the file and line).
    """
    names: list[str] = []
    for number, line in _read_lines(path):
        parts = line.split()
        if len(parts) != 2 or not parts[0].isdigit():
            raise SplitFileError(
                f"{path}, line {number}: expected '<index> <ClassName>', got {line!r}"
            )
        index, name = int(parts[0]), parts[1]
        if index != len(names) + 1:
            raise SplitFileError(
                f"{path}, line {number}: class index {index}, expected {len(names) + 1} "
                "(indices must run 1, 2, ..., N in order)"
            )
        if name in names:
            raise SplitFileError(f"{path}, line {number}: class {name!r} listed twice")
        names.append(name)
    if not names:
        raise SplitFileError(f"{path}: no classes")
    return names


def read_split(path: str, class_names: Sequence[str]) -> list[tuple[str, int]]:
    """(relative video path, 0-based label) per line of a trainlist or testlist file.

    The label is the video's class folder. A trainlist line's 1-based label must name that same
    class; a testlist line has no label.

    Raises:
      SplitFileError: a line that is not "<Class>/<video>.avi" with an optional label, a folder
        that is no class of `class_names`, a label that is not an index of a class or does not
        match the folder, or a video listed twice (the message names the file and line).
    """
    index = {name: i for i, name in enumerate(class_names)}
    videos: list[tuple[str, int]] = []
    seen: set[str] = set()
    for number, line in _read_lines(path):
        parts = line.split()
        where = f"{path}, line {number}"
        if len(parts) not in (1, 2) or parts[0].count("/") != 1:
            raise SplitFileError(
                f"{where}: expected '<ClassName>/<video>.avi' and an optional label, got {line!r}"
            )
        relative = parts[0]
        folder = relative.split("/")[0]
        if folder not in index:
            raise SplitFileError(f"{where}: folder {folder!r} of {relative} is not a class")
        label = index[folder]
        if len(parts) == 2:
            if not parts[1].isdigit() or not 1 <= int(parts[1]) <= len(class_names):
                raise SplitFileError(
                    f"{where}: label {parts[1]!r} is not a class index 1..{len(class_names)}"
                )
            given = int(parts[1]) - 1
            if given != label:
                raise SplitFileError(
                    f"{where}: label {given + 1} ({class_names[given]}) does not match the "
                    f"folder of {relative} ({folder}, {label + 1})"
                )
        if relative in seen:
            raise SplitFileError(f"{where}: {relative} listed twice")
        seen.add(relative)
        videos.append((relative, label))
    return videos


def video_stem(relative_path: str) -> str:
    """'ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi' -> 'v_ApplyEyeMakeup_g08_c01' (the id)."""
    return os.path.splitext(relative_path.replace("\\", "/").split("/")[-1])[0]


def frames_folder(frames_dir: str, relative_path: str) -> str:
    """Where the frames of a listed video are: <frames_dir>/<ClassFolder>/<video stem>."""
    folder = relative_path.replace("\\", "/").split("/")[0]
    return os.path.join(frames_dir, folder, video_stem(relative_path))


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


# ------------------------------------------------------------------------------------ pipeline
_CONTEXT_FEATURES = {
    "id": tf.io.FixedLenFeature([], tf.string, default_value=""),
    "label": tf.io.FixedLenFeature([], tf.int64, default_value=-1),
    "class_name": tf.io.FixedLenFeature([], tf.string, default_value=""),
}
_SEQUENCE_FEATURES = {"frames": tf.io.FixedLenSequenceFeature([], tf.string, allow_missing=True)}


@dataclasses.dataclass(frozen=True)
class _ClipSettings:
    num_frames: int  # T
    image_size: int  # S
    resize_short_side: int
    num_classes: int | None
    training: bool
    random_flip: bool = True
    check_labels: bool = True  # serving reads records whose labels are unknown


def _settings(
    num_frames: int,
    image_size: int,
    resize_short_side: int | None,
    num_classes: int | None,
    training: bool,
) -> _ClipSettings:
    if num_frames < 1 or image_size < 1:
        raise ValueError(f"num_frames and image_size must be >= 1, got {num_frames}, {image_size}")
    if resize_short_side is None:
        resize_short_side = round(image_size * _RESIZE_RATIO)
    if resize_short_side < image_size:
        raise ValueError(
            f"resize_short_side {resize_short_side} is smaller than the crop size {image_size}"
        )
    return _ClipSettings(num_frames, image_size, resize_short_side, num_classes, training)


def sample_frame_indices(
    n: tf.Tensor, num_frames: int, training: bool, seed: tf.Tensor | None = None
) -> tf.Tensor:
    """[min(n, T)] int32 frame indices, increasing (see the module docstring).

    Eval: the centre of each of T equal segments. Training: one uniform random frame per segment,
    drawn with `seed` (a shape-[2] stateless seed). n < T: 0 .. n-1.
    """
    n = tf.cast(n, tf.int32)
    i = tf.range(num_frames, dtype=tf.int32)
    if training:
        start, end = (i * n) // num_frames, ((i + 1) * n) // num_frames
        u = tf.random.stateless_uniform([num_frames], seed=seed)
        offset = tf.cast(u * tf.cast(end - start, tf.float32), tf.int32)
        picked = start + tf.minimum(offset, tf.maximum(end - start - 1, 0))
    else:
        picked = ((2 * i + 1) * n) // (2 * num_frames)
    return tf.where(n >= num_frames, picked, i)[: tf.minimum(n, num_frames)]


def _check(condition: tf.Tensor, where: tf.Tensor, video_id: tf.Tensor, problem) -> tf.Operation:
    return tf.debugging.Assert(
        condition,
        [tf.strings.join(["bad UCF101 input: ", where, ", video ", video_id, ": ", problem])],
    )


def _make_clip(
    settings: _ClipSettings,
    read_frames: Callable[[tf.Tensor], tf.Tensor],
    n: tf.Tensor,
    video_id: tf.Tensor,
    label: tf.Tensor,
    where: tf.Tensor,
    seed: tf.Tensor | None,
) -> dict[str, tf.Tensor]:
    """The clip of one video: n frames, read_frames(indices) -> their encoded JPEGs."""
    s, t = settings.image_size, settings.num_frames
    label = tf.cast(label, tf.int32)
    label_ok = label >= 0
    if settings.num_classes is not None:
        label_ok &= label < settings.num_classes
    range_text = f" outside [0, {settings.num_classes})" if settings.num_classes else " (negative)"
    checks = [_check(n > 0, where, video_id, "no frames")]
    if settings.check_labels:
        label_text = tf.strings.join(["label ", tf.strings.as_string(label), range_text])
        checks.append(_check(label_ok, where, video_id, label_text))
    if seed is not None:
        time_seed, top_seed, left_seed, flip_seed = tf.unstack(
            tf.random.experimental.stateless_split(seed, 4)
        )
    else:
        time_seed = top_seed = left_seed = flip_seed = None
    with tf.control_dependencies(checks):
        n = tf.identity(n)  # everything below depends on the checks
    indices = sample_frame_indices(n, t, settings.training, time_seed)
    encoded = read_frames(indices)  # [m] string

    length = tf.strings.length(encoded)
    head = tf.strings.substr(encoded, tf.zeros_like(length), tf.fill(tf.shape(length), 2))
    tail = tf.strings.substr(encoded, tf.maximum(length - 2, 0), tf.fill(tf.shape(length), 2))
    is_jpeg = (length >= 4) & tf.equal(head, _JPEG_SOI) & tf.equal(tail, _JPEG_EOI)
    bad = tf.argmin(tf.cast(is_jpeg, tf.int32), output_type=tf.int32)  # the first bad one
    bad_frame = tf.gather(indices, tf.minimum(bad, tf.maximum(tf.size(indices) - 1, 0)))
    jpeg_check = _check(
        tf.reduce_all(is_jpeg),
        where,
        video_id,
        tf.strings.join(["frame ", tf.strings.as_string(bad_frame + 1), " is not a complete JPEG"]),
    )
    with tf.control_dependencies([jpeg_check]):
        encoded = tf.identity(encoded)

    images = tf.map_fn(
        lambda jpeg: tf.io.decode_jpeg(jpeg, channels=3),
        encoded,
        fn_output_signature=tf.TensorSpec([None, None, 3], tf.uint8),
    )  # [m, h, w, 3]
    height, width = tf.shape(images)[1], tf.shape(images)[2]
    short = tf.cast(tf.minimum(height, width), tf.float64)
    scale = settings.resize_short_side / short
    new_height = tf.cast(tf.round(tf.cast(height, tf.float64) * scale), tf.int32)
    new_width = tf.cast(tf.round(tf.cast(width, tf.float64) * scale), tf.int32)
    images = tf.image.resize(images, [new_height, new_width], method="bilinear", antialias=True)

    # One window and one flip for the whole clip: the frames stay aligned in time.
    if settings.training:
        top = tf.random.stateless_uniform(
            [], top_seed, minval=0, maxval=new_height - s + 1, dtype=tf.int32
        )
        left = tf.random.stateless_uniform(
            [], left_seed, minval=0, maxval=new_width - s + 1, dtype=tf.int32
        )
    else:
        top, left = (new_height - s) // 2, (new_width - s) // 2
    images = images[:, top : top + s, left : left + s, :]
    if settings.training and settings.random_flip:
        flip = tf.random.stateless_uniform([], flip_seed) < 0.5
        images = tf.cond(flip, lambda: tf.reverse(images, axis=[2]), lambda: images)
    images = tf.cast(tf.clip_by_value(tf.round(images), 0.0, 255.0), tf.uint8)
    valid = tf.shape(images)[0]
    images = tf.pad(images, [[0, t - valid], [0, 0], [0, 0], [0, 0]])
    return {
        "video_id": video_id,
        "frames": tf.ensure_shape(images, [t, s, s, 3]),
        "num_frames": valid,
        "labels": label,
    }


def _record_clip(
    settings: _ClipSettings, serialized: tf.Tensor, where: tf.Tensor, seed: tf.Tensor | None
) -> dict[str, tf.Tensor]:
    context, sequences = tf.io.parse_single_sequence_example(
        serialized, context_features=_CONTEXT_FEATURES, sequence_features=_SEQUENCE_FEATURES
    )
    frames = sequences["frames"]
    return _make_clip(
        settings,
        lambda indices: tf.gather(frames, indices),
        tf.shape(frames, out_type=tf.int32)[0],
        context["id"],
        context["label"],
        where,
        seed,
    )


def _folder_clip(
    settings: _ClipSettings,
    folder: tf.Tensor,
    video_id: tf.Tensor,
    label: tf.Tensor,
    seed: tf.Tensor | None,
) -> dict[str, tf.Tensor]:
    # MatchingFiles sorts its result; 5-digit names sort in time order.
    paths = tf.io.matching_files(tf.strings.join([folder, "/", FRAME_PATTERN]))

    def read(indices):
        return tf.map_fn(tf.io.read_file, tf.gather(paths, indices), fn_output_signature=tf.string)

    return _make_clip(
        settings,
        read,
        tf.shape(paths, out_type=tf.int32)[0],
        video_id,
        label,
        tf.strings.join(["folder ", folder]),
        seed,
    )


def parse_eval_clip(
    serialized: tf.Tensor,
    num_frames: int,
    image_size: int,
    resize_short_side: int | None = None,
    num_classes: int | None = None,
    check_labels: bool = True,
) -> dict[str, tf.Tensor]:
    """The eval clip of one serialized frame record, in pure TensorFlow (usable in a SavedModel).

    The same ops as `frame_dataset(..., training=False)`, so the two agree exactly. With
    check_labels=False a record without a label (or with any label) is read as well: serving.

    Returns:
      {"video_id": scalar string, "frames": [num_frames, image_size, image_size, 3] uint8,
       "num_frames": scalar int32, "labels": scalar int32}.
    """
    settings = dataclasses.replace(
        _settings(num_frames, image_size, resize_short_side, num_classes, training=False),
        check_labels=check_labels,
    )
    return _record_clip(settings, serialized, tf.constant("record"), seed=None)


def _is_frames_dir(source: str | Sequence[str]) -> bool:
    return isinstance(source, str) and tf.io.gfile.isdir(source)


def frame_dataset(
    source: str | Sequence[str],
    *,
    batch_size: int,
    num_frames: int,
    image_size: int,
    training: bool,
    class_index_file: str | None = None,
    split_file: str | None = None,
    num_classes: int | None = None,
    resize_short_side: int | None = None,
    shuffle: bool = False,
    shuffle_buffer: int = 256,
    repeat: bool = False,
    seed: int | None = None,
    drop_remainder: bool = False,
    input_context: tf.distribute.InputContext | None = None,
    id_filter: Callable[[tf.Tensor], tf.Tensor] | None = None,
    cache_file: str | None = None,
    random_flip: bool = True,
) -> tf.data.Dataset:
    """Batches of UCF101 clips (see the module docstring for the batch, sampling and errors).

    Args:
      source: a glob pattern of frame-record shards (or a sequence of patterns), or a frames root
        directory (<root>/<ClassFolder>/<video stem>/frame_*.jpg), which needs split_file and
        class_index_file.
      batch_size: clips per batch of this input pipeline.
      num_frames: T, frames per clip.
      image_size: S, the side of the square crop.
      training: random frame per segment, random crop and flip; otherwise segment centres and the
        centre crop.
      class_index_file: classInd.txt. For records it is optional and gives num_classes.
      split_file: a trainlist or testlist file; only (and required) for a frames directory.
      num_classes: labels must lie in [0, num_classes); default: from the class index file, else
        only negative labels are errors.
      resize_short_side: short side before cropping (default round(S * 256 / 224)).
      shuffle: shuffle the files and records (records: in a buffer of shuffle_buffer serialized
        records, each holding all JPEGs of a video, before decoding; a frames directory: the
        whole video list).
      repeat: repeat forever.
      seed: seeds the shuffles and the training randomness; with a seed the batches are
        reproducible; without one a shuffled pipeline may also read in a nondeterministic order.
      drop_remainder: drop a last partial batch.
      input_context: with more than one input pipeline, this pipeline reads only every
        num_input_pipelines-th file (records) or video (frames directory), from its
        input_pipeline_id on.
      random_flip: training flips a clip horizontally with probability 1/2 (right for UCF101's
        actions; wrong where left and right are different classes, as in the synthetic set).
      id_filter: video id (scalar string) -> bool: keeps only the videos it accepts (SAKD's
        selected subset), before any frame is decoded.
      cache_file: with repeat=True, the (filtered) serialized records of the first pass are
        cached in this file and later passes read them from it instead of all input files; the
        clips are still decoded and augmented anew every pass. A new name per pipeline.

    Raises:
      FileNotFoundError: a pattern matches no file.
      ValueError: bad sizes, a frames directory without split files (or records with one), fewer
        files than input pipelines.
      SplitFileError: a bad line in a split file.
    """
    if class_index_file is not None and num_classes is None:
        num_classes = len(read_class_index(class_index_file))
    settings = dataclasses.replace(
        _settings(num_frames, image_size, resize_short_side, num_classes, training),
        random_flip=random_flip,
    )
    pipelines = input_context.num_input_pipelines if input_context is not None else 1
    pipeline_id = input_context.input_pipeline_id if input_context is not None else 0
    deterministic = not shuffle or seed is not None

    if _is_frames_dir(source):
        if split_file is None or class_index_file is None:
            raise ValueError(
                f"{source} is a frames directory: give split_file and class_index_file"
            )
        listed = read_split(split_file, read_class_index(class_index_file))
        if not listed:
            raise ValueError(f"{split_file} lists no videos")
        folders = [frames_folder(source, relative) for relative, _ in listed]
        ids = [video_stem(relative) for relative, _ in listed]
        labels = [label for _, label in listed]
        dataset = tf.data.Dataset.from_tensor_slices((folders, ids, labels))
        if pipelines > 1:
            dataset = dataset.shard(pipelines, pipeline_id)
        if id_filter is not None:
            dataset = dataset.filter(lambda _folder, video_id, _label: id_filter(video_id))
        if cache_file is not None:
            dataset = dataset.cache(cache_file)
        if shuffle:
            # Paths are small: shuffle the whole list.
            dataset = dataset.shuffle(len(listed), seed=seed, reshuffle_each_iteration=True)

        def clip(element, clip_seed):
            folder, video_id, label = element
            return _folder_clip(settings, folder, video_id, label, clip_seed)

    else:
        if split_file is not None:
            raise ValueError("split_file is only for a frames directory; records hold one split")
        files = list_files(source)
        if pipelines > 1:
            if len(files) < pipelines:
                raise ValueError(
                    f"{len(files)} files match {source!r}, fewer than the {pipelines} input "
                    "pipelines that each read whole files"
                )
            files = files[pipeline_id::pipelines]
        dataset = tf.data.Dataset.from_tensor_slices(files)
        if shuffle:
            dataset = dataset.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
        dataset = dataset.interleave(
            lambda path: tf.data.TFRecordDataset(path).map(
                lambda serialized: (tf.strings.join(["file ", path]), serialized)
            ),
            cycle_length=min(len(files), _DEFAULT_CYCLE_LENGTH),
            block_length=1,
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=deterministic,
        )
        if id_filter is not None:
            dataset = dataset.filter(
                lambda _where, serialized: id_filter(
                    tf.io.parse_single_sequence_example(
                        serialized, context_features={"id": _CONTEXT_FEATURES["id"]}
                    )[0]["id"]
                )
            )
        if cache_file is not None:
            dataset = dataset.cache(cache_file)
        if shuffle:
            dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)

        def clip(element, clip_seed):
            where, serialized = element
            return _record_clip(settings, serialized, where, clip_seed)

    if repeat:
        dataset = dataset.repeat()
    if training:
        # One stateless seed per clip (zipped after repeat: every epoch draws new ones), so that
        # parallel decoding stays reproducible under a seed.
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
        dataset = tf.data.Dataset.zip(dataset, seeds)
        dataset = dataset.map(
            clip, num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic
        )
    else:
        dataset = dataset.map(
            lambda *element: clip(element, None), num_parallel_calls=tf.data.AUTOTUNE
        )
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
    return dataset.prefetch(tf.data.AUTOTUNE)
