"""Several teachers at different prices: the cascade's choice of whom to pay, in a whole run
against the simulated teachers (two profiles on one Serve endpoint, real HTTP)."""

import json

import pandas as pd
import pytest

from tadistill.config import ConfigError, load_config
from tadistill.teacher.cascade import kept_offers

from ..conftest import TEST_HTTP_PORT
from ..test_pipeline import IN_DRIVER  # students trained and asked in the driver: the purchase is tested here

TWO = (f"teachers=[{{model: cheap, http_port: {TEST_HTTP_PORT}, synthetic: {{error_rate: 0.6}}}}, "
       f"{{model: dear, http_port: {TEST_HTTP_PORT}, synthetic: {{error_rate: 0.05, seed: 8}}}}]")


def test_a_question_keeps_the_outputs_of_the_teacher_trusted_most_and_a_tie_goes_to_the_dearer():
    offers = pd.DataFrame({"id": ["a", "a", "a", "b", "b", "c"], "level": [0, 0, 1, 0, 1, 0],
                           "trust_weight": [0.2, 0.4, 0.9, 0.5, 0.5, 0.1]})
    assert kept_offers(offers).tolist() == [False, False, True, False, True, True]


def test_teachers_are_checked_where_they_are_set():
    config = load_config(None, [TWO, "cascade.policy=cascade", "method=none"])
    assert config.teacher.model == "cheap" and [t.model for t in config.teacher_list()] == ["cheap", "dear"]
    assert config.calibrates_trust  # the cascade's trust scale is fixed before any purchase
    single = load_config(None, ["method=none", "train.final_pick=last"])  # (the default's final pick calibrates)
    assert single.teacher_list() == [single.teacher] and not single.calibrates_trust
    cases = [
        ([TWO, "teacher.model=x"], "both teacher and teachers"),
        (["teachers=[{model: a}, {model: a}]"], "a model name of its own"),
        (["cascade.policy=cascade"], "list them under teachers"),
        ([TWO, "cascade.teacher=nobody"], "cascade.teacher 'nobody'"),
        (["teachers=[{model: a}]", "cascade.policy=cascade"], "at least two teachers"),
        (["teachers=[{model: a, n: 2}, {model: b, n: 2}]", "cascade.policy=cascade",
          "trust.signal=teacher_agreement"], "calibrated"),
        ([TWO, "budget.cost=1", "budget.prices={cheap: {prompt: 1, completion: 1}}"], "no price for teacher.model 'dear'"),
    ]
    for overrides, message in cases:
        with pytest.raises(ConfigError, match=message):
            load_config(None, overrides)


