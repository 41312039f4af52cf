"""Reading a corpus: the generic field map, stable ids, rejects that are counted and stop a run."""

import json

import pandas as pd
import pytest

from tadistill.config import ConfigError, DataConfig, load_config
from tadistill.corpus import CANONICAL_COLUMNS, CorpusError, read_corpus, write_synthetic_source

from .fixtures import write_jsonl

QUESTIONS = [
    {"uid": f"u{i}", "body": f"Tom has {i} pens and buys 2 more. How many pens does Tom have?", "gold": {"value": str(i + 2)}}
    for i in range(20)
]
GENERIC = {"question": "body", "answer": "gold.value", "id": "uid"}


def _config(files: dict, **extra) -> DataConfig:
    return DataConfig.model_validate({"source": "files", "files": files, "fields": GENERIC, "answer_type": "number", **extra})


def test_the_generic_reader_reads_every_format_alike(ray_local, tmp_path):
    write_jsonl(tmp_path / "q.jsonl", QUESTIONS)
    (tmp_path / "q.json").write_text(json.dumps(QUESTIONS))
    flat = [{"uid": q["uid"], "body": q["body"], "answer": q["gold"]["value"]} for q in QUESTIONS]
    pd.DataFrame(flat).to_parquet(tmp_path / "q.parquet")
    pd.DataFrame(flat).to_csv(tmp_path / "q.csv", index=False)
    flat_fields = {"question": "body", "answer": "answer", "id": "uid"}
    seen = {}
    for name in ("q.jsonl", "q.json", "q.parquet", "q.csv"):
        fields = GENERIC if name.startswith("q.json") else flat_fields
        config = DataConfig.model_validate({"source": "files", "files": {"train": [str(tmp_path / name)]},
                                            "fields": fields, "answer_type": "number", "test_share": 0.2})
        seen[name] = read_corpus(config).rows.drop(columns=["source_file"])
    for name in ("q.json", "q.parquet", "q.csv"):
        pd.testing.assert_frame_equal(seen["q.jsonl"], seen[name])
    rows = seen["q.jsonl"]
    assert len(rows) == 20 and list(rows.columns) == [c for c in CANONICAL_COLUMNS if c != "source_file"]
    assert rows.set_index("id").loc["u3", "gold"] == "5"


def test_ids_are_stable_across_runs_and_file_order(ray_local, tmp_path):
    no_ids = [{"body": q["body"], "gold": q["gold"]} for q in QUESTIONS]
    write_jsonl(tmp_path / "a.jsonl", no_ids)
    write_jsonl(tmp_path / "b.jsonl", list(reversed(no_ids)))
    fields = {"question": "body", "answer": "gold.value"}

    def ids(name):
        config = DataConfig.model_validate({"source": "files", "files": {"train": [str(tmp_path / name)]},
                                            "fields": fields, "answer_type": "number", "test_share": 0.3})
        rows = read_corpus(config).rows
        return dict(zip(rows["stem"], zip(rows["id"], rows["split"])))

    first = ids("a.jsonl")
    assert first == ids("a.jsonl") == ids("b.jsonl")  # same id, same held-out split, whatever the order
    assert {split for _, split in first.values()} == {"train", "test"}


def test_bad_rows_go_to_rejects_with_file_row_and_reason(ray_local, tmp_path):
    good = {"uid": "a", "body": "Tom has 3 pens. How many?", "gold": {"value": "3"}}
    train = [
        good,
        {**good, "uid": "b", "body": "   "},
        {**good, "uid": "c", "gold": {"value": "three-ish"}},
        {**good, "uid": "d", "gold": None},  # an unlabelled pool row is kept
        {"body": "no id here", "gold": {"value": "1"}},
    ]
    test = [{**good, "uid": "t1", "gold": None}, {**good, "uid": "a", "body": "Same id as a train row."}]
    write_jsonl(tmp_path / "train.jsonl", train)
    path = write_jsonl(tmp_path / "test.jsonl", test)
    path.write_text(path.read_text() + "{not json\n")
    corpus = read_corpus(_config({"train": [str(tmp_path / "train.jsonl")], "test": [str(path)]}))
    assert sorted(corpus.rows["id"]) == ["a", "d"]
    assert corpus.counts == {"train": {"rows_in": 5, "kept": 1, "rejected": 4}, "test": {"rows_in": 3, "kept": 1, "rejected": 2}}
    reasons = {(r.split, r.row): r.reason for r in corpus.rejects.itertuples()}
    assert reasons[("train", 2)] == "missing question (field 'body')"
    assert reasons[("train", 3)].startswith("unusable gold answer 'three-ish'")
    assert reasons[("train", 5)] == "missing id (field 'uid')"
    # The test copy of id 'a' wins, so no test question is ever trained on.
    assert reasons[("train", 1)] == "duplicate id 'a' (first in split 'test', test.jsonl row 2)"
    assert reasons[("test", 1)] == "test row without a gold answer"
    assert reasons[("test", 3)].startswith("not valid JSON")
    assert set(corpus.rejects["source_file"].map(lambda p: p.rsplit("/", 1)[-1])) == {"train.jsonl", "test.jsonl"}


