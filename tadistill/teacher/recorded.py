"""A teacher that answers from outputs collected earlier, charged to the budget like a live one.

Importers turn the common shapes into one table of recorded outputs (id, k, text):
- 'aligned': JSON lists of completions in the order of the rows of one data file (the
  distilling-step-by-step release; its completions run on into more few-shot text, so
  each is cut at its first blank line);
- 'records': JSON / JSONL / Parquet / CSV records with an id or a question, and a
  rationale that is a string or a list of strings (several rationales per question);
- 'kojima_log': the logs of the zero-shot-CoT paper (Q: ..., A: ..., pred_after, GT).

Outputs are matched to corpus rows by id or by question text; an output that matches no
row, or more than one, is kept in a table of unmatched outputs with the reason.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Iterator, Optional

import pandas as pd

from ..artifacts import RECORD_COLUMNS, TEACHER_COLUMNS, UNMATCHED_COLUMNS
from ..config import Price, RecordedTeacherConfig
from ..corpus.canonical import question_key
from ..corpus.files import DEFAULT_MAX_ROW_BYTES, CorpusError, get_path, parse_file, resolve_files
from ..tasks.tokens import word_tokens
from .budget import Budget, PurchaseReport



def _texts(value) -> list[str]:
    """A rationale field as a list of non-empty strings (a string, or a list of them)."""
    if value is None:
        return []
    values = value if isinstance(value, (list, tuple)) else [value]
    return [str(v) for v in values if v is not None and str(v).strip()]


def cut_at_blank_line(text: str) -> str:
    return re.split(r"\n\s*\n", text.strip(), maxsplit=1)[0].strip()


# -- importers: each yields (file, row, key kind, key, texts) -----------------------------

def _aligned(path: Path) -> Iterator[tuple[int, list[str]]]:
    try:
        value = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise CorpusError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(value, list):
        raise CorpusError(f"{path}: format 'aligned' expects a JSON list of completions, got {type(value).__name__}")
    for number, item in enumerate(value, start=1):
        yield number, _texts(item)


_KOJIMA_BLOCK = re.compile(r"^Q: (?P<q>.*?)\nA: (?P<a>.*?)\npred_before :", re.DOTALL | re.MULTILINE)


def _kojima_log(path: Path) -> Iterator[tuple[int, str, list[str]]]:
    """(block number, question, [answer]) from a zero-shot-CoT log."""
    text = path.read_text(errors="replace")
    for number, match in enumerate(_KOJIMA_BLOCK.finditer(text), start=1):
        question = re.split(r"\s+Answer Choices:", match.group("q"), maxsplit=1)[0]
        yield number, question.strip(), _texts(match.group("a").strip())


def detect_record_format(path: Path, configured: str) -> str:
    if configured != "auto":
        return configured
    if path.suffix == ".log":
        return "kojima_log"
    if path.suffix == ".json":
        head = path.read_text()[:4096].lstrip()
        # A JSON list whose first element is a string (or a list of strings) is a list of completions.
        if re.match(r'\[\s*(\[\s*)?"', head):
            return "aligned"
    return "records"


def import_records(config: RecordedTeacherConfig, root: str, corpus_rows: pd.DataFrame,
                   max_row_bytes: int = DEFAULT_MAX_ROW_BYTES) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(matched outputs: RECORD_COLUMNS, unmatched outputs: UNMATCHED_COLUMNS).

    max_row_bytes (data.max_row_bytes) applies to each record of a records file.
    """
    files = resolve_files(config.files, root, "teacher.recorded.files")
    matched: list[dict] = []
    unmatched: list[dict] = []
    index = RowIndex(corpus_rows)
    stated = _AnswerStated(corpus_rows)
    aligned_rows: dict[str, int] = {}  # data file -> completions read for it so far
    for path in files:
        fmt = detect_record_format(path, config.format)
        cut = config.cut_at_blank_line if config.cut_at_blank_line is not None else fmt == "aligned"
        for row, kind, key, texts, answer in _entries(path, fmt, config, root, aligned_rows, max_row_bytes):
            where = {"record_file": str(path), "record_row": row}
            if not texts:
                unmatched.append({**where, "reason": "no output text"})
                continue
            row_id, reason = index.match(kind, key)
            if row_id is None:
                unmatched.append({**where, "reason": reason})
                continue
            for text in texts:
                text = cut_at_blank_line(text) if cut else text.strip()
                matched.append({"id": row_id, "text": stated.with_answer(row_id, text, answer), **where})
    records = pd.DataFrame(matched, columns=["id", "text", "record_file", "record_row"])
    records["k"] = records.groupby("id").cumcount()
    if config.rationales == "first":
        records = records[records["k"] == 0]
    records = records[RECORD_COLUMNS].sort_values(["id", "k"]).reset_index(drop=True)
    return records, pd.DataFrame(unmatched, columns=UNMATCHED_COLUMNS)


