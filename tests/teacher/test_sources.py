"""The teacher a run buys from, built once from teacher.source: one buy, one budget."""

import re
from pathlib import Path

import pandas as pd
import pytest

from tadistill.config import TEACHER_SOURCES, load_config
from tadistill.rundir import RunDir
from tadistill.services import Services
from tadistill.tasks.prompts import SYSTEM_PROMPTS
from tadistill.teacher.budget import Budget, Spend
from tadistill.config import choices
from tadistill.teacher.sources import Teacher, teacher_for

from .openai_server import OpenAITestServer

PACKAGE = Path(__file__).resolve().parents[2] / "tadistill"


def _picks(n, offset=0):
    return pd.DataFrame({"id": [f"r{i:02d}" for i in range(offset, offset + n)],
                         "question": [f"question {i}" for i in range(offset, offset + n)]})


def test_every_source_of_the_choice_table_is_offered_by_the_config():
    assert set(TEACHER_SOURCES) == {"openai", "synthetic", "recorded"}
    for name in TEACHER_SOURCES:
        source = choices.load("teacher.source", name)
        assert issubclass(source, Teacher) and source.source == name


def test_each_source_checks_its_own_settings():
    with pytest.raises(Exception, match="base_url is required"):
        load_config(overrides=["teacher.source=openai"])
    with pytest.raises(Exception, match="recorded.files is empty"):
        load_config(overrides=["teacher.source=recorded"])
    with pytest.raises(Exception, match="no price for teacher.model"):
        load_config(overrides=["teacher.source=openai", "teacher.base_url=http://x/v1", "budget.cost=1"])
    # A simulated teacher costs nothing in money: a cost cap needs no price.
    load_config(overrides=["budget.cost=1"])


def test_no_code_outside_the_teacher_package_branches_on_the_source():
    branching = re.compile(r"teacher\.source\s*(==|!=|in\b)")
    offenders = [str(path.relative_to(PACKAGE)) for path in PACKAGE.rglob("*.py")
                 if path.parent.name != "teacher" and branching.search(path.read_text())]
    assert offenders == []


def test_a_recorded_teacher_sells_only_what_was_recorded_and_charges_the_budget(tmp_path):
    config = load_config(overrides=["teacher.source=recorded", "teacher.recorded.files=[out.jsonl]",
                                    f"run_dir={tmp_path / 'run'}", "budget.requests=3"])
    run_dir = RunDir(config.run_dir)
    run_dir.write_table("teacher/records.parquet", pd.DataFrame({
        "id": ["r00", "r00", "r01", "r02", "r03"], "k": [0, 1, 0, 0, 0], "text": ["a", "b", "c", "d", "e"],
        "record_file": "out.jsonl", "record_row": [1, 1, 2, 3, 4]}))
    teacher = teacher_for(config, Services(config), run_dir)
    assert list(teacher.buyable(_picks(6))["id"]) == ["r00", "r01", "r02", "r03"]
    budget = teacher.make_budget(Spend(requests=1))  # one request used by a finished step
    assert isinstance(budget, Budget)
    bought, report = teacher.buy(_picks(3), SYSTEM_PROMPTS["number"], budget, desc="stage")
    assert report.bought == 2 and report.not_bought_budget == 1 and budget.used == 3
    assert list(bought["text"]) == ["a", "b", "c"]  # every rationale of a bought question
    assert "recorded" in teacher.provenance and "out.jsonl" in teacher.describe()


def test_a_live_teacher_buys_through_its_budget_actor_and_its_cache(ray_local, tmp_path):
    with OpenAITestServer(latency=0.01) as server:
        config = load_config(overrides=["teacher.source=openai", f"teacher.base_url={server.base_url}",
                                        "teacher.model=m", "teacher.api_key_env=TADISTILL_TEST_KEY",
                                        f"run_dir={tmp_path / 'run'}", "budget.requests=5"])
        teacher = teacher_for(config, Services(config), RunDir(config.run_dir))
        budget = teacher.make_budget(Spend())
        bought, report = teacher.buy(_picks(8), SYSTEM_PROMPTS["number"], budget, desc="stage")
        assert report.bought == 5 and server.served == 5
        assert ray_local.get(budget.snapshot.remote())["requests"] == 5
        # A new invocation: the same questions come from the cache, nothing is paid again.
        teacher = teacher_for(config, Services(config), RunDir(config.run_dir))
        again, report = teacher.buy(_picks(5), SYSTEM_PROMPTS["number"], teacher.make_budget(Spend()), desc="stage")
        assert report.cache_hits == 5 and report.sent == 0 and server.served == 5
        assert teacher.orphan_spend() == Spend()


def test_a_priced_recorded_teacher_beside_a_live_one_charges_its_words_to_the_shared_ledger(ray_local, tmp_path):
    from tadistill.context import RunContext
    from tadistill.tasks.tokens import word_tokens

    config = load_config(overrides=[
        "teachers=[{model: live, source: openai, base_url: 'http://127.0.0.1:9/v1'}, "
        "{model: rec, source: recorded, recorded: {files: [out.jsonl]}}]", "cascade.teacher=rec",
        f"run_dir={tmp_path / 'run'}", "budget.requests=5", "budget.cost=0.001",
        "budget.prices={live: {prompt: 1, completion: 1}, rec: {prompt: 10, completion: 20}}"])
    run_dir = RunDir(config.run_dir)
    run_dir.write_table("teacher/records-rec.parquet", pd.DataFrame({
        "id": ["r00", "r01", "r02"], "k": 0, "text": ["So 2 + 2 = 4.", "x " * 50, "The answer is 7."],
        "record_file": "out.jsonl", "record_row": [1, 2, 3]}))
    ctx = RunContext(config=config, run_dir=run_dir, services=Services(config))
    recorded = ctx.teacher
    assert recorded.model == "rec" and hasattr(ctx.budget().reserve, "remote")  # the live teacher's ledger
    prompt = SYSTEM_PROMPTS["number"]
    bought, report = recorded.buy(_picks(3), prompt, ctx.budget(), desc="stage")
    costs = [(10 * (word_tokens(prompt) + 2) + 20 * word_tokens(t)) / 1e6 for t in ("So 2 + 2 = 4.", "x " * 50)]
    assert sum(costs) > 0.001 > costs[0]  # the second question's long output does not fit the money left
    assert list(bought["id"]) == ["r00", "r02"] and set(bought["model"]) == {"rec"}
    assert report.not_bought_budget == 1 and report.completion_tokens == word_tokens("So 2 + 2 = 4.") + word_tokens("The answer is 7.")
    assert ray_local.get(ctx.budget().snapshot.remote())["cost"] == pytest.approx(report.cost, abs=1e-6)
