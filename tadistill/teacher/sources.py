"""The teacher a run buys from, chosen once from `teacher.source`.

Every source makes the run's budget once (`make_budget`) and buys with one call,
`buy(picks, system_prompt, budget, desc)`, the budget's handle passed in: no code outside
tadistill/teacher/ branches on where the outputs come from.

- `openai`: any OpenAI-compatible endpoint, called by a Ray Data actor pool of asyncio
  clients (teacher/ray_purchase.py) that all reserve from one named budget actor;
- `synthetic`: the same client against the simulated teacher, deployed on Ray Serve when the
  first request must be sent and taken down by `close()`;
- `recorded`: outputs collected earlier (teacher/recorded.py), charged to a budget in the
  driver like live requests, with nothing sent anywhere.

A new source is one class here, its line in the config's choice table (config/choices.py: its
name, summary and facts) and its test.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Optional

import pandas as pd

from ..config import choices
from .budget import Budget, PurchaseReport, Spend

if TYPE_CHECKING:
    from ..config import Config
    from ..rundir import RunDir
    from ..services import Services

log = logging.getLogger(__name__)


class Teacher:
    source: ClassVar[str]  # its teacher.source name
    provenance: ClassVar[str]  # where outputs a run did not pay for in this invocation came from (the report)
    # Whether its workers reserve from the cluster-wide ledger actor: a run with such a teacher
    # among several makes its one budget there, and the others reserve from it too.
    needs_ledger: ClassVar[bool] = False

    def __init__(self, config: "Config", services: "Services", run_dir: "RunDir", first: bool = True,
                 shared: Optional[dict] = None):
        self.config = config  # its `teacher` is this teacher (one of `teachers`, or the only one)
        self.services = services
        self.run_dir = run_dir
        self.first = first  # the first of the run's teachers keeps the paths a single-teacher run has
        self.shared = {} if shared is None else shared  # what the run's teachers share (one simulated endpoint)

    @property
    def model(self) -> str:
        return self.config.teacher.model

    # -- what a run may buy, and what it may spend ------------------------------------------

    def buyable(self, pool: pd.DataFrame) -> pd.DataFrame:
        """The pool questions this teacher can answer (all of them, unless it answers from a record)."""
        return pool

    def make_budget(self, already: Spend) -> Any:
        """The run's budget, charged with `already` (what finished purchases used)."""
        limits = self.config.budget
        return Budget(limits.requests, limits.tokens, limits.cost, already)

    def orphan_spend(self) -> Spend:
        """Requests sent and never answered (they may have been paid), said on the console."""
        return Spend()

    def maybe_paid(self) -> Spend:
        """The same, quietly (the report)."""
        return Spend()

    def buy(self, picks: pd.DataFrame, system_prompt: str, budget: Any,
            desc: str) -> tuple[pd.DataFrame, PurchaseReport]:
        """Outputs for picks (id, question), most preferred first, until the budget ends."""
        raise NotImplementedError

    @classmethod
    def inspect(cls, config: "Config", rows: pd.DataFrame) -> tuple[list[str], dict]:
        """`data inspect`'s section on the teacher, before anything is bought: Markdown lines and
        what goes into the summary."""
        return (["## Teacher", "", f"Teacher source '{cls.source}': its accuracy is measured when a run buys "
                 "outputs (see the run's report.md); inspecting buys nothing.", ""], {})

    def describe(self) -> str:
        """A few words for the report: the model and where it answers from."""
        return f"`{self.config.teacher.model}` ({self.source})"

    def preflight(self) -> None:
        """Checked in seconds before a run spends anything: what this teacher needs to answer.
        Raises TeacherError with a message a user can act on."""

    def close(self) -> None:
        """Take down what this teacher deployed (nothing, unless it serves itself)."""


def teacher_for(config: "Config", services: "Services", run_dir: "RunDir") -> Teacher:
    """The first (or only) teacher of the run."""
    return teachers_for(config, services, run_dir)[0]


def teachers_for(config: "Config", services: "Services", run_dir: "RunDir") -> list[Teacher]:
    """One source per teacher of the run, cheapest first, each with the config its `teacher` is."""
    shared: dict = {}
    return [choices.load("teacher.source", teacher.source)(config.model_copy(update={"teacher": teacher}), services,
                                                           run_dir, first=index == 0, shared=shared)
            for index, teacher in enumerate(config.teacher_list())]


