"""Answer extraction: at least 50 hand-written tricky strings per answer type."""

import pytest

from tadistill.tasks.answers import (
    UnsafeExpression, extract_answer, extract_choice, extract_label, extract_number, extract_yesno,
    gold_choice, gold_label, gold_number, gold_yesno, normalise_number, safe_arithmetic,
)

NUMBER_CASES = [
    ("3 + 4 = 7. The answer is 7.", "7"),
    ("The answer is 7 .", "7"),
    ("So the answer is -3.", "-3"),
    ("The answer is −3.", "-3"),
    ("The answer is $1,234.50.", "1234.5"),
    ("The answer is $ 12.", "12"),
    ("#### 72", "72"),
    ("She had 72 clips.\n#### 72", "72"),
    ("#### 1,000", "1000"),
    ("the answer is 5. Wait, the answer is 6.", "6"),
    ("The answer is: 12", "12"),
    ("The final answer is 0.", "0"),
    ("The answer is 3/4.", "0.75"),
    ("The answer is 1/3", "0.333333"),
    ("The answer is 42 apples.", "42"),
    ("The answer is 42 dollars per hour.", "42"),
    ("The answer is 18 years old.", "18"),
    ("The answer is 7.50.", "7.5"),
    ("The answer is 7.0", "7"),
    ("The answer is .5", "0.5"),
    ("The answer is 100%.", "100"),
    ("So the answer is 2,500 meters.", "2500"),
    ("answer: 15", "15"),
    ("Answer = 9", "9"),
    ("The answer would be 11.", "11"),
    ("The answer is approximately 3.14.", "3.14"),
    ("The answer is (8).", "8"),
    ("\\boxed{64}", "64"),
    ("He pays 5 * 3 = 15 dollars. The answer is 15.\n\nQ: Next question with 99 apples", "15"),
    ("THE ANSWER IS 23", "23"),
    ("The answer is -0.", "0"),
    ("The answer is 0.000", "0"),
    ("The answer is 1,234,567.", "1234567"),
    ("The answer is 12.345678", "12.345678"),
    ("The answer is 10 / 4", "2.5"),
    ("The total is 36 cookies.", None),
    ("3 + 4 = 7.", None),
    ("no number here", None),
    ("The answer is unknown.", None),
    ("The answer is x.", None),
    ("", None),
    (None, None),
    ("I cannot solve this problem.", None),
    ("Answer: none of these", None),
    ("The answer is 5/0.", None),
    ("The answer is forty-two.", None),
    ("The question has 12 parts, and 3 more.", None),
    ("It is 2 + 2 = 4", None),
    ("The answer is\n7", "7"),
    ("The answer is -12.5 degrees.", "-12.5"),
    ("The answer is $0.99.", "0.99"),
    ("Answer: -1/2", "-0.5"),
    ("10 * 45 is 450. The answer is (10 * 45).", "450"),
    ("The answer is (10 - (3 + 6)).", "1"),
    ("The answer is ((14 - 2) - 10).", "2"),
    ("The answer is (12 - 2) - 7.", "3"),
    ("The answer is (45 - (-1)).", "46"),
    ("The answer is 3 × 4.", "12"),
    ("The answer is (8 / (4 - 4)).", None),
    ("The answer is 2 + 2 apples.", "4"),
    ("The answer is 6. 6 + 2 = 8. The", "6"),
    # GPT-3's GSM8K solutions end with 'A: N' on a line of its own; a lowercase 'a:' is no answer.
    ("She makes 9 * 2 = $18 every day\nA: 18", "18"),
    ("A: Let's think step by step. 3 + 4 = 7. The answer is 7.", "7"),
    ("Options\na: 7", None),
    # Zero-shot-CoT's answer trigger.
    ("So 40 points.\nTherefore, the answer (arabic numerals) is 40.", "40"),
]


@pytest.mark.parametrize("text,expected", NUMBER_CASES)
def test_extract_number(text, expected):
    assert extract_number(text) == expected



@pytest.mark.parametrize("value,expected", [
    (42, "42"), (42.0, "42"), ("1,000", "1000"), ("3/4", "0.75"), ("( 84.0 / 2.0 )", "42"),
    ("( ( 3.0 + 5.0 ) * 2.0 )", "16"), ("( 10.0 - 12.0 )", "-2"), ("( 1.0 / 3.0 )", "0.333333"),
    (float("nan"), None), (None, None), ("abc", None), (True, None), ("( 1.0 / 0.0 )", None),
])
def test_gold_number(value, expected):
    assert gold_number(value) == expected


