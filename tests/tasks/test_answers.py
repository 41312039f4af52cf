import pytest

from tadistill.tasks.answers import extract_answer, extract_number, normalise_number


@pytest.mark.parametrize("text,expected", [
    ("3 + 4 = 7. The answer is 7.", "7"),
    ("The answer is 7 .", "7"),
    ("So the answer is -3.", "-3"),
    ("The answer is $1,234.50.", "1234.5"),
    ("#### 72", "72"),
    ("the answer is 5. Wait, the answer is 6.", "6"),
    ("The answer is: 12", "12"),
    ("no number here", None),
    ("", None),
    (None, None),
    ("3 + 4 = 7.", None),
])
def test_extract_number(text, expected):
    assert extract_number(text) == expected


def test_normalise_number():
    assert normalise_number("7.0") == "7"
    assert normalise_number("-0") == "0"
    assert normalise_number("1,000") == "1000"


def test_unknown_answer_type_is_refused():
    with pytest.raises(ValueError, match="answer_type"):
        extract_answer("x", "essay")
