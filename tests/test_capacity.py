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
    assert work["round1.train"] == config.train.epochs * math.ceil(warmup / 16) * 16  # whole batches an epoch
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
    assert work["round3.train"] == config.train.epochs * math.ceil((warmup + 168) / 16) * 16  # all bought before it
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


LOCAL = ["train.launcher=local", "train.num_workers=1", "train.strategy=ddp", "inference.launcher=local"]


def _finished_run(folder, scale: int, settings=LOCAL):
    """A run directory as a finished run leaves it: its config and its manifest's step records."""
    config = load_config(None, settings)
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
    # They are rates of the runs' kind, and say so when saved (how a committed rates file is made).
    rates.save(tmp_path / "rates.json")
    assert Rates.load(tmp_path / "rates.json").config_kind["inference.launcher"] == "local"


def test_a_step_whose_time_does_not_grow_with_its_work_is_a_fixed_cost():
    from tadistill.capacity import _least_squares

    rate = _least_squares([(260, 8.5), (520, 5.3)])  # a cold first run: slower on less work
    assert math.isinf(rate.per_unit_s) and rate.startup_s == pytest.approx(6.9)


def test_work_of_nearly_one_size_gives_a_rate_not_a_start_up():
    from tadistill.capacity import _least_squares

    # Sampling at budgets 60 and 120 of configs/demo.yaml: the pool left, 2% apart, the larger faster.
    rate = _least_squares([(3928, 25.1), (3856, 27.7)])
    assert rate.startup_s == 0 and rate.per_unit_s == pytest.approx((3928 + 3856) / (25.1 + 27.7))


def test_the_teacher_starts_once_a_run_so_only_its_first_purchase_pays_the_start_up(tmp_path):
    run = _finished_run(tmp_path / "run", 1)
    manifest = json.loads((run / "manifest.json").read_text())
    concurrency = load_config(None, LOCAL).teacher.concurrency
    manifest["steps"]["warmup.buy"].update({"sent": 32, "seconds": 8.0 + 32 / concurrency / 2.0,
                                            "finished_at": "2026-12-06T11:00:00"})
    manifest["steps"]["round1.buy"] = {"sent": 64, "seconds": 64 / concurrency / 2.0,
                                       "finished_at": "2026-12-06T11:05:00"}
    (run / "manifest.json").write_text(json.dumps(manifest))
    teacher = calibrate([run]).kinds["teacher"]
    assert teacher.per_unit_s == pytest.approx(2.0) and teacher.startup_s == pytest.approx(8.0)
    plan = plan_run(load_config(None, LOCAL), _rates(teacher=teacher), Shape())
    buys = {s.step: s.startup_s for s in plan.steps if s.kind == "teacher"}
    assert buys == {"warmup.buy": pytest.approx(8.0), "round1.buy": 0.0}


def test_a_round_trains_whole_batches_every_epoch():
    config = load_config(None, ["budget.requests=60", "train.epochs=20", "train.global_batch_size=16"])
    work = {step: amount for step, _, amount in run_work(config)}
    assert config.warmup_requests() == 18 and work["round1.train"] == 20 * 2 * 16  # 18 rows: 2 batches an epoch


def test_plan_on_the_command_line(tmp_path, capsys):
    _rates().save(tmp_path / "rates.json")
    prices = "budget.prices={gpt-x: {prompt: 2.0, completion: 8.0}}"
    assert main(["plan", "configs/demo.yaml", "teacher.model=gpt-x", prices, "--rates", str(tmp_path / "rates.json"),
                 "--nodes", "2", "--cpus-per-node", "8", "--json", str(tmp_path / "plan.json")]) == 0
    out = capsys.readouterr().out
    assert "| final.train |" in out and "bounded by" in out
    assert "cost 0.18" in out  # 300 requests x (100 x 2.0 + 50 x 8.0) / 1e6
    assert json.loads((tmp_path / "plan.json").read_text())["teacher_requests"] == 300



