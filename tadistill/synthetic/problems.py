"""Multi-step arithmetic word problems: generator, solver, and chain-of-thought text.

The language is small on purpose: a tiny model can learn it in minutes on a CPU, yet each
problem needs 2-5 dependent steps, so a slipped step or a wrong final answer is a real
reasoning error that a more competent model (the TA) can notice.
"""

from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass

NAMES = ["Tom", "Ann", "Sam", "Lia", "Ben", "Eva", "Max", "Zoe", "Leo", "Mia"]
ITEMS = ["apples", "pens", "coins", "books", "cards", "shells", "stamps", "marbles"]
ADD_VERBS = ["buys", "finds", "gets", "picks"]
SUB_VERBS = ["gives away", "eats", "loses", "sells"]
MAX_NUMBER = 99  # every number in a problem, a solution or a slip stays in 0..MAX_NUMBER
START_RANGE = (2, 20)
OPERAND_RANGE = (1, 9)


@dataclass(frozen=True)
class Step:
    op: str  # "+" or "-"
    verb: str
    amount: int


@dataclass(frozen=True)
class Problem:
    name: str
    item: str
    start: int
    steps: tuple[Step, ...]

    @property
    def values(self) -> list[int]:
        """Running totals after each step."""
        totals, value = [], self.start
        for step in self.steps:
            value = value + step.amount if step.op == "+" else value - step.amount
            totals.append(value)
        return totals

    @property
    def answer(self) -> int:
        return self.values[-1]

    def question(self) -> str:
        sentences = [f"{self.name} has {self.start} {self.item}."]
        for step in self.steps:
            more = " more" if step.op == "+" else ""
            sentences.append(f"{self.name} {step.verb} {step.amount}{more}.")
        sentences.append(f"How many {self.item} does {self.name} have now?")
        return " ".join(sentences)


def render_solution(start: int, steps: tuple[Step, ...], results: list[int], final: int) -> str:
    """Chain of thought: one equation per step, then the answer sentence."""
    parts, previous = [], start
    for step, result in zip(steps, results):
        parts.append(f"{previous} {step.op} {step.amount} = {result}.")
        previous = result
    parts.append(f"The answer is {final}.")
    return " ".join(parts)


def gold_solution(problem: Problem) -> str:
    return render_solution(problem.start, problem.steps, problem.values, problem.answer)


def generate_problem(rng: random.Random, min_steps: int, max_steps: int) -> Problem:
    name, item = rng.choice(NAMES), rng.choice(ITEMS)
    start = rng.randint(*START_RANGE)
    steps, value = [], start
    for _ in range(rng.randint(min_steps, max_steps)):
        amount = rng.randint(*OPERAND_RANGE)
        # Subtract only what is there, add only while the total stays a known number.
        can_sub = value - amount >= 0
        can_add = value + amount <= MAX_NUMBER - 10
        op = "+" if (can_add and (not can_sub or rng.random() < 0.5)) else "-"
        verb = rng.choice(ADD_VERBS if op == "+" else SUB_VERBS)
        value = value + amount if op == "+" else value - amount
        steps.append(Step(op, verb, amount))
    return Problem(name, item, start, tuple(steps))


def generate_problems(count: int, seed: int, min_steps: int = 2, max_steps: int = 4) -> list[Problem]:
    rng = random.Random(seed)
    return [generate_problem(rng, min_steps, max_steps) for _ in range(count)]


def problem_id(problem: Problem) -> str:
    """Stable id from the question text: the same question has the same id in every run."""
    return "syn-" + hashlib.sha256(problem.question().encode()).hexdigest()[:12]


_HAS = re.compile(r"^(\w+) has (\d+) (\w+)\.$")
_ADD = re.compile(r"^(\w+) (" + "|".join(ADD_VERBS) + r") (\d+) more\.$")
_SUB = re.compile(r"^(\w+) (" + "|".join(SUB_VERBS) + r") (\d+)\.$")
_ASK = re.compile(r"^How many (\w+) does (\w+) have now\?$")


class UnparseableQuestion(ValueError):
    pass


def parse_question(text: str) -> Problem:
    """Read a question of this language back into a Problem (the simulated teacher's solver)."""
    sentences = re.findall(r"[^.?]+[.?]", text.strip())
    sentences = [s.strip() for s in sentences]
    if len(sentences) < 3:
        raise UnparseableQuestion(f"expected at least 3 sentences, got {len(sentences)}")
    head = _HAS.match(sentences[0])
    ask = _ASK.match(sentences[-1])
    if not head or not ask:
        raise UnparseableQuestion("expected '<name> has N <items>.' ... 'How many <items> does <name> have now?'")
    steps = []
    for sentence in sentences[1:-1]:
        if m := _ADD.match(sentence):
            steps.append(Step("+", m.group(2), int(m.group(3))))
        elif m := _SUB.match(sentence):
            steps.append(Step("-", m.group(2), int(m.group(3))))
        else:
            raise UnparseableQuestion(f"unknown step sentence: {sentence!r}")
    return Problem(head.group(1), head.group(3), int(head.group(2)), tuple(steps))


def vocabulary() -> list[str]:
    """Every word-level token the language (questions, prompts, solutions) can use."""
    words = set(NAMES) | set(ITEMS)
    for verb in ADD_VERBS + SUB_VERBS:
        words.update(verb.split())
    words.update("has more How many does have now The answer is Question Answer".split())
    words.update(str(n) for n in range(0, MAX_NUMBER + 1))
    words.update([".", "?", "+", "-", "=", ":"])
    return sorted(words)
