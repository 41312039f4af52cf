"""Every preset reads its data set's official format through Ray Data into canonical rows."""

import pytest

from tadistill.config import DataConfig
from tadistill.corpus import read_corpus

from . import fixtures as fx


def _read(tmp_path, preset, name, records, as_array=False):
    path = tmp_path / name
    (fx.write_json if as_array else fx.write_jsonl)(path, records)
    config = DataConfig.model_validate({
        "source": "files", "preset": preset, "files": {"train": [str(path)]}, "test_share": 0.01,
    })
    corpus = read_corpus(config)
    assert corpus.counts["train"]["rows_in"] == len(records)
    return corpus.rows.set_index("id")


def test_strategyqa_official_json_array(ray_local, tmp_path):
    rows = _read(tmp_path, "strategyqa", "strategyqa_train.json", fx.STRATEGYQA, as_array=True)
    assert rows.loc["9b7e2ad7b4", "gold"] == "yes" and rows.loc["2c1c0b4e11", "gold"] == "no"
    assert set(rows["answer_type"]) == {"yesno"}


def test_arc_official_jsonl_with_numeric_option_labels(ray_local, tmp_path):
    rows = _read(tmp_path, "arc", "ARC-Challenge-Train.jsonl", fx.ARC)
    assert rows.loc["Mercury_SC_415702", "gold"] == "a"
    assert rows.loc["MCAS_2000_4_6", "gold"] == "a"  # answerKey '1' is the first option
    assert list(rows.loc["Mercury_7_3", "options"]) == ["oxygen", "iron", "water"]
    assert "(a) cellular telephone\n(b) television" in rows.loc["MCAS_2000_4_6", "question"]


def test_openbookqa_official_jsonl(ray_local, tmp_path):
    rows = _read(tmp_path, "openbookqa", "train.jsonl", fx.OPENBOOKQA)
    assert rows.loc["7-980", "gold"] == "d"
    assert "source of energy" not in rows.loc["7-980", "question"]  # the fact is not shown to the models


@pytest.mark.parametrize("records", [fx.ANLI, fx.ANLI_INDEXED], ids=["official", "indexed"])
def test_anli_in_each_release_shape(ray_local, tmp_path, records):
    rows = _read(tmp_path, "anli", "train.jsonl", records)
    assert rows["gold"].to_dict() == {"0fd0abfb": "entailment", "7ed72ff4": "neutral", "5d2930a3": "contradiction"}
    question = rows.loc["0fd0abfb", "question"]
    assert question.startswith("Premise: The Parma") and "Hypothesis: The trolleybus" in question
    assert question.endswith("Options: entailment, neutral, contradiction")


@pytest.mark.parametrize("preset, records, row_id, gold", [
    ("csqa", fx.CSQA_HUB, "075e483d21c29a511267ef62bedc0461", "a"),
    ("arc", fx.ARC_HUB, "Mercury_SC_415702", "a"),
    ("openbookqa", fx.OPENBOOKQA_HUB, "7-980", "d"),
])
def test_multiple_choice_presets_read_the_hub_shape_too(ray_local, tmp_path, preset, records, row_id, gold):
    rows = _read(tmp_path, preset, "hub.jsonl", records)
    assert rows.loc[row_id, "gold"] == gold and len(rows.loc[row_id, "options"]) == len(records[0]["choices"]["text"])
    assert rows.loc[row_id, "options"][0] == records[0]["choices"]["text"][0]


@pytest.mark.parametrize("preset, records, gold", [
    ("csqa", fx.CSQA, "a"),
    ("csqa_cose", fx.CSQA_COSE, "d"),
    ("csqa_mcc_kd", fx.CSQA_MCC_KD, "c"),
])
def test_commonsenseqa_in_each_release_shape(ray_local, tmp_path, preset, records, gold):
    rows = _read(tmp_path, preset, f"{preset}.jsonl", records)
    row = rows.iloc[0]
    assert row["gold"] == gold and len(row["options"]) == 5 and row["answer_type"] == "choice"
    assert "Answer Choices" not in row["stem"]


@pytest.mark.parametrize("preset, records, gold", [
    ("gsm8k", fx.GSM8K, "72"),
    ("svamp", fx.SVAMP_ORIGINAL, "51"),
    ("svamp_dss", fx.SVAMP_DSS, "42"),  # the equation label is computed by the safe parser
])
def test_math_word_problems(ray_local, tmp_path, preset, records, gold):
    rows = _read(tmp_path, preset, f"{preset}.json", records, as_array=preset == "svamp")
    assert rows.iloc[0]["gold"] == gold and rows.iloc[0]["answer_type"] == "number"


def test_svamp_original_joins_body_and_question_and_keeps_its_id(ray_local, tmp_path):
    rows = _read(tmp_path, "svamp", "SVAMP.json", fx.SVAMP_ORIGINAL, as_array=True)
    assert rows.loc["chal-1", "question"] == (
        "Each pack of dvds costs 76 dollars. If there is a discount of 25 dollars on each pack "
        "How much do you have to pay to buy each pack?")