@pytest.mark.parametrize("expression", [
    "__import__('os').system('true')", "2 ** 100000", "open('x')", "(lambda: 1)()", "a + 1", "[1, 2]", "1 if 1 else 2",
])
def test_safe_arithmetic_refuses_anything_but_arithmetic(expression):
    with pytest.raises(UnsafeExpression):
        safe_arithmetic(expression)


def test_normalise_number():
    assert normalise_number("7.0") == "7"
    assert normalise_number("-0") == "0"
    assert normalise_number("1,000") == "1000"
    assert normalise_number("x") is None


CSQA = ["ignore", "enforce", "authoritarian", "yell at", "avoid"]
ANIMALS = ["horse", "hunger", "food", "exaggeration", "horse food"]
CHOICE_CASES = [
    ("So the answer is (d) math problem.", ["a", "b", "c", "math problem", "e"], "d"),
    ("So the answer is (b).", CSQA, "b"),
    ("The answer is B.", CSQA, "b"),
    ("The answer is b", CSQA, "b"),
    ("answer is c", CSQA, "c"),
    ("Answer: (e)", CSQA, "e"),
    ("The answer is (A) ignore.", CSQA, "a"),
    ("The answer is ignore.", CSQA, "a"),
    ("So the answer is yell at.", CSQA, "d"),
    ("The answer is avoid", CSQA, "e"),
    ("The answer is (c) authoritarian", CSQA, "c"),
    ("The answer is (c) ignore", CSQA, None),  # letter and text disagree
    ("The answer is horse food.", ANIMALS, "e"),
    ("The answer is horse.", ANIMALS, "a"),
    ("So the answer is (d) exaggeration.\n\nQ: Another question (a) x (b) y", ANIMALS, "d"),
    ("Of the above choices, only exaggeration fits. So the answer is (d).", ANIMALS, "d"),
    ("It must be (b).", ANIMALS, "b"),
    ("I think it is hunger.", ANIMALS, "b"),
    ("Food or hunger, hard to say.", ANIMALS, None),
    ("No idea.", ANIMALS, None),
    ("", ANIMALS, None),
    (None, ANIMALS, None),
    ("The answer is (f).", ANIMALS, None),
    ("The answer is option C.", ANIMALS, "c"),
    ("The answer is choice (a).", ANIMALS, "a"),
    ("The answer is: (E) horse food", ANIMALS, "e"),
    ("the answer is (d)", ANIMALS, "d"),
    ("THE ANSWER IS (D)", ANIMALS, "d"),
    ("The answer is (a), not (b).", ANIMALS, "a"),
    ("First I thought (b), but the answer is (c).", ANIMALS, "c"),
    ("The answer is exaggeration because people say it.", ANIMALS, "d"),
    ("A horse is big. The answer is (b) hunger.", ANIMALS, "b"),
    ("The answer is a.", ANIMALS, "a"),
    ("The answer is A", ANIMALS, "a"),
    ("The answer is (a)horse", ANIMALS, "a"),
    ("Answer: d", ANIMALS, "d"),
    ("The answer is d) exaggeration", ANIMALS, "d"),
    ("The answer is something else entirely.", ANIMALS, None),
    ("So the answer is food.", ANIMALS, "c"),
    ("The best answer is hunger.", ANIMALS, "b"),
    ("Hence the answer is horse food, since horses eat.", ANIMALS, "e"),
    ("The answer is (B) - hunger", ANIMALS, "b"),
    ("(c)", ANIMALS, "c"),
    ("c.", ANIMALS, "c"),
    ("The answer is 'food'.", ANIMALS, "c"),
    ("The answer is \"hunger\".", ANIMALS, "b"),
    ("The answer is (C) food.", ANIMALS, "c"),
    ("The answer is (C) horse food.", ANIMALS, None),
    ("Answer choices (a) to (e); the answer is (e).", ANIMALS, "e"),
    ("The answer is yell at them.", CSQA, "d"),
    ("The answer is enforce.", CSQA, "b"),
    ("A person who yells is authoritarian. So the answer is (c).", CSQA, "c"),
]


@pytest.mark.parametrize("text,choices,expected", CHOICE_CASES)
def test_extract_choice(text, choices, expected):
    assert extract_choice(text, choices) == expected



