"""Checks of flag values that absl's bounds cannot express, each failing with one line that names
the flag.

absl's `lower_bound` / `upper_bound` let nan through (every comparison with nan is false) and
cannot exclude an end of a range; a model's widths must also fit together (NeXtVLAD's groups divide
its expanded features, the context gating's reduction divides the hidden width), which Keras would
otherwise report from inside a layer with no flag named. Three kinds of check live here:

  register_value_checks(fv)     absl validators on single flags, run at every parse (command
                                line, --flagfile, a run's flags.txt) and on every assignment:
                                every float flag finite, --learning_rate_decay in (0, 1]
  check_model_shapes(model)     the widths of a ModelConfig fit the NeXtVLAD model
                                (docs/nextvlad.md): FlagError naming the flags otherwise
  check_teacher_model(...)      the one rule for what may serve as a teacher (train.py's
                                --teacher_run_dir and cache_teacher.py alike): an all-frames model
  service_address(flag, value)  a tf.data service address, [grpc://]HOST:PORT
  check_data_service(...)       what a training pipeline run by a tf.data service cannot do
                                (yt8m_kd/data/data_service.py says why)

This module is on the flags layer (docs/design.md, "Layering"): it imports only `configs`.
"""

from __future__ import annotations

import math
import re

from absl import flags

from yt8m_kd.configs import DataConfig, FlagError, ModelConfig


# ------------------------------------------------------------------------- single flags
def is_finite(value: float | None) -> bool:
    """True for a finite number or an unset flag (None); False for nan, inf and -inf.

    >>> is_finite(1e8), is_finite(float("nan")), is_finite(None)
    (True, False, True)
    """
    return value is None or math.isfinite(value)


def register_finite_check(fv: flags.FlagValues, name: str) -> None:
    """Makes float flag `name` refuse nan and +-inf (absl's bounds accept nan)."""
    flags.register_validator(name, is_finite, message="must be a finite number", flag_values=fv)


def _decay_in_range(value: float | None) -> bool:
    # 0 would zero the learning rate after the first decay: training would silently stop.
    return value is None or 0.0 < value <= 1.0


def register_value_checks(fv: flags.FlagValues) -> None:
    """Validators of single flags beyond their bounds (the float flags' finiteness is registered
    where each is defined, by `yt8m_kd.flags`)."""
    if "learning_rate_decay" in fv:
        flags.register_validator(
            "learning_rate_decay",
            _decay_in_range,
            message="must be in (0, 1] (1 = no decay)",
            flag_values=fv,
        )


# ------------------------------------------------------------------------- model widths
def _branch_shapes(model: ModelConfig) -> list[tuple[int, int]]:
    """(feature_size, groups) of every NeXtVLAD branch: the first feature with --groups, every
    further one with half of them (at least 1), as `modeling.video_models` builds them."""
    sizes = model.feature_sizes
    return [(sizes[0], model.groups)] + [(size, max(1, model.groups // 2)) for size in sizes[1:]]


def check_model_shapes(model: ModelConfig) -> None:
    """The widths of `model` build a model: positive feature sizes, NeXtVLAD groups that divide
    expansion * feature size (docs/nextvlad.md, step 6 cuts
    every expanded frame into G chunks), a gating reduction that divides the
    hidden width.

    Raises:
      FlagError: naming the flags whose values do not fit.
    """
    sizes = ",".join(str(size) for size in model.feature_sizes)
    if any(size < 1 for size in model.feature_sizes):
        raise FlagError(f"--feature_sizes={sizes}: every feature size must be a positive integer")
    if model.hidden_size % model.gating_reduction:
        raise FlagError(
            f"--gating_reduction={model.gating_reduction} must divide "
            f"--hidden_size={model.hidden_size} (the context gating's bottleneck is H / r)"
        )
    if model.backbone:  # an image model: the branch width is the backbone's, checked by Keras
        return
    for feature_size, groups in _branch_shapes(model):
        if (model.expansion * feature_size) % groups:
            raise FlagError(
                f"--expansion={model.expansion} times feature size {feature_size} "
                f"(--feature_sizes={sizes}) must be divisible by the branch's {groups} groups "
                f"(--groups={model.groups}; every branch after the first has half of them)"
            )


# ------------------------------------------------------------------------- teachers
def check_teacher_model(teacher: ModelConfig, flag: str, run_dir: str) -> None:
    """The one rule for a teacher, online (train.py) or cached (cache_teacher.py): it sees all
    frames (docs/nextvlad.md, "The teacher sees every frame").

    Raises:
      FlagError: naming the flag and the run, when the run trained a k-frame student.
    """
    if teacher.k_frames != 0:
        raise FlagError(
            f"--{flag}={run_dir} trained a {teacher.k_frames}-frame student "
            f"(k_frames={teacher.k_frames}); a teacher is an all-frames model (k_frames=0)"
        )


# ------------------------------------------------------------------------- data service
# [grpc://]HOST:PORT, HOST a name, an IPv4 address or a bracketed IPv6 one.
_SERVICE_ADDRESS = re.compile(
    r"(grpc://)?(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+):(?P<port>\d{1,5})"
)


def service_address(flag: str, value: str | None) -> str:
    """HOST:PORT of a tf.data service address given as flag --`flag` (grpc://HOST:PORT, or
    HOST:PORT; the port in 1..65535).

    >>> service_address("data_service", "grpc://trainer-7:5050")
    'trainer-7:5050'

    Raises:
      FlagError: naming the flag and its value.
    """
    match = _SERVICE_ADDRESS.fullmatch(value or "")
    if not match or not 0 < int(match.group("port")) < 65536:
        raise FlagError(
            f"--{flag}={value or ''} is not a tf.data service dispatcher address: give "
            "grpc://HOST:PORT (what launchers/data_service.py --role=dispatcher prints)"
        )
    return f"{match.group('host')}:{match.group('port')}"


def check_data_service(data: DataConfig, sakd: bool) -> None:
    """A training pipeline handed to a tf.data service (--data_service) runs in the workers'
    processes, which cannot update the training process's state: refuses what needs it.

    - --skip_bad_records: the skips are counted in variables of the training process, and a
      damaged file is salvaged by a tf.py_function that only that process can run (in a worker
      it fails and the rest of the file is silently lost);
    - --sakd: its selection filter reads a variable of the trainer, and its epochs over the
      subset cache it in a file of the training host.

    Raises:
      FlagError: naming --data_service and its bad value, or the flag it cannot go with.
    """
    if not data.data_service:
        return
    service_address("data_service", data.data_service)
    if data.skip_bad_records:
        raise FlagError(
            f"--data_service={data.data_service} cannot run --skip_bad_records: the skips are "
            "counted, and damaged files salvaged, in the training process, out of the service "
            "workers' reach (drop one of them)"
        )
    if sakd:
        raise FlagError(
            f"--data_service={data.data_service} cannot run --sakd: its sample selection reads "
            "the trainer's state, out of the service workers' reach (drop one of them)"
        )
