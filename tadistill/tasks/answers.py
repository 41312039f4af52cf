"""Extracting and normalising answers from free-text chains of thought.

Four answer types: number, choice (multiple choice, normalised to a lowercase letter),
yes/no (normalised to 'yes' / 'no'), and label (one of a fixed label set). An answer that
cannot be extracted, or that the text states ambiguously, is ``None``: counted by
callers, never guessed. Nothing read from data or a model is ever evaluated as code:
arithmetic in gold labels goes through a small parser of numbers and + - * / ( ).
"""

from __future__ import annotations

import ast
import operator
import re
from fractions import Fraction
from typing import Optional, Sequence

ANSWER_TYPES = ("number", "choice", "yesno", "label")

_NUMBER = r"[-−]?\s*\$?\s*(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:\s*/\s*\d+(?:\.\d+)?)?|[-−]?\s*\$?\s*\.\d+"
# Phrases that commit to a final answer; the last commitment in a text is the answer.
_COMMIT = re.compile(
    r"(?:answer\s+(?:\([^()\n]{1,40}\)\s+)?(?:is|would\s+be|will\s+be)|answer\s*[:=]|####|\\boxed\{"
    # 'A: 18' on a line of its own ends the GPT-3 solutions released with GSM8K.
    r"|(?m:^)[ \t]*(?-i:A)[ \t]*:)\s*:?",
    re.IGNORECASE,
)
_LEADING_NUMBER = re.compile(r"\s*(?:approximately\s+|about\s+)?\(?\s*(" + _NUMBER + r")", re.IGNORECASE)
_SENTENCE_END = re.compile(r"(?<!\b[a-jA-J])[.!?](?:\s|$)|\n")


def _after_last_commitment(text: str) -> Optional[str]:
    """The text after the last 'the answer is' ('answer:', '####', ...), or None."""
    last = None
    for last in _COMMIT.finditer(text):
        pass
    return text[last.end():] if last else None


def commitment_end(text: Optional[str]) -> Optional[int]:
    """Where the final answer starts: the end of the last 'the answer is' ('answer:', '####',
    ...) in a text, or None when it commits to nothing."""
    last = None
    for last in _COMMIT.finditer(text or ""):
        pass
    return last.end() if last else None


def answer_sentence_start(text: Optional[str]) -> Optional[int]:
    """Where the answer sentence starts: the start of the sentence (or line) holding the last
    'the answer is' ('answer:', '####', ...), so 'The answer is 9.' after the rationale's last
    step; None when the text commits to nothing. Everything from here on is the answer; what
    comes before it is the rationale."""
    last = None
    for last in _COMMIT.finditer(text or ""):
        pass
    if last is None:
        return None
    ends = [end.end() for end in _SENTENCE_END.finditer(text, 0, last.start())]
    return ends[-1] if ends else 0


def _last_commitment(text: str) -> Optional[str]:
    """The committed answer's sentence: after the last commitment, up to the sentence's end.

    A single letter before '.' ('answer is B.') does not end the sentence early.
    """
    rest = _after_last_commitment(text)
    if rest is None:
        return None
    end = _SENTENCE_END.search(rest)
    return rest[: end.start()] if end else rest


class UnsafeExpression(ValueError):
    pass


_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}


def safe_arithmetic(expression: str) -> Fraction:
    """Value of an arithmetic expression of numbers, + - * / and parentheses; nothing else.

    Parsed with `ast` and walked by hand: names, calls, attributes, powers and every other
    construct are refused, so a label such as "__import__('os')" can never run.
    """
    if len(expression) > 500:
        raise UnsafeExpression("expression longer than 500 characters")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as exc:
        raise UnsafeExpression(f"not arithmetic: {expression!r}") from exc

    def walk(node) -> Fraction:
        if isinstance(node, ast.Expression):
            return walk(node.body)
        if isinstance(node, ast.Constant) and type(node.value) in (int, float):
            return Fraction(str(node.value))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            value = walk(node.operand)
            return -value if isinstance(node.op, ast.USub) else value
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            left, right = walk(node.left), walk(node.right)
            if isinstance(node.op, ast.Div) and right == 0:
                raise UnsafeExpression(f"division by zero in {expression!r}")
            return _OPS[type(node.op)](left, right)
        raise UnsafeExpression(f"only numbers and + - * / ( ) are allowed: {expression!r}")

    return walk(tree)


def format_number(value: Fraction) -> str:
    """One spelling per value: integers bare, others as a decimal rounded to 6 places."""
    if value.denominator == 1:
        return str(value.numerator)
    if abs(value) < 10**15:
        text = f"{float(value):.6f}".rstrip("0").rstrip(".")
    else:  # beyond a float's range or precision: exact decimal arithmetic
        millionths = round(abs(value) * 10**6)
        text = ("-" if value < 0 else "") + f"{millionths // 10**6}.{millionths % 10**6:06d}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


