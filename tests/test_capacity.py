import json
import math

import pytest

from tadistill.capacity import Rate, Rates, Shape, calibrate, plan_run, run_work
from tadistill.cli import main
from tadistill.config import load_config


def _rates(**overrides) -> Rates:
    kinds = {"corpus": Rate(1000.0), "teacher": Rate(0.5), "train": Rate(100.0, startup_s=20),
             "sample": Rate(10.0, startup_s=5), "score": Rate(50.0, startup_s=5), "answer": Rate(20.0)}
    kinds.update(overrides)
    return Rates(kinds=kinds, source="test", teacher_prompt_tokens=100, teacher_completion_tokens=50)


def test_the_work_of_a_run_follows_from_its_config():
    config = load_config(None, ["budget.requests=300", "selection.candidates=500", "inference.num_samples=4"])
    work = {step: amount for step, _, amount in run_work(config)}
    warmup = config.warmup_requests()
    assert work["warmup.buy"] == warmup and work["round1.buy"] == 300 - warmup
    assert work["round1.sample"] == work["round1.score"] == 500 * 4
    assert work["round1.train"] == math.ceil(config.train.epochs * warmup / 16) * 16
    assert work["final.train"] == config.final_steps() * config.train.global_batch_size
    assert work["evaluate"] == config.data.synthetic.test_size
    one_stage = {step for step, _, _ in run_work(load_config(None, ["method=none"]))}
    assert "round1.sample" not in one_stage and "round1.buy" not in one_stage


def test_rounds_split_the_work_of_the_selected_purchase():
    config = load_config(None, ["budget.requests=300", "budget.rounds=3", "budget.round_shares=[0.5, 0.3, 0.2]"])
    work = {step: amount for step, _, amount in run_work(config)}
    warmup = config.warmup_requests()  # 90; the other 210 split 105, 63, 42
    assert [work[f"round{k}.buy"] for k in (1, 2, 3)] == [105, 63, 42]
    pool = config.data.synthetic.pool_size
    assert work["round2.sample"] == (pool - warmup - 105) * config.inference.num_samples
    assert work["round3.train"] == math.ceil(config.train.epochs * (warmup + 168) / 16) * 16  # all bought before it
    assert work["round2.trust"] == 63  # a later round scores only its own purchase


def test_a_files_corpus_needs_its_sizes():
    config = load_config(None, ["data.source=files", "data.files={train: [a.jsonl], test: [b.jsonl]}",
                                "data.preset=gsm8k", "teacher.source=openai", "teacher.base_url=http://127.0.0.1:1/v1"])
    with pytest.raises(ValueError, match="--pool N --test N"):
        run_work(config)
    assert run_work(config, pool=1_000_000, test=1000)[0] == ("corpus", "corpus", 1_001_000)


def test_more_replicas_shorten_sampling_and_the_slowest_step_bounds_the_run():
    shape = Shape(nodes=4, cpus_per_node=8)
    one = plan_run(load_config(None, ["inference.replicas=1", "inference.launcher=serve"]), _rates(), shape)
    four = plan_run(load_config(None, ["inference.replicas=4", "inference.launcher=serve"]), _rates(), shape)
    sample = lambda plan: next(s for s in plan.steps if s.step == "round1.sample")  # noqa: E731
    assert sample(four).throughput == pytest.approx(4 * sample(one).throughput)  # 4 replicas, 4 x the samples a second
    assert one.bound.step == "round1.sample"  # 3,640 samples at 10 a second outweigh every other step
    # The teacher: its concurrency slots at the per-slot rate, under the rate limit.
    open_ = plan_run(load_config(None, ["teacher.concurrency=32"]), _rates(), shape)
    limited = plan_run(load_config(None, ["teacher.rpm=60", "teacher.concurrency=32"]), _rates(), shape)
    stage2 = lambda plan: next(s for s in plan.steps if s.step == "round1.buy")  # noqa: E731
    assert stage2(open_).throughput == pytest.approx(32 * 0.5) and stage2(limited).throughput == pytest.approx(1.0)


def test_a_step_that_does_not_fit_the_cluster_says_so():
    config = load_config(None, ["inference.launcher=serve", "inference.replicas=8", "inference.num_gpus=1"])
    plan = plan_run(config, _rates(), Shape(nodes=1, cpus_per_node=16, gpus_per_node=4))
    sample = next(s for s in plan.steps if s.step == "round1.sample")
    # Serve waits for every replica (Ray Train for every worker): the step would never start.
    assert not sample.fits and sample.units == 0 and sample.throughput == 0
    assert "only 4 fit the cluster: lower inference.replicas" in sample.note
    bigger = plan_run(config, _rates(), Shape(nodes=2, cpus_per_node=16, gpus_per_node=4))
    assert next(s for s in bigger.steps if s.step == "round1.sample").fits


