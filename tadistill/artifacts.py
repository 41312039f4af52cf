"""What the steps of a run pass each other: named tables in the run directory, with the
columns each must hold.

Steps declare the artifacts they read and write (plan.py); an artifact's producer is the one
step that writes it, so the order of a run and each step's upstream follow from what it reads.
The run directory checks the declared columns on every write and read, the report and the
benchmarks find tables by these names, and a step whose manifest entry is finished but whose
outputs are missing runs again.

A run's purchases are named: `warmup` (the random purchase: the warm-up of a method that selects,
the whole purchase of a one-stage method), then `round1`, `round2`, ... Each round's student,
samples, signals and trust live in a folder of that name; the final student in `final/`.
"""

from __future__ import annotations

from dataclasses import dataclass

# The columns of the tables the stages make, declared here (this module imports nothing of the
# package, so every stage can import it): a canonical corpus row, a rejected row, a teacher output
# (k numbers several outputs for one question), a recorded output matched to a row, and one not.
CANONICAL_COLUMNS = ["id", "task", "split", "question", "stem", "options", "gold", "answer_type", "source_file", "row"]
REJECT_COLUMNS = ["split", "source_file", "row", "id", "reason"]
TEACHER_COLUMNS = ["id", "k", "request_key", "model", "text", "prompt_tokens", "completion_tokens", "finish_reason",
                   "source", "cached"]
RECORD_COLUMNS = ["id", "k", "text", "record_file", "record_row"]
UNMATCHED_COLUMNS = ["record_file", "record_row", "reason"]

WARMUP = "warmup"
FINAL = "final"


def round_name(k: int) -> str:
    """The name of selection round k (1-based): its steps, folder and purchase."""
    return f"round{k}"


@dataclass(frozen=True)
class Artifact:
    path: str  # relative to the run directory
    columns: tuple[str, ...]  # what every reader may rely on (a table may hold more)
    summary: str
    # (old, new) names of columns a table written by an earlier tadistill may hold: renamed on read
    renamed: tuple[tuple[str, str], ...] = ()
    kind: str = ""  # what sort of table (KINDS): how the plan finds, say, every purchase's outputs
    of: str = ""  # the purchase, round or student it belongs to ("" for a run's one table)

    def __str__(self) -> str:
        return self.path

    def __fspath__(self) -> str:  # run_dir / artifact works like a path
        return self.path


@dataclass(frozen=True)
class Folder:
    """Output written block by block (resumable parts), or a model, under one folder."""

    path: str
    summary: str
    kind: str = ""
    of: str = ""

    def __str__(self) -> str:
        return self.path

    def __fspath__(self) -> str:  # run_dir / artifact works like a path
        return self.path


class Document(Folder):
    """One text file a step writes whole (JSON, Markdown) for people and for later steps: read and
    written as text (StepView.read_text, write_text), not as a table or a folder."""


# The kinds the plan is asked about (plan.Plan.written): a purchase's outputs as bought and every
# teacher's offers, a round's question signals, a trust table, a trained student, its metrics.
BOUGHT, OFFERS, SIGNALS, TRUSTED, MODEL, METRICS = "bought", "offers", "question_signals", "trusted", "model", "metrics"

ROWS = Artifact("corpus/rows.parquet", tuple(CANONICAL_COLUMNS), "every split's canonical rows")
REJECTS = Artifact("corpus/rejects.parquet", tuple(REJECT_COLUMNS), "rows the corpus rejected, with the reason")
RECORDS = Artifact("teacher/records.parquet", tuple(RECORD_COLUMNS), "recorded teacher outputs matched to rows")
UNMATCHED = Artifact("teacher/unmatched_records.parquet", tuple(UNMATCHED_COLUMNS), "recorded outputs matching no row")


def file_tag(model: str) -> str:
    """A teacher's model name as part of a file name (its cache, its records)."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in model)


def teacher_records(model: str, first: bool) -> tuple[Artifact, Artifact]:
    """A recorded teacher's outputs matched to rows, and those matching none: the first teacher's
    at the paths a single-teacher run has, another's (`teachers`) beside them under its model name."""
    if first:
        return RECORDS, UNMATCHED
    tag = file_tag(model)
    return (Artifact(f"teacher/records-{tag}.parquet", tuple(RECORD_COLUMNS), f"teacher {model}'s recorded outputs "
                     "matched to rows"),
            Artifact(f"teacher/unmatched_records-{tag}.parquet", tuple(UNMATCHED_COLUMNS),
                     f"teacher {model}'s recorded outputs matching no row"))


CALIBRATION = Artifact("trust/calibration.parquet", ("id", "question", "text", "ta_conf"),
                       "the TA's confidence in outputs known to be right: trust's scale")
CALIBRATION_PARTS = Folder("trust/calibration_parts", "the calibration set's scoring blocks")
# A trust signal that learns (trust.signal 'combined'): the purchase of trust.calibration_split's
# gold-labelled questions, its outputs labelled and valued, and the fitted model.
LABELLED_PURCHASE = "calibration"
LABELLED = Artifact("trust/labelled.parquet", ("id", "k", "text", "answer", "right", "value"),
                    "the calibration purchase's outputs, right or wrong by gold, with the learnt signal "
                    "(cross-fitted: no output valued by a model fitted on it)")
LEARNED = Artifact("trust/learned.parquet", ("feature", "weight", "mean", "scale"),
                   "the learnt trust signal's model: a weight per standardised input, then the intercept")
LABELLED_PARTS = Folder("trust/labelled_parts", "the calibration purchase's scoring blocks")
VERIFIER = Folder("trust/verifier", "trust.signal 'verifier': the TA fine-tuned to tell right from wrong outputs")
ANSWERS = Artifact("eval/answers.parquet", ("id", "gold", "answer_type", "text", "answer", "correct"),
                   "the final student's greedy test answers")