@pytest.mark.slow
def test_the_cascade_buys_cheap_escalates_what_trust_doubts_and_a_rerun_pays_nothing(
        ray_local, synthetic_models, small_config):
    from tadistill.pipeline import run_pipeline

    config = small_config(TWO, "cascade.policy=cascade", "cascade.batch=10", "method=none",
                          *IN_DRIVER, "budget.requests=60", "budget.cost=30",
                          "budget.prices={cheap: {prompt: 100, completion: 100}, dear: {prompt: 2000, completion: 2000}}")
    ctx = run_pipeline(config)
    run = ctx.run_dir.path
    assert [s["step"] for s in ctx.step_log] == [
        "corpus", "warmup.pick", "calibrate_trust", "warmup.buy", "final.train", "evaluate", "report"]
    step = json.loads((run / "manifest.json").read_text())["steps"]["warmup.buy"]
    cheap, dear = step["by_teacher"]
    offers = pd.read_parquet(run / "teacher/warmup_offers.parquet")
    kept = pd.read_parquet(run / "teacher/warmup.parquet")
    gold = pd.read_parquet(run / "corpus/rows.parquet").set_index("id")["gold"]
    # One budget of 60 requests for both (the money, 30, does not bind here): every escalation is a
    # request, so fewer questions than 60.
    assert step["rows"] == 60 == ctx.teacher_sent == cheap["questions"] + dear["questions"]
    # (the budget may end inside the last batch's escalations: those questions keep the cheap outputs)
    assert 0 < dear["questions"] <= cheap["escalated"] and kept["id"].nunique() == cheap["questions"] < 60
    assert not kept["id"].duplicated().any() and set(kept["model"]) == {"cheap", "dear"}
    assert step["cost"] == pytest.approx(cheap["cost"] + dear["cost"]) and dear["cost"] > cheap["cost"] / 10
    # Escalated: the questions whose cheap output trust doubted; kept: the output trusted more.
    cheap_offers = offers[offers["level"] == 0].set_index("id")
    escalated = set(offers.loc[offers["level"] == 1, "id"])
    assert (cheap_offers.loc[list(escalated), "trust_weight"] < 1).all()
    doubted_not_bought = (cheap_offers.drop(index=list(escalated))["trust_weight"] < 1).sum()
    assert doubted_not_bought == cheap["escalated"] - dear["questions"]  # where the budget ended
    right = lambda frame: (frame["answer"] == frame["id"].map(gold)).mean()  # noqa: E731
    assert right(kept) > right(cheap_offers.reset_index()) + 0.1  # the cheap teacher errs 60% of the time
    report = (run / "report.md").read_text()
    assert "cascade.policy `cascade`" in report and "| dear |" in report

    again = run_pipeline(config)
    assert again.teacher_sent == 0 and [s["status"] for s in again.step_log][:-1] == ["skipped"] * 6

    # Expensive-only, with less money: a policy change re-buys, from the dear teacher alone, and
    # the money binds before the 60 requests do.
    fixed = run_pipeline(small_config(TWO, "cascade.teacher=dear", "method=none", *IN_DRIVER,
                                      "budget.requests=60", "budget.cost=2",
                                      "budget.prices={cheap: {prompt: 100, completion: 100}, "
                                      "dear: {prompt: 2000, completion: 2000}}"))
    bought = pd.read_parquet(run / "teacher/warmup.parquet")
    step = json.loads((run / "manifest.json").read_text())["steps"]["warmup.buy"]
    assert set(bought["model"]) == {"dear"} and 0 < len(bought) < 60 and step["cost"] <= 2
    assert step["not_bought_budget"] == 60 - len(bought)
    assert "warmup.buy" in [s["step"] for s in fixed.step_log if s["status"] == "ran"]


@pytest.mark.slow
def test_a_driver_killed_mid_cascade_reruns_without_paying_either_teacher_twice(synthetic_models, tmp_path,
                                                                                monkeypatch):
    """Two providers behind real HTTP servers; SIGKILL the driver while the cascade buys, rerun:
    what either was paid for is never bought again (bar what was in flight at the kill)."""
    import os
    import signal
    import time

    import yaml

    from ..conftest import MODEL_CACHE
    from ..test_pipeline import KILLED_RUN_SIZES, _cli
    from .openai_server import OpenAITestServer

    monkeypatch.setenv("TADISTILL_TEST_KEY", "sk-test-not-a-real-key-4f9a")
    run, config = tmp_path / "run", tmp_path / "run.yaml"
    with OpenAITestServer(latency=0.2) as cheap, OpenAITestServer(latency=0.2) as dear:
        teacher = {"source": "openai", "api_key_env": "TADISTILL_TEST_KEY", "concurrency": 4}
        config.write_text(yaml.safe_dump({
            "run_dir": str(run), "method": "none", "models": {"cache_dir": str(MODEL_CACHE)},
            "data": {"synthetic": {"pool_size": 120, "test_size": 40}},
            "budget": {"requests": 40},
            # The test servers answer no synthetic question right: the TA trusts no cheap answer,
            # so every question is bought twice, 20 questions for the 40 requests.
            "teachers": [{**teacher, "base_url": cheap.base_url, "model": "cheap"},
                         {**teacher, "base_url": dear.base_url, "model": "dear"}],
            "cascade": {"policy": "cascade", "batch": 10},
            **KILLED_RUN_SIZES,
        }))
        driver = _cli(config)
        deadline = time.monotonic() + 900
        # In the second batch's cheap purchase: the first batch bought from both.
        while cheap.served < 15 and driver.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert driver.poll() is None, driver.stdout.read()[-3000:]
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait()
        assert 15 <= cheap.served < 20 and dear.served == 10, (cheap.served, dear.served)

        rerun = _cli(config)
        output, _ = rerun.communicate(timeout=900)
        assert rerun.returncode == 0, output[-3000:]

    step = json.loads((run / "manifest.json").read_text())["steps"]["warmup.buy"]
    kept = pd.read_parquet(run / "teacher/warmup.parquet")
    assert step["rows"] == 40 and kept["id"].nunique() == 20
    assert kept.groupby("id")["model"].nunique().eq(1).all()  # a question keeps one teacher's outputs
    assert [t["questions"] for t in step["by_teacher"]] == [20, 20]
    for server in (cheap, dear):
        paid_twice = [q for q, n in server.paid_per_question.items() if n > 1]
        assert len(paid_twice) <= 4 and server.served == 20 + len(paid_twice)  # at most what was in flight
    assert (run / "teacher" / "cache").is_dir() and (run / "teacher" / "cache-dear").is_dir()