class LiveTeacher(Teacher):
    """A teacher behind an OpenAI-compatible endpoint: paid per request, answers cached durably."""

    provenance = "the rest came from the response cache, `teacher/cache/`"
    needs_ledger = True

    def cache_dir(self) -> Path:
        """The response cache: `teacher/cache` (the first teacher's), `teacher/cache-<model>` for the others."""
        from ..artifacts import file_tag

        name = "cache" if self.first else "cache-" + file_tag(self.model)
        return self.run_dir.path / "teacher" / name

    def price(self) -> Optional[tuple[float, float]]:
        price = self.config.budget.prices.get(self.config.teacher.model)
        return (price.prompt, price.completion) if price else None

    def batch_price(self) -> Optional[tuple[float, float]]:
        """Its price through the Batch API (teacher.batch)."""
        price = self.config.budget.prices.get(self.config.teacher.model)
        return price.batch_price() if price else None

    def ledger_name(self) -> str:
        return "tadistill-budget-" + hashlib.sha256(str(self.run_dir.path.resolve()).encode()).hexdigest()[:12]

    def maybe_paid(self) -> Spend:
        from .cache import ResponseCache

        return ResponseCache(self.cache_dir()).orphan_spend(self.price())

    def orphan_spend(self) -> Spend:
        from .cache import ResponseCache

        cache = ResponseCache(self.cache_dir())
        orphaned = cache.orphan_spend(self.price())
        if orphaned.requests:
            log.warning("teacher %s: %s; they may have been paid, so they are charged to the budget (requests the "
                        "teacher refused are not)", self.model, _orphans_said(cache.orphan_kinds()))
        return orphaned

    def make_budget(self, already: Spend) -> Any:
        from .budget import ledger_actor

        self.services.ray()
        limits = self.config.budget
        # One actor shared by every teacher worker of the cluster; its handle is passed to them.
        return ledger_actor(self.ledger_name(), limits.requests, limits.tokens, limits.cost, already)

    def endpoint(self) -> str:
        """The OpenAI base URL; called only when a request must really be sent."""
        raise NotImplementedError

    def buy(self, picks, system_prompt, budget, desc):
        from .ray_purchase import buy_with_ray_data

        return buy_with_ray_data(picks, self.config.teacher, self.endpoint, self.cache_dir(), system_prompt,
                                 budget, self.price(), desc=desc, batch_price=self.batch_price())


def _orphans_said(kinds: dict[str, int]) -> str:
    """Which requests went unanswered and how many, in words."""
    said = []
    if kinds["unknown"]:
        said.append(f"{kinds['unknown']} request(s) timed out or lost their connection after they were sent")
    if kinds["in_flight"]:
        said.append(f"{kinds['in_flight']} request(s) were in flight when an earlier invocation stopped")
    return " and ".join(said)


class OpenAITeacher(LiveTeacher):
    source = "openai"

    def endpoint(self) -> str:
        return self.config.teacher.base_url

    def preflight(self) -> None:
        """The key is there, the endpoint answers, and it serves teacher.model: before any request is paid."""
        import json
        import urllib.error
        import urllib.request

        from .client import TeacherError, read_api_key

        teacher = self.config.teacher
        key = read_api_key(teacher)  # a TeacherError naming the variable when it is missing
        url = teacher.base_url.rstrip("/") + "/models"
        request = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"})
        try:
            with urllib.request.urlopen(request, timeout=min(10.0, teacher.timeout_s)) as response:
                listed = json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as exc:
            if exc.code in (401, 403):
                raise TeacherError(f"teacher endpoint {teacher.base_url} refused the key in {teacher.api_key_env} "
                                   f"(HTTP {exc.code})") from None
            return  # some endpoints list no models (404/405): the first request will tell
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise TeacherError(f"teacher endpoint {teacher.base_url} (teacher.base_url) does not answer: {reason}; "
                               "is the server up and the address right?") from None
        models = {m.get("id") for m in listed.get("data", []) if isinstance(m, dict)} if isinstance(listed, dict) else set()
        if models and teacher.model not in models:
            raise TeacherError(f"teacher endpoint {teacher.base_url} does not serve teacher.model {teacher.model!r}; "
                               f"it lists {', '.join(sorted(models)[:8])}")


