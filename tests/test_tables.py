"""Markdown results tables: exact output, integers kept integers, missing values named."""

import math

import pandas as pd
import pytest

from yt8m_kd.tables import markdown_table


def results():
    return pd.DataFrame(
        {
            "frames": [300, 6, 6],
            "gap": [0.81234567, 0.5, math.nan],
            "trainable_params": [1234567, 20480, 20480],
            "gflops_per_video": [0.05, 0.0012345, 0.0012345],
            "seed": ["007", "1", "1e3"],  # text that looks like numbers stays text
        },
        index=pd.Index(["teacher", "plain k=6", "distilled k=6"], name="model"),
    )


def test_markdown_table_of_results():
    table = markdown_table(results(), {"gflops_per_video": ".5f"}, intfmt=",")
    assert table == (
        "| model         |   frames |    gap |   trainable_params |   gflops_per_video | seed   |\n"
        "|:--------------|---------:|-------:|-------------------:|-------------------:|:-------|\n"
        "| teacher       |      300 | 0.8123 |          1,234,567 |            0.05000 | 007    |\n"
        "| plain k=6     |        6 | 0.5000 |             20,480 |            0.00123 | 1      |\n"
        "| distilled k=6 |        6 |    n/a |             20,480 |            0.00123 | 1e3    |"
    )


def test_markdown_table_defaults_and_options():
    frame = pd.DataFrame({"k": [6, 30], "gain": [0.0125, -0.5]})
    assert markdown_table(frame) == (
        "|    |   k |    gain |\n"
        "|---:|----:|--------:|\n"
        "|  0 |   6 |  0.0125 |\n"
        "|  1 |  30 | -0.5000 |"
    )  # an unnamed index has a blank header
    assert markdown_table(frame, "+.2f", index=False, missing="-") == (
        "|   k |   gain |\n|----:|-------:|\n|   6 |  +0.01 |\n|  30 |  -0.50 |"
    )
    with_gap = pd.DataFrame({"gap": [0.5, None]}, index=pd.Index(["a", "b"], name="run"))
    assert markdown_table(with_gap, missing="-") == (
        "| run   |    gap |\n|:------|-------:|\n| a     | 0.5000 |\n| b     |      - |"
    )


def test_markdown_table_names_an_unknown_column():
    with pytest.raises(ValueError, match="does not have: gflops .*columns: model, frames"):
        markdown_table(results(), {"gflops": ".5f"})