class _AnswerStated:
    """A rationale that states no answer the row's task can read, plus its record's separate
    answer (teacher.recorded.fields.answer) in the form the task reads: 'The answer is X.'"""

    def __init__(self, rows: pd.DataFrame):
        self.info = rows.set_index("id")[["answer_type", "options"]]

    def with_answer(self, row_id: str, text: str, answer) -> str:
        if answer is None or str(answer).strip() == "":
            return text
        from ..tasks.answers import extract_for_row

        answer_type, options = self.info.at[row_id, "answer_type"], self.info.at[row_id, "options"]
        if extract_for_row(text, answer_type, options, "none") is not None:
            return text  # the rationale states its own answer: it wins
        return f"{text.rstrip()} The answer is {str(answer).strip()}."


def _entries(path: Path, fmt: str, config: RecordedTeacherConfig, root: str, aligned_rows: dict[str, int],
             max_row_bytes: int = DEFAULT_MAX_ROW_BYTES):
    """(row, key kind, key, texts, separate answer or None) for every output in one file.

    Completion files aligned to one data file continue each other (train_CoT_0.json,
    train_CoT_1.json): aligned_rows carries how many rows the earlier files covered.
    """
    if fmt == "aligned":
        data_file = _aligned_data_file(path, config, root)
        offset = aligned_rows.get(data_file, 0)
        number = 0
        for number, texts in _aligned(path):
            yield number, "position", (data_file, offset + number), texts, None
        aligned_rows[data_file] = offset + number
    elif fmt == "kojima_log":
        for number, question, texts in _kojima_log(path):
            yield number, "question", question, texts, None
    else:
        fields = config.fields
        for record in parse_file(str(path), path.read_bytes(), "auto", max_row_bytes):
            if record.value is None:
                yield record.row, "error", record.error, ["-"], None
                continue
            texts = _texts(get_path(record.value, fields.rationale))
            answer = get_path(record.value, fields.answer) if fields.answer else None
            use_id = config.match == "id" or (config.match == "auto" and fields.id)
            if use_id:
                yield record.row, "id", get_path(record.value, fields.id or "id"), texts, answer
            else:
                yield record.row, "question", get_path(record.value, fields.question or "question"), texts, answer


def _aligned_data_file(path: Path, config: RecordedTeacherConfig, root: str) -> str:
    """The data file one 'aligned' completion file follows (teacher.recorded.aligned_to)."""
    target = config.aligned_to
    if isinstance(target, dict):
        for pattern, data_file in target.items():
            if path in _matching(pattern, root):
                target = data_file
                break
        else:
            raise CorpusError(f"{path}: no pattern of teacher.recorded.aligned_to matches this completion file")
    if not target:
        raise CorpusError(f"{path} holds a list of completions: set teacher.recorded.aligned_to to the data file they follow")
    return str(resolve_files([target], root, "teacher.recorded.aligned_to")[0].resolve())


def _matching(pattern: str, root: str) -> list[Path]:
    try:
        return resolve_files([pattern], root, "teacher.recorded.aligned_to")
    except CorpusError:
        return []  # a pattern that matches no file matches this one neither


