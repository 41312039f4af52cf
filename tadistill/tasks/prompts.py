"""How a question becomes a prompt for the student and the TA, and a rationale a target.

One place, so training, sampling, scoring and evaluation see exactly the same text.
"""

from __future__ import annotations


def student_prompt(question: str) -> str:
    return f"Question: {question}\nAnswer:"


def student_target(rationale: str) -> str:
    # The leading space separates the target from 'Answer:' for word and BPE tokenizers alike.
    return " " + rationale.strip()


def teacher_messages(question: str, system_prompt: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": system_prompt}, {"role": "user", "content": question}]
