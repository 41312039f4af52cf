"""Extracting and normalising answers from free-text chains of thought.

An answer that cannot be extracted is ``None`` (counted by callers), never guessed.
"""

from __future__ import annotations

import re
from typing import Optional

_ANSWER_IS = re.compile(r"answer is\s*:?\s*\$?\s*(-?\d[\d,]*(?:\.\d+)?)", re.IGNORECASE)
_HASHES = re.compile(r"####\s*\$?\s*(-?\d[\d,]*(?:\.\d+)?)")


def normalise_number(raw: str) -> str:
    """'1,234.50' -> '1234.5'; '7.0' -> '7': one spelling per value so answers compare exactly."""
    value = raw.replace(",", "")
    if "." in value:
        value = value.rstrip("0").rstrip(".")
    if value in ("-0", ""):
        value = "0"
    return value


def extract_number(text: Optional[str]) -> Optional[str]:
    """The final numeric answer of a chain of thought, normalised, or None.

    Takes the last 'the answer is N' (or GSM8K's '#### N'): a chain may restate
    intermediate results, the committed answer comes last.
    """
    if not text:
        return None
    matches = _ANSWER_IS.findall(text) or _HASHES.findall(text)
    if not matches:
        return None
    return normalise_number(matches[-1])


def extract_answer(text: Optional[str], answer_type: str) -> Optional[str]:
    if answer_type == "number":
        return extract_number(text)
    raise ValueError(f"answer_type {answer_type!r} is not supported (expected 'number')")
