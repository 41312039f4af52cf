"""Who answers and what it may cost: `teacher.*` and `budget.*`."""

from __future__ import annotations

from typing import Any, Literal, Optional

from pydantic import Field, model_validator

from .choices import described, fact, names
from .base import SYNTHETIC, _Section

TEACHER_SOURCES = names("teacher.source")
CASCADE_POLICIES = names("cascade.policy")


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

    def check_complete(self) -> None:
        """Refuse a record a recorded teacher cannot answer from (the message names the key)."""
        if not self.files:
            raise ValueError("recorded.files is empty: name the files of teacher outputs")
        if self.format == "aligned" and not self.aligned_to:
            raise ValueError("recorded.aligned_to is required with format 'aligned'")
        if self.match == "id" and not self.fields.id and self.format == "records":
            raise ValueError("recorded.match is 'id' but recorded.fields.id is not set")


BATCH_DISCOUNT = 0.5  # the Batch API's price as a share of the synchronous one, at OpenAI and most providers


class BatchConfig(_Section):
    """Buying through the provider's Batch API (/v1/files + /v1/batches): answers within a day, at about
    half the price."""

    enabled: bool = Field(
        False,
        description=(
            "Buy each purchase (the warm-up, each round, each cascade step) as Batch API jobs instead of one request "
            "at a time: OpenAI, Azure OpenAI, Groq, Together and other OpenAI-compatible providers answer within "
            "completion_window at a discount (budget.prices.<model>.batch_discount). Needs teacher.source 'openai'."
        ),
    )
    completion_window: Literal["24h"] = Field(
        "24h", description="The window the provider has to answer a batch (the Batch API takes only '24h')."
    )
    poll_s: float = Field(30.0, gt=0, description="Seconds between two looks at a running batch's status.")
    max_requests: int = Field(
        50_000, ge=1, le=50_000,
        description=("Requests per batch (the provider's limit is 50,000); a purchase is also split where its "
                     "input file would pass 200 MB."),
    )
    on_failed_lines: Literal["rebatch", "sync"] = Field(
        "rebatch",
        description=(
            "Requests a batch did not answer (an error on their line, or the batch expired or was cancelled first): "
            "'rebatch' buys them in the next batch, 'sync' buys them at once one request at a time (at the "
            "synchronous price); either way within the same budget, and a line that failed in 3 batches stops "
            "the purchase."
        ),
    )


class TeacherConfig(_Section):
    source: Literal[TEACHER_SOURCES] = Field(  # type: ignore[valid-type]
        SYNTHETIC, description="Where teacher outputs come from (teacher/sources.py): " + described("teacher.source") + ".",
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
    batch: BatchConfig = Field(default_factory=BatchConfig)
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
        # What this source needs besides its name.
        if fact("teacher.source", self.source, "needs_base_url") and not self.base_url:
            raise ValueError(f"base_url is required when source is {self.source!r}")
        if fact("teacher.source", self.source, "answers_from_records"):
            self.recorded.check_complete()
        if self.batch.enabled and self.source != "openai":
            raise ValueError(f"teacher.batch.enabled needs teacher.source 'openai' (an endpoint with the Batch API); "
                             f"teacher.source is {self.source!r}")
        return self


class CascadeConfig(_Section):
    """Which of several teachers (`teachers:`) each question is bought from."""

    policy: Literal[CASCADE_POLICIES] = Field(  # type: ignore[valid-type]
        "fixed", description="How a question's teacher is chosen (teacher/cascade.py): " + described("cascade.policy") + ".",
    )
    teacher: Optional[str] = Field(
        None, description="'fixed': the teacher.model of the one teacher bought from; null: the first of teachers."
    )
    escalate_below: float = Field(
        1.0, gt=0, le=1,
        description=(
            "'cascade': buy the next teacher's output where every output bought for the question so far has a trust "
            "weight below this (the trust signal on its calibrated scale, fixed before any purchase; 1: wherever "
            "trust distrusts the output at all)."
        ),
    )
    batch: int = Field(
        64, ge=1,
        description=("'cascade': questions bought from the first teacher before their escalations are bought, so a "
                     "budget that runs out stops between whole questions, never after paying only the cheap half."),
    )


class Price(_Section):
    prompt: float = Field(..., ge=0, description="Price of a million prompt tokens.")
    completion: float = Field(..., ge=0, description="Price of a million completion tokens.")
    batch_discount: Optional[float] = Field(
        None, gt=0, le=1,
        description=("Batch API price as a share of prompt and completion (teacher.batch); null: 0.5, what OpenAI "
                     "and most providers charge, unless batch_prompt and batch_completion are given."),
    )
    batch_prompt: Optional[float] = Field(
        None, ge=0, description="Batch API price of a million prompt tokens (with batch_completion; null: discounted)."
    )
    batch_completion: Optional[float] = Field(
        None, ge=0, description="Batch API price of a million completion tokens (with batch_prompt; null: discounted)."
    )

    @model_validator(mode="after")
    def _batch_price_is_whole(self):
        if (self.batch_prompt is None) != (self.batch_completion is None):
            raise ValueError("budget.prices: give batch_prompt and batch_completion together (or batch_discount)")
        if self.batch_prompt is not None and self.batch_discount is not None:
            raise ValueError("budget.prices: give batch_discount or batch_prompt and batch_completion, not both")
        return self

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (prompt_tokens * self.prompt + completion_tokens * self.completion) / 1e6

    def batch_price(self) -> tuple[float, float]:
        """(prompt, completion) per million tokens through the Batch API."""
        if self.batch_prompt is not None:
            return self.batch_prompt, self.batch_completion
        share = BATCH_DISCOUNT if self.batch_discount is None else self.batch_discount
        return self.prompt * share, self.completion * share


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
        description="Share of the request budget spent on the random warm-up (0: no warm-up, round 1's signals from the base student).",
    )
    rounds: int = Field(
        1, ge=1, le=20,
        description=(
            "Rounds of select / buy / train after the warm-up (methods that select): each round's student trains "
            "on everything bought so far, its signals pick the round's purchase. 1: one selected purchase."
        ),
    )
    round_shares: Optional[list[float]] = Field(
        None,
        description=(
            "Share of the budget left after the warm-up that each round spends, one positive number per round, "
            "summing to 1 (e.g. [0.5, 0.3, 0.2]); null: equal shares."
        ),
    )

    @model_validator(mode="after")
    def _shares_fit_the_rounds(self):
        shares = self.round_shares
        if shares is None:
            return self
        if len(shares) != self.rounds:
            raise ValueError(f"round_shares has {len(shares)} entries for rounds {self.rounds}: give one per round")
        if any(s <= 0 for s in shares) or abs(sum(shares) - 1) > 1e-6:
            raise ValueError(f"round_shares {shares}: each must be > 0 and together they must sum to 1")
        return self

    def shares(self) -> list[float]:
        """Each round's share of the budget left after the warm-up."""
        return list(self.round_shares) if self.round_shares else [1 / self.rounds] * self.rounds

