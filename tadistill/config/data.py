"""Where the questions come from: `data.*` (and `ray.*`, the cluster the corpus is read on)."""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field, field_validator, model_validator

from .base import SYNTHETIC, _Section


class RayConfig(_Section):
    address: Optional[str] = Field(
        None, description="Ray cluster to join ('auto' or ray://...); null starts a local Ray."
    )
    num_cpus: Optional[float] = Field(
        4,
        gt=0,
        description=(
            "Logical CPUs for a local Ray. More than the physical cores keeps Ray Data and Serve "
            "from deadlocking on small machines (actors holding every CPU). Ignored when joining."
        ),
    )


class SyntheticDataConfig(_Section):
    pool_size: int = Field(1000, ge=1, description="Unlabelled pool questions the method may buy.")
    test_size: int = Field(300, ge=1, description="Held-out test questions for evaluation (split 'test').")
    validation_size: int = Field(
        0, ge=0,
        description=(
            "Questions of a 'validation' split (a generator seed of its own), for choosing training settings "
            "with data.test_split=validation without looking at the test split; 0: none."
        ),
    )
    min_steps: int = Field(1, ge=1, le=8, description="Fewest arithmetic steps in a problem (drawn uniformly up to max_steps).")
    max_steps: int = Field(5, ge=1, le=8, description="Most arithmetic steps in a problem.")
    seed: int = Field(1234, description="Seed of the question generator (data is a pure function of it).")

    @model_validator(mode="after")
    def _steps_ordered(self):
        if self.min_steps > self.max_steps:
            raise ValueError("min_steps must be <= max_steps")
        return self


ANSWER_TYPES = ("number", "choice", "yesno", "label")
DATA_FORMATS = ("auto", "jsonl", "json", "parquet", "csv")
# Named adapters for public data sets (tadistill/corpus/presets.py says what each reads).
PRESETS = (
    "gsm8k", "svamp", "svamp_dss", "csqa", "csqa_cose", "csqa_mcc_kd",
    "strategyqa", "arc", "openbookqa", "anli",
)


class FieldMap(_Section):
    """Where the parts of a question sit in a record of a user's file (dotted paths)."""

    question: str = Field(..., description="Path of the question text, e.g. 'question' or 'question.stem'.")
    answer: Optional[str] = Field(None, description="Path of the gold answer; null for unlabelled data.")
    id: Optional[str] = Field(
        None, description="Path of a stable row id; null derives one from a hash of the question and options."
    )
    choices: Optional[str | list[str]] = Field(
        None,
        description=(
            "Options of a multiple-choice question: a path to a list (of strings, or of {label, text}), "
            "or a list of paths, one per option (CSV columns A, B, C, D)."
        ),
    )
    context: Optional[str] = Field(None, description="Path of a passage shown before the question (a premise, a story).")


class HFDataConfig(_Section):
    """A Hugging Face data set (data.source 'hf'), read through the same presets and rejects."""

    path: Optional[str] = Field(
        None,
        description=("A hub name (e.g. tau/commonsense_qa), or a local folder written by save_to_disk (a Dataset "
                     "or a DatasetDict)."),
    )
    name: Optional[str] = Field(None, description="The data set's configuration (e.g. 'main' for gsm8k).")
    splits: dict[str, str] = Field(
        default_factory=lambda: {"train": "train", "test": "test"},
        description=("Our split -> theirs, e.g. {train: train, test: validation} (CommonsenseQA's test split has "
                     "no answers)."),
    )
    revision: Optional[str] = Field(None, description="A hub revision (branch, tag or commit) to pin.")


