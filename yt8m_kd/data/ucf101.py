"""UCF101 reader: a tf.data pipeline of clips, from frame records or a frames directory.

Sources: the frame records of `ucf101_prepare.write_split_records` (schema there), or a frames
root of `ucf101_splits.frames_folder` folders with a split file and classInd.txt.

Pipeline (`frame_dataset`) batches, the batch contract of docs/design.md:

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
fails in TensorFlow's decoder, whose message names neither. A bad split file raises
`ucf101_splits.SplitFileError`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import tensorflow as tf

from yt8m_kd.data.ucf101_splits import (
    FRAME_PATTERN,
    frames_folder,
    read_class_index,
    read_split,
    video_stem,
)
from yt8m_kd.data.yt8m import list_files

# Short side before cropping = image size * 256 / 224, the usual ImageNet-style ratio.
_RESIZE_RATIO = 256 / 224

# Files read at once by the records pipeline; fixed, so that the record order does not depend on
# the machine (as in yt8m.py).
_DEFAULT_CYCLE_LENGTH = 16

_JPEG_SOI = b"\xff\xd8"
_JPEG_EOI = b"\xff\xd9"


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
