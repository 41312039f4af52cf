"""The asyncio teacher client against a real local HTTP server speaking the OpenAI API."""

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from tadistill.config import TeacherConfig
from tadistill.tasks.prompts import SYSTEM_PROMPTS
from tadistill.teacher.budget import Budget
from tadistill.teacher.cache import ResponseCache
from tadistill.teacher.client import TeacherClient, TeacherError

from .openai_server import OpenAITestServer

KEY = "sk-test-not-a-real-key-4f9a"


def _rows(n: int, offset: int = 0) -> pd.DataFrame:
    ids = [f"r{i}" for i in range(offset, offset + n)]
    return pd.DataFrame({"id": ids, "question": [f"question number {i}" for i in range(offset, offset + n)]})


def _client(server, tmp_path, price=None, **overrides):
    values = {"source": "openai", "base_url": server.base_url, "model": "test-model", "api_key_env": "TADISTILL_TEST_KEY",
              "retry_for_s": 20, "timeout_s": 5, **overrides}
    config = TeacherConfig(**values)
    return TeacherClient(config, server.base_url, ResponseCache(tmp_path / "cache"), SYSTEM_PROMPTS["number"], price)


@pytest.fixture(autouse=True)
def api_key(monkeypatch):
    monkeypatch.setenv("TADISTILL_TEST_KEY", KEY)  # the same key tests/conftest.py gives Ray's workers


def test_buys_in_order(tmp_path):
    with OpenAITestServer() as server:
        bought, report = _client(server, tmp_path).buy(_rows(12), Budget(100))
    assert list(bought["id"]) == [f"r{i}" for i in range(12)]
    assert report.sent == 12 and server.served == 12 and report.cache_hits == 0
    assert bought["text"].str.len().gt(0).all() and (bought["k"] == 0).all()
    assert report.prompt_tokens == 120 and report.completion_tokens == 144


def test_cache_means_no_request_is_paid_twice(tmp_path):
    with OpenAITestServer() as server:
        _client(server, tmp_path).buy(_rows(10), Budget(100))
        again, report = _client(server, tmp_path).buy(_rows(15), Budget(100))
    assert server.served == 15 and max(server.paid_per_question.values()) == 1
    assert report.cache_hits == 10 and report.sent == 5 and len(again) == 15


def test_request_budget_is_a_hard_cap_at_any_concurrency(tmp_path):
    budget = Budget(7)
    with OpenAITestServer(latency=0.05) as server:
        bought, report = _client(server, tmp_path, concurrency=16).buy(_rows(20), budget)
        more, more_report = _client(server, tmp_path).buy(_rows(10, offset=20), budget)
    assert len(bought) == 7 and server.served == 7 and budget.used == 7
    assert report.not_bought_budget == 13 and len(more) == 0 and more_report.not_bought_budget == 10


def test_token_and_cost_budgets_reserve_the_worst_case_and_settle_to_usage(tmp_path):
    # Each request reserves its prompt bound + max_tokens and settles to 22 used tokens.
    client_tokens = Budget(1000, tokens=2000)
    with OpenAITestServer() as server:
        bought, _ = _client(server, tmp_path / "t", max_tokens=64).buy(_rows(30), client_tokens)
        assert client_tokens.spent.tokens == 22 * len(bought) <= 2000
        cost_budget = Budget(1000, cost=0.02)
        price = (100.0, 300.0)  # per million tokens: 10*100 + 12*300 = 4600e-6 a request when settled
        bought_c, report = _client(server, tmp_path / "c", price=price, max_tokens=8, concurrency=1).buy(
            _rows(5), cost_budget)
    assert 0 < len(bought_c) < 5 and cost_budget.spent.cost <= 0.02
    assert report.cost == pytest.approx(0.0046 * len(bought_c))


