"""Small files in the official formats of the public data sets, written by the tests."""

from __future__ import annotations

import json
from pathlib import Path


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def write_json(path: Path, value) -> Path:
    path.write_text(json.dumps(value, indent=2))
    return path


def _mc(stem: str, texts: list[str], labels: str = "ABCDE") -> dict:
    return {"stem": stem, "choices": [{"label": label, "text": t} for label, t in zip(labels, texts)]}


# StrategyQA, as in strategyqa_train.json: a JSON array; answer is a JSON boolean.
STRATEGYQA = [
    {"qid": "9b7e2ad7b4", "term": "Hamster", "description": "A rodent", "question": "Are more people today related to Genghis Khan than Julius Caesar?",
     "answer": True, "facts": ["Julius Caesar had three children."], "decomposition": ["How many kids did Julius Caesar have?"]},
    {"qid": "2c1c0b4e11", "term": "Lullaby", "description": "A song", "question": "Could a llama birth twice during War in Vietnam (1945-46)?",
     "answer": False, "facts": [], "decomposition": []},
]

# ARC, as in ARC-Challenge-Train.jsonl: some questions label their options 1-4, not A-D.
ARC = [
    {"id": "Mercury_SC_415702", "question": _mc("George wants to warm his hands quickly by rubbing them. Which skin surface will produce the most heat?",
                                               ["dry palms", "wet palms", "palms covered with oil", "palms covered with lotion"]), "answerKey": "A"},
    {"id": "MCAS_2000_4_6", "question": _mc("Which technology was developed most recently?",
                                            ["cellular telephone", "television", "refrigerator", "airplane"], labels="1234"), "answerKey": "1"},
    {"id": "Mercury_7_3", "question": _mc("Which is a gas at room temperature?", ["oxygen", "iron", "water"]), "answerKey": "A"},
]

# OpenBookQA, as in Main/train.jsonl (the Additional release adds fact1 and scores).
OPENBOOKQA = [
    {"id": "7-980", "question": _mc("The sun is responsible for", ["puppies learning new tricks", "children growing up and getting old",
                                                                    "flowers wilting in a vase", "plants sprouting, blooming and wilting"], "ABCD"),
     "answerKey": "D", "fact1": "the sun is the source of energy for physical cycles on Earth"},
]

# ANLI's official release (R1/train.jsonl): the premise is `context`, one-letter labels.
ANLI = [
    {"uid": "0fd0abfb", "context": "The Parma trolleybus system forms part of the public transport network of Parma.",
     "hypothesis": "The trolleybus system has over 2 urban routes", "label": "e", "model_label": "n",
     "emturk": False, "genre": "", "reason": "", "tag": ""},
    {"uid": "7ed72ff4", "context": "Alexandra Lendon Bastedo was a British actress.", "hypothesis": "Sharon Bastedo was born in 1947.",
     "label": "n", "reason": ""},
    {"uid": "5d2930a3", "context": "Bastedo died in 2014.", "hypothesis": "Bastedo is alive.", "label": "c", "reason": ""},
]
# facebook/anli on the hub and the distilling-step-by-step release: `premise`, labels 0 / 1 / 2.
ANLI_INDEXED = [
    {"uid": "0fd0abfb", "premise": ANLI[0]["context"], "hypothesis": ANLI[0]["hypothesis"], "label": 0, "reason": ""},
    {"uid": "7ed72ff4", "premise": ANLI[1]["context"], "hypothesis": ANLI[1]["hypothesis"], "label": "1", "reason": ""},
    {"uid": "5d2930a3", "premise": ANLI[2]["context"], "hypothesis": ANLI[2]["hypothesis"], "label": 2, "reason": ""},
]

# CommonsenseQA v1.11, official JSONL.
CSQA = [
    {"answerKey": "A", "id": "075e483d21c29a511267ef62bedc0461",
     "question": {"question_concept": "punishing", **_mc("The sanctions against the school were a punishing blow, and they seemed to what the efforts the school had made to change?",
                                                         ["ignore", "enforce", "authoritarian", "yell at", "avoid"])}},
]

# CoS-E / distilling-step-by-step: choices as strings, the answer as its text.
CSQA_COSE = [
    {"id": "6b819727eb8a670df26a7ffad036c119", "question": "\"There are 10 apples on an apple tree.  Three fall off.  Now there are X apples.\"  What is this an example of?",
     "choices": ["park", "coloring book", "garden center", "math problem", "gravity"], "answer": "math problem",
     "abstractive_explanation": "webmath is designed to help you solve", "extractive_explanation": ""},
]

CSQA_MCC_KD = [
    {"instruction": "What could cats do if they were taller? Answer Choices:\nA. annoy\nB. eat meat\nC. open doors\nD. need food\nE. jog\n",
     "output": "", "label": "C"},
]

GSM8K = [
    {"question": "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. How many clips did Natalia sell altogether in April and May?",
     "answer": "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nNatalia sold 48+24 = <<48+24=72>>72 clips altogether in April and May.\n#### 72"},
]

SVAMP_ORIGINAL = [
    {"ID": "chal-1", "Body": "Each pack of dvds costs 76 dollars. If there is a discount of 25 dollars on each pack",
     "Question": "How much do you have to pay to buy each pack?", "Equation": "( 76.0 - 25.0 )", "Answer": 51.0, "Type": "Subtraction"},
]

SVAMP_DSS = [
    {"input": "Luke scored 84 points after playing 2 rounds of a trivia game. If he gained the same number of points each round\nHow many points did he score per round?",
     "label": "( 84.0 / 2.0 )"},
]


# The Hugging Face copies: choices as columns ({label: [...], text: [...]}), the stem a string.
CSQA_HUB = [{"id": "075e483d21c29a511267ef62bedc0461", "question": "The sanctions against the school were a punishing blow, and they seemed to what the efforts the school had made to change?",
             "question_concept": "punishing",
             "choices": {"label": ["A", "B", "C", "D", "E"], "text": ["ignore", "enforce", "authoritarian", "yell at", "avoid"]},
             "answerKey": "A"}]
ARC_HUB = [{"id": "Mercury_SC_415702", "question": "George wants to warm his hands quickly by rubbing them. Which skin surface will produce the most heat?",
            "choices": {"text": ["dry palms", "wet palms", "palms covered with oil", "palms covered with lotion"], "label": ["A", "B", "C", "D"]},
            "answerKey": "A"}]
OPENBOOKQA_HUB = [{"id": "7-980", "question_stem": "The sun is responsible for",
                   "choices": {"text": ["puppies learning new tricks", "children growing up and getting old", "flowers wilting in a vase", "plants sprouting, blooming and wilting"], "label": ["A", "B", "C", "D"]},
                   "answerKey": "D"}]
