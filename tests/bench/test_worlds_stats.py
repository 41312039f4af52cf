"""Issue 38's statistics and its pre-registered goal, bullet by bullet, from per-run records."""

import json

import numpy as np

from bench.quality.worlds_stats import cell_comparisons, goal, goal_lines, load, summarise

CELLS = [("drawn1", 0.3, 400), ("drawn2", 0.2, 700), ("shaped", 0.4, 600)]


def _records(path, auto_gain, auto_gain_in_drawn2=None):
    """Six seeds a cell: none near 0.40, random and full alike, auto `auto_gain` above none (in
    drawn2 `auto_gain_in_drawn2` if given), base far below."""
    rng = np.random.default_rng(0)
    lines = []
    for world, error, budget in CELLS:
        for seed in range(6):
            none = 0.40 + rng.normal(0, 0.01)
            gain = auto_gain_in_drawn2 if world == "drawn2" and auto_gain_in_drawn2 is not None else auto_gain
            for method, accuracy in (("base", 0.10), ("none", none), ("random", none + rng.normal(0, 0.005)),
                                     ("full", none + rng.normal(0, 0.005)), ("auto", none * (1 + gain))):
                lines.append({"world": world, "error_rate": error, "budget": budget, "seed": seed, "method": method,
                              "accuracy": accuracy, "seconds": 100.0 if method != "auto" else 250.0,
                              "final_pick": "last"})
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return load(path)


def test_a_method_ahead_everywhere_meets_every_bullet_and_becomes_the_default(tmp_path):
    _, summary = summarise(_records(tmp_path / "r.jsonl", 0.25), "auto")
    checks = goal(summary)
    assert len(checks) == 6 and all(c["held"] for c in checks), checks
    assert "+25.0%" in checks[3]["numbers"]  # world A at 600
    assert goal_lines(summary)[-2] == "auto: every bullet holds: it becomes the default method."
    assert summary["compute_vs_none"]["auto"] == 2.5


def test_a_world_where_it_falls_behind_misses_its_bullet_and_full_stays_the_default(tmp_path):
    _, summary = summarise(_records(tmp_path / "r.jsonl", 0.25, auto_gain_in_drawn2=-0.10), "auto")
    held = {c["bullet"].split(",")[0]: c["held"] for c in goal(summary)}
    assert held["in no world is auto behind none or random with the CI below 0"] is False
    assert held["world A at budget 600: auto at least +20% over none"] is True
    lines = goal_lines(summary)
    assert "- missed: in no world is auto behind none or random with the CI below 0 (drawn2)" in lines
    assert lines[-2] == "auto: not every bullet holds: `full` stays the default method."


def test_each_cells_comparisons_carry_what_the_demo_prints(tmp_path):
    import tadistill.cli as cli

    found = cell_comparisons(_records(tmp_path / "r.jsonl", 0.25), ("auto", "full"), seeds=6)
    assert len(found) == len(CELLS) * 2 * 2
    mine = next(c for c in found if (c["world"], c["a"], c["b"]) == ("drawn2", "auto", "none"))
    assert mine["budget"] == 700 and mine["n"] == 6 and mine["wins"] == 1.0 and mine["rel"] > 0.2
    assert cli._comparison_text(mine, "none").startswith("auto vs none +")


def test_a_cell_the_grid_is_still_running_is_never_cited(tmp_path):
    runs = _records(tmp_path / "r.jsonl", 0.25)
    # drawn1's last seed has no auto yet; drawn2 has only five seeds.
    unfinished = ((runs.world == "drawn1") & (runs.seed == 5) & (runs.method == "auto")) | (
        (runs.world == "drawn2") & (runs.seed == 5))
    cited = {c["world"] for c in cell_comparisons(runs[~unfinished], ("auto", "full"), seeds=6)}
    assert cited == {"shaped"}
    assert {c["world"] for c in cell_comparisons(runs[~unfinished], ("auto", "full"), seeds=5)} == {"drawn2", "shaped"}


def test_another_method_is_reported_beside_the_preregistered_one_without_its_goal(tmp_path, monkeypatch):
    import sys

    from bench.quality import worlds_stats

    _records(tmp_path / "r.jsonl", 0.25)
    page = tmp_path / "page.md"
    page.write_text("# p\n\n<!-- r_full:begin -->\n<!-- r_full:end -->\n")
    package = tmp_path / "package.json"
    monkeypatch.setattr(sys, "argv", ["worlds_stats", str(tmp_path / "r.jsonl"), "--method", "full", "--figures",
                                      str(tmp_path), "--doc", str(page), "--package-summary", str(package)])
    worlds_stats.main()
    text = (tmp_path / "r_full.md").read_text()
    assert "| full vs none |" in text and "goal" not in text
    assert "| full vs none |" in page.read_text()
    # Auto decides from the run's evidence: it is never the best *static* rule full is held against.
    assert "auto 0." not in text
    # The pre-registered method's files, its figure and what the demo cites are left alone.
    assert not (tmp_path / "r.md").exists() and not (tmp_path / "r_full.png").exists() and not package.exists()


def test_the_preregistered_method_writes_its_report_its_figure_and_what_the_demo_cites(tmp_path, monkeypatch):
    import sys

    from bench.quality import worlds_stats

    _records(tmp_path / "r.jsonl", 0.25)
    package = tmp_path / "package.json"
    monkeypatch.setattr(sys, "argv", ["worlds_stats", str(tmp_path / "r.jsonl"), "--figures", str(tmp_path / "fig"),
                                      "--package-summary", str(package)])
    worlds_stats.main()
    assert "auto: every bullet holds" in (tmp_path / "r.md").read_text()
    assert (tmp_path / "fig" / "r.png").read_bytes().startswith(b"\x89PNG")
    cited = json.loads(package.read_text())
    assert {c["world"] for c in cited["comparisons"]} == {"drawn1", "drawn2", "shaped"}
