"""The quality benchmark's statistics: paired differences and their bootstrap intervals."""

import json

import numpy as np
import pandas as pd
import pytest

from bench.quality.stats import comparisons, load, paired, readme_table, replace_between


def test_a_constant_paired_gain_has_a_tight_interval():
    a, b = np.array([0.5, 0.6, 0.4, 0.55]), np.array([0.4, 0.5, 0.3, 0.45])
    result = paired(a, b)
    assert result["abs"] == pytest.approx(0.1) and result["abs_ci"] == pytest.approx([0.1, 0.1])
    assert result["rel"] == pytest.approx(a.mean() / b.mean() - 1)


def test_pairing_removes_the_seed_to_seed_spread():
    rng = np.random.default_rng(0)
    seed_effect = rng.normal(0, 0.1, size=10)  # seeds differ a lot, the method by little
    a, b = 0.5 + seed_effect + 0.02, 0.5 + seed_effect
    lo, hi = paired(a, b)["abs_ci"]
    assert 0 < lo <= 0.02 <= hi  # paired: the 0.02 gain is clear despite the 0.1 spread
    wider = paired(a, b, alpha=0.05 / 20)["abs_ci"]
    assert wider[0] <= lo and wider[1] >= hi


def test_comparisons_and_the_readme_table_come_from_the_records(tmp_path):
    records = []
    for seed in range(5):
        for method, acc in (("base", 0.4), ("none", 0.45), ("random", 0.46), ("full", 0.5), ("oracle", 0.42)):
            records.append({"world": "shaped", "error_rate": 0.4, "budget": 300, "seed": seed, "method": method,
                            "accuracy": acc + 0.01 * seed, "accuracy_hard": 0.1, "optimizer_steps": 375,
                            "examples_seen": 6000, "requests_paid": 300, "bought_wrong_share": 0.4,
                            "loss_wrong_share": 0.3, "bought_mean_steps": 3.0})
    path = tmp_path / "quality.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records) + json.dumps(records[0]) + "\n")
    runs = load(path)
    assert len(runs) == 25  # a run recorded twice counts once
    found = {(c["a"], c["b"]): c for c in comparisons(runs)}
    assert set(found) == {("full", "none"), ("full", "random"), ("random", "none"), ("oracle", "none")}
    assert found[("full", "none")]["abs"] == pytest.approx(0.05)
    table = readme_table(runs, comparisons(runs))
    assert "| shaped | 0.4 | 300 | 5 |" in table and "+0.0" not in table.split("\n")[2].split("|")[5]
    text = "before\n<!-- quality:begin -->\nold\n<!-- quality:end -->\nafter\n"
    assert replace_between(text, "<!-- quality:begin -->", "<!-- quality:end -->", "new") == \
        "before\n<!-- quality:begin -->\nnew\n<!-- quality:end -->\nafter\n"


def test_a_method_short_of_the_grids_seeds_is_left_out_and_named():
    from bench.quality.stats import complete_only

    runs = pd.DataFrame([{"world": "shaped", "error_rate": 0.4, "budget": 300, "seed": s, "method": m, "accuracy": 0.5}
                         for m, seeds in (("none", 10), ("full", 10), ("sc_none", 3)) for s in range(seeds)])
    kept, left_out = complete_only(runs, 10)
    assert set(kept["method"]) == {"none", "full"}
    assert left_out == ["shaped, error 0.4, budget 300: sc_none (3 of 10 seeds)"]


def test_methods_chosen_after_the_results_are_marked_and_compared_with_full():
    from bench.quality.stats import post_hoc

    records = [{"world": world, "error_rate": 0.4, "budget": 300, "seed": seed, "method": method,
                "accuracy": 0.4 + 0.01 * seed + 0.02 * i}
               for world in ("shaped", "holdout") for seed in range(3)
               for i, method in enumerate(("none", "random", "full", "sc_weight", "learnable_weight"))]
    comps = {(c["world"], c["a"], c["b"]): c["post_hoc"] for c in comparisons(pd.DataFrame(records))}
    assert comps[("shaped", "sc_weight", "none")] is False  # the pre-registered factorial
    assert ("shaped", "sc_weight", "full") not in comps
    assert comps[("holdout", "sc_weight", "none")] is True and ("holdout", "sc_weight", "full") in comps
    assert comps[("shaped", "learnable_weight", "full")] is True
    assert comps[("shaped", "full", "none")] is False and not post_hoc(("holdout", 0.4, 300), "full")