# A plain decimal or a fraction of two, at most 400 characters (any float written out): Fraction itself would also take
# '1e999999999' (and spend minutes building the integer), '1_000', 'inf' and 'nan'.
_PLAIN_NUMBER = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:/[-+]?(?:\d+(?:\.\d*)?|\.\d+))?")


def normalise_number(raw: str) -> Optional[str]:
    """'$1,234.50' -> '1234.5'; '7.0' -> '7'; '3/4' -> '0.75'; '−3' -> '-3'; else None."""
    text = raw.strip().replace("−", "-").replace("$", "").replace(",", "").replace(" ", "")
    if not text or len(text) > 400 or not _PLAIN_NUMBER.fullmatch(text):
        return None
    try:
        if "/" in text:
            numerator, denominator = text.split("/", 1)
            if Fraction(denominator) == 0:
                return None
            return format_number(Fraction(numerator) / Fraction(denominator))
        return format_number(Fraction(text))
    except (ValueError, ZeroDivisionError):
        return None


_EXPRESSION = re.compile(r"\s*([\d\s.+\-−*/×÷()$,]+)")
# '**' too: a committed power is an expression the safe parser refuses, not the number before it.
_BINARY_OP = re.compile(r"[\d)]\s*(?:\*\*|[-+*/×÷−])\s*[(\d.]")


def _arithmetic_answer(committed: str) -> Optional[str]:
    """The committed answer when it is an expression ('(10 * 45)'), ready for the safe parser."""
    match = _EXPRESSION.match(committed)
    if not match:
        return None
    expression = match.group(1).strip()
    if not _BINARY_OP.search(expression):
        return None
    return expression.replace("−", "-").replace("×", "*").replace("÷", "/").replace("$", "").replace(",", "")


def extract_number(text: Optional[str]) -> Optional[str]:
    """The committed numeric answer of a chain of thought ('the answer is N', '#### N', ...).

    A committed arithmetic expression ('The answer is (12 - 2) - 7.', as PaLM writes on
    SVAMP) is computed by the safe parser; one it refuses gives None.
    """
    committed = _last_commitment(text) if text else None
    if committed is None:
        return None
    expression = _arithmetic_answer(committed)
    if expression is not None:
        try:
            return format_number(safe_arithmetic(expression))
        except UnsafeExpression:
            return None
    number = _LEADING_NUMBER.match(committed)
    return normalise_number(number.group(1)) if number else None