def _finished_run(folder, scale: int):
    """A run directory as a finished run leaves it: its config and its manifest's step records."""
    config = load_config(None, ["train.launcher=local", "train.num_workers=1", "train.strategy=ddp",
                                 "inference.launcher=local"])
    folder.mkdir()
    (folder / "config.json").write_text(config.model_dump_json())
    steps = {
        "round1.sample": {"rows": 100 * scale, "seconds": 5 + 100 * scale / 10},  # 5 s start-up, 10 rows/s
        "final.train": {"examples_seen": 1000 * scale, "seconds": 20 + 1000 * scale / 100},
        "warmup.buy": {"sent": 40 * scale, "seconds": 40 * scale / (config.teacher.concurrency * 2.0),
                           "prompt_tokens": 4000 * scale, "completion_tokens": 2000 * scale},
    }
    (folder / "manifest.json").write_text(json.dumps({"steps": steps}))
    return folder


def test_rates_are_fitted_to_finished_runs(tmp_path):
    rates = calibrate([_finished_run(tmp_path / "a", 1), _finished_run(tmp_path / "b", 3)])
    assert rates.kinds["sample"].per_unit_s == pytest.approx(10) and rates.kinds["sample"].startup_s == pytest.approx(5)
    assert rates.kinds["train"].per_unit_s == pytest.approx(100) and rates.kinds["train"].startup_s == pytest.approx(20)
    assert rates.kinds["teacher"].per_unit_s == pytest.approx(2.0)  # requests a second per concurrency slot
    assert rates.teacher_prompt_tokens == pytest.approx(100) and rates.teacher_completion_tokens == pytest.approx(50)


def test_a_step_whose_time_does_not_grow_with_its_work_is_a_fixed_cost():
    from tadistill.capacity import _least_squares

    rate = _least_squares([(260, 8.5), (520, 5.3)])  # a cold first run: slower on less work
    assert math.isinf(rate.per_unit_s) and rate.startup_s == pytest.approx(6.9)


def test_plan_on_the_command_line(tmp_path, capsys):
    _rates().save(tmp_path / "rates.json")
    prices = "budget.prices={gpt-x: {prompt: 2.0, completion: 8.0}}"
    assert main(["plan", "configs/demo.yaml", "teacher.model=gpt-x", prices, "--rates", str(tmp_path / "rates.json"),
                 "--nodes", "2", "--cpus-per-node", "8", "--json", str(tmp_path / "plan.json")]) == 0
    out = capsys.readouterr().out
    assert "| final.train |" in out and "bounded by" in out
    assert "cost 0.18" in out  # 300 requests x (100 x 2.0 + 50 x 8.0) / 1e6
    assert json.loads((tmp_path / "plan.json").read_text())["teacher_requests"] == 300



def test_plan_without_rates_calibrates_on_runs_it_finds_else_uses_the_committed_ones(tmp_path, capsys, monkeypatch):
    from tadistill import cli

    monkeypatch.setattr(cli, "DEMO_RUNS", tmp_path / "no-demo-here")
    beside = tmp_path / "runs"
    beside.mkdir()
    for name, scale in (("none", 1), ("full", 3)):  # as a demo leaves them: one folder per method
        _finished_run(beside / name, scale)
        manifest = json.loads((beside / name / "manifest.json").read_text())
        manifest["steps"].update({  # the rest of a run's measured steps
            "corpus": {"rows": 500 * scale, "seconds": 2.0 * scale}, "round1.score": {"rows": 400 * scale, "seconds": 4.0},
            "evaluate": {"total": 300 * scale, "accuracy": 0.5, "seconds": 3.0 * scale}})
        (beside / name / "manifest.json").write_text(json.dumps(manifest))
    assert main(["plan", "configs/demo.yaml", f"run_dir={beside / 'full'}"]) == 0
    out = capsys.readouterr().out
    assert f"rates calibrated on {beside / 'full'}, {beside / 'none'}" in out and "| final.train |" in out
    # Nothing finished to calibrate on: the rates committed for this machine kind, and it says so.
    assert main(["plan", "configs/demo.yaml", f"run_dir={tmp_path / 'empty' / 'full'}"]) == 0
    assert "rates committed for 2-core CPU machines (rates_cpu_2core.json" in capsys.readouterr().out
    monkeypatch.setattr(cli, "COMMITTED_RATES", tmp_path / "none.json")
    assert main(["plan", "configs/demo.yaml", f"run_dir={tmp_path / 'empty' / 'full'}"]) == 2  # one line, exit 2
    assert "needs measured rates: no finished run in" in capsys.readouterr().err


def test_the_one_million_question_plan_in_the_cluster_readme_is_what_the_command_prints(capsys):
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    assert main(["plan", str(repo / "cluster/plan/one_million.yaml"), "--rates",
                 str(repo / "cluster/plan/rates_gpu_assumed.json"), "--nodes", "4", "--cpus-per-node", "96",
                 "--gpus-per-node", "8", "--pool", "1000000", "--test", "5000"]) == 0
    table = capsys.readouterr().out.strip()
    assert "bounded by `round1.buy`" in table
    assert table.split("\n", 2)[2] in (repo / "cluster/README.md").read_text()
