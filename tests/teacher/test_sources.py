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
