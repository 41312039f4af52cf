"""Purchases through the Batch API (teacher.batch) against a real Batch API server
(tadistill/synthetic/batch_server.py) in front of a real chat-completions server, driven only
through the `openai` client: the same outputs as synchronous purchases at the batch price, never
submitted or paid twice across kills and reruns, every request bought once whatever the batch
went through."""

import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest

from tadistill.config import TeacherConfig
from tadistill.synthetic.batch_server import BatchServer
from tadistill.tasks.prompts import SYSTEM_PROMPTS
from tadistill.teacher.batch import batch_info, buy_with
from tadistill.teacher.budget import Budget
from tadistill.teacher.cache import ResponseCache
from tadistill.teacher.client import TeacherClient, TeacherError

from .openai_server import OpenAITestServer

KEY = "sk-test-not-a-real-key-4f9a"
PRICE = (100.0, 300.0)  # per million tokens: 10 * 100 + 12 * 300 = 4600e-6 a request at the synchronous price
REPO = Path(__file__).resolve().parents[2]


def _rows(n: int, offset: int = 0) -> pd.DataFrame:
    ids = [f"r{i}" for i in range(offset, offset + n)]
    return pd.DataFrame({"id": ids, "question": [f"question number {i}" for i in range(offset, offset + n)]})


def _config(base_url: str, batch: bool = True, **batch_options) -> TeacherConfig:
    return TeacherConfig(source="openai", base_url=base_url, model="test-model", api_key_env="TADISTILL_TEST_KEY",
                         retry_for_s=10, timeout_s=5,
                         batch={"enabled": batch, "poll_s": 0.05, **batch_options})


def _client(base_url: str, folder: Path, batch: bool = True, **batch_options) -> TeacherClient:
    return TeacherClient(_config(base_url, batch, **batch_options), base_url, ResponseCache(folder),
                         SYSTEM_PROMPTS["number"], PRICE)


def _buy(client: TeacherClient, rows, budget, **options):
    """A purchase with the client's settings: through the Batch API where its config enables it."""
    return buy_with(client, rows, budget, **options) if client.config.batch.enabled else client.buy(rows, budget, **options)


def _stored(folder: Path) -> dict:
    """The response cache's answers, by key, without what differs between two purchases of one answer."""
    cache = ResponseCache(folder)
    volatile = ("response_id", "paid_at", "cost", "batch_id")
    return {key: {k: v for k, v in cache.get(key).items() if k not in volatile} for key in cache._responses}


@pytest.fixture(autouse=True)
def api_key(monkeypatch):
    monkeypatch.setenv("TADISTILL_TEST_KEY", KEY)


@pytest.fixture
def servers():
    with OpenAITestServer() as upstream, BatchServer(upstream.base_url) as batches:
        yield upstream, batches


def test_a_purchase_in_batches_buys_what_the_synchronous_one_does_at_half_the_price(tmp_path, servers):
    upstream, batches = servers
    rows = _rows(12)
    sync_budget, batch_budget = Budget(100, cost=1.0), Budget(100, cost=1.0)
    sync_frame, sync_report = _buy(_client(upstream.base_url, tmp_path / "sync", batch=False), rows, sync_budget)
    frame, report = _buy(_client(batches.base_url, tmp_path / "batch", max_requests=5), rows, batch_budget)

    pd.testing.assert_frame_equal(frame, sync_frame)  # the same rows, columns and types (TEACHER_COLUMNS)
    assert _stored(tmp_path / "batch") == _stored(tmp_path / "sync")
    assert report.bought == report.sent == 12 and report.cache_hits == 0
    assert report.cost == pytest.approx(sync_report.cost / 2)
    assert batch_budget.spent.cost == pytest.approx(sync_budget.spent.cost / 2) and batch_budget.pending == 0
    assert batch_budget.spent.requests == 12 and batch_budget.spent.tokens == sync_budget.spent.tokens
    # 12 requests at max_requests 5: three batches, each created once, each request executed once.
    assert batches.create_calls == 3 and set(batches.executions.values()) == {1} and len(batches.executions) == 12
    info = batch_info(report)["batch"]
    assert [b["requests"] for b in info["batches"]] == [5, 5, 2]
    assert all(b["status"] == "completed" and [h["status"] for h in b["history"]][-1] == "completed"
               for b in info["batches"])
    assert info["cost"] == pytest.approx(report.cost) and info["sync_cost"] == pytest.approx(sync_report.cost)
    assert info["saved"] == pytest.approx(sync_report.cost / 2)
    # Bought again: every answer from the cache, nothing submitted.
    again, again_report = _buy(_client(batches.base_url, tmp_path / "batch"), rows, Budget(100))
    assert again_report.cache_hits == 12 and batches.create_calls == 3 and list(again["text"]) == list(frame["text"])