_PICK = ("id", "question")
_BOUGHT = tuple(TEACHER_COLUMNS) + ("answer",)
_TRAIN_ROWS = ("id", "prompt", "target", "weight")
# `round`: 0 for the warm-up purchase, k for round k's; `trust_value`: what trust.signal computed
# for the output (the TA's confidence in it by default), `ta_conf_teacher` before it was renamed.
TRUSTED_COLUMNS = _BOUGHT + ("round", "trust_value", "weight")
TRUSTED_RENAMED = (("ta_conf_teacher", "trust_value"),)


# -- per purchase (warmup, round1, ...) --------------------------------------------------

REPORT = Document("report.md", "the run's report: what was bought, how the signals and trust did, the result")
SUMMARY = Document("summary.json", "the run's facts in numbers (the report's)")
FIGURES = Folder("figures", "the report's plots")


def picks(purchase: str) -> Artifact:
    return Artifact(f"picks/{purchase}.parquet", _PICK, f"the questions picked for purchase {purchase}, "
                    "most preferred first")


def bought(purchase: str) -> Artifact:
    return Artifact(f"teacher/{purchase}.parquet", _BOUGHT, f"teacher outputs bought in purchase {purchase}",
                    kind=BOUGHT, of=purchase)


def offers(purchase: str) -> Artifact:
    return Artifact(f"teacher/{purchase}_offers.parquet", _BOUGHT + ("trust_weight", "level", "kept"),
                    f"everything a cascade bought in purchase {purchase}, each teacher's outputs (level: its place "
                    "among the teachers) with their trust weight and whether the purchase kept them",
                    kind=OFFERS, of=purchase)


# -- per round (its student's signals, and trust in what was bought so far) ---------------

def samples(round_: str) -> Artifact:
    return Artifact(f"{round_}/samples.parquet", ("id", "k", "text", "answer"),
                    f"the {round_} student's samples per candidate")


def samples_parts(round_: str) -> Folder:
    return Folder(f"{round_}/samples_parts", f"{round_} sampling's finished blocks")


def samples_scored(round_: str) -> Artifact:
    return Artifact(f"{round_}/samples_scored.parquet", ("id", "k", "text", "answer", "ta_conf"),
                    f"the {round_} samples with the TA's confidence in each")


def scored_parts(round_: str) -> Folder:
    return Folder(f"{round_}/scored_parts", f"{round_} scoring's finished blocks")


def question_signals(round_: str) -> Artifact:
    return Artifact(f"{round_}/question_signals.parquet",
                    ("id", "self_consistency", "ta_conf_student", "score", "selected"),
                    f"per {round_} candidate: its signals, selection score and whether it was picked",
                    kind=SIGNALS, of=round_)


def trusted(name: str) -> Artifact:
    return Artifact(f"{name}/trust.parquet", TRUSTED_COLUMNS,
                    f"every output bought up to {name}, with its trust signal's value and its trust weight",
                    renamed=TRUSTED_RENAMED, kind=TRUSTED, of=name)


def trust_parts(name: str) -> Folder:
    return Folder(f"{name}/trust_parts", f"the scoring blocks of the teacher outputs {name} trusts")


# -- per trained student (round1, ..., final) --------------------------------------------

def train_rows(stage: str) -> Artifact:
    return Artifact(f"{stage}/train_rows.parquet", _TRAIN_ROWS, f"the {stage} student's training rows")


def model(stage: str) -> Folder:
    return Folder(f"{stage}/model", f"the {stage} student", kind=MODEL, of=stage)


def metrics(stage: str) -> Document:
    return Document(f"{stage}/metrics.json", f"the {stage} student's training: losses, steps, what its checks chose",
                    kind=METRICS, of=stage)


def model_card(stage: str) -> Document:
    return Document(f"{stage}/model/README.md", f"the {stage} student's model card")


def catalogue(rounds: int = 2) -> list[Artifact | Folder | Document]:
    """Every artifact of a run with `rounds` rounds, for documentation and tests."""
    fixed = [ROWS, REJECTS, RECORDS, UNMATCHED, CALIBRATION, CALIBRATION_PARTS, LABELLED, LEARNED, LABELLED_PARTS, VERIFIER,
             picks(LABELLED_PURCHASE), bought(LABELLED_PURCHASE), ANSWERS]
    purchases = [WARMUP] + [round_name(k) for k in range(1, rounds + 1)]
    per_purchase = [make(p) for p in purchases for make in (picks, bought, offers)]
    per_round = [make(round_name(k)) for k in range(1, rounds + 1)
                 for make in (samples, samples_parts, samples_scored, scored_parts, question_signals)]
    trusts = [make(name) for name in purchases for make in (trusted, trust_parts)]
    stages = [make(s) for s in [round_name(k) for k in range(1, rounds + 1)] + [FINAL]
              for make in (train_rows, model, metrics)]
    return fixed + per_purchase + per_round + trusts + stages + [model_card(FINAL), REPORT, SUMMARY, FIGURES]


# -- purchase steps, as the manifest names them ---------------------------------------

BUY = "buy"  # the step of a purchase is "<purchase>.buy"


def purchase_step(purchase: str) -> str:
    return f"{purchase}.{BUY}"


def is_purchase_step(step: str) -> bool:
    return step.endswith(f".{BUY}")


def requests_paid(steps: dict) -> int:
    """Teacher requests a run has used, over every invocation, from its manifest's steps."""
    return sum(entry.get("rows", 0) for name, entry in steps.items() if is_purchase_step(name))