class RowIndex:
    """Corpus rows by id, by (data file, row) and by question text, for matching outputs."""

    def __init__(self, rows: pd.DataFrame):
        self.ids = set(rows["id"])
        self.by_position = {(f, int(r)): i for f, r, i in zip(rows["source_file"], rows["row"], rows["id"])}
        self.by_question: dict[str, set[str]] = {}
        for row_id, stem, question in zip(rows["id"], rows["stem"], rows["question"]):
            for text in (stem, question):
                self.by_question.setdefault(question_key(text), set()).add(row_id)

    def match(self, kind: str, key) -> tuple[Optional[str], str]:
        """(row id, "") or (None, why not)."""
        if kind == "error":
            return None, key
        if kind == "position":
            data_file, data_row = key
            row_id = self.by_position.get((data_file, data_row))
            if row_id is None:
                return None, f"no kept corpus row at {Path(data_file).name} row {data_row} (past its end, or rejected)"
            return row_id, ""
        if key is None or str(key).strip() == "":
            return None, f"missing {kind} field"
        if kind == "id":
            return (str(key), "") if str(key) in self.ids else (None, f"id {str(key)[:40]!r} is not in the corpus")
        ids = self.by_question.get(question_key(key), set())
        if len(ids) == 1:
            return next(iter(ids)), ""
        if not ids:
            return None, "question text matches no corpus row"
        return None, f"question text matches {len(ids)} corpus rows"


def _reserve(budget, tokens: int, cost: float) -> bool:
    """Reserve one request from the driver's budget or from the run's ledger actor (a run whose
    other teachers are live reserves from the one they share)."""
    if hasattr(budget.reserve, "remote"):
        import ray

        return ray.get(budget.reserve.remote(tokens, cost))
    return budget.reserve(tokens, cost)


class RecordedTeacher:
    """Buys from the record: one request per question, charged to the same budget as live calls
    (with a price, its estimated tokens too)."""

    def __init__(self, records: pd.DataFrame, model: str = "recorded", price: Optional[Price] = None):
        self.by_id = {row_id: group for row_id, group in records.groupby("id", sort=False)}
        self.model = model
        self.price = price

    def has(self, row_id: str) -> bool:
        return row_id in self.by_id

    def buy(self, rows: pd.DataFrame, budget: Budget, desc: str = "teacher",
            system_prompt: str = "") -> tuple[pd.DataFrame, PurchaseReport]:
        report = PurchaseReport(requested=len(rows))
        started = time.time()
        out = []
        questions = rows["question"] if "question" in rows else pd.Series("", index=rows.index)
        for row_id, question in zip(rows["id"], questions):
            if row_id not in self.by_id:
                raise CorpusError(f"row {row_id!r} has no recorded teacher output; it should not have been picked")
            records = self.by_id[row_id]
            prompt, completions = self._tokens(system_prompt, question, records["text"])
            cost = self.price.cost(prompt, sum(completions)) if self.price else 0.0
            if not _reserve(budget, prompt + sum(completions), cost):
                report.not_bought_budget += 1
                continue
            report.prompt_tokens += prompt
            report.completion_tokens += sum(completions)
            report.cost += cost
            for place, ((_, record), completion) in enumerate(zip(records.iterrows(), completions)):
                out.append({
                    "id": row_id, "k": int(record["k"]), "request_key": f"recorded:{record['record_file']}:{record['record_row']}",
                    "model": self.model, "text": record["text"], "prompt_tokens": prompt if place == 0 else 0,
                    "completion_tokens": completion, "finish_reason": "recorded", "source": "recorded", "cached": False,
                })
        frame = pd.DataFrame(out, columns=TEACHER_COLUMNS)
        report.bought = int(frame["id"].nunique()) if len(frame) else 0
        report.sent = report.bought
        report.seconds = round(time.time() - started, 2)
        return frame, report

    def _tokens(self, system_prompt: str, question: str, texts: pd.Series) -> tuple[int, list[int]]:
        """(prompt tokens, completion tokens per output): counted only where a price charges them,
        so an unpriced record costs one request and nothing else, as before prices existed."""
        if self.price is None:
            return 0, [0] * len(texts)
        return word_tokens(system_prompt) + word_tokens(question), [word_tokens(t) for t in texts]