# A purchase in a process of its own (what a killed driver is): rows, then the report as JSON. It
# stops on Ctrl-C as `tadistill` does (its handlers raise the stop again should a library swallow
# it), and SIGUSR1 prints where it is (what the test shows if it does not end).
DRIVER = textwrap.dedent("""
    import faulthandler, json, logging, signal, sys
    from pathlib import Path
    from tests.teacher.test_batch import _buy, _client, _rows
    from tadistill import interrupt
    from tadistill.teacher.budget import Budget

    interrupt.install()
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    base_url, folder, count = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    try:
        frame, report = _buy(_client(base_url, folder), _rows(count), Budget(100), progress=True)
    except KeyboardInterrupt as stop:
        sys.exit(interrupt.exit_code(stop))
    print(json.dumps({"bought": report.bought, "sent": report.sent}))
""")


def _driver(base_url: str, folder: Path, count: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", DRIVER, base_url, str(folder), str(count)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _ended(driver: subprocess.Popen, timeout_s: float = 60.0) -> str:
    """The driver's stderr once it has exited; if it does not, where it hangs (every thread's
    stack), then it is killed and the test fails with that."""
    try:
        return driver.communicate(timeout=timeout_s)[1]
    except subprocess.TimeoutExpired:
        driver.send_signal(signal.SIGUSR1)  # faulthandler writes every thread's stack to stderr
        try:
            driver.wait(timeout=10)
        except subprocess.TimeoutExpired:
            driver.kill()
        err = driver.communicate()[1]
        raise AssertionError(f"the driver did not end within {timeout_s:g} s of its stop:\n{err[-6000:]}") from None


def _journaled(folder: Path, event: str, timeout_s: float = 60.0) -> list[dict]:
    """The journal's events of this kind, once there is one (the driver writes it)."""
    journal = folder / "batches" / "journal.jsonl"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if journal.exists():
            found = [e for e in map(json.loads, journal.read_text().splitlines()) if e["event"] == event]
            if found:
                return found
        time.sleep(0.05)
    raise TimeoutError(f"no {event!r} in {journal} after {timeout_s} s")


@pytest.mark.parametrize("stop", [signal.SIGKILL, signal.SIGINT])
def test_a_driver_killed_while_its_batch_runs_reattaches_on_rerun_and_nothing_executes_twice(tmp_path, servers, stop):
    upstream, batches = servers
    batches.plans = [{"hold": True}]  # in progress until released: the driver is stopped mid-batch
    driver = _driver(batches.base_url, tmp_path / "cache", 8)
    created = _journaled(tmp_path / "cache", "created")
    batches.wait_for("in_progress")
    driver.send_signal(stop)
    err = _ended(driver)
    if stop == signal.SIGINT:  # Ctrl-C: the batch ids, and that the same command resumes them
        assert created[0]["batch_id"] in err and "Run the same command again to resume them" in err
    batches.release()

    budget = Budget(100, cost=1.0)
    frame, report = _buy(_client(batches.base_url, tmp_path / "cache"), _rows(8), budget)
    assert batches.create_calls == 1 and batches.uploads == 1  # re-attached, nothing submitted again
    assert len(batches.executions) == 8 and set(batches.executions.values()) == {1}
    assert set(upstream.paid_per_question.values()) == {1}
    assert list(frame["id"]) == [f"r{i}" for i in range(8)] and report.sent == 8 and report.cache_hits == 0
    assert report.batches[0]["resumed"] and report.batches[0]["batch_id"] == created[0]["batch_id"]
    assert budget.spent.requests == 8 and budget.pending == 0
    assert budget.spent.cost == pytest.approx(8 * 0.0046 / 2)


def test_a_stop_inside_the_journal_write_of_a_create_still_names_the_batch_and_the_rerun_adopts_it(
        tmp_path, servers, monkeypatch, caplog):
    """The stop lands after the `created` event is in the journal's file, inside its fsync: what
    the console says is what the file says (the batch id), and the rerun re-attaches to it."""
    import os

    upstream, batches = servers
    journal = tmp_path / "cache" / "batches" / "journal.jsonl"
    fsync = os.fsync

    def stop_inside_the_created_write(fd):
        fsync(fd)
        if journal.exists() and json.loads(journal.read_text().splitlines()[-1])["event"] == "created":
            monkeypatch.setattr(os, "fsync", fsync)  # one stop
            raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", stop_inside_the_created_write)
    with caplog.at_level("WARNING"), pytest.raises(KeyboardInterrupt):
        _buy(_client(batches.base_url, tmp_path / "cache"), _rows(4), Budget(100))
    created = [e for e in map(json.loads, journal.read_text().splitlines()) if e["event"] == "created"]
    assert len(created) == 1 and created[0]["batch_id"] in caplog.text and "resume them" in caplog.text

    frame, report = _buy(_client(batches.base_url, tmp_path / "cache"), _rows(4), Budget(100))
    assert batches.create_calls == 1 and report.batches[0]["resumed"] and len(frame) == 4
    assert set(batches.executions.values()) == {1}


def _journal_a_create_whose_answer_was_lost(folder: Path, batches: BatchServer, rows: pd.DataFrame, created: bool):
    """What a driver killed inside `batches.create` leaves: the part uploaded and the create
    journaled, and at the provider a batch of it (the create went through) or none."""
    import openai

    from tadistill.teacher.batch_api import Journal, request_line

    client = _client(batches.base_url, folder)
    lines = [request_line(client.key_for(q), {"model": "test-model", "messages": client.messages(q), **client.params})
             for q in rows["question"]]
    journal = Journal(folder)
    part = journal.new_part(b"".join(lines), len(lines))
    provider = openai.OpenAI(base_url=batches.base_url, api_key=KEY)
    file_id = provider.files.create(file=("in.jsonl", b"".join(lines)), purpose="batch").id
    journal.write("uploaded", part.part, file_id=file_id)
    journal.write("create", part.part, file_id=file_id)
    if created:
        provider.batches.create(input_file_id=file_id, endpoint="/v1/chat/completions", completion_window="24h")


@pytest.mark.parametrize("created", [True, False])
def test_a_create_whose_answer_was_lost_is_found_at_the_provider_before_anything_is_created_anew(
        tmp_path, servers, created):
    upstream, batches = servers
    rows = _rows(6)
    _journal_a_create_whose_answer_was_lost(tmp_path / "cache", batches, rows, created)
    frame, report = _buy(_client(batches.base_url, tmp_path / "cache"), rows, Budget(100))
    assert batches.create_calls == 1  # the lost one adopted, or (none at the provider) one created now
    assert len(frame) == 6 and set(batches.executions.values()) == {1} and len(batches.executions) == 6
    assert report.batches[0]["resumed"] is created


@pytest.mark.parametrize("listed", [True, False])
def test_a_batch_that_expires_half_answered_ends_with_every_request_bought_once(tmp_path, servers, listed):
    upstream, batches = servers
    # Expired after 4 of 8 lines; the rest listed in the error file as batch_expired, or nowhere.
    batches.plans = [{"expire_after": 4, "unanswered_listed": listed}]
    budget = Budget(100, cost=1.0)
    frame, report = _buy(_client(batches.base_url, tmp_path / "cache"), _rows(8), budget)
    assert list(frame["id"]) == [f"r{i}" for i in range(8)] and report.sent == 8
    assert batches.create_calls == 2 and set(batches.executions.values()) == {1} and len(batches.executions) == 8
    assert [(b["status"], b["answered"], b["failed"]) for b in report.batches] == [("expired", 4, 4),
                                                                                  ("completed", 4, 0)]
    assert budget.spent.requests == 8 and budget.pending == 0 and budget.spent.cost == pytest.approx(8 * 0.0023)


@pytest.mark.parametrize("on_failed_lines", ["rebatch", "sync"])
def test_lines_that_fail_inside_a_batch_are_bought_again_once(tmp_path, servers, on_failed_lines):
    upstream, batches = servers
    batches.plans = [{"fail_lines": [1, 4]}]  # HTTP 500 on those lines: not executed, not paid
    budget = Budget(100, cost=1.0)
    frame, report = _buy(_client(batches.base_url, tmp_path / "cache", on_failed_lines=on_failed_lines), _rows(6), budget)
    assert list(frame["id"]) == [f"r{i}" for i in range(6)] and report.sent == 6 and budget.pending == 0
    assert set(upstream.paid_per_question.values()) == {1} and len(upstream.paid_per_question) == 6
    if on_failed_lines == "rebatch":
        assert batches.create_calls == 2 and len(batches.executions) == 6
        assert budget.spent.cost == pytest.approx(6 * 0.0023)
    else:  # the two failed lines bought one request at a time, at the synchronous price
        assert batches.create_calls == 1 and len(batches.executions) == 4
        assert budget.spent.cost == pytest.approx(4 * 0.0023 + 2 * 0.0046)
    assert set(batches.executions.values()) == {1}


def test_a_line_the_provider_refuses_stops_the_purchase_naming_the_row_and_keeps_the_rest(tmp_path, servers):
    upstream, batches = servers
    batches.plans = [{"fail_lines": [2], "fail_status": 400}]
    budget = Budget(100, cost=1.0)
    with pytest.raises(TeacherError, match=r"refused row 'r2': HTTP 400: injected error on line 2\. 4 of the 5 "):
        _buy(_client(batches.base_url, tmp_path / "cache"), _rows(5), budget)
    assert budget.pending == 0 and budget.spent.requests == 4
    again, report = _buy(_client(batches.base_url, tmp_path / "cache"), _rows(5), Budget(100))  # the provider lets it now
    assert report.cache_hits == 4 and report.sent == 1 and set(batches.executions.values()) == {1}


def test_a_batch_rejected_at_validation_is_a_one_line_error_naming_the_reason_and_costs_nothing(tmp_path, servers):
    # A TeacherError: the CLI prints it as one line and exits 2 (tadistill/cli.py).
    upstream, batches = servers
    batches.plans = [{"reject": "model 'test-model' is not available\nin the Batch API"}]
    budget = Budget(100, cost=1.0)
    with pytest.raises(TeacherError) as caught:
        _buy(_client(batches.base_url, tmp_path / "cache"), _rows(5), budget)
    said = str(caught.value)
    assert "\n" not in said and "rejected batch batch_" in said and "is not available in the Batch API" in said
    assert budget.spent.requests == 0 and budget.spent.cost == pytest.approx(0) and budget.pending == 0
    assert not upstream.paid_per_question
    # Nothing is re-attached: the rejected batch is done with, a rerun submits anew.
    batches.plans = []
    frame, _ = _buy(_client(batches.base_url, tmp_path / "cache"), _rows(5), Budget(100))
    assert len(frame) == 5 and batches.create_calls == 2


def test_no_number_of_batches_passes_the_budget_and_a_money_cap_is_spent_to_its_end(tmp_path, servers):
    from tadistill.teacher.client import prompt_token_bound

    upstream, batches = servers
    capped = Budget(7)
    frame, report = _buy(_client(batches.base_url, tmp_path / "a"), _rows(20), capped)
    assert len(frame) == 7 and report.not_bought_budget == 13 and batches.create_calls == 1 and capped.used == 7
    # Each request's worst case at the batch price (prompt bound + max_tokens) is far above what it costs
    # (0.0023): a batch holds only the worst cases that fit, the next one what settling made room for.
    config = _config(batches.base_url).model_copy(update={"max_tokens": 16})
    client = TeacherClient(config, batches.base_url, ResponseCache(tmp_path / "b"), SYSTEM_PROMPTS["number"], PRICE)
    worst = (prompt_token_bound(client.messages("question number 30")) * 50 + 16 * 150) / 1e6
    money = Budget(1000, cost=3 * worst)
    frame, report = _buy(client, _rows(20, offset=20), money)
    assert money.spent.cost <= 3 * worst + 1e-12 and money.pending == 0
    assert len(frame) > 3 and money.spent.cost > 3 * worst - worst  # stopped within one worst case of the cap
    assert len(report.batches) > 1 and set(batches.executions.values()) == {1}


def test_a_console_that_is_no_terminal_gets_a_line_per_batch(tmp_path, servers, caplog):
    import logging

    upstream, batches = servers
    with caplog.at_level(logging.INFO, logger="tadistill.teacher"):
        _buy(_client(batches.base_url, tmp_path / "cache", max_requests=3), _rows(5), Budget(100), progress=True)
    said = [r.getMessage() for r in caplog.records if "completed/failed/total" in r.getMessage()]
    for batch_id in {b["id"] for b in batches.list_batches(10, None)["data"]}:
        mine = [line for line in said if batch_id in line]
        assert mine and "completed, " in mine[-1] and (" 3/0/3 " in mine[-1] or " 2/0/2 " in mine[-1])


def test_the_run_path_routes_to_batches_and_reserves_from_the_ledger_actor_at_the_batch_price(tmp_path, servers,
                                                                                              monkeypatch):
    import types

    import ray

    from tadistill.teacher.ray_purchase import buy_with_ray_data

    class Handle:  # a Ray actor handle as a caller sees one: method.remote(*args), its result through ray.get
        def __init__(self, budget):
            self.budget = budget

        def __getattr__(self, name):
            return types.SimpleNamespace(remote=getattr(self.budget, name))

    monkeypatch.setattr(ray, "get", lambda ref: ref)
    upstream, batches = servers
    budget = Budget(100, cost=1.0)
    frame, report = buy_with_ray_data(_rows(4), _config(batches.base_url), lambda: batches.base_url, tmp_path / "cache",
                                      SYSTEM_PROMPTS["number"], Handle(budget), PRICE, batch_price=(25.0, 75.0))
    assert len(frame) == 4 and batches.create_calls == 1 and budget.pending == 0
    assert report.cost == pytest.approx(budget.spent.cost)
    assert report.cost == pytest.approx(4 * (10 * 25 + 12 * 75) / 1e6)  # the batch price given, not half of PRICE


def test_the_batch_section_and_batch_prices_are_validated_naming_the_key():
    from tadistill.config import ConfigError, Price, load_config

    with pytest.raises(ConfigError, match=r"teacher\.batch\.enabled needs teacher\.source 'openai'"):
        load_config(None, ["teacher.batch.enabled=true"])
    with pytest.raises(ConfigError, match=r"teacher\.batch\.on_failed_lines"):
        load_config(None, ["teacher.batch.on_failed_lines=later"])
    assert Price(prompt=2, completion=8).batch_price() == (1, 4)
    assert Price(prompt=2, completion=8, batch_discount=0.6).batch_price() == pytest.approx((1.2, 4.8))
    assert Price(prompt=2, completion=8, batch_prompt=1.5, batch_completion=3).batch_price() == (1.5, 3)
    with pytest.raises(ValueError, match="batch_prompt and batch_completion together"):
        Price(prompt=2, completion=8, batch_prompt=1.5)
    config = load_config(REPO / "configs" / "openai_batch_teacher.yaml", [])
    assert config.teacher.batch.enabled and config.teacher.batch.max_requests == 50_000


def test_a_torn_journal_line_is_dropped_and_the_next_event_lands_on_a_line_of_its_own(tmp_path):
    from tadistill.teacher.batch_api import Journal

    journal = Journal(tmp_path)
    part = journal.new_part(b"{}\n", 1)
    with open(journal.path, "a") as handle:
        handle.write('{"event": "uploaded", "part": "' + part.part + '", "fil')  # killed mid-write
    again = Journal(tmp_path)
    assert again.parts[part.part].file_id is None
    again.write("abandoned", part.part, reason="test")
    assert Journal(tmp_path).parts[part.part].abandoned and not Journal(tmp_path).unfinished()


def test_a_malformed_answer_is_charged_as_maybe_paid_and_bought_again(tmp_path, servers):
    upstream, batches = servers
    batches.plans = [{"malformed_lines": [1]}]  # a 200 whose body has no choices: paid, and useless
    budget = Budget(100)
    frame, report = _buy(_client(batches.base_url, tmp_path / "cache"), _rows(3), budget)
    assert list(frame["id"]) == ["r0", "r1", "r2"] and batches.create_calls == 2
    assert sorted(batches.executions.values()) == [1, 1, 2]  # the malformed one was paid and is bought again
    assert budget.spent.requests == 4 and budget.pending == 0  # charged: the lost answer's worst case stays
    assert ResponseCache(tmp_path / "cache").orphan_kinds() == {"unknown": 1, "in_flight": 0}  # and on resume
