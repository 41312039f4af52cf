"""How big a cluster a run needs: the wall time and teacher cost of a config on a cluster shape.

    tadistill plan CONFIG [key=value ...] --rates RATES.json --nodes 4 --cpus-per-node 16 --gpus-per-node 8
    tadistill plan CONFIG --calibrate runs/a runs/b --save-rates rates.json      # rates from finished runs

A run is a chain of steps, one after another; each step is some work (teacher requests, student
samples, rows the TA scores, training examples, test answers) spread over the units that do it
(teacher workers and their concurrency, Serve replicas, Ray Train workers). A step's time is

    start-up + work / (rate of one unit x units)

with both numbers measured per kind of work: `--calibrate` fits them by least squares to the steps
of finished runs (their manifests say each step's seconds and rows, their config.json the units),
so the plan of a run is read off runs of the same kind: given neither --rates nor --calibrate, the
plan fits the finished runs it finds whose KIND_KEYS (launchers, engines, device, models, teacher,
corpus) agree with the config's, else takes the committed rates of that kind (the packaged
tadistill/resources/plan_rates/rates_*.json, config_kind). The teacher is bounded by its concurrency
over its latency and by its rate limit. The plan says which step bounds
the run, what each step needs of the cluster and whether it fits, and what the teacher costs at
budget.prices. It is a model: it knows nothing of a cluster's autoscaling delays or of contention
between steps (they run one after another).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

from .config import Config
from .config.base import _get_dotted
from .config.choices import fact

# What one unit of each kind of work is, for the report.
WORK_NAMES = {"corpus": "rows", "teacher": "requests", "train": "examples", "sample": "samples",
              "score": "rows scored", "answer": "test answers"}


@dataclass
class Rate:
    """One kind of work: per_unit_s is the rate of one unit (rows, examples or requests a second),
    startup_s the fixed cost of the step (deploying replicas, starting Ray Train, loading a model);
    the teacher's is paid by a run's first purchase only (ONCE_A_RUN)."""

    per_unit_s: float
    startup_s: float = 0.0
    fitted_on: int = 0  # steps of finished runs it was fitted to (0: given)


@dataclass
class Rates:
    kinds: dict[str, Rate]
    source: str = ""
    teacher_prompt_tokens: float = 0.0  # per request, from the runs calibrated on
    teacher_completion_tokens: float = 0.0
    # The kind of config they were measured on (config_kind); empty: unknown or assumed, so a plan
    # uses them only when given them (--rates), never as the committed rates of a kind.
    config_kind: dict = field(default_factory=dict)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> "Rates":
        raw = json.loads(Path(path).read_text())
        return cls(kinds={k: Rate(**v) for k, v in raw["kinds"].items()}, source=raw.get("source", str(path)),
                   teacher_prompt_tokens=raw.get("teacher_prompt_tokens", 0.0),
                   teacher_completion_tokens=raw.get("teacher_completion_tokens", 0.0),
                   config_kind=raw.get("config_kind", {}))


@dataclass
class Shape:
    """Worker nodes of a cluster (the head runs no work, as the launcher YAMLs configure it)."""

    nodes: int = 1
    cpus_per_node: float = 2
    gpus_per_node: float = 0

    @property
    def cpus(self) -> float:
        return self.nodes * self.cpus_per_node

    @property
    def gpus(self) -> float:
        return self.nodes * self.gpus_per_node


@dataclass
class StepPlan:
    step: str
    kind: str
    work: float
    units: float
    throughput: float  # work a second over all units (0: the step cannot start)
    startup_s: float
    needs: str
    fits: bool
    note: str = ""

    @property
    def seconds(self) -> float:
        if self.throughput <= 0:
            return math.inf
        return self.startup_s + self.work / self.throughput if self.work else 0.0


@dataclass
class Plan:
    steps: list[StepPlan]
    teacher_requests: int
    teacher_cost: Optional[float]
    shape: Shape
    rates_source: str
    batch: Optional[dict] = None  # the purchases through the Batch API instead (teacher.batch): cost, time

    @property
    def seconds(self) -> float:
        return sum(s.seconds for s in self.steps)

    @property
    def bound(self) -> StepPlan:
        return max(self.steps, key=lambda s: s.seconds)


# -- the work of a run, step by step ----------------------------------------------------------

def _sizes(config: Config, pool: Optional[int], test: Optional[int]) -> tuple[int, int]:
    if config.data.source == "synthetic":
        return pool or config.data.synthetic.pool_size, test or config.data.synthetic.test_size
    if pool is None or test is None:
        raise ValueError("a files or hub corpus: give its sizes, --pool N --test N (`tadistill data inspect` counts them)")
    return pool, test


def _stage_examples(config: Config, bought: int) -> int:
    """Examples a round's student trains on: every epoch a whole number of global batches, the last
    one filled up from the epoch's start (train/batch_plan.py BatchPlan), so 18 rows are 2 batches an epoch."""
    batch = config.train.global_batch_size
    return config.train.epochs * math.ceil(bought / batch) * batch


