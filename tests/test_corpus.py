"""Reading the corpus with Ray Data: canonical rows, splits, rejects that are counted."""

import json

from tadistill.config import DataConfig
from tadistill.corpus import CANONICAL_COLUMNS, read_corpus, write_synthetic_source


def test_synthetic_corpus_reads_into_canonical_rows(ray_local, tmp_path):
    config = DataConfig.model_validate({"synthetic": {"pool_size": 60, "test_size": 20, "seed": 5}})
    rows, rejects = read_corpus(write_synthetic_source(config, tmp_path), num_blocks=3)
    assert list(rows.columns) == CANONICAL_COLUMNS
    counts = rows["split"].value_counts()
    # Any question drawn for both splits stays in test and is rejected from the pool, counted.
    assert counts["test"] == 20 and counts["pool"] + len(rejects) == 60
    assert rows["id"].is_unique
    assert rows["gold"].str.fullmatch(r"\d+").all()


def test_bad_rows_are_rejected_with_file_row_and_reason(ray_local, tmp_path):
    good = {"id": "a", "question": "Tom has 3 pens. Tom buys 2 more. How many pens does Tom have now?", "answer": 5, "split": "test"}
    lines = [
        good,
        {**good, "id": "b", "question": "   "},
        {**good, "id": "c", "answer": None},
        {**good, "question": "duplicate of a"},
        {**good, "id": "d", "split": "pool", "answer": None},  # an unlabelled pool row is fine
    ]
    path = tmp_path / "data.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    rows, rejects = read_corpus([path], num_blocks=1)
    assert sorted(rows["id"]) == ["a", "d"]
    assert len(rows) + len(rejects) == len(lines)
    reasons = dict(zip(rejects["id"], rejects["reason"]))
    assert reasons == {"b": "empty question", "c": "test row without a gold answer", "a": "duplicate id"}
    assert set(rejects["source_file"]) == {"data.jsonl"}
