"""Tokens as the simulated teacher counts them: shared by the teacher server that bills them and
the recorded teacher that estimates what a record would have cost."""


def word_tokens(text: str) -> int:
    """Tokens estimated as words and sentence marks (what the simulated teacher counts): a
    recorded output carries no token counts of its own."""
    return len(str(text or "").replace(".", " .").replace("?", " ?").split())
