"""The demo is a cell of the quality benchmark: its config is the benchmark's, key by key, and
the line under its table gives what the benchmark measured in that cell."""

import json
from pathlib import Path

import pytest

import tadistill.cli as cli
from tadistill.config import load_config

REPO = Path(__file__).resolve().parents[1]


def _flat(tree: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in tree.items():
        out.update(_flat(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value})
    return out


def test_the_demo_config_is_the_benchmark_cell_it_names():
    from bench.quality import bench

    demo = load_config(cli.DEMO_CONFIG)
    cell = load_config(None, [*bench._world_overrides("drawn38106"), "teacher.synthetic.error_rate=0.41",
                              *bench.SETTINGS, *bench.TRAINING, *bench.GRIDS["issue38"]["settings"],
                              "budget.requests=580", *bench.seed_overrides(0)])
    a, b = _flat(json.loads(demo.model_dump_json())), _flat(json.loads(cell.model_dump_json()))
    assert {k: (a[k], b[k]) for k in a if a[k] != b[k]} == {}
    assert cli.benchmark_world(demo) == "drawn38106"
    assert cli.benchmark_world(load_config(None, ["data.synthetic.max_steps=7"])) is None


def test_the_demos_cell_is_the_one_its_rule_names():
    """The rule written before the measured grid: the measurement world whose budget is the lower
    median of the draw's budgets (ties to the lower seed), whatever came out there."""
    from bench.quality.worlds import DRAWS, draw_world

    worlds = sorted((draw_world(seed) for seed in DRAWS["measure"]), key=lambda w: (w.budget, w.seed))
    chosen = worlds[(len(worlds) - 1) // 2]
    demo = load_config(cli.DEMO_CONFIG)
    assert (f"drawn{chosen.seed}", chosen.error_rate, chosen.budget) == (
        cli.benchmark_world(demo), demo.teacher.synthetic.error_rate, demo.budget.requests)


def test_the_demo_runs_the_default_method_against_plain_fine_tuning():
    from tadistill.config import Config

    assert cli.DEMO_METHODS == ("none", Config().method)


def test_the_demo_line_reports_its_own_cell_with_the_win_share(tmp_path, monkeypatch):
    comparison = {"world": "drawn38106", "error_rate": 0.41, "budget": 580, "a": "full", "n": 10}
    summary = {
        "headline": {"cell": {"world": "shaped", "error_rate": 0.4, "budget": 300},
                     "full_vs_none": {"n": 10, "rel": 0.155, "rel_ci": [0.068, 0.244]}},
        "comparisons": [{**comparison, "b": "none", "wins": 1.0, "rel": 0.244, "rel_ci": [0.197, 0.30]},
                        {**comparison, "b": "random", "wins": 0.9, "rel": 0.187, "rel_ci": [0.152, 0.218]}],
    }
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    monkeypatch.setattr(cli, "BENCHMARK_SUMMARY", tmp_path / "summary.json")
    monkeypatch.setattr(cli, "WORLDS_SUMMARY", tmp_path / "no_worlds_summary.json")
    line = cli._benchmark_line(load_config(cli.DEMO_CONFIG))
    assert "in this cell (world drawn38106, teacher error 0.41, budget 580), over 10 seeds" in line
    assert "full vs none +24.4% (95% CI +19.7 to +30.0, ahead on 10 of 10 seeds)" in line
    assert "full vs random +18.7% (95% CI +15.2 to +21.8, ahead on 9 of 10 seeds)" in line
    # Elsewhere (a budget the benchmark never ran) the headline cell is what it can point to.
    elsewhere = cli._benchmark_line(load_config(cli.DEMO_CONFIG, ["budget.requests=450"]))
    assert "in its headline cell (world shaped, teacher error 0.4, budget 300)" in elsewhere


def test_the_committed_summary_has_the_demos_cell():
    if not cli.BENCHMARK_SUMMARY.exists():
        pytest.skip("no committed benchmark summary")
    line = cli._benchmark_line(load_config(cli.DEMO_CONFIG))
    assert "in this cell" in line and "ahead on" in line


def test_a_run_in_a_drawn_world_cites_that_worlds_records(tmp_path, monkeypatch):
    import yaml

    worlds = tmp_path / "worlds"
    worlds.mkdir()
    (worlds / "drawn9.yaml").write_text(yaml.safe_dump({"data": {"synthetic": {"max_steps": 7, "seed": 99}}}))
    comparison = {"world": "drawn9", "error_rate": 0.4, "budget": 580, "a": "full", "n": 6}
    (tmp_path / "worlds_summary.json").write_text(json.dumps({"report": "docs/results/quality_worlds.md", "comparisons": [
        {**comparison, "b": "none", "wins": 5 / 6, "rel": 0.05, "rel_ci": [0.01, 0.09]},
        {**comparison, "b": "random", "wins": 0.5, "rel": 0.01, "rel_ci": [-0.03, 0.05]}]}))
    monkeypatch.setattr(cli, "WORLDS", worlds)
    monkeypatch.setattr(cli, "WORLDS_SUMMARY", tmp_path / "worlds_summary.json")
    config = load_config(None, ["data.synthetic.max_steps=7", "data.synthetic.seed=99",
                                "teacher.synthetic.error_rate=0.4", "budget.requests=580"])
    line = cli._benchmark_line(config)
    assert ("in this cell (world drawn9, teacher error 0.4, budget 580), over 6 seeds: full vs none +5.0% "
            "(95% CI +1.0 to +9.0, ahead on 5 of 6 seeds); full vs random +1.0%") in line
    assert line.endswith("(docs/results/quality_worlds.md)")
    # A method the records have no comparison for in this cell: the benchmark's headline instead.
    assert "in its headline cell" in cli._benchmark_line(config, method="auto")