def test_gold_choice():
    assert gold_choice("B", ANIMALS) == "b"
    assert gold_choice("(d)", ANIMALS) == "d"
    assert gold_choice("horse food", ANIMALS) == "e"
    assert gold_choice("zebra", ANIMALS) is None
    assert gold_choice("f", ANIMALS) is None


YESNO_CASES = [
    ("So the answer is yes.", "yes"),
    ("So the answer is no.", "no"),
    ("The answer is Yes", "yes"),
    ("The answer is NO.", "no"),
    ("The answer is true.", "yes"),
    ("The answer is False.", "no"),
    ("Answer: yes", "yes"),
    ("Answer: no", "no"),
    ("The answer is no, because the Nile is longer.", "no"),
    ("The answer is yes: both are mammals.", "yes"),
    ("Yes or no? The answer is no.", "no"),
    ("First I said yes. But the answer is no.", "no"),
    ("The answer is: true", "yes"),
    ("Yes.", "yes"),
    ("No.", "no"),
    ("True", "yes"),
    ("false", "no"),
    ("Yes, yes, definitely yes.", "yes"),
    ("Yes and no.", None),
    ("maybe", None),
    ("", None),
    (None, None),
    ("The answer is unclear.", None),
    ("The answer is maybe.", None),
    ("I cannot tell.", None),
    ("The answer is (yes).", "yes"),
    ("The answer is \"no\".", "no"),
    ("The answer is 'yes'.", "yes"),
    ("Thus, the answer is no. Q: Is it true that yes", "no"),
    ("The answer is No, it is not.", "no"),
    ("The answer is YES!", "yes"),
    ("Nobody knows. The answer is yes.", "yes"),
    ("Is a whale a fish? No, it is a mammal.", "no"),
    ("Could a cat fly? The answer is no.\n\nQ: Could a bird fly? A: yes", "no"),
    ("Answer: False.", "no"),
    ("Answer: True.", "yes"),
    ("Notably, the answer is yes.", "yes"),
    ("Yesterday it rained. The answer is no.", "no"),
    ("The answer is no; yes would be wrong.", "no"),
    ("Knowing this, yes.", "yes"),
    ("Not true.", "yes"),  # only 'true' is a yes/no word here; a known limit: negation is not read
    ("It is false that cats bark.", "no"),
    ("The answer is yes (with caveats).", "yes"),
    ("the answer is no", "no"),
    ("So the final answer is yes.", "yes"),
    ("The answer would be no.", "no"),
    ("The answer will be yes.", "yes"),
    ("Answer = no", "no"),
    ("The answer is neither.", None),
    ("Both yes and no are possible.", None),
    ("Yes; true.", "yes"),
    ("No: false.", "no"),
]


@pytest.mark.parametrize("text,expected", YESNO_CASES)
def test_extract_yesno(text, expected):
    assert extract_yesno(text) == expected



def test_gold_yesno():
    assert gold_yesno(True) == "yes" and gold_yesno(False) == "no"
    assert gold_yesno("Yes") == "yes" and gold_yesno("false") == "no"
    assert gold_yesno("maybe") is None and gold_yesno(None) is None