def _from_records(config: Config) -> bool:
    """A teacher that sells recorded outputs: its purchase costs no endpoint time (teacher/sources.py)."""
    return fact("teacher.source", config.teacher.source, "answers_from_records")


def _newly_trusted(config: Config, k: int, warmup: int, before: list[int], ends: list[int]) -> int:
    """Requests whose outputs a trust step scores: the one purchase (k 0), round 1's with the warm-up
    unless the final student learns the rounds' only, or a later round's own."""
    if k == 0:
        return warmup
    if k == 1:
        return ends[0] - (0 if config.train.final_data == "all" else warmup)
    return ends[k - 1] - before[k - 1]


def run_work(config: Config, pool: Optional[int] = None, test: Optional[int] = None) -> list[tuple[str, str, float]]:
    """(step, kind, work) of every step of the run's plan that costs time, in the order the run takes them."""
    from .plan import plan as steps_of

    pool, test = _sizes(config, pool, test)
    warmup = min(config.warmup_requests(), pool)
    # Requests bought before round k (index k - 1), and after it.
    ends = [min(warmup + t, pool) for t in config.round_targets()]
    before = [warmup] + ends[:-1]
    n = config.teacher.n
    work = []
    for step in steps_of(config):
        name, _, what = step.name.rpartition(".")
        k = int(name[len("round"):]) if name.startswith("round") else 0
        if step.name == "corpus":
            work.append((step.name, "corpus", pool + test))
        elif what == "buy" and not _from_records(config):
            work.append((step.name, "teacher", warmup if not k else ends[k - 1] - before[k - 1]))
        elif what == "train":
            bought = min(config.budget.requests, pool) if name == "final" else before[k - 1]
            final = name == "final" and config.train.schedule == "fair"
            work.append((step.name, "train", config.final_steps() * config.train.global_batch_size if final
                         else _stage_examples(config, bought)))
        elif what in ("sample", "score"):
            left = max(0, pool - before[k - 1])
            work.append((step.name, what, min(config.selection.candidates or left, left) * config.inference.num_samples))
        elif what == "trust" and config.trusts_teacher:
            work.append((step.name, "score", _newly_trusted(config, k, warmup, before, ends) * n))
        elif step.name == "calibrate_trust" and config.data.source == "synthetic":
            work.append((step.name, "score", config.trust.calibration_size))
        elif step.name == "evaluate":
            work.append((step.name, "answer", test))
    return work


# -- units and what they need --------------------------------------------------------------

def _inference_units(config: Config) -> tuple[int, float, float]:
    """(replicas, CPUs and GPUs per replica) of the sampler or scorer."""
    inference = config.inference
    if inference.launcher == "local":
        return 1, 1.0, 0.0
    replicas = inference.autoscaling.max_replicas if inference.autoscaling else inference.replicas
    return replicas, inference.num_cpus, inference.num_gpus or 0.0


def _units(config: Config, kind: str) -> tuple[int, float, float]:
    if kind == "train":
        train = config.train
        if train.launcher == "local":
            return 1, 1.0, 0.0
        return train.num_workers, train.cpus_per_worker, 1.0 if train.use_gpu else 0.0
    if kind in ("sample", "score", "answer"):
        return _inference_units(config)
    if kind == "teacher":
        return config.teacher.workers, 0.25, 0.0  # the Ray Data actors of teacher/ray_purchase.py
    return 1, 1.0, 0.0


UNIT_KEYS = {"train": "train.num_workers", "sample": "inference.replicas", "score": "inference.replicas",
             "answer": "inference.replicas", "teacher": "teacher.workers", "corpus": "ray.num_cpus"}


