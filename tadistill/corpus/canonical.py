"""One record into one canonical row, or the reason it cannot be used.

Canonical row: id, task, split, question (the text every model sees: context, question,
lettered options), stem (the question as written, for matching recorded teacher outputs),
options (the choices of a multiple-choice question, or the label set), gold (normalised:
'42', 'c', 'yes', 'neutral'; null in an unlabelled pool), answer_type, source_file, row.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Callable, Optional

from ..config import DataConfig
from ..tasks.answers import LETTERS, gold_choice, gold_label, gold_number, gold_yesno
from ..tasks.prompts import render_question
from .files import get_path
from .presets import PRESETS, Fields



class Rejected(Exception):
    """Raised with the reason a record cannot become a row."""


@dataclass(frozen=True)
class RowReader:
    """How records of this corpus are read: the preset's or the field map's."""

    task: str
    answer_type: str
    labels: tuple[str, ...]
    read: Callable[[dict], Fields]
    where: dict[str, str]
    id_required: bool


def row_reader(config: DataConfig) -> RowReader:
    if config.preset:
        preset = PRESETS[config.preset]
        return RowReader(
            task=config.task or config.preset, answer_type=preset.answer_type,
            labels=tuple(config.labels or preset.labels), read=preset.read, where=preset.where or {},
            id_required=False,
        )
    fields = config.fields
    assert fields is not None and config.answer_type is not None  # the config validator makes sure

    def read(record: dict) -> Fields:
        if isinstance(fields.choices, list):
            choices = [get_path(record, path) for path in fields.choices]
            choices = [c for c in choices if c not in (None, "")]
        else:
            choices = get_path(record, fields.choices) if fields.choices else None
        return Fields(
            question=get_path(record, fields.question),
            answer=get_path(record, fields.answer) if fields.answer else None,
            id=get_path(record, fields.id) if fields.id else None,
            choices=choices,
            context=get_path(record, fields.context) if fields.context else None,
        )

    where = {"question": fields.question, "answer": fields.answer or "", "id": fields.id or "",
             "choices": str(fields.choices or ""), "context": fields.context or ""}
    return RowReader(
        task=config.task or "custom", answer_type=config.answer_type, labels=tuple(config.labels or ()),
        read=read, where=where, id_required=fields.id is not None,
    )


def _options(choices) -> tuple[list[str], list[str]]:
    """(option texts, their labels as given) from a list of strings or of {label, text}."""
    if isinstance(choices, str) and choices.strip().startswith("["):
        try:
            choices = json.loads(choices)  # a list written into one CSV cell
        except json.JSONDecodeError:
            pass
    if not isinstance(choices, (list, tuple)):
        return [], []
    texts, labels = [], []
    for i, choice in enumerate(choices):
        if isinstance(choice, dict):
            texts.append(str(choice.get("text", "")).strip())
            labels.append(str(choice.get("label", LETTERS[i] if i < len(LETTERS) else i)).strip())
        else:
            texts.append(str(choice).strip())
            labels.append(LETTERS[i] if i < len(LETTERS) else str(i))
    return texts, labels


def _gold_choice(answer, texts: list[str], labels: list[str]) -> Optional[str]:
    """A gold option given by its label as written (ARC's '1'..'4' too), its letter, or its text."""
    text = str(answer).strip()
    for i, label in enumerate(labels):
        if text.lower() == label.lower():
            return LETTERS[i]
    return gold_choice(text, texts)


def _normalised_gold(answer, answer_type: str, options: list[str], labels: list[str]) -> Optional[str]:
    if answer_type == "number":
        return gold_number(answer)
    if answer_type == "choice":
        return _gold_choice(answer, options, labels)
    if answer_type == "yesno":
        return gold_yesno(answer)
    return gold_label(answer, options)


def stable_id(question: str, options: list[str]) -> str:
    """An id from the question itself: the same question gets the same id in every run."""
    key = " ".join(question.lower().split()) + "\x1f" + "\x1f".join(o.lower() for o in options)
    return "q" + hashlib.sha256(key.encode()).hexdigest()[:16]


def _text(value) -> str:
    return "" if value is None else str(value).strip()


def _typed_text(value, role: str, where: dict[str, str]) -> str:
    """A text field's value: a string or a number; anything else is a mistyped field."""
    if value is None or isinstance(value, str) or (isinstance(value, (int, float)) and not isinstance(value, bool)):
        return _text(value)
    raise Rejected(f"field {where.get(role, role)!r} ({role}) holds a {type(value).__name__}, expected text")


def canonical_row(record: dict, reader: RowReader) -> dict:
    """The canonical fields of one record (without split, file and row); raises Rejected."""
    fields = reader.read(record)
    where = reader.where
    question = _typed_text(fields.question, "question", where)
    if not question:
        raise Rejected(f"missing question (field {where.get('question', 'question')!r})")
    answer_type = reader.answer_type
    if answer_type == "choice":
        options, option_labels = _options(fields.choices)
        if len(options) < 2 or not all(options):
            raise Rejected(f"missing or empty options (field {where.get('choices', 'choices')!r})")
        if len(options) > len(LETTERS):
            raise Rejected(f"{len(options)} options; at most {len(LETTERS)} are supported")
    else:
        options, option_labels = list(reader.labels), list(reader.labels)
    gold = None
    if isinstance(fields.answer, (dict, list)):
        raise Rejected(f"field {where.get('answer', 'answer')!r} (answer) holds a {type(fields.answer).__name__}, "
                       "expected an answer")
    if fields.answer is not None and _text(fields.answer) != "":
        gold = _normalised_gold(fields.answer, answer_type, options, option_labels)
        if gold is None:
            raise Rejected(f"unusable gold answer {_text(fields.answer)[:60]!r} for answer type {answer_type}")
    raw_id = _typed_text(fields.id, "id", where)
    context = _typed_text(fields.context, "context", where)
    if not raw_id and reader.id_required:
        raise Rejected(f"missing id (field {where.get('id')!r})")
    return {
        "id": raw_id or stable_id(question, options),
        "task": reader.task,
        "question": render_question(question, answer_type, options, context or None),
        "stem": question,
        "options": options or None,
        "gold": gold,
        "answer_type": answer_type,
    }


_NON_WORD = re.compile(r"[^a-z0-9]+")


def question_key(text: str) -> str:
    """A question's text reduced to what survives copying between files (case, spacing, quotes)."""
    return _NON_WORD.sub(" ", str(text).lower()).strip()