def test_a_token_cap_is_spent_to_its_end_at_any_concurrency_not_refused_by_worst_cases_in_flight(tmp_path):
    # 16 requests in flight each hold a worst case (prompt bound + 64) of the 2000 tokens; they
    # settle to 22. Requests that do not fit while others are in flight wait for them to settle.
    budget = Budget(1000, tokens=2000)
    with OpenAITestServer(latency=0.05) as server:
        bought, report = _client(server, tmp_path, max_tokens=64, concurrency=16).buy(_rows(120), budget)
    assert budget.spent.tokens == 22 * len(bought) <= 2000 and budget.pending == 0
    # Stopped within one worst case (about 210 tokens here) of the cap.
    assert budget.spent.tokens > 2000 - 250 and report.not_bought_budget == 120 - len(bought)


def test_budget_answers_wait_while_a_worst_case_in_flight_may_settle_and_exhausted_when_none_can():
    budget = Budget(10, tokens=100)
    assert budget.try_reserve(80, 0.0) == "reserved" and budget.pending == 1
    assert budget.try_reserve(80, 0.0) == "wait"  # the first may settle lower
    budget.settle(80, 0.0, 20, 0.0)
    assert budget.pending == 0 and budget.try_reserve(80, 0.0) == "reserved"
    budget.settle(80, 0.0, 75, 0.0)
    assert budget.try_reserve(80, 0.0) == "exhausted"  # 95 spent, nothing in flight


def test_retries_429_500_dropped_connections_timeouts_and_malformed_bodies(tmp_path):
    with OpenAITestServer() as server:
        server.faults = [("status", 429, {"Retry-After": "0"}), ("status", 500, {}), ("drop",),
                         ("sleep", 2.0), ("malformed",)]
        bought, report = _client(server, tmp_path, concurrency=1, timeout_s=1).buy(_rows(1), Budget(5))
        assert len(bought) == 1 and bought["finish_reason"].iloc[0] == "stop"
        assert server.requests == 6


def test_retry_after_is_honoured_and_a_failure_past_the_window_names_the_row(tmp_path, caplog):
    with OpenAITestServer() as server:
        server.faults = [("status", 429, {"Retry-After": "1.5"})]
        with caplog.at_level(logging.WARNING, logger="tadistill.teacher.client"):
            bought, _ = _client(server, tmp_path, concurrency=1).buy(_rows(1), Budget(5))
        assert len(bought) == 1 and "retrying in 1.5 s" in caplog.text  # the wait the server asked for
        server.outage(60)
        budget = Budget(5)
        with pytest.raises(TeacherError, match=r"row 'r7'.*HTTP (429|500).*gave up after \d+ tries in 2 s"):
            _client(server, tmp_path, concurrency=1, retry_for_s=2).buy(_rows(1, offset=7), budget)
    assert budget.used == 0  # refused requests are not paid, so not charged


def test_truncated_answers_are_kept_and_counted(tmp_path):
    with OpenAITestServer() as server:
        server.faults = [("length",), ("length",)]
        bought, report = _client(server, tmp_path, concurrency=1).buy(_rows(3), Budget(5))
    assert report.truncated == 2 and (bought["finish_reason"] == "length").sum() == 2


def test_non_retryable_error_names_the_row_and_request_and_releases_budget(tmp_path):
    budget = Budget(5)
    with OpenAITestServer() as server:
        server.faults = [("status", 400, {})]
        with pytest.raises(TeacherError, match=r"row 'r0'.*HTTP 400.*request id req-"):
            _client(server, tmp_path, concurrency=1).buy(_rows(1), budget)
    assert budget.used == 0
    assert ResponseCache(tmp_path / "cache").orphans() == []  # a refused request was not paid


