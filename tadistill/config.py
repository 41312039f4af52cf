"""The one typed config tree.

YAML in, ``key=value`` overrides on top, validated on load. Every option is documented
once, here, in its ``Field(description=...)``; ``tadistill config show`` prints them.
An unknown key or a bad value fails at load with a message that names the dotted key.
"""

from __future__ import annotations

import hashlib
import json
import math
import typing
from pathlib import Path
from typing import Any, Literal, Optional

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .methods import METHODS as _METHOD_REGISTRY, describe as _describe_methods
from .registry import summaries
from .signals.compute import CONSISTENCY_MEASURES
from .signals.selection import SELECTION_RULES, SelectionRule
from .signals.trust import TRUST_MODES, TRUST_SCALES, TrustMode
from .inference.backends import BACKENDS
from .tracking import TRACKERS
from .inference.executor import EXECUTORS
from .teacher.sources import TEACHERS

LAUNCHERS = tuple(EXECUTORS)
BACKEND_KINDS = tuple(BACKENDS)

TEACHER_SOURCES = tuple(TEACHERS)

SELECTION_STRATEGIES = tuple(SELECTION_RULES)
TRUST_MODE_NAMES = tuple(TRUST_MODES)
TRUST_SCALE_NAMES = ("auto",) + tuple(TRUST_SCALES)
CONSISTENCY_NAMES = tuple(CONSISTENCY_MEASURES)


def _choices(registry: dict) -> str:
    return summaries(registry)

SYNTHETIC = "synthetic"