def test_issue26_checks_are_pre_registered_and_compared_with_full():
    from bench.quality.stats import post_hoc

    records = [{"world": "weak", "error_rate": 0.4, "budget": 600, "seed": seed, "method": method,
                "accuracy": 0.2 + 0.01 * seed + 0.02 * i}
               for seed in range(3) for i, method in enumerate(("none", "random", "full", "frontier_weight"))]
    comps = {(c["a"], c["b"]): c["post_hoc"] for c in comparisons(pd.DataFrame(records))}
    assert comps[("frontier_weight", "full")] is False and comps[("full", "none")] is False
    assert post_hoc(("weak", 0.4, 450), "frontier_weight")  # outside the pre-registered grid


def test_each_comparison_says_on_how_many_seeds_the_first_method_is_ahead():
    a, b = np.array([0.5, 0.4, 0.6, 0.5]), np.array([0.4, 0.5, 0.5, 0.5])
    assert paired(a, b)["wins"] == pytest.approx(0.5)  # ahead on seeds 0 and 2; behind on 1; a tie on 3


def test_the_budget_none_needs_is_interpolated_over_the_grid():
    from bench.quality.stats import budget_to_match, spend_saved

    assert budget_to_match([300, 600], [0.4, 0.6], 0.5) == pytest.approx(450)
    assert budget_to_match([300, 600], [0.4, 0.6], 0.3) == pytest.approx(300)  # reached at the smallest
    assert budget_to_match([300, 600], [0.4, 0.6], 0.7) is None  # beyond the grid
    runs = pd.DataFrame([{"world": "w", "error_rate": 0.4, "budget": b, "seed": s, "method": m, "accuracy": acc}
                         for s in range(2) for b, m, acc in ((300, "none", 0.4), (600, "none", 0.6),
                                                             (300, "full", 0.55), (600, "full", 0.7))])
    saved = {r["budget"]: r for r in spend_saved(runs)}
    assert saved[300]["baseline_budget_needed"] == pytest.approx(525) and saved[300]["ratio"] == pytest.approx(1.75)
    assert saved[600]["beyond_grid"] and saved[600]["ratio"] is None


def test_a_method_none_already_matches_at_the_smallest_budget_saved_at_most_that():
    """Below `none` at the smallest budget is not 'x1.00 of the budget': the grid cannot say how much less."""
    from bench.quality.stats import _needs_text, _ratio_text, spend_saved_all

    runs = pd.DataFrame([{"world": "w", "error_rate": 0.4, "budget": b, "seed": s, "method": m, "accuracy": acc}
                         for s in range(2) for b, m, acc in ((300, "none", 0.4), (600, "none", 0.6),
                                                             (300, "full", 0.35), (300, "proximal_weight", 0.5))])
    saved = {(r["method"], r["budget"]): r for r in spend_saved_all(runs)}
    assert saved[("full", 300)]["at_most"] and _needs_text(saved[("full", 300)]) == "at most 300"
    assert _ratio_text(saved[("full", 300)]) == "at most 1.00"
    assert not saved[("proximal_weight", 300)]["at_most"]
    assert saved[("proximal_weight", 300)]["baseline_budget_needed"] == pytest.approx(450)


def test_any_synthetic_world_file_records_its_own_teacher(tmp_path):
    """`--cell path/to/world.yaml`: a world the WORLDS table does not name still gets its teacher."""
    import yaml

    from bench.quality.bench import REPO, recorded_teacher

    world = yaml.safe_load((REPO / "tadistill/resources/worlds/weak.yaml").read_text())
    world["data"]["synthetic"].update(pool_size=50, test_size=10, validation_size=0)
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(world))
    overrides = recorded_teacher(str(path), 0.4, tmp_path)
    records = tmp_path / "teachers" / "mine-error0.4.jsonl"
    assert f"teacher.recorded.files=[{records}]" in overrides
    assert len(records.read_text().splitlines()) == 50


