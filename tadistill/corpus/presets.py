"""Named adapters for the public data sets people distill on.

Each preset reads one record of its data set's official release into the parts of a
question (`Fields`): what the generic reader does with a field map, plus what a field map
cannot say (GSM8K's gold after '####', ANLI's one-letter labels, choices written inside
the question text).

| preset       | release and shape                                                              |
|--------------|--------------------------------------------------------------------------------|
| gsm8k        | openai/grade-school-math JSONL: question, answer ('... #### 72')                |
| svamp        | arkilpatel/SVAMP JSON: ID, Body, Question, Equation, Answer                     |
| svamp_dss    | distilling-step-by-step JSON lines: input, label (an equation '( 84.0 / 2.0 )') |
| csqa         | CommonsenseQA JSONL: id, question.stem, question.choices [{label, text}], answerKey; or the hub's tau/commonsense_qa: id, question, choices {label: [...], text: [...]}, answerKey |
| csqa_cose    | CoS-E / distilling-step-by-step: id, question, choices [str], answer (the text)  |
| csqa_mcc_kd  | MCC-KD: instruction ('... Answer Choices:\nA. x\nB. y'), label (a letter)       |
| strategyqa   | StrategyQA JSON: qid, question, answer (true/false)                              |
| arc          | ARC JSONL: id, question.stem, question.choices [{text, label}], answerKey (A-E or 1-5); or allenai/ai2_arc: id, question, choices {text: [...], label: [...]}, answerKey |
| openbookqa   | OpenBookQA JSONL: the ARC shape; or allenai/openbookqa: id, question_stem, choices {text, label}, answerKey |
| anli         | ANLI: the official release (uid, context, hypothesis, label e / n / c); facebook/anli and distilling-step-by-step (premise, hypothesis, label 0 / 1 / 2 = entailment / neutral / contradiction); premise with e / n / c or the label's name |
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Optional


NLI_LABELS = ("entailment", "neutral", "contradiction")


@dataclass
class Fields:
    """The parts of one question as read from a record, before normalisation."""

    question: Any
    answer: Any = None
    id: Any = None
    choices: Any = None  # a list of strings, or of {label, text}
    context: Any = None


@dataclass(frozen=True)
class Preset:
    answer_type: str
    read: Callable[[dict], Fields]
    labels: tuple[str, ...] = ()
    where: Optional[dict[str, str]] = None  # part -> the field it is read from, for reject reasons


def _gsm8k(r: dict) -> Fields:
    solution = r.get("answer")
    gold = solution.rsplit("####", 1)[1].strip() if isinstance(solution, str) and "####" in solution else None
    return Fields(question=r.get("question"), answer=gold)


def _svamp(r: dict) -> Fields:
    body, question = r.get("Body"), r.get("Question")
    text = " ".join(str(p).strip() for p in (body, question) if p) if question else None
    answer = r.get("Answer") if r.get("Answer") is not None else r.get("Equation")
    return Fields(question=text, answer=answer, id=r.get("ID"))


def _svamp_dss(r: dict) -> Fields:
    return Fields(question=r.get("input"), answer=r.get("label"))


def _columns_to_choices(choices: Any) -> Any:
    """The hub's choices, {label: [...], text: [...]}, as the releases' [{label, text}, ...]."""
    if isinstance(choices, dict) and isinstance(choices.get("text"), (list, tuple)):
        texts = list(choices["text"])
        labels = list(choices.get("label") or [chr(ord("A") + i) for i in range(len(texts))])
        if len(labels) == len(texts):
            return [{"label": label, "text": text} for label, text in zip(labels, texts)]
    return choices


def _official_mc(r: dict) -> Fields:
    """CommonsenseQA, ARC and OpenBookQA share it: question.stem, question.choices, answerKey; their
    Hugging Face copies put the stem in `question` (or `question_stem`) and the choices beside it."""
    question = r.get("question")
    if isinstance(question, dict):  # the official releases
        stem, choices = question.get("stem"), question.get("choices")
    else:  # tau/commonsense_qa, allenai/ai2_arc, allenai/openbookqa
        stem, choices = (question if question is not None else r.get("question_stem")), r.get("choices")
    return Fields(question=stem, answer=r.get("answerKey"), id=r.get("id"), choices=_columns_to_choices(choices))


def _csqa_cose(r: dict) -> Fields:
    return Fields(question=r.get("question"), answer=r.get("answer"), id=r.get("id"), choices=r.get("choices"))


_MCC_KD_CHOICES = re.compile(r"\s*Answer Choices:\s*", re.IGNORECASE)
_MCC_KD_OPTION = re.compile(r"^\s*([A-J])[.)]\s*(.+?)\s*$")


def _csqa_mcc_kd(r: dict) -> Fields:
    instruction = r.get("instruction")
    if not isinstance(instruction, str) or not _MCC_KD_CHOICES.search(instruction):
        return Fields(question=instruction, answer=r.get("label"))
    stem, listing = _MCC_KD_CHOICES.split(instruction, maxsplit=1)
    options = [m for m in (_MCC_KD_OPTION.match(line) for line in listing.splitlines()) if m]
    choices = [{"label": m.group(1), "text": m.group(2)} for m in options]
    return Fields(question=stem, answer=r.get("label"), choices=choices)


def _strategyqa(r: dict) -> Fields:
    return Fields(question=r.get("question"), answer=r.get("answer"), id=r.get("qid"))


# ANLI's labels in every release: one letter (official), an index (facebook/anli, distilling-
# step-by-step: 0 entailment, 1 neutral, 2 contradiction), or the name itself.
_ANLI_LABELS = {"e": "entailment", "n": "neutral", "c": "contradiction",
                "0": "entailment", "1": "neutral", "2": "contradiction"}


def _anli(r: dict) -> Fields:
    premise = r.get("premise") if r.get("premise") is not None else r.get("context")  # the official release: context
    hypothesis = r.get("hypothesis")
    question = f"Premise: {premise}\nHypothesis: {hypothesis}" if premise and hypothesis else None
    label = r.get("label")
    if isinstance(label, bool):  # never a valid ANLI label; left as it is, to be rejected by name
        answer = label
    elif isinstance(label, (int, str)):
        answer = _ANLI_LABELS.get(str(label).strip().lower(), label)
    else:
        answer = label
    return Fields(question=question, answer=answer, id=r.get("uid", r.get("id")))


PRESETS: dict[str, Preset] = {
    "gsm8k": Preset("number", _gsm8k, where={"question": "question", "answer": "answer (after ####)"}),
    "svamp": Preset("number", _svamp, where={"question": "Body + Question", "answer": "Answer", "id": "ID"}),
    "svamp_dss": Preset("number", _svamp_dss, where={"question": "input", "answer": "label"}),
    "csqa": Preset("choice", _official_mc, where={"question": "question.stem", "answer": "answerKey", "id": "id",
                                                  "choices": "question.choices"}),
    "csqa_cose": Preset("choice", _csqa_cose, where={"question": "question", "answer": "answer", "id": "id",
                                                     "choices": "choices"}),
    "csqa_mcc_kd": Preset("choice", _csqa_mcc_kd, where={"question": "instruction", "answer": "label",
                                                         "choices": "instruction (Answer Choices:)"}),
    "strategyqa": Preset("yesno", _strategyqa, where={"question": "question", "answer": "answer", "id": "qid"}),
    "arc": Preset("choice", _official_mc, where={"question": "question.stem", "answer": "answerKey", "id": "id",
                                                 "choices": "question.choices"}),
    "openbookqa": Preset("choice", _official_mc, where={"question": "question.stem", "answer": "answerKey",
                                                        "id": "id", "choices": "question.choices"}),
    "anli": Preset("label", _anli, labels=NLI_LABELS,
                   where={"question": "premise (or context), hypothesis", "answer": "label", "id": "uid"}),
}
