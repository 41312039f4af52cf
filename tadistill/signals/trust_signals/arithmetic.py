"""Checked reasoning for arithmetic: the share of the calculations a rationale states
('16 + 71 - 2 = 87', '<<600/10=60>>', '$12 x 3 = $36') that hold, re-evaluated by the safe
parser (tasks/answers.safe_arithmetic: numbers and + - * / ( ) only, never `eval`).

A rationale stating no calculation has found nothing false (1.0). Questions whose answer is not a
number are left alone (1.0), and the step notes how many there were.
"""

from __future__ import annotations

import re
from fractions import Fraction
from typing import NamedTuple, Optional

import numpy as np
import pandas as pd

from ...tasks.answers import UnsafeExpression, normalise_number, safe_arithmetic
from . import SignalValues, TrustSignal

# The left side of a claim: numbers joined by operators (and parentheses), ending right before '='.
_LEFT = re.compile(r"[\d(][\d\s.,$()+\-−*/×÷x]*$")
_RIGHT = re.compile(r"\s*\$?\s*(-?[\d,]*\.?\d+)")
_OPERATOR = re.compile(r"[\d)]\s*[-+−*/×÷x]\s*\$?[(\d.]")


class Claim(NamedTuple):
    expression: str
    stated: str
    holds: bool


def _clean(expression: str) -> str:
    expression = expression.replace("−", "-").replace("×", "*").replace("÷", "/").replace("$", "")
    expression = re.sub(r"(?<=\d),(?=\d{3}\b)", "", expression)  # thousands separators
    return re.sub(r"(?<=[\d)\s])x(?=[\s(\d])", "*", expression)  # '12 x 3' as a product


def _balanced(expression: str) -> str:
    """Without the opening parentheses of an enclosing phrase ('(that is 3 * 4 = 12)')."""
    while expression.count("(") > expression.count(")") and expression.startswith("("):
        expression = expression[1:].lstrip()
    return expression


def _holds(value: Fraction, stated: str) -> bool:
    """Equal, or equal to the stated precision ('10 / 3 = 3.33'), or within 1% (a rounded total)."""
    claimed = Fraction(stated)
    decimals = len(stated.split(".")[1]) if "." in stated else 0
    tolerance = max(Fraction(1, 2 * 10**decimals) if decimals else Fraction(0), abs(value) / 100)
    return abs(value - claimed) <= tolerance


def arithmetic_claims(text: str) -> list[Claim]:
    """Every 'expression = number' in a text whose expression has an operator and parses."""
    claims = []
    for equals in re.finditer("=", text or ""):
        left = _LEFT.search(text[max(0, equals.start() - 120):equals.start()])
        right = _RIGHT.match(text, equals.end())
        if not left or not right:
            continue
        # The calculation starts after the last sentence or clause break ('= 8. 8 * 2 = 16').
        expression = _balanced(re.split(r"[.,;:!?]\s+", left.group(0))[-1].strip())
        stated = normalise_number(right.group(1))
        if stated is None or not _OPERATOR.search(expression):
            continue
        try:
            value = safe_arithmetic(_clean(expression))
        except UnsafeExpression:
            continue
        claims.append(Claim(expression, stated, _holds(value, stated)))
    return claims


def share_that_hold(text: str) -> Optional[float]:
    claims = arithmetic_claims(text)
    return None if not claims else sum(c.holds for c in claims) / len(claims)


class ArithmeticCheck(TrustSignal):
    def values(self, outputs, score):
        numeric = outputs["answer_type"].eq("number") if "answer_type" in outputs else np.ones(len(outputs), bool)
        shares = [share_that_hold(text) if is_number else None for text, is_number in zip(outputs["text"], numeric)]
        values = pd.Series([1.0 if s is None else s for s in shares], index=outputs.index, dtype=float)
        notes = []
        skipped = int((~np.asarray(numeric, bool)).sum())
        if skipped:
            notes.append(f"{skipped} output(s) of questions whose answer is not a number were not checked (trust 1)")
        return SignalValues(values, notes=notes)
