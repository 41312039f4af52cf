"""Teacher calls as a Ray Data step: an async UDF on an actor pool, one budget for the cluster.

Each actor holds one asyncio `TeacherClient` (its share of the concurrency and rate
limits) and a cache shard of its own; every actor reserves from the run's budget actor
(its handle passed in), so no number of workers can overspend. Rows stream through in batches, so a pool of
millions of questions never has to sit in one process; a progress bar in the driver shows
spent / budget, tokens, cost and the rate.
"""

from __future__ import annotations

import logging
import threading
import time
from functools import partial
from pathlib import Path
from typing import Callable, Optional

import pandas as pd

from ..artifacts import TEACHER_COLUMNS
from ..config import TeacherConfig
from ..interrupt import draining
from .budget import PurchaseReport, Spend
from .cache import ResponseCache
from .client import BudgetGate, TeacherClient, TeacherError, summarise

STATUS_COLUMN = "_bought"

log = logging.getLogger(__name__)


class BuyFromTeacher:
    """Ray Data UDF: (id, question) batches -> teacher output rows (or a not-bought marker)."""

    def __init__(self, config_json: str, base_url: str, cache_dir: str, system_prompt: str,
                 ledger, price: Optional[tuple[float, float]], share: float):
        config = TeacherConfig.model_validate_json(config_json)
        self.client = TeacherClient(config, base_url, ResponseCache(Path(cache_dir)), system_prompt, price, share)
        self.gate = BudgetGate(ledger)

    async def __call__(self, batch: pd.DataFrame):
        results = await self.client.fetch_all(batch[["id", "question"]], self.gate)
        rows = []
        for row_id, out in zip(batch["id"], results):
            if out is None:
                rows.append({"id": row_id, STATUS_COLUMN: False})
            else:
                rows.extend({**row, STATUS_COLUMN: True} for row in out)  # one per rationale (teacher.n)
        yield pd.DataFrame(rows, columns=TEACHER_COLUMNS + ["cost", STATUS_COLUMN])


# While requests are retried: how long after the last failure the console still shows it, and how
# often a console that is not a terminal (nohup, CI, job logs) gets a line about it.
TROUBLE_SHOWN_S = 10.0
TROUBLE_EVERY_S = 30.0


def _progress(ledger, desc: str, stop: threading.Event, endpoint: str, wanted: int, obtained_before: int) -> None:
    """This purchase's progress: outputs obtained (not requests handed to workers) of the `wanted`
    requests, and, while requests are being retried, the endpoint, the failure and the time so far:
    one line updated in place on a terminal, cut to its width; a line every TROUBLE_EVERY_S elsewhere."""
    import ray

    from ..console import fit, is_terminal, progress, width

    last_said, troubled = 0.0, False
    with progress(wanted, desc, "req") as bar:
        while not stop.wait(0.5):
            snap = ray.get(ledger.snapshot.remote())
            done = snap["obtained"] - obtained_before  # the ledger counts every purchase of this invocation
            bar.update(done - bar.n)
            bar.set_postfix(tokens=snap["tokens"], cost=snap["cost"], refresh=False)
            trouble = snap["trouble"]
            if trouble and time.time() - trouble["last"] < TROUBLE_SHOWN_S:
                line = (f"{desc} {done}/{wanted} req: {endpoint} failing, retrying for "
                        f"{time.time() - trouble['since']:.0f} s: {trouble['failure']}")
                if is_terminal():
                    # The line replaces the bar (its count kept in the text): a long failure
                    # then gets the whole width, and a line that fits is rewritten in place.
                    troubled = True
                    bar.bar_format = "{desc}"
                    bar.set_description_str(fit(line, width()), refresh=True)
                elif time.time() - last_said >= TROUBLE_EVERY_S:
                    log.warning("%s", line)
                    last_said = time.time()
            elif troubled:
                troubled = False
                bar.bar_format = None  # tqdm's own layout again: description, bar, counts
                bar.set_description_str(desc, refresh=True)