class ConfigError(ValueError):
    """A config problem a user can fix: the message names the file and the key."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


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


class SyntheticTeacherConfig(_Section):
    error_rate: float = Field(
        0.4, ge=0, le=1, description="Share of answers the simulated teacher gets wrong (mean over the world's problems)."
    )
    seed: int = Field(7, description="Seed deciding which questions the teacher gets wrong.")
    difficulty_slope: float = Field(
        0.28, ge=0, le=2,
        description=(
            "How the teacher's error grows with a problem's steps: proportional to exp(slope x steps), scaled so "
            "the mean is error_rate. 0.28 is what real teachers show (GPT-3 on GSM8K, PaLM on SVAMP); 0 errs "
            "uniformly (the legacy world)."
        ),
    )
    slip_share: float = Field(
        0.9, gt=0, le=1,
        description=(
            "Share of wrong outputs that are a slipped step carried through the chain (wrong reasoning); the "
            "rest are a right chain with a wrong final number. The legacy world: 0.5."
        ),
    )


class RecordFields(_Section):
    """Where the parts of a recorded teacher output sit in a JSON / JSONL record (dotted paths)."""

    id: Optional[str] = Field(None, description="Path of the row id the output answers (match by id).")
    question: Optional[str] = Field("question", description="Path of the question text (match by question).")
    rationale: str = Field(
        "rationale", description="Path of the output: a string, or a list of strings (several rationales)."
    )
    answer: Optional[str] = Field(
        None,
        description=("Path of a separate final answer (e.g. 'predicted_label'): where a rationale states no answer "
                     "the task can read, 'The answer is <it>.' is appended to it, so the student learns to state it."),
    )


class RecordedTeacherConfig(_Section):
    files: list[str] = Field(
        default_factory=list,
        description="Files of teacher outputs collected earlier (relative paths start from data.root).",
    )
    format: Literal["auto", "aligned", "records", "kojima_log"] = Field(
        "auto",
        description=(
            "'aligned': a JSON list of completions, in the order of the rows of data file "
            "teacher.recorded.aligned_to (distilling-step-by-step); 'records': JSON / JSONL records with "
            "teacher.recorded.fields; 'kojima_log': a zero-shot-CoT log (Q:, A:); 'auto' tells them apart."
        ),
    )
    aligned_to: Optional[str | dict[str, str]] = Field(
        None,
        description=(
            "Data file (as in data.files) whose rows the 'aligned' completions line up with; or a mapping "
            "from a pattern of completion files to the data file, e.g. {'llm/test_CoT_*.json': test.json}. "
            "Completions split over several files continue each other in file-name order."
        ),
    )
    fields: RecordFields = Field(default_factory=RecordFields)
    match: Literal["auto", "id", "question"] = Field(
        "auto",
        description="Match outputs to rows by id or by question text; 'auto': by id when fields.id is set.",
    )
    cut_at_blank_line: Optional[bool] = Field(
        None,
        description=(
            "Cut each output at its first blank line (completions that run on into more few-shot text); "
            "null: cut 'aligned' completions only."
        ),
    )
    rationales: Literal["all", "first"] = Field(
        "all",
        description="Per bought question, keep every recorded output ('all') or the first. A question costs one request either way.",
    )


class TeacherConfig(_Section):
    source: Literal[TEACHER_SOURCES] = Field(  # type: ignore[valid-type]
        SYNTHETIC, description="Where teacher outputs come from (teacher/sources.py): " + _choices(TEACHERS) + ".",
    )
    base_url: Optional[str] = Field(
        None, description="OpenAI-compatible endpoint (…/v1). Required when source is 'openai'."
    )
    model: str = Field("synthetic-teacher", description="Model name sent in each request.")
    api_key_env: str = Field(
        "OPENAI_API_KEY",
        description="Environment variable holding the API key (the only secret read from the environment).",
    )
    temperature: float = Field(0.0, ge=0, le=2, description="Sampling temperature of teacher calls.")
    max_tokens: int = Field(
        256, ge=1,
        description="Completion token limit of one rationale (sent as max_tokens, or as max_completion_tokens).",
    )
    max_completion_tokens: bool = Field(
        False,
        description=("Send the limit as max_completion_tokens instead of max_tokens (newer OpenAI models refuse "
                     "max_tokens)."),
    )
    top_p: Optional[float] = Field(None, gt=0, le=1, description="Nucleus sampling of teacher calls (null: not sent).")
    seed: Optional[int] = Field(None, description="Seed sent with each teacher call, where the endpoint honours one.")
    stop: Optional[list[str]] = Field(None, description="Stop sequences of teacher calls (null: not sent).")
    n: int = Field(
        1, ge=1, le=16,
        description=("Rationales per request (several samples of one question, sent as n): one request of the "
                     "budget, charged for every token they cost; each becomes a training row."),
    )
    extra_body: dict[str, Any] = Field(
        default_factory=dict,
        description="More fields for the request body, as the endpoint takes them (e.g. {reasoning_effort: low}).",
    )
    api_key_file: Optional[str] = Field(
        None,
        description="File holding the API key (a mounted secret); read instead of teacher.api_key_env when set.",
    )
    concurrency: int = Field(32, ge=1, description="Teacher requests in flight at once, over all workers.")
    workers: int = Field(1, ge=1, description="Ray Data actors sending teacher requests (each an asyncio client).")
    rpm: Optional[int] = Field(None, ge=1, description="Requests per minute, over all workers (null: no limit).")
    tpm: Optional[int] = Field(
        None, ge=1, description="Tokens per minute (prompt bound + max_tokens), over all workers (null: no limit)."
    )
    timeout_s: float = Field(60, gt=0, description="Timeout of one teacher request.")
    retry_for_s: float = Field(
        600, gt=0,
        description=(
            "How long one request keeps retrying 429s, 5xx, timeouts, dropped connections and malformed bodies "
            "(exponential backoff from 0.5 s doubling to 30 s, jittered; Retry-After honoured) before the "
            "purchase stops, naming the row: an outage shorter than this is waited out. Failed tries are not "
            "paid and not charged to the budget."
        ),
    )
    system_prompt: Optional[str] = Field(
        None,
        description=(
            "System message sent before each question; null picks one that asks for the answer "
            "in the form the task's answer type is extracted from ('The answer is ...')."
        ),
    )
    synthetic: SyntheticTeacherConfig = Field(default_factory=SyntheticTeacherConfig)
    recorded: RecordedTeacherConfig = Field(default_factory=RecordedTeacherConfig)
    http_port: int = Field(8731, ge=1, le=65535, description="Port of Serve's HTTP proxy (teacher.http_host).")
    http_host: str = Field(
        "127.0.0.1",
        description=(
            "Address Serve's HTTP proxy (the simulated teacher, the apps' routes) binds to. The default keeps it "
            "on this machine; '0.0.0.0' exposes it to the network, unauthenticated."
        ),
    )

    @model_validator(mode="after")
    def _source_is_complete(self):
        TEACHERS[self.source].check(self)  # what this source needs besides its name
        return self


class Price(_Section):
    prompt: float = Field(..., ge=0, description="Price of a million prompt tokens.")
    completion: float = Field(..., ge=0, description="Price of a million completion tokens.")


class BudgetConfig(_Section):
    requests: int = Field(300, ge=1, description="Hard cap on teacher requests for the whole run.")
    tokens: Optional[int] = Field(None, ge=1, description="Hard cap on teacher tokens (prompt + completion); null: none.")
    cost: Optional[float] = Field(
        None, gt=0, description="Hard cap on teacher cost, priced by budget.prices; null: none."
    )
    prices: dict[str, Price] = Field(
        default_factory=dict,
        description="Price per million tokens by teacher model, e.g. {gpt-4o: {prompt: 2.5, completion: 10}}.",
    )
    warmup_share: float = Field(
        0.3, ge=0, le=1,
        description="Share of the request budget spent on the random stage-1 warm-up (0: no warm-up, signals from the base student).",
    )


class SyntheticModelsConfig(_Section):
    """What the synthetic student knows before distillation (a world's knob)."""

    student_min_steps: int = Field(1, ge=1, le=8, description="Fewest steps of the gold problems the synthetic student is built on.")
    student_max_steps: int = Field(
        2, ge=1, le=8,
        description=(
            "Most steps of the gold problems the synthetic student is built on: it starts right and consistent on "
            "problems this short and unsure on longer ones. The legacy world: 2-5 steps on a small gold set."
        ),
    )
    student_examples: int = Field(2000, ge=1, description="Gold problems the synthetic student is built on.")
    student_epochs: int = Field(6, ge=1, description="Epochs of the synthetic student's build.")

    @model_validator(mode="after")
    def _steps_ordered(self):
        if self.student_min_steps > self.student_max_steps:
            raise ValueError("student_min_steps must be <= student_max_steps")
        return self


class ModelsConfig(_Section):
    student: str = Field(
        SYNTHETIC,
        description="Student base model: a local folder or hub name for from_pretrained, or 'synthetic'.",
    )
    ta: str = Field(
        SYNTHETIC, description="Teaching-assistant model: a local folder or hub name, or 'synthetic'."
    )
    cache_dir: str = Field(
        ".cache/tadistill",
        description="Where built synthetic models are cached, so later runs do not rebuild them.",
    )
    synthetic: "SyntheticModelsConfig" = Field(default_factory=lambda: SyntheticModelsConfig())


class AutoscalingConfig(_Section):
    min_replicas: int = Field(1, ge=0, description="Fewest replicas (0 lets an idle deployment scale to zero).")
    max_replicas: int = Field(4, ge=1, description="Most replicas.")
    target_ongoing_requests: float = Field(2.0, gt=0, description="Requests in flight per replica Serve aims for.")

    @model_validator(mode="after")
    def _ordered(self):
        if self.min_replicas > self.max_replicas:
            raise ValueError("min_replicas must be <= max_replicas")
        return self


class InferenceConfig(_Section):
    launcher: Literal[LAUNCHERS] = Field(  # type: ignore[valid-type]
        "serve",
        description="Where student sampling, TA scoring and test answering run (inference/executor.py): "
                    + _choices(EXECUTORS) + ".",
    )
    retry_for_s: float = Field(
        300, gt=0,
        description=(
            "How long a batch is sent again while the Serve replica it went to is lost (a replica that dies "
            "takes its in-flight requests with it; Serve starts another) before the step stops."
        ),
    )
    chat_template: bool = Field(
        True,
        description=(
            "Prompts go through the model's chat template as one user turn, when its tokenizer has one (an "
            "instruct model as users hold it), and generation stops at the end of the assistant's turn; training "
            "uses the same format. false: plain 'Question: ... Answer:' text for every model."
        ),
    )
    backend: Literal[BACKEND_KINDS] = Field(  # type: ignore[valid-type]
        "transformers",
        description="What the Serve replicas sample and score with (inference/backends.py): " + _choices(BACKENDS) + ".",
    )
    num_gpus: float = Field(
        0.0, ge=0,
        description="GPUs reserved by each Serve replica; fractions (0.5) let the sampler and the scorer share one GPU.",
    )
    gpu_memory_utilization: float = Field(
        0.4, gt=0, le=1, description="vLLM: share of a GPU's memory its engine may take (keep the sum under 1 when sharing).",
    )
    ta_endpoint: Optional[str] = Field(
        None,
        description=(
            "OpenAI-compatible endpoint (…/v1) serving the TA with prompt log-probabilities (vLLM, a ray.serve.llm "
            "app); the TAScorer then scores through it. models.ta still names the TA, for its tokenizer."
        ),
    )
    ta_endpoint_model: Optional[str] = Field(None, description="Name the endpoint serves the TA under (default: models.ta).")
    ta_endpoint_api_key_env: str = Field("TA_API_KEY", description="Environment variable holding the TA endpoint's key, if any.")
    ta_app: Optional[str] = Field(
        None,
        description=(
            "Name of a running Serve app hosting the TAScorer (a RayService, `serve run "
            "tadistill.inference.apps:ta_scorer`) on the cluster the run joins: scores go to it instead of a "
            "scorer the run deploys. It must serve models.ta."
        ),
    )
    ta_confidence: Literal["mean", "min"] = Field(
        "min",
        description=(
            "The TA's confidence in a text: 'mean', exp(mean token log-prob), the paper's length-normalised "
            "likelihood; 'min', the probability of its least likely token, so one slipped step in a long chain "
            "is not averaged away (on the synthetic tuning world it halved the wrong outputs' share under "
            "calibrated filtering where 'mean' cut a fifth). Used for the student's samples and the teacher's outputs."
        ),
    )
    num_samples: int = Field(4, ge=1, description="Student samples per pool question (self-consistency N).")
    temperature: float = Field(0.7, gt=0, le=2, description="Student sampling temperature.")
    max_new_tokens: int = Field(48, ge=1, description="Token limit of a student sample.")
    batch_size: int = Field(64, ge=1, description="Rows per batch; one batch is one request to a deployment.")
    max_batch_size: int = Field(
        1, ge=1,
        description=("Requests (each a batch of rows) Serve merges into one model call. 1 on CPU: merging 4 batches of "
                     "64 ran at 0.66 of unmerged ones on 2 cores (longer padding, colder caches); raise it on GPUs, "
                     "where one larger call fills the device."),
    )
    replicas: int = Field(1, ge=1, description="Replicas of each Serve deployment (when inference.autoscaling is null).")
    autoscaling: Optional[AutoscalingConfig] = Field(
        None, description="Let Serve scale each deployment's replicas with its load instead of a fixed count.",
    )
    num_cpus: float = Field(0.5, gt=0, description="CPUs reserved by each Serve replica.")
    max_replicas_per_node: Optional[int] = Field(
        None, ge=1,
        description=("Most replicas of one deployment on one node (Serve's max_replicas_per_node); 1 spreads them over "
                     "nodes, so losing a node (a spot worker, say) takes one replica, not all. null: Serve packs."),
    )
    torch_threads: int = Field(
        1, ge=1,
        description="Torch intra-op threads in each replica (1 on small CPU hosts: spinning OpenMP threads starve the rest).",
    )
    seed: int = Field(0, description="Seed of student sampling.")

    @model_validator(mode="after")
    def _launcher_can_run_it(self):
        EXECUTORS[self.launcher].check(self)  # what this launcher cannot run (inference/executor.py)
        return self


class SignalsConfig(_Section):
    consistency: Literal[CONSISTENCY_NAMES] = Field(  # type: ignore[valid-type]
        "agreement",
        description=("Self-consistency measure (signals/compute.py): 'agreement': share of samples agreeing with the "
                     "majority; 'entropy': 1 - normalised answer entropy."),
    )
    w_sc: float = Field(1.0, ge=0, description="Weight of (1 - self-consistency) in the selection score.")
    w_ta: float = Field(1.0, ge=0, description="Weight of (1 - TA confidence in the student) in the selection score.")


class SelectionConfig(_Section):
    strategy: Literal[SELECTION_STRATEGIES] = Field(  # type: ignore[valid-type]
        "signals", description="How stage-2 questions are picked (signals/selection.py): " + _choices(SELECTION_RULES) + "."
    )
    candidates: Optional[int] = Field(
        None, ge=1,
        description=(
            "Stage-2 candidates: a seeded random sample of this many pool questions left after the warm-up, "
            "which the student samples and the TA scores (and random selection draws from); null: all of them. "
            "Bounds the cost of the signals on a large pool."
        ),
    )


class TrustConfig(_Section):
    mode: Literal[TRUST_MODE_NAMES] = Field(  # type: ignore[valid-type]
        "weight",
        description="Use of TA confidence in the teacher's output (signals/trust.py): " + _choices(TRUST_MODES) + ".",
    )
    scale: Literal[TRUST_SCALE_NAMES] = Field(  # type: ignore[valid-type]
        "auto",
        description=(
            "How confidence becomes trust (signals/trust.py): " + _choices(TRUST_SCALES) + "; 'auto': calibrated "
            "where outputs known to be right exist (the synthetic task, or trust.calibration_files), rank elsewhere."
        ),
    )
    calibration_quantile: float = Field(
        0.05, gt=0, lt=1,
        description=(
            "'calibrated': the share of right outputs the TA may distrust. 'filter' drops outputs below this "
            "quantile of the right ones' confidence; 'weight' scales them down in proportion to how far into "
            "that tail they fall."
        ),
    )
    calibration_size: int = Field(
        500, ge=10, description="'calibrated' on synthetic data: held-out gold solutions the TA scores (a seed of their own)."
    )
    calibration_files: list[str] = Field(
        default_factory=list,
        description=(
            "'calibrated' on a user's data: JSONL files of outputs known to be right, each record with 'question' and "
            "'rationale' (the TA's held-out adaptation data, say); relative paths start from data.root."
        ),
    )
    filter_quantile: float = Field(0.2, ge=0, lt=1, description="'rank' scale: quantile below which 'filter' drops outputs.")
    min_weight: float = Field(0.1, ge=0, le=1, description="Floor of a 'weight' so no bought output is wasted entirely.")


class DeepSpeedConfig(_Section):
    """DeepSpeed ZeRO settings, used when train.strategy is 'deepspeed'."""

    zero_stage: Literal[0, 1, 2, 3] = Field(
        2,
        description=(
            "ZeRO stage: 0 = plain data parallel, 1 = shard optimizer state, 2 = also gradients, "
            "3 = also parameters (for students too big for one device)."
        ),
    )
    offload_optimizer: bool = Field(
        False, description="Keep optimizer state (and its update) in CPU memory; ZeRO 1-3."
    )
    offload_params: bool = Field(False, description="Keep parameters in CPU memory between uses; ZeRO 3 only.")
    overrides: dict[str, Any] = Field(
        default_factory=dict,
        description=(
            "Raw DeepSpeed config entries merged over the generated ones (nested dicts merge), for "
            "settings this config does not name, e.g. {zero_optimization: {reduce_bucket_size: 5e7}}."
        ),
    )

    @model_validator(mode="after")
    def _offload_needs_a_stage(self):
        if self.offload_optimizer and self.zero_stage == 0:
            raise ValueError("offload_optimizer needs zero_stage 1, 2 or 3")
        if self.offload_params and self.zero_stage != 3:
            raise ValueError("offload_params needs zero_stage 3")
        return self


class LoraConfig(_Section):
    """Low-rank adapters (peft) instead of full fine-tuning."""

    enabled: bool = Field(False, description="Train LoRA adapters on a frozen student (needs the 'lora' extra).")
    r: int = Field(16, ge=1, description="Adapter rank.")
    alpha: float = Field(32, gt=0, description="Adapter scale numerator (the update is scaled by alpha / r).")
    dropout: float = Field(0.05, ge=0, lt=1, description="Dropout on the adapter input.")
    target_modules: str | list[str] = Field(
        "all-linear", description="Modules that get adapters: 'all-linear' or a list of module names."
    )


TRACKER_NAMES = tuple(TRACKERS)


class TrackingConfig(_Section):
    """Experiment trackers besides the run's report (tadistill/tracking.py): one tracker run per
    tadistill run, with its settings, results and both stages' training curves."""

    backends: list[Literal[TRACKER_NAMES]] = Field(  # type: ignore[valid-type]
        default_factory=list, description="Any of: " + _choices(TRACKERS) + " (each needs its package)."
    )
    project: str = Field("tadistill", description="W&B project / MLflow experiment name (runs of one study compare there).")
    log_model: bool = Field(False, description="Also log the output model's folder to each tracker (as an artifact).")

    @field_validator("backends")
    @classmethod
    def _installed(cls, backends: list[str]) -> list[str]:
        from .tracking import check_installed

        check_installed(backends)  # before the run, not after an hour of it
        return backends
    tensorboard_dir: Optional[str] = Field(
        None, description="TensorBoard log folder; null = <run_dir>/tensorboard."
    )
    mlflow_tracking_uri: Optional[str] = Field(
        None, description="MLflow tracking URI (http://..., sqlite:///...); null = sqlite:///<run_dir>/mlflow.db."
    )
    wandb_mode: Literal["online", "offline"] = Field(
        "online", description="W&B mode; 'offline' writes runs locally to sync later (key: WANDB_API_KEY)."
    )


class TrainConfig(_Section):
    num_workers: int = Field(2, ge=1, description="Ray Train workers (one process each; one GPU each with use_gpu).")
    cpus_per_worker: float = Field(1, gt=0, description="CPUs reserved by each training worker.")
    placement_strategy: Literal["PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD"] = Field(
        "PACK",
        description=("How Ray Train places the workers' bundles (a placement group): 'PACK' on as few nodes as possible "
                     "(fastest collectives), 'SPREAD' over nodes where it can (a node's loss takes fewer workers), "
                     "STRICT_ variants refuse to start otherwise."),
    )
    use_gpu: bool = Field(False, description="Train on GPUs (one per worker, NCCL); otherwise CPUs over gloo.")
    launcher: Literal["ray_train", "local"] = Field(
        "ray_train",
        description=(
            "Where the training loop runs: Ray Train workers, or 'local': the same loop in the driver's "
            "process (one worker, ddp strategy), which saves Ray Train's start-up (~20 s a stage) for "
            "small students on one machine, such as benchmarks and laptops."
        ),
    )
    strategy: Literal["ddp", "deepspeed"] = Field(
        "deepspeed", description="Data-parallel engine: DeepSpeed (train.deepspeed) or plain PyTorch DDP."
    )
    deepspeed: DeepSpeedConfig = Field(default_factory=DeepSpeedConfig)
    lora: LoraConfig = Field(default_factory=LoraConfig)
    precision: Literal["fp32", "bf16", "fp16"] = Field(
        "fp32", description="Training precision: bf16 on recent GPUs (and CPUs); fp16 needs DeepSpeed and a GPU."
    )
    epochs: int = Field(20, ge=1, description="Passes over the stage's training set.")
    global_batch_size: int = Field(
        16,
        ge=1,
        description=(
            "Examples per optimizer step over all workers. It stays fixed when num_workers changes, "
            "so a run gives the same loss curve on 1 or 8 workers: gradient accumulation makes up the "
            "difference. Must be a multiple of micro_batch_size x num_workers."
        ),
    )
    micro_batch_size: int = Field(8, ge=1, description="Examples per worker per forward/backward pass.")
    lr: float = Field(1e-3, gt=0, description="Peak AdamW learning rate (linear warm-up, then linear decay to 10%).")
    warmup_share: float = Field(0.1, ge=0, lt=1, description="Share of the optimizer steps spent warming up the rate.")
    weight_decay: float = Field(0.01, ge=0, description="AdamW weight decay.")
    max_grad_norm: float = Field(1.0, ge=0, description="Gradient clipping norm; 0 turns clipping off.")
    max_length: int = Field(160, ge=8, description="Token limit of prompt plus target; longer rows are truncated.")
    checkpoint_every_steps: int = Field(
        0, ge=0, description="Also checkpoint every this many optimizer steps (0 = only at each epoch end)."
    )
    checkpoints_to_keep: int = Field(2, ge=1, description="Newest resumable checkpoints kept per stage.")
    max_failures: int = Field(
        2, ge=-1, description="Worker-group restarts from the latest checkpoint after a crash (-1 = no limit)."
    )
    storage_path: Optional[str] = Field(
        None,
        description=(
            "Where checkpoints go: a local folder, an NFS path every node mounts, or s3://bucket/prefix; "
            "null = <run_dir>/ray_train (a single machine only)."
        ),
    )
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    schedule: Literal["fair", "epochs"] = Field(
        "fair",
        description=(
            "'fair': the final student (every method's) trains from the base model on everything bought, for the "
            "same optimizer steps at the same budget (train.steps, or train.epochs passes over budget.requests "
            "rows), so methods differ only in what they bought and how they weight it; the stage-1 model only "
            "steers the signals. 'epochs': each stage trains train.epochs passes over its own rows, stage 2 "
            "from train.stage2_init (two-stage methods then train more steps than 'none')."
        ),
    )
    steps: Optional[int] = Field(
        None, ge=1,
        description="Optimizer steps of the final student under the fair schedule; null: train.epochs x budget.requests / global_batch_size.",
    )
    stage2_init: Literal["stage1", "base"] = Field(
        "base", description="Stage 2 starts from the base model or (schedule 'epochs' only) the stage-1 checkpoint."
    )
    stage2_data: Literal["all", "selected"] = Field(
        "all", description="Stage 2 trains on every bought output ('all') or (schedule 'epochs' only) the stage-2 purchases."
    )
    seed: int = Field(0, description="Seed of initialisation, data order and dropout.")

    @model_validator(mode="after")
    def _batch_sizes_divide(self):
        per_step = self.micro_batch_size * self.num_workers
        if self.global_batch_size % per_step:
            raise ValueError(
                f"global_batch_size ({self.global_batch_size}) must be a multiple of micro_batch_size x "
                f"num_workers ({self.micro_batch_size} x {self.num_workers} = {per_step})"
            )
        if self.precision == "fp16" and (self.strategy != "deepspeed" or not self.use_gpu):
            raise ValueError("precision fp16 needs strategy 'deepspeed' and use_gpu (use bf16 or fp32 on CPU)")
        if self.launcher == "local" and (self.num_workers != 1 or self.strategy != "ddp"):
            raise ValueError("launcher 'local' trains in one process: set num_workers 1 and strategy 'ddp'")
        if self.lora.enabled and self.strategy == "deepspeed" and self.deepspeed.zero_stage == 3:
            raise ValueError("lora with deepspeed.zero_stage 3 is not supported: use zero_stage 2 (adapters are small)")
        return self

    @property
    def accumulation_steps(self) -> int:
        return self.global_batch_size // (self.micro_batch_size * self.num_workers)


class EvalConfig(_Section):
    max_new_tokens: int = Field(48, ge=1, description="Token limit of a greedy test answer.")
    batch_size: int = Field(64, ge=1, description="Test questions per generation batch.")



METHODS = tuple(_METHOD_REGISTRY)


class Config(_Section):
    run_dir: str = Field("runs/default", description="Directory of the run's artifacts and manifest.")
    method: Literal[METHODS] = Field(  # type: ignore[valid-type]
        "full", description="Preset of the method (tadistill/methods.py): " + _describe_methods() + ".",
    )
    seed: int = Field(0, description="Seed of the random warm-up pick and baselines.")
    ray: RayConfig = Field(default_factory=RayConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    teacher: TeacherConfig = Field(default_factory=TeacherConfig)
    budget: BudgetConfig = Field(default_factory=BudgetConfig)
    models: ModelsConfig = Field(default_factory=ModelsConfig)
    inference: InferenceConfig = Field(default_factory=InferenceConfig)
    signals: SignalsConfig = Field(default_factory=SignalsConfig)
    selection: SelectionConfig = Field(default_factory=SelectionConfig)
    trust: TrustConfig = Field(default_factory=TrustConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)

    @model_validator(mode="before")
    @classmethod
    def _method_preset(cls, data: Any) -> Any:
        """What `method` means, filled in wherever a config is built (Config(...), load_config,
        model_validate): keys the user set explicitly still win."""
        if not isinstance(data, dict):
            return data
        method = data.get("method", "full")
        preset = METHOD_PRESETS.get(method, {}) if isinstance(method, str) else {}
        if not preset:
            return data
        tree = dict(data)
        for key, value in preset.items():
            section = key.split(".")[0]
            if isinstance(tree.get(section), BaseModel):  # a section given as an object: its explicit fields
                tree[section] = tree[section].model_dump(exclude_unset=True)
            elif isinstance(tree.get(section), dict):
                tree[section] = _copy_tree(tree[section])
            if not _has_dotted(tree, key):
                _set_dotted(tree, key, value)
        return tree

    @model_validator(mode="after")
    def _cost_needs_a_price(self):
        if (self.budget.cost is not None and TEACHERS[self.teacher.source].charges_money
                and self.teacher.model not in self.budget.prices):
            raise ValueError(f"budget.cost is set but budget.prices has no price for teacher.model {self.teacher.model!r}")
        return self

    @field_validator("run_dir")
    @classmethod
    def _run_dir_is_a_filesystem_path(cls, value: str) -> str:
        # The teacher's response log is appended to and fsynced before a response is used, and
        # artifacts are renamed into place: object stores have neither appends nor renames.
        if "://" in value:
            raise ValueError(
                f"{value!r} is a URI: the run directory must be a filesystem path, on a cluster one every "
                "node mounts (NFS: EFS, Filestore, a ReadWriteMany volume); checkpoints may go to s3:// or gs:// "
                "with train.storage_path"
            )
        return value

    @model_validator(mode="after")
    def _no_warmup_means_no_stage1_model(self):
        if self.two_stage and self.budget.warmup_share == 0 and self.train.stage2_init == "stage1":
            raise ValueError("budget.warmup_share 0 trains no stage-1 model: set train.stage2_init to 'base'")
        return self

    @model_validator(mode="after")
    def _calibration_has_references(self):
        needs_reference = self.trust.scale in TRUST_SCALES and TRUST_SCALES[self.trust.scale].needs_reference
        if self.trusts_teacher and needs_reference and not self._has_calibration_references:
            raise ValueError(
                f"trust.scale {self.trust.scale!r} needs outputs known to be right: set trust.calibration_files "
                "(JSONL with question and rationale), or trust.scale 'rank'"
            )
        return self

    @model_validator(mode="after")
    def _fair_schedule_starts_from_base(self):
        if self.train.schedule == "fair" and (self.train.stage2_init != "base" or self.train.stage2_data != "all"):
            raise ValueError(
                "train.schedule 'fair' trains the final student from the base model on every bought output "
                "(train.stage2_init 'base', train.stage2_data 'all'); for the stage-1 continuation set "
                "train.schedule 'epochs'"
            )
        return self

    def final_steps(self) -> int:
        """Optimizer steps of the final student's training under the fair schedule: train.steps,
        or train.epochs passes over a purchase of the whole budget, whatever was bought or dropped."""
        if self.train.steps:
            return self.train.steps
        return math.ceil(self.train.epochs * self.budget.requests / self.train.global_batch_size)

    @property
    def _has_calibration_references(self) -> bool:
        return self.data.source == SYNTHETIC or bool(self.trust.calibration_files)

    @property
    def trust_scale(self) -> str:
        """trust.scale with 'auto' resolved: calibrated where outputs known to be right exist."""
        if self.trust.scale != "auto":
            return self.trust.scale
        return "calibrated" if self._has_calibration_references else "rank"

    @property
    def calibrates_trust(self) -> bool:
        """Whether the run scores outputs known to be right to put trust on an absolute scale."""
        return self.trusts_teacher and TRUST_SCALES[self.trust_scale].needs_reference

    @property
    def selection_rule(self) -> SelectionRule:
        """The stage-2 selection rule selection.strategy names (signals/selection.py)."""
        return SELECTION_RULES[self.selection.strategy]()

    @property
    def trust_mode(self) -> TrustMode:
        """The trust mode trust.mode names (signals/trust.py)."""
        return TRUST_MODES[self.trust.mode]()

    @property
    def stages(self) -> int:
        """0: the base student as it is; 1: one purchase; 2: warm-up, then a selected purchase."""
        return _METHOD_REGISTRY[self.method].stages

    @property
    def two_stage(self) -> bool:
        """Whether signals pick a second purchase (every method but the one-stage baselines)."""
        return self.stages == 2

    @property
    def gold_weights(self) -> bool:
        """Whether gold, not the TA, weights the bought outputs (oracle)."""
        return _METHOD_REGISTRY[self.method].gold_weights

    @property
    def trusts_teacher(self) -> bool:
        """Whether TA confidence in the teacher's outputs weights the (last) training stage."""
        return self.trust_mode.uses_ta and not self.gold_weights

    @property
    def one_stage_trust(self) -> bool:
        """A one-stage method whose single purchase the TA weights (ta_teacher_only)."""
        return self.stages == 1 and self.trusts_teacher

    def section_hash(self, *dotted_keys: str) -> str:
        """Stable hash of the named parts of the config (what a step depends on)."""
        dump = self.model_dump(mode="json")
        picked = {key: _get_dotted(dump, key) for key in dotted_keys}
        return hashlib.sha256(json.dumps(picked, sort_keys=True).encode()).hexdigest()[:16]


METHOD_PRESETS: dict[str, dict[str, Any]] = {name: m.preset for name, m in _METHOD_REGISTRY.items()}


def _copy_tree(tree: dict) -> dict:
    """A copy of nested dicts, so filling in a preset never changes what the caller passed."""
    return {k: _copy_tree(v) if isinstance(v, dict) else v for k, v in tree.items()}


def _get_dotted(tree: dict, dotted: str) -> Any:
    node: Any = tree
    for part in dotted.split("."):
        node = node[part]
    return node


def _has_dotted(tree: dict, dotted: str) -> bool:
    node: Any = tree
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def _set_dotted(tree: dict, dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = tree
    for part in parts[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise ConfigError(f"override {dotted!r}: {part!r} is a value, not a section")
        node = child
    node[parts[-1]] = value


def parse_overrides(overrides: list[str]) -> dict[str, Any]:
    """``a.b=3`` strings to {dotted key: YAML-typed value}."""
    parsed: dict[str, Any] = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {item!r}: expected key=value, e.g. budget.requests=200")
        try:
            parsed[key.strip()] = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError as exc:
            problem = str(exc).splitlines()[0]
            raise ConfigError(f"override {item!r}: the value is not valid YAML ({problem}); quote it") from None
    return parsed


def _format_validation_error(err: ValidationError, source: str) -> str:
    lines = [f"invalid config ({source}):"]
    for problem in err.errors():
        key = ".".join(str(p) for p in problem["loc"]) or "<root>"
        if problem["type"] == "extra_forbidden":
            lines.append(f"  {key}: unknown key")
        else:
            lines.append(f"  {key}: {problem['msg']} (got {problem.get('input')!r})")
    return "\n".join(lines)


def load_config(path: Optional[str | Path] = None, overrides: Optional[list[str]] = None) -> Config:
    """Load YAML (or defaults when path is None), apply overrides and the method preset, validate."""
    source = str(path) if path else "<defaults>"
    tree: dict[str, Any] = {}
    if path:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        try:
            tree = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
        if not isinstance(tree, dict):
            raise ConfigError(f"{path}: expected a mapping of keys at the top level")
    explicit = parse_overrides(overrides or [])
    for key, value in explicit.items():
        _set_dotted(tree, key, value)
    try:  # the method's preset is applied by Config itself (Config._method_preset)
        return Config.model_validate(tree)
    except ValidationError as err:
        raise ConfigError(_format_validation_error(err, source)) from None


def _section_type(annotation) -> Optional[type[BaseModel]]:
    """The config section a field holds (unwrapping Optional[Section]), or None for a plain value."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    sections = [a for a in typing.get_args(annotation) if isinstance(a, type) and issubclass(a, BaseModel)]
    return sections[0] if len(sections) == 1 else None


def describe_options(model: type[BaseModel] = Config, prefix: str = "") -> list[tuple[str, str, str]]:
    """(dotted key, default, description) for every option: the one place options are documented."""
    rows = []
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        annotation = _section_type(field.annotation)
        if annotation is not None:
            if field.default is None:  # an optional section: say what it is for, then its keys
                rows.append((key, "null", field.description or ""))
            rows.extend(describe_options(annotation, key + "."))
        else:
            if field.is_required():
                rows.append((key, "(required)", field.description or ""))
                continue
            default = field.default if field.default_factory is None else field.default_factory()
            rows.append((key, json.dumps(default), field.description or ""))
    return rows