def test_the_key_never_reaches_the_cache_logs_errors_or_repr(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    with OpenAITestServer() as server:
        client = _client(server, tmp_path)
        client.buy(_rows(3), Budget(10))
        server.faults = [("status", 401, {})]
        with pytest.raises(TeacherError) as err:
            _client(server, tmp_path).buy(_rows(1, offset=50), Budget(10))
    stored = "".join(p.read_text() for p in (tmp_path / "cache").glob("*.jsonl"))
    assert KEY not in stored and KEY not in str(err.value) and KEY not in repr(client)
    assert KEY not in caplog.text


def test_the_key_can_come_from_a_secret_file(tmp_path, monkeypatch):
    monkeypatch.delenv("TADISTILL_TEST_KEY")
    secret = tmp_path / "key"
    secret.write_text(KEY + "\n")
    with OpenAITestServer() as server:
        bought, _ = _client(server, tmp_path, api_key_file=str(secret)).buy(_rows(2), Budget(10))
    assert len(bought) == 2


def test_missing_api_key_for_a_real_endpoint_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.delenv("TADISTILL_TEST_KEY")
    with OpenAITestServer() as server:
        with pytest.raises(TeacherError, match="TADISTILL_TEST_KEY"):
            _client(server, tmp_path)


def test_torn_last_line_is_ignored_and_repaired(tmp_path):
    with OpenAITestServer() as server:
        _client(server, tmp_path).buy(_rows(3), Budget(10))
        shard = next((tmp_path / "cache").glob("*.jsonl"))
        with shard.open("a") as handle:
            handle.write('{"key": "half-writ')  # a crash in the middle of a write
        cache = ResponseCache(tmp_path / "cache")
        assert len(cache) == 3 and cache.torn_lines == 1
        _, report = _client(server, tmp_path).buy(_rows(3), Budget(10))
    assert report.sent == 0 and server.served == 3


KILLED_BUYER = """
import sys
from pathlib import Path
import pandas as pd
from tadistill.config import TeacherConfig
from tadistill.tasks.prompts import SYSTEM_PROMPTS
from tadistill.teacher.budget import Budget
from tadistill.teacher.cache import ResponseCache
from tadistill.teacher.client import TeacherClient

base_url, cache_dir, n = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
rows = pd.DataFrame({"id": [f"r{i}" for i in range(n)], "question": [f"question number {i}" for i in range(n)]})
config = TeacherConfig(source="openai", base_url=base_url, model="test-model", api_key_env="TADISTILL_TEST_KEY", concurrency=8)
TeacherClient(config, base_url, ResponseCache(cache_dir), SYSTEM_PROMPTS["number"]).buy(rows, Budget(int(sys.argv[4])))
"""


def test_a_killed_purchase_resumes_without_paying_a_stored_response_twice_or_overspending(tmp_path):
    n, limit = 60, 70
    script = tmp_path / "buyer.py"
    script.write_text(KILLED_BUYER)
    with OpenAITestServer(latency=0.1) as server:
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
        proc = subprocess.Popen([sys.executable, str(script), server.base_url, str(tmp_path / "cache"), str(n), str(limit)],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 120
        while server.served < 20 and time.time() < deadline and proc.poll() is None:
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        before = ResponseCache(tmp_path / "cache")
        stored = {e["id"] for e in before._responses.values()}
        assert 0 < len(stored) < n
        # Resume: what was in flight at the kill is charged, then everything else is bought.
        budget = Budget(limit, already=before.orphan_spend())
        bought, report = _client(server, tmp_path, concurrency=8).buy(_rows(n), budget)
    assert len(bought) == n and report.cache_hits == len(stored)
    paid = server.paid_per_question
    assert all(paid[f"question number {i[1:]}"] == 1 for i in stored)  # no stored response paid again
    assert server.served <= limit and budget.used <= limit
    # Only requests in flight at the kill (orphans: sent, maybe paid, never answered) were paid twice.
    assert sum(paid.values()) - n <= len(before.orphans()) <= 8


def _stop_worker_midway(client, rows, gate, after: int) -> list:
    """Run a purchase on a worker's own event loop and stop the worker once `after` responses
    are in: its tasks are cancelled (a group commit may be mid-fsync) and its loop closed."""
    import asyncio
    import gc

    done = []

    async def stop_midway():
        task = asyncio.ensure_future(client.fetch_all(rows, gate, on_done=done.append))
        while len(done) < after and not task.done():
            await asyncio.sleep(0.005)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    loop = asyncio.new_event_loop()
    loop.run_until_complete(stop_midway())
    loop.close()
    del loop
    time.sleep(0.5)  # a write thread left running finishes
    gc.collect()  # a task still pending on the closed loop is reported when it is collected
    return [row for rows in done if rows is not None for row in rows]


def test_a_stopped_worker_leaves_nothing_pending_and_loses_no_stored_response(tmp_path, caplog):
    from tadistill.teacher.client import BudgetGate

    n, limit = 40, 60
    with OpenAITestServer(latency=0.05) as server:
        acknowledged = _stop_worker_midway(_client(server, tmp_path, concurrency=8), _rows(n),
                                           BudgetGate(Budget(limit)), after=12)
        before = ResponseCache(tmp_path / "cache")
        # Every response the worker acknowledged is on disk; a worker's stop destroys no pending task.
        assert {out["id"] for out in acknowledged} <= {e["id"] for e in before._responses.values()}
        assert not [r for r in caplog.records if "Task was destroyed" in r.getMessage()]
        budget = Budget(limit, already=before.orphan_spend())
        bought, report = _client(server, tmp_path, concurrency=8).buy(_rows(n), budget)
    paid = server.paid_per_question
    stored = {e["id"] for e in before._responses.values()}
    assert len(bought) == n and report.cache_hits == len(stored) >= 12
    assert all(paid[f"question number {i[1:]}"] == 1 for i in stored)  # none stored is paid twice
    assert sum(paid.values()) - n <= len(before.orphans()) <= 8  # only cancelled in-flight sends again
    assert budget.used <= limit


def test_a_finished_purchase_leaves_no_pending_commit(tmp_path, caplog):
    import gc

    with OpenAITestServer() as server:
        _client(server, tmp_path).buy(_rows(5), Budget(10))
    gc.collect()
    assert not [r for r in caplog.records if "Task was destroyed" in r.getMessage()]


def test_request_options_are_sent_and_defaults_keep_old_cache_keys(tmp_path):
    from tadistill.teacher.client import request_key, request_params

    # A request made before these options existed hashed exactly these params: its cache entry still matches.
    default = TeacherConfig(source="openai", base_url="http://x/v1", model="m")
    assert request_params(default) == {"temperature": 0.0, "max_tokens": 256}
    assert request_key("m", [{"role": "user", "content": "q"}], request_params(default)) == \
        request_key("m", [{"role": "user", "content": "q"}], {"temperature": 0.0, "max_tokens": 256})
    with OpenAITestServer() as server:
        client = _client(server, tmp_path, top_p=0.9, seed=7, stop=["\n\n"], max_completion_tokens=True,
                         extra_body={"reasoning_effort": "low"})
        client.buy(_rows(1), Budget(5))
        body = server.bodies[0]
    assert body["top_p"] == 0.9 and body["seed"] == 7 and body["stop"] == ["\n\n"]
    assert body["max_completion_tokens"] == 256 and "max_tokens" not in body
    assert body["reasoning_effort"] == "low" and "n" not in body


def test_several_rationales_per_request_are_one_request_and_cost_what_they_cost(tmp_path):
    price = (1.0, 2.0)  # per million prompt / completion tokens
    with OpenAITestServer() as server:
        budget = Budget(4, cost=1.0)
        bought, report = _client(server, tmp_path, price=price, n=3, max_tokens=20).buy(_rows(4), budget)
        assert server.served == 4 and report.bought == 4 and budget.used == 4
        assert bought.groupby("id")["k"].apply(list).to_dict() == {f"r{i}": [0, 1, 2] for i in range(4)}
        assert bought.groupby("id")["text"].nunique().eq(3).all()  # three samples, in index order
        assert list(bought[bought.id == "r0"]["text"].str.contains("sample 0")) == [True, False, False]
        assert report.completion_tokens == 4 * 36 and report.cost == pytest.approx(4 * (10 * 1 + 36 * 2) / 1e6)
        again, again_report = _client(server, tmp_path, price=price, n=3, max_tokens=20).buy(_rows(4), Budget(4))
    assert again_report.cache_hits == 4 and server.served == 4  # the cache keeps all three
    pd.testing.assert_frame_equal(again.drop(columns=["cached"]), bought.drop(columns=["cached"]))


def test_reservations_a_dead_worker_held_are_given_back_to_the_ledgers_truth():
    # A worker reserved 4 requests, then its node was lost: nothing settles or releases them.
    budget = Budget(requests=40, tokens=10_000)
    for _ in range(16):
        assert budget.reserve(tokens=100)
    assert budget.give_back_beyond(requests=12, tokens=1_000, cost=0.0) == 4  # the ledger shows 12 bought
    assert budget.used == 12 and budget.spent.tokens == 1_000
    assert budget.give_back_beyond(requests=20, tokens=5_000, cost=0.0) == 0  # never raised
    assert budget.used == 12


def test_an_outage_given_up_twice_costs_nothing_and_the_third_try_buys_every_row_once(tmp_path):
    """The sequence a user met: the teacher answers every request with an error until the purchase
    gives up, twice; then it works. Refused tries are closed as unpaid when refused, so the budget
    is charged exactly the requests the server answered."""
    n, limit = 7, 10
    with OpenAITestServer() as server:
        for _ in range(2):
            server.outage(3600)
            budget = Budget(limit, already=ResponseCache(tmp_path / "cache").orphan_spend())
            with pytest.raises(TeacherError, match="gave up"):
                _client(server, tmp_path, concurrency=3, retry_for_s=1.5).buy(_rows(n), budget)
            assert budget.used == 0 and server.served == 0
        server.outage_until = 0.0
        cache = ResponseCache(tmp_path / "cache")
        assert cache.orphans() == []  # every refused try was closed, none is charged on resume
        budget = Budget(limit, already=cache.orphan_spend())
        bought, report = _client(server, tmp_path, concurrency=3).buy(_rows(n), budget)
    assert server.refused > 0 and report.bought == n and report.not_bought_budget == 0
    assert budget.used == server.served == n


def test_a_try_that_timed_out_after_it_left_stays_charged_now_and_on_resume(tmp_path):
    """A timeout after the request left may have been paid (the provider goes on generating): it
    is charged at its worst case in this invocation and the next; the retry reserves anew."""
    with OpenAITestServer() as server:
        server.faults = [("sleep", 2.0)]
        budget = Budget(5)
        bought, _ = _client(server, tmp_path, concurrency=1, timeout_s=1).buy(_rows(1), budget)
        assert len(bought) == 1 and budget.used == 2  # the answer, and the try that may have been paid
    cache = ResponseCache(tmp_path / "cache")
    assert cache.orphan_kinds() == {"unknown": 1, "in_flight": 0}
    assert Budget(5, already=cache.orphan_spend()).used == 1


def test_a_retry_that_no_longer_fits_the_budget_is_not_sent(tmp_path):
    with OpenAITestServer() as server:
        server.faults = [("drop",)]
        budget = Budget(1)
        bought, report = _client(server, tmp_path, concurrency=1).buy(_rows(1), budget)
    assert len(bought) == 0 and report.not_bought_budget == 1 and budget.used == 1 and server.requests == 1


def test_a_teacher_that_is_not_listening_is_never_charged(tmp_path):
    from ..conftest import free_port

    config = TeacherConfig(source="openai", base_url=f"http://127.0.0.1:{free_port()}/v1", model="test-model",
                           api_key_env="TADISTILL_TEST_KEY", retry_for_s=1)
    client = TeacherClient(config, config.base_url, ResponseCache(tmp_path / "cache"), SYSTEM_PROMPTS["number"])
    budget = Budget(5)
    with pytest.raises(TeacherError, match="gave up"):
        client.buy(_rows(2), budget)
    assert budget.used == 0 and ResponseCache(tmp_path / "cache").orphans() == []  # the connection never opened
