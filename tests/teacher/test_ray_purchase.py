"""Teacher calls as a Ray Data step: actors share one budget actor (its handle passed in) and never overspend."""


import pandas as pd
from tadistill.config import TeacherConfig
from tadistill.tasks.prompts import SYSTEM_PROMPTS
from tadistill.teacher.budget import Spend, ledger_actor
from tadistill.teacher.ray_purchase import buy_with_ray_data

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
                                                                                            caplog):
    """A real server that answers 8 requests, then only 500s and 429s: the console (not a terminal
    here) says what is retried and for how long, and giving up names the teacher's error, what
    was bought and stored, and that the same command resumes."""
    import logging
    import time

    import pytest

    from tadistill.teacher import ray_purchase
    from tadistill.teacher.client import TeacherError

    config = TeacherConfig(source="openai", base_url="http://x/v1", model="m", api_key_env="TADISTILL_TEST_KEY",
                           workers=1, concurrency=2, retry_for_s=4)
    with OpenAITestServer() as server:
        ledger = ledger_actor("failing-ledger", 20, None, None, Spend())
        server.faults = [("ok",)] * 8
        server.outage(600, from_first_request=False)  # down from the start; the 8 'ok's go first
        started = time.monotonic()
        with caplog.at_level(logging.WARNING, logger="tadistill.teacher.ray_purchase"), \
                pytest.raises(TeacherError) as failure:
            buy_with_ray_data(_rows(20), config, lambda: server.base_url, tmp_path / "cache",
                              SYSTEM_PROMPTS["number"], ledger)
        took = time.monotonic() - started
    message = str(failure.value)
    assert "HTTP 500" in message or "HTTP 429" in message
    assert "gave up after" in message and "run the same command again to resume" in message
    obtained = ray_local.get(ledger.snapshot.remote())["obtained"]
    assert f"{obtained} of the 20 requests of this purchase were bought and stored" in message
    assert obtained == server.served  # what the progress counts is what the server answered
    retried = [r.getMessage() for r in caplog.records if "failing, retrying for" in r.getMessage()]
    assert retried and server.base_url in retried[0]
    # A log is not a terminal: the first failure is said at once, then a line per TROUBLE_EVERY_S
    # (30 s) at most, however often the display looks (twice a second).
    assert ray_purchase.TROUBLE_EVERY_S == 30 and len(retried) <= 1 + took // ray_purchase.TROUBLE_EVERY_S, retried


# A purchase as a run's driver makes it, in a process of its own whose terminal is a real pty:
# the console is a duplicate of that terminal, everything else goes to the run's log.
PURCHASE_IN_A_TERMINAL = """
import sys
from pathlib import Path
import pandas as pd
import ray
from tadistill import console
from tadistill.config import TeacherConfig
from tadistill.tasks.prompts import SYSTEM_PROMPTS
from tadistill.teacher.budget import Spend, ledger_actor
from tadistill.teacher.client import TeacherError
from tadistill.teacher.ray_purchase import buy_with_ray_data

address, url, cache, log = sys.argv[1:5]
console.setup_logging(verbose=False)
rows = pd.DataFrame({"id": [f"r{i}" for i in range(10)], "question": [f"question {i}" for i in range(10)]})
config = TeacherConfig(source="openai", base_url="http://x/v1", model="m", api_key_env="TADISTILL_TEST_KEY",
                       workers=1, concurrency=2, retry_for_s=5)
try:
    with console.run_log(Path(log), verbose=False):
        ray.init(address=address)
        ray.data.DataContext.get_current().enable_progress_bars = False
        ledger = ledger_actor("terminal-ledger", 10, None, None, Spend(requests=7))  # 3 left of 10
        buy_with_ray_data(rows, config, lambda: url, Path(cache), SYSTEM_PROMPTS["number"], ledger)
except TeacherError as exc:
    print(f"tadistill: {exc}", file=sys.stderr)  # as the command line says it
    sys.exit(2)
"""


def test_a_failing_teacher_on_an_80_column_terminal_is_one_line_rewritten_in_place(ray_local, tmp_path):
    """The user's case: a budget of 10 with 7 spent, so a purchase of 3, and a teacher that answers
    once and then fails until the purchase gives up. On an 80-column terminal every refresh of the
    bar and of the retry line fits (so a carriage return rewrites it, never a new line), the bar
    counts this purchase (of 3, not the budget's 10), and the final message is one line."""
    import os
    import sys

    from ..conftest import REPO, run_in_terminal

    with OpenAITestServer() as server:
        server.faults = [("ok",)]
        server.outage(600)  # after the first answer, only 429s and 500s
        code, shown = run_in_terminal(
            [sys.executable, "-c", PURCHASE_IN_A_TERMINAL, ray_local.get_runtime_context().gcs_address,
             server.base_url, str(tmp_path / "cache"), str(tmp_path / "run.log")],
            columns=80, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=300)
    assert code == 2, shown[-3000:]
    display, _, final = shown.partition("tadistill: teacher stopped: ")
    refreshes = [part for part in display.split("\r") if part.strip()]
    assert "\n" not in display, display  # not a line of its own per refresh
    assert all(len(part) <= 79 for part in refreshes), [p for p in refreshes if len(p) > 79]
    retrying = [part for part in refreshes if "failing, retrying for" in part]
    assert len(retrying) >= 2 and server.base_url in retrying[0], refreshes  # shown, and refreshed
    assert any("/3 " in part for part in refreshes) and not any("/10 " in part for part in refreshes)
    message = final.split("\r\n")[0]
    assert message.endswith("nothing stored is paid twice)") and "\n" not in message  # no stray second line
    assert f". {server.served} of the 3 requests of this purchase were bought and stored" in message
    ray_said = "Connected to Ray cluster"  # Ray's own lines: in the log, not on the terminal
    assert ray_said in (tmp_path / "run.log").read_text() and ray_said not in shown


def test_the_teachers_message_inside_a_remote_failure_is_one_line(ray_local):
    """A server's reply with newlines in it (an HTML error page), raised in a Ray worker: the
    message a purchase stops with holds all of it, on one line."""
    import pytest

    from tadistill.teacher.client import TeacherError
    from tadistill.teacher.ray_purchase import _teacher_error_in

    @ray_local.remote
    def ask():
        raise TeacherError("HTTP 502 (request id ?): <html>\r\n<body>Bad Gateway</body>\r\n</html>\n")

    with pytest.raises(Exception) as failure:
        ray_local.get(ask.remote())
    assert "\n" in str(failure.value)  # what Ray raised: the remote traceback
    assert _teacher_error_in(failure.value) == "HTTP 502 (request id ?): <html> <body>Bad Gateway</body> </html>"
    assert _teacher_error_in(RuntimeError("no teacher here")) is None