def _recorded(name: str) -> str:
    return (f"{{model: {name}, source: recorded, recorded: {{files: [{name}.jsonl], "
            f"fields: {{question: question, rationale: outputs}}}}}}")


@pytest.mark.slow
def test_recorded_teachers_cascade_under_one_money_budget_from_the_questions_both_recorded(
        ray_local, synthetic_models, small_config, tmp_path):
    """Outputs collected earlier from a cheap and a dear teacher: the cascade pays their stated
    prices on estimated tokens, buys only questions both answered, and a rerun pays nothing."""
    from tadistill.pipeline import run_pipeline

    from ..test_pipeline import _recorded_task

    _recorded_task(tmp_path, teachers={"cheap.jsonl": (0.6, (1,), 100), "dear.jsonl": (0.05, (2,), 80)})
    config = small_config(
        "method=none", "data.source=files", f"data.root={tmp_path}",
        "data.files={train: train.jsonl, test: test.jsonl}", "data.fields={id: qid, question: text, answer: gold}",
        "data.answer_type=number", "data.max_reject_share=0.2", "trust.calibration_files=[calibration.jsonl]",
        f"teachers=[{_recorded('cheap')}, {_recorded('dear')}]", "cascade.policy=cascade", "cascade.batch=10",
        *IN_DRIVER, "budget.requests=60", "budget.cost=1",
        "budget.prices={cheap: {prompt: 100, completion: 100}, dear: {prompt: 1000, completion: 1000}}")
    ctx = run_pipeline(config)
    run = ctx.run_dir.path
    steps = json.loads((run / "manifest.json").read_text())["steps"]
    assert [s["step"] for s in ctx.step_log][:3] == ["corpus", "teacher_records", "teacher_records.dear"]
    assert steps["teacher_records"]["questions"] == 100 and steps["teacher_records.dear"]["questions"] == 80
    dear_ids = set(pd.read_parquet(run / "teacher/records-dear.parquet")["id"])
    offers = pd.read_parquet(run / "teacher/warmup_offers.parquet")
    kept = pd.read_parquet(run / "teacher/warmup.parquet")
    step = steps["warmup.buy"]
    cheap, dear = step["by_teacher"]
    assert set(offers["id"]) <= dear_ids  # the pool: questions every teacher can answer
    assert set(kept["model"]) == {"cheap", "dear"} and not kept["id"].duplicated().any()
    # One money budget over both: priced on each output's words, the dear ten times the cheap.
    assert step["cost"] == pytest.approx(cheap["cost"] + dear["cost"]) and step["cost"] <= 1
    assert step["prompt_tokens"] > 0 and step["completion_tokens"] > 0
    assert dear["cost"] / dear["questions"] > 5 * cheap["cost"] / cheap["questions"]
    gold = pd.read_parquet(run / "corpus/rows.parquet").set_index("id")["gold"]
    right = lambda frame: (frame["answer"] == frame["id"].map(gold)).mean()  # noqa: E731
    assert right(kept) > right(offers[offers["level"] == 0]) + 0.1
    again = run_pipeline(config)
    assert again.teacher_sent == 0 and [s["status"] for s in again.step_log][:-1] == \
        ["skipped"] * (len(again.step_log) - 1)
