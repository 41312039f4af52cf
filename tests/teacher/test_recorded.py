"""The recorded teacher: importers for the common shapes, matching, and budget charging."""

import json

import pandas as pd
import pytest

from tadistill.config import RecordedTeacherConfig
from tadistill.corpus.canonical import stable_id
from tadistill.corpus.files import CorpusError
from tadistill.teacher.budget import Budget
from tadistill.teacher.recorded import RecordedTeacher, import_records


def _rows(tmp_path, n=4):
    """Corpus rows as read from data.jsonl (rows 1..n)."""
    source = str((tmp_path / "data.jsonl").resolve())
    (tmp_path / "data.jsonl").write_text("")
    stems = [f"Tom has {i} pens and buys 2 more. How many pens?" for i in range(n)]
    return pd.DataFrame({
        "id": [f"r{i}" for i in range(n)], "split": "train", "stem": stems,
        "question": stems, "source_file": source, "row": range(1, n + 1),
        "options": None, "gold": [str(i + 2) for i in range(n)], "answer_type": "number",
    })


def _config(**values) -> RecordedTeacherConfig:
    return RecordedTeacherConfig.model_validate(values)


def test_aligned_completions_are_cut_and_continue_across_files(tmp_path):
    rows = _rows(tmp_path, 4)
    (tmp_path / "cot_0.json").write_text(json.dumps([
        "Tom had 0 pens. The answer is 2.\n\nQ: Another few-shot question?\nA: The answer is 9.",
        "The answer is 3.",
    ]))
    (tmp_path / "cot_1.json").write_text(json.dumps(["The answer is 4.", "The answer is 5.", "Beyond the data."]))
    config = _config(files=["cot_*.json"], aligned_to="data.jsonl")
    records, unmatched = import_records(config, str(tmp_path), rows)
    assert dict(zip(records["id"], records["text"])) == {
        "r0": "Tom had 0 pens. The answer is 2.", "r1": "The answer is 3.", "r2": "The answer is 4.", "r3": "The answer is 5."}
    assert list(unmatched["reason"]) == ["no kept corpus row at data.jsonl row 5 (past its end, or rejected)"]


