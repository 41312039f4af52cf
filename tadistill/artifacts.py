"""What the steps of a run pass each other: named tables in the run directory, with the
columns each must hold.

Steps declare the artifacts they read and write (pipeline.py); an artifact's producer is the
one step that writes it, so a step's upstream steps follow from what it reads. The run
directory checks the declared columns on every write and read, the report and the load
benchmark find tables by these names, and a step whose manifest entry is finished but whose
outputs are missing runs again.
"""

from __future__ import annotations

from dataclasses import dataclass

from .corpus.canonical import CANONICAL_COLUMNS
from .corpus.read import REJECT_COLUMNS
from .teacher.budget import TEACHER_COLUMNS
from .teacher.recorded import RECORD_COLUMNS, UNMATCHED_COLUMNS


@dataclass(frozen=True)
class Artifact:
    path: str  # relative to the run directory
    columns: tuple[str, ...]  # what every reader may rely on (a table may hold more)
    summary: str

    def __str__(self) -> str:
        return self.path

    def __fspath__(self) -> str:  # run_dir / artifact works like a path
        return self.path


@dataclass(frozen=True)
class Folder:
    """Output written block by block (resumable parts), or a model, under one folder."""

    path: str
    summary: str

    def __str__(self) -> str:
        return self.path

    def __fspath__(self) -> str:  # run_dir / artifact works like a path
        return self.path


ROWS = Artifact("corpus/rows.parquet", tuple(CANONICAL_COLUMNS), "every split's canonical rows")
REJECTS = Artifact("corpus/rejects.parquet", tuple(REJECT_COLUMNS), "rows the corpus rejected, with the reason")
RECORDS = Artifact("teacher/records.parquet", tuple(RECORD_COLUMNS), "recorded teacher outputs matched to rows")
UNMATCHED = Artifact("teacher/unmatched_records.parquet", tuple(UNMATCHED_COLUMNS), "recorded outputs matching no row")
_PICK = ("id", "question")
PICKS_STAGE1 = Artifact("picks/stage1.parquet", _PICK, "the random warm-up pick (or the whole one-stage purchase)")
PICKS_STAGE2 = Artifact("picks/stage2.parquet", _PICK, "stage-2 picks, most preferred first")
_BOUGHT = tuple(TEACHER_COLUMNS) + ("answer",)
TEACHER_STAGE1 = Artifact("teacher/teacher_stage1.parquet", _BOUGHT, "teacher outputs bought for stage 1")
TEACHER_STAGE2 = Artifact("teacher/teacher_stage2.parquet", _BOUGHT, "teacher outputs bought for stage 2")
SAMPLES = Artifact("signals/samples.parquet", ("id", "k", "text", "answer"), "the student's samples per candidate")
SAMPLES_SCORED = Artifact("signals/samples_scored.parquet", ("id", "k", "text", "answer", "ta_conf"),
                          "the samples with the TA's confidence in each")
QUESTION_SIGNALS = Artifact("signals/question_signals.parquet",
                            ("id", "self_consistency", "ta_conf_student", "score", "selected"),
                            "per candidate: its signals, selection score and whether it was picked")
CALIBRATION = Artifact("trust/calibration.parquet", ("id", "question", "text", "ta_conf"),
                       "the TA's confidence in outputs known to be right: trust's scale")
TEACHER_WEIGHTED = Artifact("trust/teacher_weighted.parquet", _BOUGHT + ("stage", "ta_conf_teacher", "weight"),
                            "every output the last stage trains on, with its trust weight")
_TRAIN_ROWS = ("id", "prompt", "target", "weight")
TRAIN_ROWS_STAGE1 = Artifact("stage1/train_rows.parquet", _TRAIN_ROWS, "stage 1's training rows")
TRAIN_ROWS_STAGE2 = Artifact("stage2/train_rows.parquet", _TRAIN_ROWS, "stage 2's training rows")
ANSWERS = Artifact("eval/answers.parquet", ("id", "gold", "answer_type", "text", "answer", "correct"),
                   "the final student's greedy test answers")

SAMPLES_PARTS = Folder("signals/samples_parts", "sampling's finished blocks")
SCORED_PARTS = Folder("signals/scored_parts", "scoring's finished blocks")
TRUST_PARTS = Folder("trust/scored_parts", "the teacher outputs' scoring blocks")
CALIBRATION_PARTS = Folder("trust/calibration_parts", "the calibration set's scoring blocks")
MODEL_STAGE1 = Folder("stage1/model", "the stage-1 student")
MODEL_STAGE2 = Folder("stage2/model", "the stage-2 (final) student")


def train_rows(stage: str) -> Artifact:
    return {"stage1": TRAIN_ROWS_STAGE1, "stage2": TRAIN_ROWS_STAGE2}[stage]


def model(stage: str) -> Folder:
    return {"stage1": MODEL_STAGE1, "stage2": MODEL_STAGE2}[stage]


def catalogue() -> list[Artifact | Folder]:
    """Every artifact, for documentation and tests."""
    return [value for value in globals().values() if isinstance(value, (Artifact, Folder))]