class DataConfig(_Section):
    source: Literal["synthetic", "files", "hf"] = Field(
        SYNTHETIC,
        description=("'synthetic': the embedded generated task; 'files': the data files named in data.files; "
                     "'hf': a Hugging Face data set (data.hf)."),
    )
    synthetic: SyntheticDataConfig = Field(default_factory=SyntheticDataConfig)
    files: dict[str, list[str]] = Field(
        default_factory=dict,
        description=(
            "Split name -> data files (JSONL, JSON, Parquet or CSV; globs allowed), e.g. "
            "{train: [train.jsonl], test: [test.jsonl]}. Relative paths are taken from data.root."
        ),
    )
    hf: HFDataConfig = Field(default_factory=HFDataConfig)
    root: str = Field(".", description="Folder that relative paths in data.files and teacher.recorded.files start from.")
    format: Literal[DATA_FORMATS] = Field(  # type: ignore[valid-type]
        "auto",
        description="File format; 'auto' goes by extension (.jsonl, .json: a JSON array or JSON lines, .parquet, .csv).",
    )
    preset: Optional[Literal[PRESETS]] = Field(  # type: ignore[valid-type]
        None, description=f"Named adapter of a public data set ({', '.join(PRESETS)}); null uses data.fields."
    )
    fields: Optional[FieldMap] = Field(None, description="Field map of the generic reader (when data.preset is null).")
    answer_type: Optional[Literal[ANSWER_TYPES]] = Field(  # type: ignore[valid-type]
        None, description="number | choice | yesno | label. A preset sets it; the generic reader needs it."
    )
    labels: Optional[list[str]] = Field(
        None, description="The label set of answer_type 'label' (e.g. [entailment, neutral, contradiction])."
    )
    task: Optional[str] = Field(None, description="Name of the task in reports; default: the preset's name or 'custom'.")
    answer_fallback: Literal["none", "last_number"] = Field(
        "none",
        description=(
            "For number answers, when a text commits to no answer ('The answer is ...', '####', 'A: ...'): "
            "'none' records it as unextractable; 'last_number' takes its last number (a guess, for "
            "rationales written without a final-answer phrase). Applies to teacher, samples and evaluation alike."
        ),
    )
    pool_split: str = Field("train", description="Split whose questions the method may buy teacher outputs for.")
    test_split: str = Field("test", description="Split the student is evaluated on (every row needs a gold answer).")
    test_share: float = Field(
        0.0, ge=0, lt=1,
        description=(
            "When data.files has no test split: share of the pool split held out as test, picked by a "
            "hash of each id (stable across runs)."
        ),
    )
    max_reject_share: float = Field(
        0.05, ge=0, le=1,
        description="A run stops when a split has more than this share of its rows rejected.",
    )
    max_row_bytes: int = Field(
        1_000_000, ge=1,
        description="A record larger than this (its JSON text, in bytes) is rejected with its size, not read.",
    )
    record_path: Optional[str] = Field(
        None,
        description=("JSON documents that hold their records under a key (dotted, e.g. 'data' or 'split.rows'): "
                     "the key. A JSON object whose values are the records, keyed by index, is read as those "
                     "records without it, whatever the file's extension."),
    )
    num_blocks: int = Field(4, ge=1, description="Ray Data blocks the corpus is split into.")

    @model_validator(mode="after")
    def _files_are_described(self):
        if self.source == SYNTHETIC:
            splits = ("test", "validation") if self.synthetic.validation_size else ("test",)
            if self.test_split not in splits:
                raise ValueError(f"data.test_split {self.test_split!r}: the synthetic task has the split(s) "
                                 f"{', '.join(splits)} (data.synthetic.validation_size adds 'validation')")
            return self
        if self.source == "files" and not self.files:
            raise ValueError("data.files is empty: name at least the pool split's files")
        if self.source == "hf" and not self.hf.path:
            raise ValueError("data.hf.path is empty: name a hub data set or a save_to_disk folder")
        if self.preset and self.fields:
            raise ValueError("set data.preset or data.fields, not both")
        if not self.preset and not self.fields:
            raise ValueError(f"set data.preset (one of {', '.join(PRESETS)}) or data.fields")
        if self.fields and not self.answer_type:
            raise ValueError("data.answer_type is required with data.fields")
        if self.answer_type == "label" and not self.labels and self.preset is None:
            raise ValueError("data.labels is required when data.answer_type is 'label'")
        where = "data.files" if self.source == "files" else "data.hf.splits"
        if self.pool_split not in self.splits:
            raise ValueError(f"data.pool_split {self.pool_split!r} is not a key of {where} ({', '.join(self.splits)})")
        if self.test_split not in self.splits and self.test_share == 0:
            raise ValueError(
                f"data.test_split {self.test_split!r} is not a key of {where}: "
                "add its data, or hold out part of the pool with data.test_share"
            )
        return self

    @property
    def splits(self) -> list[str]:
        """Our splits the data names (data.files' keys, or data.hf.splits')."""
        return list(self.hf.splits) if self.source == "hf" else list(self.files)

    @field_validator("files", mode="before")
    @classmethod
    def _one_file_is_a_list(cls, value):
        if isinstance(value, dict):
            return {k: [v] if isinstance(v, str) else v for k, v in value.items()}
        return value