def test_records_match_by_id_with_several_rationales_per_question(tmp_path):
    rows = _rows(tmp_path, 3)
    lines = [
        {"qid": "r0", "outputs": ["The answer is 2.", "The answer is 7."]},
        {"qid": "r1", "outputs": "The answer is 3."},
        {"qid": "r1", "outputs": "Again: the answer is 3."},
        {"qid": "nope", "outputs": "The answer is 1."},
        {"qid": "r2", "outputs": []},
    ]
    (tmp_path / "out.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    config = _config(files=["out.jsonl"], fields={"id": "qid", "rationale": "outputs"})
    records, unmatched = import_records(config, str(tmp_path), rows)
    assert records.groupby("id")["k"].apply(list).to_dict() == {"r0": [0, 1], "r1": [0, 1]}
    assert sorted(unmatched["reason"]) == ["id 'nope' is not in the corpus", "no output text"]
    first_only, _ = import_records(config.model_copy(update={"rationales": "first"}), str(tmp_path), rows)
    assert list(first_only["id"]) == ["r0", "r1"]


def test_records_match_by_question_text_despite_case_spacing_and_quotes(tmp_path):
    rows = _rows(tmp_path, 2)
    rows.loc[1, "stem"] = rows.loc[1, "question"] = rows.loc[0, "stem"]  # two rows with one question
    rows.loc[1, "id"] = "twin"
    (tmp_path / "out.json").write_text(json.dumps([
        {"question": "  TOM has 0 pens and buys 2 more.   How many pens? ", "rationale": "The answer is 2."},
        {"question": "Something else entirely?", "rationale": "The answer is 1."},
    ]))
    records, unmatched = import_records(_config(files=["out.json"]), str(tmp_path), rows.iloc[:1])
    assert list(records["id"]) == ["r0"] and list(unmatched["reason"]) == ["question text matches no corpus row"]
    _, ambiguous = import_records(_config(files=["out.json"]), str(tmp_path), rows)
    assert "question text matches 2 corpus rows" in set(ambiguous["reason"])


KOJIMA_LOG = """*****************************
Namespace(dataset='commonsensqa', method='zero_shot_cot')
*************************
1st data
1_th_sampling
Q: What are candles good for eliminating? Answer Choices: (A) shelf (B) board (C) church (D) table (E) dark
A: Let's think step by step. Candles give light.

So they eliminate the dark.
Therefore, among A through E, the answer is E.
pred_before : E.
pred_after : E
pred_list : ['E']
pred_mode : E
GT : E
*************************
"""


def test_kojima_log_blocks_match_the_question_without_its_choices(tmp_path):
    options = ["shelf", "board", "church", "table", "dark"]
    stem = "What are candles good for eliminating?"
    rows = pd.DataFrame({"id": [stable_id(stem, options)], "split": "dev", "stem": [stem],
                         "question": [stem + "\nAnswer Choices:\n(a) shelf"], "source_file": "x", "row": [1],
                         "options": [options], "gold": ["e"], "answer_type": "choice"})
    (tmp_path / "csqa.log").write_text(KOJIMA_LOG)
    records, unmatched = import_records(_config(files=["csqa.log"]), str(tmp_path), rows)
    assert len(unmatched) == 0 and len(records) == 1
    text = records["text"].iloc[0]
    assert text.startswith("Let's think step by step.") and text.endswith("the answer is E.")
    assert "\n\nSo they eliminate" in text  # logs are not cut at blank lines


def test_aligned_files_need_to_know_their_data_file(tmp_path):
    rows = _rows(tmp_path, 1)
    (tmp_path / "cot.json").write_text(json.dumps(["The answer is 2."]))
    with pytest.raises(CorpusError, match="set teacher.recorded.aligned_to"):
        import_records(_config(files=["cot.json"]), str(tmp_path), rows)
    with pytest.raises(CorpusError, match="no pattern of teacher.recorded.aligned_to matches"):
        import_records(_config(files=["cot.json"], aligned_to={"other_*.json": "data.jsonl"}), str(tmp_path), rows)


def test_buying_from_the_record_charges_one_request_per_question(tmp_path):
    records = pd.DataFrame({"id": ["a", "a", "b", "c"], "k": [0, 1, 0, 0], "text": ["x", "y", "z", "w"],
                            "record_file": "f", "record_row": [1, 1, 2, 3]})
    budget = Budget(2)
    bought, report = RecordedTeacher(records).buy(pd.DataFrame({"id": ["a", "b", "c"]}), budget)
    assert list(zip(bought["id"], bought["k"])) == [("a", 0), ("a", 1), ("b", 0)]
    assert budget.used == 2 and report.bought == 2 and report.not_bought_budget == 1
    with pytest.raises(CorpusError, match="no recorded teacher output"):
        RecordedTeacher(records).buy(pd.DataFrame({"id": ["zzz"]}), Budget(5))


@pytest.mark.parametrize("name, indent", [("released.jsonl", None), ("released.json", 2), ("released.jsonl", 2)])
def test_a_file_of_records_keyed_by_index_with_a_separate_answer_field(tmp_path, name, indent):
    """As rationale files are often released: one JSON object, keyed by index, whatever the extension."""
    rows = _rows(tmp_path, 3)
    released = {
        "0": {"question": rows.stem[0], "predicted_rationale": "Tom had 0 pens and buys 2.", "predicted_label": "2"},
        "1": {"question": rows.stem[1], "predicted_rationale": "1 + 2 = 3. The answer is 3.", "predicted_label": "9"},
        "2": {"question": rows.stem[2], "predicted_rationale": "2 and 2 more.", "predicted_label": ""},
    }
    (tmp_path / name).write_text(json.dumps(released, indent=indent))
    config = _config(files=[name], fields={"rationale": "predicted_rationale", "answer": "predicted_label"})
    records, unmatched = import_records(config, str(tmp_path), rows)
    assert unmatched.empty and list(records["record_row"]) == [1, 2, 3]
    texts = dict(zip(records["id"], records["text"]))
    assert texts["r0"] == "Tom had 0 pens and buys 2. The answer is 2."  # the separate answer, stated
    assert texts["r1"] == "1 + 2 = 3. The answer is 3."  # a rationale stating its own answer keeps it
    assert texts["r2"] == "2 and 2 more."  # no answer anywhere: left as it is


def test_the_row_limit_applies_to_each_record_of_a_keyed_file(tmp_path):
    rows = _rows(tmp_path, 2)
    released = {"0": {"question": rows.stem[0], "rationale": "The answer is 2."},
                "1": {"question": rows.stem[1], "rationale": "x" * 500 + " The answer is 3."}}
    (tmp_path / "out.jsonl").write_text(json.dumps(released))
    records, unmatched = import_records(_config(files=["out.jsonl"]), str(tmp_path), rows, max_row_bytes=300)
    assert list(records["id"]) == ["r0"]
    assert unmatched["reason"].str.contains("above data.max_row_bytes=300").tolist() == [True]