def _finished_run_with_every_step(folder, scale: int, settings=LOCAL):
    """A finished run whose manifest also holds the corpus, scoring and evaluation steps."""
    _finished_run(folder, scale, settings)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["steps"].update({
        "corpus": {"rows": 500 * scale, "seconds": 2.0 * scale}, "round1.score": {"rows": 400 * scale, "seconds": 4.0},
        "evaluate": {"total": 300 * scale, "accuracy": 0.5, "seconds": 3.0 * scale}})
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def test_plan_calibrates_only_on_runs_of_its_kind_and_says_why_it_skipped_the_others(tmp_path, capsys, monkeypatch):
    from tadistill import cli

    monkeypatch.setattr(cli, "DEMO_RUNS", tmp_path / "no-demo-here")
    beside = tmp_path / "runs"
    beside.mkdir()
    # configs/demo.yaml's kind (Serve, Ray Train with DeepSpeed) beside a demo_benchmark-like run
    # (local launchers) and a run with another teacher: only the first measures demo.yaml's rates.
    _finished_run_with_every_step(beside / "serve", 1, [])
    _finished_run_with_every_step(beside / "local", 3)
    _finished_run_with_every_step(beside / "openai", 2, ["teacher.source=openai", "teacher.model=gpt-x",
                                                         "teacher.base_url=http://127.0.0.1:1/v1"])
    assert main(["plan", "configs/demo.yaml", f"run_dir={beside / 'new'}"]) == 0
    out = capsys.readouterr().out
    assert f"rates calibrated on {beside / 'serve'} (finished runs of this config's kind)" in out
    assert (f"skipped {beside / 'local'}, a run of another kind: inference.launcher local (this config: serve); "
            "train.launcher local (this config: ray_train); and 1 more") in out
    assert f"skipped {beside / 'openai'}, a run of another kind: teacher.source openai (this config: synthetic)" in out
    assert "| final.train |" in out
    # Asked to calibrate on a run of another kind, it does, and points it out.
    assert main(["plan", "configs/demo.yaml", "--calibrate", str(beside / "local")]) == 0
    out = capsys.readouterr().out
    assert f"calibrating on {beside / 'local'}, a run of another kind: inference.launcher local" in out


def test_with_no_run_of_its_kind_a_plan_uses_the_rates_committed_for_its_kind(tmp_path, capsys, monkeypatch):
    from tadistill import cli

    monkeypatch.setattr(cli, "DEMO_RUNS", tmp_path / "no-demo-here")
    _finished_run_with_every_step(tmp_path / "local", 1)  # beside the planned run, of another kind
    assert main(["plan", "configs/demo.yaml", f"run_dir={tmp_path / 'new'}"]) == 0
    out = capsys.readouterr().out
    assert f"skipped {tmp_path / 'local'}" in out
    assert "rates committed for this kind of config (rates_cpu_2core_serve.json" in out
    assert main(["plan", "tadistill/resources/demo_benchmark.yaml", f"run_dir={tmp_path / 'empty' / 'new'}"]) == 0
    assert "rates committed for this kind of config (rates_cpu_2core_local.json" in capsys.readouterr().out
    # A kind nothing was measured on (local training, Serve inference): one line naming what there is, exit 2.
    mixed = [f"run_dir={tmp_path / 'empty' / 'new'}", *LOCAL[:3]]
    assert main(["plan", "configs/demo.yaml", *mixed]) == 2
    err = capsys.readouterr().err
    assert "tadistill plan: no measured rates for this config: no finished run of its kind" in err
    assert "no committed rates for its kind" in err
    assert "rates_cpu_2core_local.json has inference.launcher local (this config: serve)" in err
    assert "rates_cpu_2core_serve.json has train.launcher ray_train (this config: local)" in err
    assert "rates_gpu_assumed.json" not in err  # assumed rates are only taken when given (--rates)


def test_the_one_million_question_plan_in_the_cluster_readme_is_what_the_command_prints(capsys):
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    assert main(["plan", str(repo / "cluster/plan/one_million.yaml"), "--rates",
                 str(repo / "tadistill/resources/plan_rates/rates_gpu_assumed.json"), "--nodes", "4", "--cpus-per-node", "96",
                 "--gpus-per-node", "8", "--pool", "1000000", "--test", "5000"]) == 0
    table = capsys.readouterr().out.strip()
    assert "bounded by `round1.buy`" in table
    assert table.split("\n", 2)[2] in (repo / "cluster/README.md").read_text()


def test_the_plan_shows_the_purchases_through_the_batch_api_at_their_price_and_window():
    from tadistill.capacity import plan_markdown

    overrides = ["teacher.source=openai", "teacher.base_url=http://127.0.0.1:1/v1", "teacher.model=m",
                 "budget.prices={m: {prompt: 2, completion: 8}}", "budget.requests=300", "budget.cost=0.06"]
    config = load_config(None, overrides)
    plan = plan_run(config, _rates(), Shape(1, 8, 0))
    per_request = (100 * 2 + 50 * 8) / 1e6
    assert plan.teacher_cost == pytest.approx(300 * per_request)
    assert plan.batch["cost"] == pytest.approx(plan.teacher_cost / 2) and not plan.batch["enabled"]
    assert plan.batch["requests_at_budget_cost"] == {"synchronous": 100, "batch": 200}
    assert plan.batch["purchases"] == 2 and plan.batch["window_s"] == 24 * 3600
    line = plan_markdown(plan).splitlines()[-1]
    assert line.startswith("Through the Batch API instead: cost 0.09") and "100 requests synchronously, 200 in batches" in line
    batched = plan_run(load_config(None, [*overrides, "teacher.batch.enabled=true"]), _rates(), Shape(1, 8, 0))
    assert plan_markdown(batched).splitlines()[-1].startswith("Bought through the Batch API (teacher.batch)")

