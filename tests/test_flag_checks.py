"""Flag values refused at start with one line naming the flag: non-finite floats, ranges absl's
bounds cannot say, model widths that do not fit together, a student given as the teacher."""

from __future__ import annotations

import math

import pytest
from conftest import REPO_ROOT, tiny_run_config

from yt8m_kd import flag_checks
from yt8m_kd import flags as yflags
from yt8m_kd.configs import DistillationWeights, DistillConfig, FlagError

PRESET = str(REPO_ROOT / "models" / "tiny_teacher.flags")


@pytest.mark.parametrize(
    "name, value, words",
    [
        ("base_learning_rate", math.nan, "flag --base_learning_rate=nan: must be a finite number"),
        ("w_pred", math.nan, "flag --w_pred=nan: must be a finite number"),
        ("temperature", math.inf, "flag --temperature=inf: must be a finite number"),
        ("clip_gradient_norm", math.inf, "flag --clip_gradient_norm=inf: must be a finite"),
        ("sakd_ratio", math.nan, "flag --sakd_ratio=nan: must be a finite number"),
        ("learning_rate_decay", 0.0, "flag --learning_rate_decay=0.0: must be in (0, 1]"),
        ("base_learning_rate", -1e-3, "--base_learning_rate=-0.001"),
        ("num_logical_cpus", -1, "--num_logical_cpus=-1"),
        ("eval_every_steps", -1, "--eval_every_steps=-1"),
        ("cluster_size", 0, "--cluster_size=0"),
        ("image_size", -8, "--image_size=-8"),
    ],
)
def test_bad_values_are_refused_naming_the_flag(name, value, words):
    with pytest.raises(FlagError) as error:
        yflags.read_flagfile(PRESET, **{name: value})
    message = str(error.value)
    assert words in message and PRESET in message
    assert "\n" not in message


def test_every_float_flag_refuses_nan():
    """Not only the flags listed above: any float flag defined now or later."""
    fv = yflags.flag_values(yflags.read_flagfile(PRESET))
    floats = [f.name for f in fv.get_flags_for_module(yflags.__name__) if f.flag_type() == "float"]
    assert len(floats) >= 10
    for name in floats:
        with pytest.raises(Exception, match=f"--{name}=nan: must be a finite number"):
            setattr(fv, name, math.nan)


def test_distillation_weights_refuse_nan():
    with pytest.raises(ValueError, match="w_pred must be finite"):
        DistillationWeights(w_pred=math.nan)
    with pytest.raises(ValueError, match="temperature must be finite"):
        DistillationWeights(temperature=math.nan)


@pytest.mark.parametrize(
    "overrides, words",
    [
        ({"feature_sizes": ["abc", "16"]}, "--feature_sizes=abc,16 must be integers"),
        ({"feature_sizes": [0, 16]}, "--feature_sizes=0,16: every feature size must be a positive"),
        ({"feature_sizes": [-3, 16]}, "--feature_sizes=-3,16: every feature size"),
        ({"feature_sizes": [63, 16]}, "--expansion=2 times feature size 63"),
        ({"feature_sizes": [64, 15], "groups": 8}, "must be divisible by the branch's 4 groups"),
        ({"gating_reduction": 5}, "--gating_reduction=5 must divide --hidden_size=64"),
    ],
)
def test_model_widths_that_do_not_fit_are_refused(overrides, words, tiny_yt8m):
    with pytest.raises(FlagError) as error:
        yflags.validate_run_config(tiny_run_config("tiny_teacher.flags", tiny_yt8m, **overrides))
    assert words in str(error.value)


def test_every_preset_passes_the_width_checks():
    presets = sorted((REPO_ROOT / "models").glob("*.flags"))
    assert len(presets) >= 10
    for preset in presets:
        # A teacher cache named (not read) so that the SAKD presets parse.
        config = yflags.read_flagfile(str(preset), teacher_cache="a-cache")
        flag_checks.check_model_shapes(config.model)


def test_a_student_run_is_refused_as_teacher(tiny_yt8m, tmp_path):
    student_dir = str(tmp_path / "student")
    yflags.write_run_config(tiny_run_config("tiny_student_k6.flags", tiny_yt8m), student_dir)
    config = tiny_run_config("tiny_distilled_k6.flags", tiny_yt8m)
    config = config.replace(distill=DistillConfig(teacher_run_dir=student_dir))
    with pytest.raises(FlagError) as error:
        yflags.validate_run_config(config, training=True)
    assert str(error.value) == (
        f"--teacher_run_dir={student_dir} trained a 6-frame student (k_frames=6); a teacher is "
        "an all-frames model (k_frames=0)"
    )
    # An all-frames run is accepted.
    teacher_dir = str(tmp_path / "teacher")
    yflags.write_run_config(tiny_run_config("tiny_teacher.flags", tiny_yt8m), teacher_dir)
    config = config.replace(distill=DistillConfig(teacher_run_dir=teacher_dir))
    yflags.validate_run_config(config, training=True)