def _buy_round(wanted: pd.DataFrame, config: TeacherConfig, url: str, cache_dir: Path, system_prompt: str,
               ledger, price, desc: str) -> pd.DataFrame:
    """One pass of the actor pool over `wanted`: output rows, and a not-bought marker per question."""
    import ray

    workers = min(config.workers, len(wanted))
    batch_size = max(1, min(len(wanted), 4 * config.concurrency // workers))
    ds = ray.data.from_pandas(wanted[["id", "question"]]).repartition(max(1, -(-len(wanted) // batch_size)))
    ray.get(ledger.reopen.remote())  # a purchase an earlier one's give-up halted may send again
    stop = threading.Event()
    before = ray.get(ledger.snapshot.remote())["obtained"]  # what earlier purchases of this invocation got
    bar = threading.Thread(target=_progress, args=(ledger, desc, stop, url, len(wanted), before), daemon=True)
    bar.start()
    try:
        with draining(partial(_let_tries_land, ledger, min(LAND_WITHIN_S, config.timeout_s))):
            return ds.map_batches(
                BuyFromTeacher,
                fn_constructor_kwargs={
                    "config_json": config.model_dump_json(), "base_url": url, "cache_dir": str(cache_dir),
                    "system_prompt": system_prompt, "ledger": ledger, "price": price,
                    "share": 1.0 / workers,
                },
                batch_size=batch_size, batch_format="pandas",
                compute=ray.data.ActorPoolStrategy(size=workers), num_cpus=0.25,
            ).to_pandas()
    except Exception as exc:
        teacher_said = _teacher_error_in(exc)
        if teacher_said is None:
            raise
        obtained = ray.get(ledger.snapshot.remote())["obtained"] - before
        raise TeacherError(f"{desc} stopped: {teacher_said}. {obtained} of the {len(wanted)} requests of this purchase "
                           "were bought and stored; run the same command again to resume (nothing stored is paid "
                           "twice)") from None
    finally:
        stop.set()
        bar.join()


LAND_WITHIN_S = 10.0  # how long a stop waits for requests on the wire (teacher.timeout_s if shorter)


def _let_tries_land(ledger, within_s: float) -> None:
    """On Ctrl-C or SIGTERM during a purchase: no worker sends again, and the requests on the wire
    are answered and stored before the workers are torn down (else each would be paid again on
    resume), waiting at most `within_s`: what a purchase that gives up does (BudgetGate.halt),
    here from the signal handler of a driver that runs no event loop."""
    import asyncio

    asyncio.run(BudgetGate(ledger).halt(within_s))


def _teacher_error_in(exc: BaseException) -> Optional[str]:
    """The teacher's own message inside what Ray raised (a RayTaskError wrapping the UDF's
    TeacherError), on one line, or None when the failure was something else."""
    seen, first = set(), exc
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        cause = getattr(exc, "cause", None) or exc.__cause__ or exc.__context__
        # A RayTaskError(TeacherError) is a TeacherError too, but its text is the whole remote
        # traceback: the TeacherError it carries (its cause) has the message itself.
        if isinstance(exc, TeacherError) and not isinstance(cause, TeacherError):
            return _one_line(_said_in_traceback(str(exc)) or str(exc))
        exc = cause
    # Across the process boundary the cause may survive only in the remote traceback's text.
    said = _said_in_traceback(str(first))
    return _one_line(said) if said else None


def _said_in_traceback(text: str) -> Optional[str]:
    import re

    said = re.findall(r"TeacherError: (.+)", text)
    return said[-1] if said else None


def _one_line(said: str) -> str:
    """The message as one line: it is followed by a sentence of ours, and a newline (or a colour
    code) inside a server's reply would leave that sentence on a stray line of its own."""
    import re

    said = re.sub(r"\x1b\[[0-9;]*m", "", said)
    return " ".join(said.split()).rstrip(".")


def _give_back_lost_reservations(ledger, before: dict, orphans_before: Spend, out: pd.DataFrame,
                                 cache_dir: Path, price) -> int:
    """After a round, the budget holds what it held before plus what this round bought plus
    requests newly left in flight (maybe paid). More means a teacher worker died with
    reservations (its node was lost, say) and a retried batch reserved its rows again: give
    that back, so a lost node costs no budget."""
    import ray

    bought = out[out[STATUS_COLUMN].astype(bool)].drop_duplicates("id")
    requests = before["requests"] + len(bought)
    if ray.get(ledger.snapshot.remote())["requests"] <= requests:
        return 0  # the usual case: nothing held beyond what was bought, no need to reread the ledger
    orphans = ResponseCache(cache_dir).orphan_spend(price) - orphans_before
    tokens = before["tokens"] + int((bought["prompt_tokens"] + bought["completion_tokens"]).sum()) + orphans.tokens
    cost = before["cost"] + float(bought["cost"].sum()) + orphans.cost
    return ray.get(ledger.give_back_beyond.remote(requests + orphans.requests, tokens, cost))


def buy_with_ray_data(rows: pd.DataFrame, config: TeacherConfig, base_url: Callable[[], str], cache_dir: Path,
                      system_prompt: str, ledger, price: Optional[tuple[float, float]] = None,
                      desc: str = "teacher", batch_price: Optional[tuple[float, float]] = None
                      ) -> tuple[pd.DataFrame, PurchaseReport]:
    """Outputs for rows (id, question) in order of preference, until the budget (`ledger`, the
    run's budget actor, whose handle every worker gets) ends; through the Batch API, from the
    driver, when teacher.batch is enabled (at `batch_price`)."""
    import ray

    if config.batch.enabled:
        from .batch import buy_in_batches

        return buy_in_batches(rows, config, base_url, cache_dir, system_prompt, ledger, price, batch_price, desc=desc)

    started = time.time()
    snapshot = ray.get(ledger.snapshot.remote())
    left = max(0, snapshot["limit_requests"] - snapshot["requests"])
    wanted = rows.iloc[:left]  # the most preferred rows get the requests that are left
    results: list = []
    if len(wanted):
        # The endpoint (and a simulated teacher behind it) is started only when something must be sent.
        probe = TeacherClient(config, "http://unused", ResponseCache(cache_dir), system_prompt)
        url = base_url() if any(probe.cache.get(probe.key_for(q)) is None for q in wanted["question"]) else "http://unused"
        orphans_before = probe.cache.orphan_spend(price)
        out = _buy_round(wanted, config, url, cache_dir, system_prompt, ledger, price, desc)
        given = _give_back_lost_reservations(ledger, snapshot, orphans_before, out, cache_dir, price)
        missed = out.drop_duplicates("id").loc[lambda f: ~f[STATUS_COLUMN].astype(bool), "id"]
        if given and len(missed):
            log.warning("%s: %d reservation(s) of teacher workers that died were given back; buying the %d "
                        "question(s) they kept from the budget", desc, given, len(missed))
            again = wanted[wanted["id"].isin(set(missed))]
            out = pd.concat([out[~out["id"].isin(set(missed))],
                             _buy_round(again, config, url, cache_dir, system_prompt, ledger, price, desc)])
        elif given:
            log.warning("%s: %d reservation(s) of teacher workers that died were given back", desc, given)
        order = {row_id: i for i, row_id in enumerate(wanted["id"])}
        out = out.sort_values(["id", "k"], key=lambda s: s.map(order) if s.name == "id" else s)
        results = []  # per question: its rows (one per rationale), or None where the budget ended
        for _, group in out.groupby("id", sort=False):
            bought = bool(group[STATUS_COLUMN].iloc[0])
            results.append(group.drop(columns=[STATUS_COLUMN]).astype({"k": int}).to_dict("records") if bought else None)
    frame, report = summarise(results, len(rows), time.time() - started)
    report.not_bought_budget += len(rows) - len(wanted)
    return frame, report
