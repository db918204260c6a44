"""The flags the experiment launchers share, defined once; each launcher gives its defaults.

  define_flags(work_dir="experiments/x", seeds=[0, 1], max_steps=1500, **DISTILL_WEIGHTS, ...)

defines the named flags with this module's help text and bounds, so that `--seeds`, `--w_pred` or
`--train_videos` mean and check the same in every experiment. Every check is absl's, made while
the command line is parsed: a bad value stops the launcher with one line naming the flag
(`yt8m_kd.cli.run`), before any work.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

from absl import flags

from yt8m_kd.configs import DistillationWeights

# The distillation weights of the experiments: the library's defaults, the reference's
# L_CE + 0.01 L_pred + 0.001 L_rep with no KL term (docs/nextvlad.md); T = 4 when --w_kl > 0
# (docs/sakd.md).
DISTILL_WEIGHTS = dataclasses.asdict(DistillationWeights())

# name -> (kind, help, lower bound of a number)
_SHARED = {
    "work_dir": ("string", "Where the runs and the results go.", None),
    "data_dir": ("string", "The synthetic data (made there when absent).", None),
    "seeds": ("seeds", "Training seeds; every model is trained once per seed.", 0),
    "seed": ("integer", "Seed of the data and of the training runs.", 0),
    "max_steps": ("integer", "Training steps of every run.", 1),
    "teacher_steps": ("integer", "Training steps of the teacher.", 1),
    "eval_every_steps": (
        "integer",
        "Steps between held-out evaluations (0 = only at the end).",
        0,
    ),
    "w_pred": ("float", "Distilled students: weight of L_pred (probabilities).", 0.0),
    "w_rep": ("float", "Distilled students: weight of L_rep (representations).", 0.0),
    "w_kl": ("float", "Distilled students: weight of the temperature KL loss.", 0.0),
    "temperature": ("float", "Distilled students: temperature T of the KL loss (> 0).", None),
    "train_videos": ("integer", "Synthetic training videos, when the data are made.", 1),
    "eval_videos": ("integer", "Synthetic held-out videos, when the data are made.", 1),
    "progress_bar": ("boolean", "Show progress bars.", None),
}


class _DistinctListParser(flags.ListParser):
    """A comma-separated list of distinct values, each converted (and checked) by `convert`, which
    raises ValueError with the message absl shows after `flag --name=value: `."""

    def __init__(self, convert: Callable[[str], object], allow_empty: bool):
        super().__init__()
        self.convert, self.allow_empty = convert, allow_empty

    def parse(self, argument):
        values = [self.convert(item) for item in super().parse(argument)]
        if not values and not self.allow_empty:
            raise ValueError("is empty")
        if len(set(values)) != len(values):
            raise ValueError("repeats a value")
        return values

    def flag_type(self) -> str:
        return "comma-separated list"


def _define_list(name, default, help_text, parser, fv) -> None:
    flags.DEFINE(parser, name, default, help_text, fv, flags.CsvListSerializer(","))


def define_int_list(
    name: str, default: Sequence[int], help_text: str, *, minimum: int = 0, fv=flags.FLAGS
) -> None:
    """--name=1,2,3: distinct integers >= minimum, not empty; the flag's value is a list of int."""

    def convert(item) -> int:
        try:
            value = int(item)
        except ValueError:
            raise ValueError("must be integers") from None
        if value < minimum:
            raise ValueError(f"every value must be >= {minimum}")
        return value

    _define_list(name, list(default), help_text, _DistinctListParser(convert, False), fv)


def define_choice_list(
    name: str, default: Sequence[str], help_text: str, choices: Sequence[str], *, fv=flags.FLAGS
) -> None:
    """--name=a,b: distinct values of `choices`, possibly none."""

    def convert(item: str) -> str:
        if item not in choices:
            raise ValueError(f"{item!r} is not one of {', '.join(choices)}")
        return item

    _define_list(name, list(default), help_text, _DistinctListParser(convert, True), fv)


def define_flags(fv: flags.FlagValues = flags.FLAGS, **defaults) -> None:
    """Defines the shared flags named in `defaults`, each with its default there.

    Raises:
      ValueError: a name that is not a shared flag (a launcher defines its own flags itself).
    """
    for name, default in defaults.items():
        if name not in _SHARED:
            raise ValueError(f"{name!r} is not a shared experiment flag: {', '.join(_SHARED)}")
        kind, help_text, lower = _SHARED[name]
        if kind == "seeds":
            define_int_list(name, default, help_text, minimum=lower, fv=fv)
        elif kind == "integer":
            flags.DEFINE_integer(name, default, help_text, lower_bound=lower, flag_values=fv)
        elif kind == "float":
            flags.DEFINE_float(name, default, help_text, lower_bound=lower, flag_values=fv)
        elif kind == "boolean":
            flags.DEFINE_boolean(name, default, help_text, flag_values=fv)
        else:
            flags.DEFINE_string(name, default, help_text, flag_values=fv)
    if "temperature" in defaults:
        flags.register_validator(
            "temperature", lambda t: t > 0, message="must be positive", flag_values=fv
        )


def distill_weights(fv: flags.FlagValues = flags.FLAGS) -> dict[str, float]:
    """The values of --w_pred, --w_rep, --w_kl and --temperature, as flag overrides."""
    return {name: fv[name].value for name in DISTILL_WEIGHTS}
