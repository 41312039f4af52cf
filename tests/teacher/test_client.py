"""The teacher client against a real local HTTP server speaking the OpenAI API."""

import json

import pandas as pd
import pytest

from tadistill.config import TeacherConfig
from tadistill.tasks.prompts import SYSTEM_PROMPTS
from tadistill.teacher.budget import RequestBudget
from tadistill.teacher.client import ResponseCache, TeacherClient, TeacherError

from .openai_server import OpenAITestServer


def _rows(n: int) -> pd.DataFrame:
    return pd.DataFrame({"id": [f"r{i}" for i in range(n)], "question": [f"question number {i}" * (i % 3 + 1) for i in range(n)]})


def _client(server, tmp_path, **overrides):
    config = TeacherConfig(source="openai", base_url=server.base_url, model="test-model", api_key_env="TADISTILL_TEST_KEY",
                           max_retries=2, **overrides)
    return TeacherClient(config, server.base_url, ResponseCache(tmp_path / "cache.jsonl"), SYSTEM_PROMPTS["number"])


@pytest.fixture(autouse=True)
def api_key(monkeypatch):
    monkeypatch.setenv("TADISTILL_TEST_KEY", "sk-test-not-a-real-key")


def test_buys_in_order(tmp_path):
    with OpenAITestServer() as server:
        bought, report = _client(server, tmp_path).buy(_rows(12), RequestBudget(100))
    assert list(bought["id"]) == [f"r{i}" for i in range(12)]
    assert report.sent == 12 and server.served == 12 and report.cache_hits == 0
    assert bought["text"].str.len().gt(0).all() and (bought["k"] == 0).all()
    assert (bought["completion_tokens"] == 12).all()


def test_cache_means_no_request_is_paid_twice(tmp_path):
    with OpenAITestServer() as server:
        _client(server, tmp_path).buy(_rows(10), RequestBudget(100))
        again, report = _client(server, tmp_path).buy(_rows(15), RequestBudget(100))
    assert server.served == 15
    assert report.cache_hits == 10 and report.sent == 5
    assert len(again) == 15


def test_budget_is_a_hard_cap(tmp_path):
    budget = RequestBudget(7)
    with OpenAITestServer() as server:
        bought, report = _client(server, tmp_path, concurrency=4).buy(_rows(20), budget)
        more, more_report = _client(server, tmp_path).buy(_rows(20).iloc[10:], budget)
    assert len(bought) == 7 and server.served == 7 and budget.used == 7
    assert report.not_bought_budget == 13
    assert len(more) == 0 and more_report.not_bought_budget == 10


def test_torn_last_line_is_ignored_and_repaired(tmp_path):
    with OpenAITestServer() as server:
        _client(server, tmp_path).buy(_rows(3), RequestBudget(10))
        cache_file = tmp_path / "cache.jsonl"
        with cache_file.open("a") as handle:
            handle.write('{"key": "half-writ')  # a crash in the middle of a write
        cache = ResponseCache(cache_file)
        assert len(cache) == 3 and cache.torn_lines == 1
        assert all(json.loads(line) for line in cache_file.read_text().splitlines())
        _, report = _client(server, tmp_path).buy(_rows(3), RequestBudget(10))
    assert report.sent == 0 and server.served == 3


def test_retries_5xx_and_429_then_succeeds(tmp_path):
    with OpenAITestServer() as server:
        server.fail_next = [(500, {}), (429, {"Retry-After": "0"})]
        bought, report = _client(server, tmp_path, concurrency=1).buy(_rows(1), RequestBudget(5))
    assert len(bought) == 1 and server.served == 1


def test_non_retryable_error_names_the_row_and_request_and_releases_budget(tmp_path):
    budget = RequestBudget(5)
    with OpenAITestServer() as server:
        server.fail_next = [(400, {})]
        with pytest.raises(TeacherError, match=r"row 'r0'.*HTTP 400.*req-test-123"):
            _client(server, tmp_path, concurrency=1).buy(_rows(1), budget)
    assert budget.used == 0


def test_api_key_never_lands_in_the_cache(tmp_path):
    with OpenAITestServer() as server:
        _client(server, tmp_path).buy(_rows(3), RequestBudget(10))
    assert "sk-test-not-a-real-key" not in (tmp_path / "cache.jsonl").read_text()


def test_missing_api_key_for_a_real_endpoint_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.delenv("TADISTILL_TEST_KEY")
    with OpenAITestServer() as server, pytest.raises(TeacherError, match="TADISTILL_TEST_KEY"):
        _client(server, tmp_path)