class SimulatedTeacher(LiveTeacher):
    """The synthetic task's teacher, errs as its world says (teacher.synthetic), served on Ray Serve."""

    source = "synthetic"

    def __init__(self, config, services, run_dir, first=True, shared=None):
        super().__init__(config, services, run_dir, first, shared)
        self._url: Optional[str] = None

    def endpoint(self) -> str:
        """The simulated teachers' one endpoint, started by the first that needs it with a profile for
        every synthetic teacher of the run (each its own model name)."""
        if self._url is None:
            self._url = self.shared.get("synthetic_url")
        if self._url is None:
            from ..synthetic.teacher_server import TeacherProfile, start_teachers

            teacher = self.config.teacher
            self.services.serve()
            profiles = {t.model: TeacherProfile.from_config(t.synthetic, self.config.data.synthetic)
                        for t in self.config.teacher_list() if t.source == self.source}
            self._url = start_teachers(profiles, teacher.http_port, teacher.http_host)
            self.shared["synthetic_url"], self._started = self._url, True
            log.info("simulated teacher serving at %s", self._url, extra={"console": False})
        return self._url

    def describe(self) -> str:
        return (f"`{self.config.teacher.model}` (synthetic, simulated error rate "
                f"{self.config.teacher.synthetic.error_rate})")

    def close(self) -> None:
        if self._url is None or not getattr(self, "_started", False):
            self._url = None
            return
        self.shared.pop("synthetic_url", None)
        import ray

        if ray.is_initialized() and not self.services.owns_ray:
            # A cluster we joined keeps its Serve; take away only what we deployed.
            from ray import serve

            from ..synthetic.teacher_server import TEACHER_APP

            serve.delete(TEACHER_APP)
        self._url = None


class RecordedTeacherSource(Teacher):
    """Outputs collected earlier: one request per question, charged to a budget in the driver."""

    source = "recorded"

    provenance = "answered from the recorded outputs in `teacher/records.parquet`"

    def records(self) -> pd.DataFrame:
        """The imported outputs, read once: every pool lookup and purchase of the run asks."""
        if self._records is None:
            from ..artifacts import teacher_records

            self._records = self.run_dir.read_table(teacher_records(self.model, self.first)[0])
        return self._records

    def __init__(self, config, services, run_dir, first=True, shared=None):
        super().__init__(config, services, run_dir, first, shared)
        self._records: Optional[pd.DataFrame] = None

    def buyable(self, pool):
        return pool[pool["id"].isin(set(self.records()["id"]))]

    def buy(self, picks, system_prompt, budget, desc):
        from .recorded import RecordedTeacher

        # One of several teachers names its outputs by its model, as a live one does; a price in
        # budget.prices charges its (estimated) tokens like a live teacher's.
        model = self.model if self.config.teachers else "recorded"
        seller = RecordedTeacher(self.records(), model=model, price=self.config.budget.prices.get(self.model))
        return seller.buy(picks, budget, desc=desc, system_prompt=system_prompt)

    def describe(self) -> str:
        return f"recorded outputs ({', '.join(self.config.teacher.recorded.files)})"

    @classmethod
    def inspect(cls, config, rows):
        from ..tables import markdown_table
        from .recorded import import_records

        data = config.data
        records, unmatched = import_records(config.teacher.recorded, data.root, rows, data.max_row_bytes)
        accuracy = teacher_accuracy(records, rows, data.answer_fallback)
        summary = {"teacher": accuracy.to_dict(orient="records"), "unmatched_outputs": len(unmatched)}
        lines = ["## Recorded teacher", "", f"Files: {', '.join(config.teacher.recorded.files)}", ""]
        lines += [markdown_table(accuracy), ""] if len(accuracy) else ["No output matched a corpus row.", ""]
        lines += [f"Outputs that match no corpus row: **{len(unmatched)}**", ""]
        if len(unmatched):
            reasons = unmatched["reason"].value_counts().head(5)
            lines += [markdown_table(pd.DataFrame({"reason": reasons.index, "outputs": reasons.values})), ""]
        return lines, summary


def teacher_accuracy(records: pd.DataFrame, rows: pd.DataFrame, fallback: str = "none") -> pd.DataFrame:
    """Per split: outputs, extracted answers, and accuracy against gold where the row has one."""
    from ..tasks.answers import add_answers

    answered = add_answers(records, rows, fallback).merge(rows[["id", "split", "gold"]], on="id")
    table = []
    for split, group in answered.groupby("split", sort=False):
        graded = group[group["gold"].notna()]
        correct = graded["answer"].notna() & (graded["answer"] == graded["gold"])
        per_question = correct.groupby(graded["id"]).any()
        table.append({
            "split": split, "questions": group["id"].nunique(), "outputs": len(group),
            "answer extracted": int(group["answer"].notna().sum()),
            "graded outputs": len(graded), "correct": int(correct.sum()),
            "accuracy": float(correct.mean()) if len(graded) else float("nan"),
            "questions with a right output": float(per_question.mean()) if len(per_question) else float("nan"),
        })
    return pd.DataFrame(table)
