"""How a question becomes a prompt for the student and the TA, and a rationale a target.

One place, so training, sampling, scoring and evaluation see exactly the same text.
"""

from __future__ import annotations

from typing import Optional, Sequence

from .answers import LETTERS

# Each asks for the final answer in the form the answer type's extractor reads.
SYSTEM_PROMPTS = {
    "number": "Solve the problem step by step. End with 'The answer is N.'",
    "choice": "Think step by step, then end with 'So the answer is (x) option', where x is the option's letter.",
    "yesno": "Think step by step, then end with 'So the answer is yes.' or 'So the answer is no.'",
    "label": "Think step by step, then end with 'So the answer is' and one of the options.",
}


def system_prompt(configured: Optional[str], answer_type: str) -> str:
    return configured if configured is not None else SYSTEM_PROMPTS[answer_type]


def render_question(
    question: str, answer_type: str, options: Optional[Sequence[str]] = None, context: Optional[str] = None,
) -> str:
    """The text every model sees for a question: context, question, and the options if any.

    Options are lettered (a), (b), ... in the order of the data, the form the
    distilling-step-by-step PaLM rationales answer in ('So the answer is (d) math problem').
    """
    parts = [context.strip()] if context and context.strip() else []
    parts.append(question.strip())
    if answer_type == "choice" and options:
        parts.append("Answer Choices:\n" + "\n".join(f"({LETTERS[i]}) {o}" for i, o in enumerate(options)))
    elif answer_type == "label" and options:
        parts.append("Options: " + ", ".join(options))
    return "\n".join(parts)


def student_prompt(question: str) -> str:
    return f"Question: {question}\nAnswer:"


def student_target(rationale: str) -> str:
    # The leading space separates the target from 'Answer:' for word and BPE tokenizers alike.
    return " " + rationale.strip()


def teacher_messages(question: str, system_prompt: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": system_prompt}, {"role": "user", "content": question}]
