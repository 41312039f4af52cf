"""Learning progress per length group, measured on paired probe answers."""

import numpy as np
import pandas as pd

from tadistill.signals.progress import group_of, item_weights, length_edges, measure_progress


def _answers(pattern: list[bool], n: int) -> pd.Series:
    return pd.Series(np.resize(pattern, n).astype(bool))


def test_groups_are_length_quantiles_and_the_shortest_is_zero():
    lengths = pd.Series(range(100))
    edges = length_edges(lengths, 4)
    groups = group_of(lengths, edges)
    assert sorted(groups.unique()) == [0, 1, 2, 3] and groups.value_counts().tolist() == [25] * 4
    assert groups.iloc[0] == 0 and groups.iloc[-1] == 3
    assert len(length_edges(pd.Series([5] * 10), 4)) == 0  # one length: one group


def test_the_purchase_follows_clear_progress_and_is_random_without_it():
    groups = pd.Series([0] * 100 + [1] * 100 + [2] * 100)
    before = pd.concat([_answers([True], 100), _answers([False], 100), _answers([False], 100)], ignore_index=True)
    # Group 0 was known already, group 1 gained 40 points, group 2 (beyond the student) nothing.
    after = pd.concat([_answers([True], 100), _answers([True, True, False, False, False], 100),
                       _answers([False], 100)], ignore_index=True)
    progress = measure_progress(groups, before, after, z=1.0)
    table = progress.table.set_index("group")
    assert not progress.random and table.loc[1, "share"] == 1.0 and table.loc[[0, 2], "share"].sum() == 0
    assert abs(table.loc[1, "progress"] - 0.4) < 1e-9 and table.loc[1, "se"] > 0
    assert "bought by progress" in progress.said() and "+0.400" in progress.said()
    flat = measure_progress(groups, before, before, z=1.0)
    assert flat.random and "bought at random" in flat.said()


def test_noise_within_a_standard_error_earns_no_share():
    groups = pd.Series([0] * 40)
    before = _answers([True, False], 40)
    after = before.copy()
    after.iloc[1] = True  # one question of 40 flipped: +0.025, se about 0.025
    assert measure_progress(groups, before, after, z=1.0).random


def test_item_weights_spread_a_groups_share_over_its_candidates():
    progress = measure_progress(pd.Series([0] * 50 + [1] * 50), pd.Series([False] * 100),
                                pd.Series([True] * 10 + [False] * 40 + [True] * 30 + [False] * 20), z=0.0)
    candidates = pd.Series([0] * 10 + [1] * 30)
    weights = item_weights(candidates, progress)
    shares = progress.table.set_index("group")["share"]
    assert np.isclose(weights[candidates == 0].sum(), shares[0]) and np.isclose(weights[candidates == 1].sum(), shares[1])
    assert (item_weights(pd.Series([2, 2]), progress) == 1.0).all()  # no share for their group: equal weights
