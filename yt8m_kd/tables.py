"""Results tables as Markdown: `markdown_table` of a `pandas.DataFrame`, for the experiments'
and the demo's `results.md` and for notebooks (e.g. of `run_logs.final_table(runs)`).

Built on `DataFrame.to_markdown` (the `tabulate` package), pipe format: text columns left-aligned,
number columns right-aligned. Two things it does that a bare `to_markdown` does not:
- each column keeps its own type: `to_markdown` hands tabulate the frame's values as one array,
  which turns the integers of a frame that also holds floats into floats ("300.0000" frames);
- missing values (NaN, None) read `missing` instead of "nan", and text columns stay text even
  when they look like numbers (a label "1e3" or "007").
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

DEFAULT_FLOATFMT = ".4f"


def markdown_table(
    df: pd.DataFrame,
    floatfmt: str | Mapping[str, str] = DEFAULT_FLOATFMT,
    *,
    intfmt: str = "",
    index: bool = True,
    missing: str = "n/a",
) -> str:
    """`df` as a Markdown (pipe) table, without a trailing newline.

    Args:
      df: the table; its index is the first column (headed by the index's name, or blank) unless
        `index` is False.
      floatfmt: format spec of float cells (".4f": 0.8123), or column name -> spec for the
        columns that need another one (e.g. {"gflops_per_video": ".5f"}), the others ".4f".
        The index's name is a column name here.
      intfmt: format spec of integer cells ("": 1234567, ",": 1,234,567).
      index: whether to show the index.
      missing: what a missing value (NaN, None) reads.

    Raises:
      ValueError: `floatfmt` names a column the table does not have.
    """
    frame = df.reset_index() if index else df
    if index and df.index.names == [None]:
        frame = frame.rename(columns={frame.columns[0]: ""})
    names = [str(name) for name in frame.columns]
    if isinstance(floatfmt, Mapping):
        unknown = sorted(set(floatfmt) - set(names))
        if unknown:
            raise ValueError(
                f"floatfmt names columns the table does not have: {', '.join(unknown)} "
                f"(columns: {', '.join(names)})"
            )
        formats = [floatfmt.get(name, DEFAULT_FLOATFMT) for name in names]
    else:
        formats = [floatfmt] * len(names)
    text = [i for i, dtype in enumerate(frame.dtypes) if not pd.api.types.is_numeric_dtype(dtype)]
    cells = frame.astype(object).where(frame.notna(), None)  # per-cell types, None for missing
    return cells.to_markdown(
        index=False,
        floatfmt=formats,
        intfmt=intfmt,
        missingval=missing,
        numalign="right",
        disable_numparse=text or False,
    )