NLI = ["entailment", "neutral", "contradiction"]
LABEL_CASES = [
    ("The answer is entailment.", "entailment"),
    ("The answer is neutral.", "neutral"),
    ("The answer is contradiction.", "contradiction"),
    ("The answer is Entailment", "entailment"),
    ("The answer is CONTRADICTION.", "contradiction"),
    ("Answer: neutral", "neutral"),
    ("So the answer is contradiction, not entailment.", "contradiction"),
    ("It is not entailment. The answer is neutral.", "neutral"),
    ("The hypothesis follows. Entailment.", "entailment"),
    ("neutral", "neutral"),
    ("Contradiction!", "contradiction"),
    ("entailment or contradiction?", None),
    ("I am not sure.", None),
    ("", None),
    (None, None),
    ("The answer is unknown.", None),
    ("The answer is entailed.", None),
    ("The answer is neutrality.", None),
    ("The answer is 'neutral'.", "neutral"),
    ("The answer is \"entailment\".", "entailment"),
    ("The answer is (contradiction).", "contradiction"),
    ("The answer is: entailment", "entailment"),
    ("Premise says X. Hypothesis says not X. So the answer is contradiction.", "contradiction"),
    ("The answer is neutral.\n\nQ: next pair. The answer is entailment.", "entailment"),
    ("This is a contradiction.", "contradiction"),
    ("There is no contradiction here, it is entailment.", None),
    ("The relation: neutral.", "neutral"),
    ("the answer is entailment", "entailment"),
    ("The final answer is neutral.", "neutral"),
    ("The answer would be contradiction.", "contradiction"),
    ("Answer = entailment", "entailment"),
    ("The answer is neutral because nothing is said.", "neutral"),
    ("Entailment. Entailment. Entailment.", "entailment"),
    ("Neutral, clearly.", "neutral"),
    ("The answer is contradiction; entailment is impossible.", "contradiction"),
    ("non-entailment", "entailment"),  # word boundary on '-': a known limit, documented here
    ("The answer is contradictory.", None),
    ("The answer is neutral-ish.", "neutral"),
    ("Label: contradiction", "contradiction"),
    ("Entails.", None),
    ("The answer is (a) entailment", "entailment"),
    ("So, the answer is: Neutral.", "neutral"),
    ("The answer is entailment!", "entailment"),
    ("The answer is\nneutral", "neutral"),
    ("Answer: Contradiction.", "contradiction"),
    ("We pick neutral.", "neutral"),
    ("It's entailment.", "entailment"),
    ("The answer is none of them.", None),
    ("It could be neutral or contradiction.", None),
    ("The answer is ENTAILMENT.", "entailment"),
    ("Therefore the answer is contradiction.", "contradiction"),
]


@pytest.mark.parametrize("text,expected", LABEL_CASES)
def test_extract_label(text, expected):
    assert extract_label(text, NLI) == expected



def test_gold_label():
    assert gold_label("Entailment", NLI) == "entailment"
    assert gold_label("maybe", NLI) is None


def test_dispatch_and_unknown_type():
    assert extract_answer("The answer is 3.", "number") == "3"
    assert extract_answer("The answer is (b).", "choice", choices=ANIMALS) == "b"
    assert extract_answer("The answer is yes.", "yesno") == "yes"
    assert extract_answer("The answer is neutral.", "label", labels=NLI) == "neutral"
    with pytest.raises(ValueError, match="answer_type"):
        extract_answer("x", "essay")


@pytest.mark.parametrize("cases", [NUMBER_CASES, CHOICE_CASES, YESNO_CASES, LABEL_CASES],
                         ids=["number", "choice", "yesno", "label"])
def test_at_least_50_hand_written_strings_per_type(cases):
    assert len(cases) >= 50


def test_last_number_fallback_is_used_only_when_asked_and_only_for_numbers():
    from tadistill.tasks.answers import extract_for_row, last_number

    text = "Danny has 100 - 68 = 32 more wrappers than bottle caps."
    assert extract_for_row(text, "number", None) is None
    assert extract_for_row(text, "number", None, "last_number") == "32"
    assert extract_for_row("The answer is 5. Then 9 more.", "number", None, "last_number") == "5"
    assert extract_for_row("Maybe 3", "choice", ["x", "y", "z"], "last_number") is None
    assert last_number("costs $1,250.50 in total") == "1250.5" and last_number("no digits") is None


@pytest.mark.parametrize("text, answer", [
    (" 10 - 8 = 2. 2 + 7 = 9. The answer is 9.", "The answer is 9."),  # the synthetic teacher's
    ("3.5 + 2 = 5.5. So the answer is 5.5.", "So the answer is 5.5."),  # a decimal point ends no sentence
    ("She had 72 clips.\n#### 72", "#### 72"),  # GSM8K: the answer's own line
    ("Two steps.\nA: 18", "A: 18"),
    ("Pick (b). So the answer is (c) dog.", "So the answer is (c) dog."),
    ("the answer is 5. Wait, the answer is 6.", "Wait, the answer is 6."),  # the last commitment
    ("The answer is 9.", "The answer is 9."),  # all answer
])
def test_the_answer_sentence_runs_from_the_last_commitments_sentence_to_the_end(text, answer):
    from tadistill.tasks.answers import answer_sentence_start

    assert text[answer_sentence_start(text):] == answer


def test_a_text_that_commits_to_nothing_has_no_answer_sentence():
    from tadistill.tasks.answers import answer_sentence_start

    assert answer_sentence_start("2 + 7 = 9. So 9 pens.") is None
    assert answer_sentence_start("") is None and answer_sentence_start(None) is None