def _fit(config: Config, kind: str, shape: Shape) -> tuple[int, str, bool, str]:
    """Units of the step (0 where not all the config asks for fit the shape), what they need, and a note."""
    units, cpus, gpus = _units(config, kind)
    needs = f"{units} x ({cpus:g} CPU" + (f", {gpus:g} GPU)" if gpus else ")")
    fit = units
    if cpus:
        fit = min(fit, int(shape.cpus // cpus))
    if gpus:
        fit = min(fit, int(shape.gpus // gpus))
    if fit >= units:
        return units, needs, True, ""
    # Ray Train waits for every worker's bundle and Serve for every replica: the step would not start.
    return 0, needs, False, f"only {max(fit, 0)} fit the cluster: lower {UNIT_KEYS[kind]} or add nodes"


def _teacher_throughput(config: Config, rate: Rate) -> float:
    """Requests a second: each of teacher.concurrency slots at the measured per-slot rate (about
    1 / the endpoint's latency), at most the rate limit."""
    teacher = config.teacher
    throughput = teacher.concurrency * rate.per_unit_s
    if teacher.rpm:
        throughput = min(throughput, teacher.rpm / 60.0)
    return throughput


def plan_run(config: Config, rates: Rates, shape: Shape, pool: Optional[int] = None,
             test: Optional[int] = None) -> Plan:
    steps: list[StepPlan] = []
    for step, kind, work in run_work(config, pool, test):
        rate = rates.kinds.get(kind)
        if rate is None:
            raise ValueError(f"the rates ({rates.source}) have no {kind!r} rate: calibrate on a run that has that step")
        units, needs, fits, note = _fit(config, kind, shape)
        if not units:
            throughput = 0.0
        elif kind == "teacher":
            throughput = _teacher_throughput(config, rate)
        else:
            throughput = rate.per_unit_s * units
        started = kind in ONCE_A_RUN and any(s.kind == kind for s in steps)
        steps.append(StepPlan(step, kind, work, units, throughput, 0.0 if started else rate.startup_s, needs, fits,
                              note))
    plan = Plan(steps, config.budget.requests, _teacher_cost(config, rates), shape, rates.source)
    plan.batch = _with_batches(config, rates, plan)
    return plan


def _per_request(rates: Rates, prompt: float, completion: float) -> float:
    return (rates.teacher_prompt_tokens * prompt + rates.teacher_completion_tokens * completion) / 1e6


def _teacher_cost(config: Config, rates: Rates) -> Optional[float]:
    price = config.budget.prices.get(config.teacher.model) if config.teacher.model else None
    if price is None or _from_records(config):
        return None
    return config.budget.requests * _per_request(rates, price.prompt, price.completion)


BATCH_WINDOW_S = 24 * 3600  # teacher.batch.completion_window: the longest a provider may take


def _with_batches(config: Config, rates: Rates, plan: Plan) -> Optional[dict]:
    """The same purchases through the Batch API (teacher.batch): their cost at the batch price,
    the requests a money budget buys at each price, and the time: each purchase may wait its
    completion window. None for a teacher without a price, or one answering from records."""
    price = config.budget.prices.get(config.teacher.model) if config.teacher.model else None
    if price is None or _from_records(config):
        return None
    sync, batch = _per_request(rates, price.prompt, price.completion), _per_request(rates, *price.batch_price())
    purchases = [s for s in plan.steps if s.kind == "teacher"]
    money = config.budget.cost
    requests = lambda each: config.budget.requests if not money or not each else min(  # noqa: E731
        config.budget.requests, int(money // each))
    return {"enabled": config.teacher.batch.enabled, "cost": config.budget.requests * batch,
            "requests_at_budget_cost": {"synchronous": requests(sync), "batch": requests(batch)} if money else None,
            "purchases": len(purchases), "window_s": BATCH_WINDOW_S,
            "synchronous_s": sum(s.seconds for s in purchases)}


# -- rates from finished runs ----------------------------------------------------------------

# what a step does (the last part of its name) -> (kind, the manifest field holding its work)
MEASURED_WORK: dict[str, tuple[str, str]] = {
    "corpus": ("corpus", "rows"),
    "buy": ("teacher", "sent"),
    "train": ("train", "examples_seen"),
    "sample": ("sample", "rows"),
    "score": ("score", "rows"),
    "trust": ("score", "scored"),
    "calibrate_trust": ("score", "rows"),
    "evaluate": ("answer", "total"),
}


# Kinds whose start-up a run pays once, in its first step of the kind: the simulated teacher's
# Serve app (teacher/sources.py) stays up from the first purchase to the run's end, where Serve
# replicas and Ray Train start again for each step that needs them.
ONCE_A_RUN = ("teacher",)


def _measurements(run_dir: Path) -> tuple[list[tuple[str, float, float, bool]], list[tuple[int, int, int]]]:
    """(kind, work per unit of throughput, seconds, whether the step paid the start-up) of each
    measured step of a finished run, and (requests, prompt tokens, completion tokens) of its
    teacher steps."""
    config = Config.model_validate_json((run_dir / "config.json").read_text())
    manifest = json.loads((run_dir / "manifest.json").read_text())["steps"]
    points, tokens, seen = [], [], set()
    # In the order the steps ran (the manifest's keys are sorted): which of a kind came first.
    for step, entry in sorted(manifest.items(), key=lambda item: item[1].get("finished_at", "")):
        what = step.rpartition(".")[2]
        if what not in MEASURED_WORK or "seconds" not in entry:
            continue
        kind, key = MEASURED_WORK[what]
        work = entry.get(key)
        if not work or (kind == "teacher" and _from_records(config)):  # a record is no endpoint
            continue
        units = config.teacher.concurrency if kind == "teacher" else _units(config, kind)[0]
        points.append((kind, work / units, entry["seconds"], kind not in ONCE_A_RUN or kind not in seen))
        seen.add(kind)
        if kind == "teacher":
            tokens.append((work, entry.get("prompt_tokens", 0), entry.get("completion_tokens", 0)))
    return points, tokens


# Work that spans less than this share of its largest value cannot tell a start-up from a rate:
# two runs at budgets 60 and 120 sample 3,928 and 3,856 answers (the pool left), and the 2% between
# them fits any slope the timing noise gives, a negative one included.
MIN_SPREAD = 0.2


def _least_squares(points: list[tuple[float, float]]) -> Rate:
    """seconds = startup + x / rate, fitted over (x, seconds); work of (nearly) one size: no start-up."""
    xs = [x for x, _ in points]
    ys = [y for _, y in points]
    if max(xs) - min(xs) <= MIN_SPREAD * max(xs):
        return Rate(per_unit_s=sum(xs) / max(sum(ys), 1e-9), fitted_on=len(points))
    n, mx, my = len(xs), sum(xs) / len(xs), sum(ys) / len(ys)
    slope = sum((x - mx) * (y - my) for x, y in points) / sum((x - mx) ** 2 for x in xs)
    startup = my - slope * mx
    if slope <= 0:  # no growth with the work in these runs: a fixed cost (start-up) of the step
        return Rate(per_unit_s=math.inf, startup_s=my, fitted_on=n)
    if startup < 0:  # growth without a fixed part: a rate through the origin
        return Rate(per_unit_s=sum(xs) / max(sum(ys), 1e-9), fitted_on=n)
    return Rate(per_unit_s=1.0 / slope, startup_s=startup, fitted_on=n)


def _fit_started_once(points: list[tuple[float, float, bool]]) -> Rate:
    """A kind started once a run: the later steps, without the start-up, give the rate (through the
    origin); the first steps' time above it is the start-up. Only first steps: as any other kind."""
    later = [(x, y) for x, y, first in points if not first]
    if not later:
        return _least_squares([(x, y) for x, y, _ in points])
    rate = sum(x for x, _ in later) / max(sum(y for _, y in later), 1e-9)
    firsts = [y - x / rate for x, y, first in points if first]
    return Rate(per_unit_s=rate, startup_s=max(0.0, sum(firsts) / len(firsts)) if firsts else 0.0,
                fitted_on=len(points))


def _fit_rate(kind: str, points: list[tuple[float, float, bool]]) -> Rate:
    if kind in ONCE_A_RUN:
        return _fit_started_once(points)
    return _least_squares([(x, y) for x, y, _ in points])


def calibrate(run_dirs: list[Path]) -> Rates:
    by_kind: dict[str, list[tuple[float, float, bool]]] = {}
    tokens: list[tuple[int, int, int]] = []
    for run_dir in run_dirs:
        for path in ("config.json", "manifest.json"):
            if not (Path(run_dir) / path).exists():
                raise ValueError(f"{run_dir}: no {path}; --calibrate takes the run directories of finished runs")
        points, run_tokens = _measurements(Path(run_dir))
        for kind, x, seconds, first in points:
            by_kind.setdefault(kind, []).append((x, seconds, first))
        tokens += run_tokens
    requests = sum(t[0] for t in tokens)
    # Runs of one kind give rates of that kind (what --save-rates writes, to be committed for it).
    run_kinds = [run_kind(Path(r)) for r in run_dirs]
    return Rates(
        kinds={kind: _fit_rate(kind, points) for kind, points in by_kind.items()},
        source="calibrated on " + ", ".join(str(r) for r in run_dirs),
        teacher_prompt_tokens=sum(t[1] for t in tokens) / requests if requests else 0.0,
        teacher_completion_tokens=sum(t[2] for t in tokens) / requests if requests else 0.0,
        config_kind=run_kinds[0] if run_kinds and all(k == run_kinds[0] for k in run_kinds) else {},
    )


# -- which runs measure a config's rates -------------------------------------------------------

# The settings that decide how fast one unit of work goes and that the model does not scale by (it
# scales by sizes, budget, samples, epochs, replicas, workers, teacher concurrency): the launchers
# and engines (Serve deploys per step, Ray Train starts per stage, local does neither), the device,
# the models, the teacher and the corpus (a GSM8K row is not a synthetic one). A run that differs
# in one of them measured other rates, so a plan calibrates only on runs that agree on all.
KIND_KEYS = ("inference.launcher", "inference.backend", "inference.num_gpus", "train.launcher", "train.strategy",
             "train.use_gpu", "models.student", "models.ta", "teacher.source", "teacher.model", "data.source",
             "data.preset")


def _kind_of(dump: dict) -> dict:
    """KIND_KEYS' values in a resolved config as JSON (a key an older run lacks: None)."""
    kind = {}
    for key in KIND_KEYS:
        try:
            kind[key] = _get_dotted(dump, key)
        except (KeyError, TypeError):
            kind[key] = None
    return kind


def config_kind(config: Config) -> dict:
    return _kind_of(config.model_dump(mode="json"))


def run_kind(run_dir: Path) -> dict:
    """The kind of a finished run, read from its config.json as written (no validation: a run of an
    older version still says what it was)."""
    return _kind_of(json.loads((Path(run_dir) / "config.json").read_text()))


def kind_differences(wanted: dict, found: dict) -> list[str]:
    """Why rates of kind `found` are not a config of kind `wanted`'s: 'key value (this config: value)' each."""
    return [f"{key} {found.get(key)} (this config: {value})" for key, value in wanted.items()
            if found.get(key) != value]


# -- the report ------------------------------------------------------------------------------

def _duration(seconds: float) -> str:
    if math.isinf(seconds):
        return "does not start"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def plan_markdown(plan: Plan) -> str:
    shape = plan.shape
    lines = [f"Plan for {shape.nodes} worker node(s) x {shape.cpus_per_node:g} CPU"
             + (f", {shape.gpus_per_node:g} GPU" if shape.gpus_per_node else "") + f"; rates {plan.rates_source}.", "",
             "| step | work | units (each needs) | time | share |", "|---|---|---|---|---|"]
    total = plan.seconds
    for s in plan.steps:
        share = f"{s.seconds / total:.0%}" if total and not math.isinf(total) else "-"
        fit = "" if s.fits else f" **{s.note}**"
        lines.append(f"| {s.step} | {s.work:,.0f} {WORK_NAMES[s.kind]} | {s.needs}{fit} | {_duration(s.seconds)} | {share} |")
    lines += ["", f"Total: **{_duration(total)}**, bounded by `{plan.bound.step}` ({_duration(plan.bound.seconds)})."]
    cost = "unknown (no budget.prices for teacher.model)" if plan.teacher_cost is None else f"{plan.teacher_cost:,.2f}"
    lines.append(f"Teacher: {plan.teacher_requests:,} requests, cost {cost}.")
    if plan.batch:
        lines.append(_batch_line(plan.batch))
    return "\n".join(lines)


def _batch_line(batch: dict) -> str:
    """The purchases with and without the Batch API, in one line."""
    which = "Bought through the Batch API (teacher.batch)" if batch["enabled"] else "Through the Batch API instead"
    line = (f"{which}: cost {batch['cost']:,.2f}; each of the {batch['purchases']} purchases may take up to "
            f"{_duration(batch['window_s'])} (the completion window), against {_duration(batch['synchronous_s'])} "
            f"in all synchronously.")
    if batch["requests_at_budget_cost"]:
        at = batch["requests_at_budget_cost"]
        line += f" At budget.cost: {at['synchronous']:,} requests synchronously, {at['batch']:,} in batches."
    return line


def plan_json(plan: Plan) -> dict:
    return {"seconds": plan.seconds, "bound": plan.bound.step, "teacher_requests": plan.teacher_requests,
            "teacher_cost": plan.teacher_cost, "batch": plan.batch, "shape": asdict(plan.shape), "rates": plan.rates_source,
            "steps": [{**asdict(s), "seconds": s.seconds} for s in plan.steps]}
