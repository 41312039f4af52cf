"""Issue 38's pre-registered choice of `auto`: the largest worst-world gain over `none`, ties
within half a point split by the mean gain, then by fewer rounds."""

import pandas as pd

from bench.quality.choose_auto import choose, gains, rounds_of

CANDIDATES = ["progress_r1_f0.2_z1", "progress_r3_f0.2_z2"]


def _runs(accuracies: dict) -> pd.DataFrame:
    """accuracies: (world, method) -> accuracy on every seed (seed s adds s points to all methods)."""
    return pd.DataFrame([{"world": w, "seed": s, "method": m, "accuracy": a + 0.01 * s}
                         for (w, m), a in accuracies.items() for s in range(3)])


def test_the_candidate_never_far_behind_wins_over_one_that_shines_in_one_world():
    runs = _runs({("w1", "none"): 0.40, ("w1", CANDIDATES[0]): 0.60, ("w1", CANDIDATES[1]): 0.44,
                  ("w2", "none"): 0.40, ("w2", CANDIDATES[0]): 0.30, ("w2", CANDIDATES[1]): 0.41})
    table = gains(runs, CANDIDATES, [0, 1, 2])
    assert len(table) == 4
    chosen = choose(table)
    assert chosen["auto"] == CANDIDATES[1] and chosen["worst_world_gain"] > 0


def test_ties_go_to_the_higher_mean_then_to_fewer_rounds_and_incomplete_worlds_are_left_out():
    runs = _runs({("w1", "none"): 0.40, ("w1", CANDIDATES[0]): 0.42, ("w1", CANDIDATES[1]): 0.42})
    runs = pd.concat([runs, _runs({("w2", "none"): 0.4, ("w2", CANDIDATES[0]): 0.5}).query("seed < 2")])
    table = gains(runs, CANDIDATES, [0, 1, 2])
    assert set(table["world"]) == {"w1"}  # w2 lacks a candidate and a seed
    assert choose(table)["auto"] == CANDIDATES[0] and rounds_of(CANDIDATES[0]) == 1 < rounds_of(CANDIDATES[1])
