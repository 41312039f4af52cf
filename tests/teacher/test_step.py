"""Teacher calls as a Ray Data step: actors share one budget actor (its handle passed in) and never overspend."""


import pandas as pd
from tadistill.config import TeacherConfig
from tadistill.tasks.prompts import SYSTEM_PROMPTS
from tadistill.teacher.budget import Spend, ledger_actor
from tadistill.teacher.step import buy_with_ray_data

from .openai_server import OpenAITestServer


def _rows(n):
    return pd.DataFrame({"id": [f"r{i:02d}" for i in range(n)], "question": [f"question {i}" for i in range(n)]})


def test_workers_share_one_budget_and_the_most_preferred_rows_are_bought(ray_local, tmp_path):
    config = TeacherConfig(source="openai", base_url="http://x/v1", model="m", api_key_env="TADISTILL_TEST_KEY",
                           workers=2, concurrency=8)
    with OpenAITestServer(latency=0.05) as server:
        ledger = ledger_actor("test-ledger", 25, None, None, Spend(requests=5))  # 5 used by an earlier step
        bought, report = buy_with_ray_data(_rows(40), config, lambda: server.base_url, tmp_path / "cache",
                                           SYSTEM_PROMPTS["number"], ledger)
        assert list(bought["id"]) == [f"r{i:02d}" for i in range(20)]
        assert report.bought == 20 and report.not_bought_budget == 20 and server.served == 20
        assert ray_local.get(ledger.snapshot.remote())["requests"] == 25
        assert (tmp_path / "cache").is_dir()

        ledger = ledger_actor("test-ledger", 25, None, None, Spend())  # a new invocation: rebuilt from the run
        again, again_report = buy_with_ray_data(_rows(20), config, lambda: server.base_url, tmp_path / "cache",
                                                SYSTEM_PROMPTS["number"], ledger)
    assert again_report.cache_hits == 20 and again_report.sent == 0 and server.served == 20
    pd.testing.assert_frame_equal(again.drop(columns=["cached"]), bought.drop(columns=["cached"]))


def test_a_teacher_down_for_30_seconds_is_waited_out_and_the_budget_stays_exact(ray_local, tmp_path):
    """Every request meets only 429s and 500s for 30 s; the purchase waits, then buys all."""
    config = TeacherConfig(source="openai", base_url="http://x/v1", model="m", api_key_env="TADISTILL_TEST_KEY",
                           workers=2, concurrency=8, retry_for_s=120)
    with OpenAITestServer() as server:
        ledger = ledger_actor("outage-ledger", 30, None, None, Spend())
        server.outage(30, from_first_request=True)
        bought, report = buy_with_ray_data(_rows(40), config, lambda: server.base_url, tmp_path / "cache",
                                           SYSTEM_PROMPTS["number"], ledger)
        spent = ray_local.get(ledger.snapshot.remote())["requests"]
    # Every in-flight request was refused, again and again, for the whole outage, and every one
    # was bought after it: the purchase outlasted it.
    assert server.refused > 8
    assert list(bought["id"]) == [f"r{i:02d}" for i in range(30)] and report.bought == 30
    assert server.served == 30 == spent  # only answered requests are paid, and each one is charged once
    assert max(server.paid_per_question.values()) == 1


def test_a_failing_teacher_is_visible_and_giving_up_says_what_was_bought_and_how_to_resume(ray_local, tmp_path,
                                                                                            caplog, monkeypatch):
    """A real server that answers 8 requests, then only 500s and 429s: the console (not a terminal
    here) says what is retried and for how long, and giving up names the teacher's error, what
    was bought and stored, and that the same command resumes."""
    import logging

    import pytest

    from tadistill.teacher import step
    from tadistill.teacher.client import TeacherError

    monkeypatch.setattr(step, "TROUBLE_EVERY_S", 1.0)
    config = TeacherConfig(source="openai", base_url="http://x/v1", model="m", api_key_env="TADISTILL_TEST_KEY",
                           workers=1, concurrency=2, retry_for_s=4)
    with OpenAITestServer() as server:
        ledger = ledger_actor("failing-ledger", 20, None, None, Spend())
        server.faults = [("ok",)] * 8
        server.outage(600, from_first_request=False)  # down from the start; the 8 'ok's go first
        with caplog.at_level(logging.WARNING, logger="tadistill.teacher.step"), \
                pytest.raises(TeacherError) as failure:
            buy_with_ray_data(_rows(20), config, lambda: server.base_url, tmp_path / "cache",
                              SYSTEM_PROMPTS["number"], ledger)
    message = str(failure.value)
    assert "HTTP 500" in message or "HTTP 429" in message
    assert "gave up after" in message and "run the same command again to resume" in message
    obtained = ray_local.get(ledger.snapshot.remote())["obtained"]
    assert f"{obtained} of the 20 requests of this purchase were bought and stored" in message
    assert obtained == server.served  # what the progress counts is what the server answered
    retried = [r.getMessage() for r in caplog.records if "failing, retrying for" in r.getMessage()]
    assert retried and server.base_url in retried[0]