def test_too_many_rejects_stop_with_the_split_the_share_and_where_to_look(ray_local, tmp_path):
    rows = [{"uid": f"u{i}", "body": "What?" if i % 2 else "", "gold": {"value": "1"}} for i in range(10)]
    write_jsonl(tmp_path / "train.jsonl", rows)
    corpus = read_corpus(_config({"train": [str(tmp_path / "train.jsonl")]}, test_share=0.5))
    with pytest.raises(CorpusError) as err:
        corpus.check_reject_share(0.05, "runs/x/corpus/rejects.parquet")
    message = str(err.value)
    assert "split 'train'" in message and "missing question (field 'body')" in message
    assert "runs/x/corpus/rejects.parquet" in message and "data.max_reject_share=0.05" in message
    corpus.check_reject_share(1.0, "-")  # a looser limit lets it pass


def test_config_names_what_is_missing():
    with pytest.raises(ConfigError, match="data.test_split 'test' is not a key of data.files"):
        load_config(None, ["data.source=files", "data.preset=gsm8k", "data.files={train: x.jsonl}"])
    with pytest.raises(ConfigError, match="data.answer_type is required"):
        load_config(None, ["data.source=files", "data.fields={question: q}", "data.files={train: x, test: y}"])
    with pytest.raises(ConfigError, match="data.preset"):
        load_config(None, ["data.source=files", "data.preset=mmlu", "data.files={train: x, test: y}"])


def test_unknown_extension_and_missing_file_fail_before_reading(ray_local, tmp_path):
    (tmp_path / "data.txt").write_text("x")
    with pytest.raises(CorpusError, match="cannot tell the format"):
        read_corpus(_config({"train": [str(tmp_path / "data.txt")]}, test_share=0.1))
    with pytest.raises(CorpusError, match="data.files.train: no file matches"):
        read_corpus(_config({"train": ["missing.jsonl"]}, test_share=0.1, root=str(tmp_path)))


def test_the_cheap_checks_refuse_what_reading_would_refuse_without_ray(tmp_path):
    """Before Ray starts (this test starts none): the same errors, in the same words, as reading
    the corpus gives."""
    from tadistill.corpus.read import check_files

    good = write_jsonl(tmp_path / "good.jsonl", QUESTIONS[:3])
    (tmp_path / "empty.jsonl").write_text("\n")
    (tmp_path / "broken.json").write_text('[{"body": "a question"')
    check_files(_config({"train": [str(good)]}, test_share=0.1))  # nothing to say
    bad_row = tmp_path / "bad_row.jsonl"
    bad_row.write_text(good.read_text() + "{not json\n")
    check_files(_config({"train": [str(bad_row)]}, test_share=0.1))  # a bad row is a reject, counted later
    with pytest.raises(CorpusError, match=r"empty.jsonl: no records \(1 bytes, empty\)"):
        check_files(_config({"train": [str(good)], "test": [str(tmp_path / "empty.jsonl")]}))
    with pytest.raises(CorpusError, match=r"broken.json: not valid JSON"):
        check_files(_config({"train": [str(tmp_path / "broken.json")]}, test_share=0.1))
    with pytest.raises(CorpusError, match="data.files.train: no file matches 'missing.jsonl'"):
        check_files(_config({"train": ["missing.jsonl"]}, test_share=0.1, root=str(tmp_path)))


def test_synthetic_task_reads_through_the_same_reader(ray_local, tmp_path):
    config = DataConfig.model_validate({"synthetic": {"pool_size": 60, "test_size": 20, "seed": 5}})
    corpus = read_corpus(write_synthetic_source(config, tmp_path))
    counts = corpus.rows["split"].value_counts()
    assert counts["test"] == 20 and counts["train"] + len(corpus.rejects) == 60
    assert corpus.rows["gold"].str.fullmatch(r"\d+").all() and corpus.rows["id"].is_unique


def test_mistyped_undecodable_and_oversized_rows_are_counted_rejects_naming_file_row_and_field(ray_local, tmp_path):
    good = {"uid": "a", "body": "Tom has 3 pens. How many?", "gold": {"value": "3"}}
    lines = [json.dumps(r).encode() for r in [
        good,
        {**good, "uid": "b", "body": {"text": "a question inside an object"}},
        {**good, "uid": ["c"]},
        {**good, "uid": "d", "gold": {"value": [3]}},
        {**good, "uid": "e", "body": True},
    ]]
    lines.append(b'{"uid": "f", "body": "Tom has 3 p\xe9ns. How many?", "gold": {"value": "3"}}')
    lines.append(json.dumps({**good, "uid": "g", "body": "x" * 1_000_001}).encode())
    lines.append(json.dumps({**good, "uid": "h"}).encode())
    (tmp_path / "train.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    test = write_jsonl(tmp_path / "test.jsonl", [{**good, "uid": "t1"}])
    corpus = read_corpus(_config({"train": [str(tmp_path / "train.jsonl")], "test": [str(test)]}))
    assert sorted(corpus.rows["id"]) == ["a", "h", "t1"]
    assert corpus.counts["train"] == {"rows_in": 8, "kept": 2, "rejected": 6}
    reasons = dict(zip(corpus.rejects["row"], corpus.rejects["reason"]))
    assert reasons == {
        2: "field 'body' (question) holds a dict, expected text",
        3: "field 'uid' (id) holds a list, expected text",
        4: "field 'gold.value' (answer) holds a list, expected an answer",
        5: "field 'body' (question) holds a bool, expected text",
        6: "not UTF-8 text (byte 34 of the line is 0xe9)",
        7: f"row is {len(lines[6]):,} bytes, above data.max_row_bytes=1,000,000",
    }
    assert set(corpus.rejects["source_file"]) == {str(tmp_path / "train.jsonl")}