def gold_number(value) -> Optional[str]:
    """A gold number from a data set: 42, 42.0, '1,000', '3/4', or an equation label '( 84.0 / 2.0 )'."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        if value != value or value in (float("inf"), float("-inf")):  # NaN and infinities are no answer
            return None
        return format_number(Fraction(str(value)))
    text = str(value).strip()
    plain = normalise_number(text)
    if plain is not None:
        return plain
    if re.fullmatch(r"[\d\s.+\-*/()]+", text):
        try:
            return format_number(safe_arithmetic(text))
        except UnsafeExpression:
            return None
    return None


# -- multiple choice -----------------------------------------------------------------------

LETTERS = "abcdefghij"


def _letter_pattern(count: int) -> str:
    return f"[{LETTERS[:count]}{LETTERS[:count].upper()}]"


def extract_choice(text: Optional[str], choices: Sequence[str]) -> Optional[str]:
    """The chosen option as a lowercase letter, from '(b)', 'B.', 'answer is c', the option
    text, or both ('So the answer is (d) math problem'). None when absent or contradictory."""
    if not text or not choices:
        return None
    letters = _letter_pattern(len(choices))
    committed = _last_commitment(text)
    region = committed if committed is not None else text
    candidates = []
    # A letter in parentheses, or standing alone before '.', ')', ':' or the end.
    marked = re.findall(r"\((" + letters + r")\)|(?<![\w'])(" + letters + r")(?:[.):]|\s*$)", region)
    marked_letters = [(a or b).lower() for a, b in marked]
    if committed is not None:
        bare = re.match(r"\s*(?:option\s+|choice\s+)?\(?(" + letters + r")\)?(?![\w'])", committed, re.IGNORECASE)
        if bare:
            marked_letters = [bare.group(1).lower()] + marked_letters
    if marked_letters:
        candidates.append(marked_letters[0] if committed is not None else marked_letters[-1])
    by_text = _options_named(region, choices)
    if by_text:
        candidates.append(by_text)
    if not candidates:
        return None
    if len(set(candidates)) > 1:
        return None  # the letter and the text name different options: do not guess
    return candidates[0]


def _options_named(region: str, choices: Sequence[str]) -> Optional[str]:
    """The letter of the one option whose text the region names (longest match wins)."""
    lowered = region.lower()
    named = []
    for i, choice in enumerate(choices):
        option = str(choice).strip().lower()
        if option and re.search(r"(?<!\w)" + re.escape(option) + r"(?!\w)", lowered):
            named.append((len(option), LETTERS[i], option))
    if not named:
        return None
    named.sort(reverse=True)
    longest = named[0]
    # A shorter option inside the longest one ('horse' in 'horse food') is not a second answer.
    others = [n for n in named[1:] if n[2] not in longest[2]]
    return None if others else longest[1]


def gold_choice(value, choices: Sequence[str]) -> Optional[str]:
    """A gold multiple-choice answer given as a letter ('B', '(b)') or as the option text."""
    if value is None:
        return None
    text = str(value).strip()
    if re.fullmatch(r"\(?" + _letter_pattern(len(choices)) + r"\)?\.?", text):
        return text.strip("().").lower()
    for i, choice in enumerate(choices):
        if text.lower() == str(choice).strip().lower():
            return LETTERS[i]
    return None


# -- yes / no and labels -------------------------------------------------------------------

_YES = {"yes", "true", "correct", "y"}
_NO = {"no", "false", "incorrect", "n"}


def extract_yesno(text: Optional[str]) -> Optional[str]:
    """'yes' or 'no' from the committed answer (yes/no, true/false); None if absent or both."""
    if not text:
        return None
    committed = _last_commitment(text)
    region = committed if committed is not None else text
    words = re.findall(r"[a-z]+", region.lower())
    if committed is not None:
        # The first yes/no word after 'the answer is' is the answer ('no, because yes...' is no).
        for word in words:
            if word in _YES - {"y", "correct"} or word in _NO - {"n", "incorrect"}:
                return "yes" if word in _YES else "no"
        return None
    found = {("yes" if w in _YES else "no") for w in words if w in {"yes", "no", "true", "false"}}
    return found.pop() if len(found) == 1 else None


def gold_yesno(value) -> Optional[str]:
    if isinstance(value, bool):
        return "yes" if value else "no"
    text = str(value).strip().lower() if value is not None else ""
    if text in _YES:
        return "yes"
    if text in _NO:
        return "no"
    return None


def extract_label(text: Optional[str], labels: Sequence[str]) -> Optional[str]:
    """One label of a fixed set, from the committed answer, or the only label the text names."""
    if not text or not labels:
        return None
    committed = _last_commitment(text)
    region = (committed if committed is not None else text).lower()
    found = []
    for label in labels:
        for m in re.finditer(r"(?<!\w)" + re.escape(label.lower()) + r"(?!\w)", region):
            found.append((m.start(), label))
    if not found:
        return None
    if committed is not None:
        return min(found)[1]  # the first label after 'the answer is'
    names = {label for _, label in found}
    return names.pop() if len(names) == 1 else None


def gold_label(value, labels: Sequence[str]) -> Optional[str]:
    if value is None:
        return None
    text = str(value).strip().lower()
    for label in labels:
        if text == label.lower():
            return label
    return None


def as_options(value) -> list[str]:
    """Options as a plain list of strings, from a list, a NumPy array (a Parquet/Arrow cell) or null."""
    if value is None or isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        return []  # null, NaN or pandas' NA: no options
    return [str(v) for v in value]


def extract_answer(
    text: Optional[str], answer_type: str, choices: Optional[Sequence[str]] = None,
    labels: Optional[Sequence[str]] = None,
) -> Optional[str]:
    """Dispatch on answer_type; choices for 'choice', labels for 'label'."""
    if answer_type == "number":
        return extract_number(text)
    if answer_type == "choice":
        return extract_choice(text, choices or [])
    if answer_type == "yesno":
        return extract_yesno(text)
    if answer_type == "label":
        return extract_label(text, labels or [])
    raise ValueError(f"answer_type {answer_type!r} is not supported (expected one of {', '.join(ANSWER_TYPES)})")


_ANY_NUMBER = re.compile(_NUMBER)


def last_number(text: Optional[str]) -> Optional[str]:
    """The last number in a text: the fallback some evaluations use for rationales that never
    say 'the answer is'. A guess, so only used when data.answer_fallback asks for it."""
    found = _ANY_NUMBER.findall(text or "")
    for raw in reversed(found):
        value = normalise_number(raw)
        if value is not None:
            return value
    return None


def extract_for_row(text: Optional[str], answer_type: str, options, fallback: str = "none") -> Optional[str]:
    """extract_answer for a canonical row, whose `options` holds the choices or the label set.

    fallback 'last_number' answers a number question that commits to nothing with its last number.
    """
    opts = as_options(options)
    answer = extract_answer(text, answer_type, choices=opts, labels=opts)
    if answer is None and fallback == "last_number" and answer_type == "number":
        return last_number(text)
    return answer


def add_answers(outputs, rows, fallback: str = "none"):
    """Outputs (a DataFrame with id, text) plus `answer`, read with each row's answer type and options."""
    info = rows.set_index("id")[["answer_type", "options"]]
    out = outputs.copy()
    out["answer"] = [
        extract_for_row(text, info.at[row_id, "answer_type"], info.at[row_id, "options"], fallback)
        for row_id, text in zip(out["id"], out["text"])
    ]
    return out