def test_runs_of_different_machine_arithmetic_are_never_paired():
    """A seed's runs on another machine start from a differently built student: no pair."""
    records = [{"world": "w", "error_rate": 0.4, "budget": 300, "seed": seed, "method": method, "arithmetic": machine,
                "accuracy": 0.3 + 0.01 * seed + (0.05 if method == "full" else 0.0)}
               for seed in range(4) for method, machine in (("none", "x"), ("full", "x" if seed < 2 else "y"))]
    comps = {(c["a"], c["b"]): c for c in comparisons(pd.DataFrame(records))}
    assert comps[("full", "none")]["n"] == 2  # seeds 2 and 3 ran full on machine y, none on x


def test_teacher_policy_runs_go_to_cascade_json_with_their_money(tmp_path):
    """Issue 28's `synthetic` list: one object per run of a teacher policy; other keys kept."""
    import json

    from bench.quality.stats import cell_table, write_cascade_synthetic

    runs = pd.DataFrame([{"world": "shaped", "error_rate": 0.5, "budget": 600, "seed": s, "method": m,
                          "accuracy": 0.5 + s / 100, "money": cost, "requests_paid": q, "bought_wrong_share": 0.3,
                          "accuracy_hard": 0.1, "optimizer_steps": 375, "examples_seen": 6000, "loss_wrong_share": 0.3,
                          "bought_mean_steps": 3.0}
                         for s in range(2) for m, cost, q in (("cheap_only", 0.04, 600), ("dear_only", 0.1, 150),
                                                              ("none", 0.0, 600))])
    path = tmp_path / "cascade.json"
    path.write_text(json.dumps({"real": [{"pair": "gsm8k"}]}))
    write_cascade_synthetic(runs, path)
    stored = json.loads(path.read_text())
    assert stored["real"] == [{"pair": "gsm8k"}]
    assert len(stored["synthetic"]) == 4 and {r["policy"] for r in stored["synthetic"]} == {"cheap_only", "dear_only"}
    dear = [r for r in stored["synthetic"] if r["policy"] == "dear_only"]
    assert {(r["seed"], r["money"], r["requests"]) for r in dear} == {(0, 0.1, 150), (1, 0.1, 150)}
    assert set(dear[0]) >= {"world", "policy", "seed", "money", "accuracy"}
    assert cell_table(runs).set_index("method").loc["dear_only", "money"] == pytest.approx(0.1)


def test_the_cascade_is_compared_with_the_better_single_teacher_policy(tmp_path):
    """Issue 28's headline: cascade against whichever of cheap_only and dear_only did better, with
    the distinct questions each trained on (a re-bought question counts once)."""
    from bench.quality.stats import summary_markdown

    trained = {"cheap_only": [{"teacher": "cheap", "questions": 600, "escalated": 0}],
               "dear_only": [{"teacher": "dear", "questions": 150, "escalated": 0}],
               "cascade": [{"teacher": "cheap", "questions": 290, "escalated": 120},
                           {"teacher": "dear", "questions": 110, "escalated": 0}]}
    rows = []
    for s in range(4):
        for m, acc, cost, q in (("cheap_only", 0.60, 0.04, 600), ("dear_only", 0.40, 0.1, 150),
                                ("cascade", 0.55, 0.1, 400)):
            rows.append({"world": "shaped", "error_rate": 0.5, "budget": 600, "seed": s, "method": m,
                         "accuracy": acc + s / 100 + (0.01 * (s % 2) if m == "cascade" else 0), "money": cost,
                         "requests_paid": q, "bought_wrong_share": 0.3, "accuracy_hard": 0.1, "optimizer_steps": 375,
                         "examples_seen": 6000, "loss_wrong_share": 0.3, "bought_mean_steps": 3.0,
                         "by_teacher": trained[m]})
    path = tmp_path / "runs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    markdown, data = summary_markdown(load(path))
    (row,) = data["headline"]["teacher_policies"]
    assert row["better_single"] == "cheap_only" and not row["goal_met"]
    assert row["cascade_vs_better"]["abs"] == pytest.approx(-0.045)
    assert row["policies"]["dear_only"]["requests"] == 150
    assert row["policies"]["cascade"]["requests"] == 400 and row["policies"]["cascade"]["questions_trained"] == 290
    assert "cascade vs cheap_only (the better single teacher)" in markdown and "not met" in markdown
    assert "400 requests for 290 questions" in markdown
