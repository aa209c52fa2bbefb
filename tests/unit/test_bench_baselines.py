"""The DuckDB and polars baselines do the same work as our assets, so the benchmark compares like with like."""

import pandas as pd
import pytest

from benchmarks.baselines import duckdb_clean_and_features, polars_clean_and_features
from benchmarks.suite import DAY, NOW, ours_clean_and_features, raw_table


@pytest.fixture(scope="module")
def raw():
    return raw_table(20_000, defect_rate=0.03)


@pytest.fixture(scope="module")
def ours(raw):
    return ours_clean_and_features(raw)


def _comparable(table) -> pd.DataFrame:
    frame = table if isinstance(table, pd.DataFrame) else table.to_pandas()
    frame = frame.reset_index(drop=True)
    for column in frame.columns:
        if isinstance(frame[column].dtype, pd.CategoricalDtype) or frame[column].dtype == "string":
            frame[column] = frame[column].astype("str")
        elif pd.api.types.is_numeric_dtype(frame[column]) and not pd.api.types.is_bool_dtype(frame[column]):
            frame[column] = frame[column].astype("float64")
    return frame


@pytest.mark.parametrize("baseline", [duckdb_clean_and_features, polars_clean_and_features], ids=["duckdb", "polars"])
def test_baseline_produces_our_tables(raw, ours, baseline):
    cleaned, drops, users, items = baseline(raw, DAY, NOW)
    our_cleaned, our_drops, our_users, our_items = ours

    assert {reason: n for reason, n in drops.items() if n} == {reason: n for reason, n in our_drops.items() if n}
    assert sum(our_drops.values()) > 0  # the planted defects are there to be counted
    our_cleaned = _comparable(our_cleaned)
    pd.testing.assert_frame_equal(_comparable(cleaned)[list(our_cleaned.columns)], our_cleaned, check_dtype=False)
    for theirs, mine in ((users, our_users), (items, our_items)):
        mine = _comparable(mine)
        assert list(_comparable(theirs).columns) == list(mine.columns)
        pd.testing.assert_frame_equal(_comparable(theirs), mine, check_dtype=False, check_exact=False, rtol=1e-9)
