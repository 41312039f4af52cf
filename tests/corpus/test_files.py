"""Data files into numbered records: every format, and errors that name the file and row."""

import json

import pandas as pd
import pytest

from tadistill.corpus.files import CorpusError, get_path, parse_file, resolve_files

RECORDS = [{"q": "one?", "a": "1"}, {"q": "two?", "a": "2"}]


def _parse(path):
    return list(parse_file(str(path), path.read_bytes(), "auto"))


def test_every_format_gives_the_same_records_numbered_from_one(tmp_path):
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in RECORDS))
    (tmp_path / "d.json").write_text(json.dumps(RECORDS))
    (tmp_path / "lines.json").write_text("".join(json.dumps(r) + "\n" for r in RECORDS))  # JSON lines named .json
    pd.DataFrame(RECORDS).to_parquet(tmp_path / "d.parquet")
    pd.DataFrame(RECORDS).to_csv(tmp_path / "d.csv", index=False)
    for name in ("d.jsonl", "d.json", "lines.json", "d.parquet", "d.csv"):
        records = _parse(tmp_path / name)
        assert [r.value for r in records] == RECORDS, name
        assert [r.row for r in records] == [1, 2], name


def test_a_bad_jsonl_line_is_a_record_with_its_error_and_line_number(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"q": "one?"}\n\n{"q": broken\n[1, 2]\n')
    records = _parse(path)
    assert [(r.row, r.value is None) for r in records] == [(1, False), (3, True), (4, True)]
    assert "not valid JSON" in records[1].error and "expected a JSON object" in records[2].error


def test_csv_cells_stay_strings(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("id,q\n007,what?\n")
    assert _parse(path)[0].value == {"id": "007", "q": "what?"}


def test_a_broken_json_document_names_the_file_and_position(tmp_path):
    path = tmp_path / "d.json"
    path.write_text('[{"q": "one?"},\n {"q": ')
    with pytest.raises(CorpusError, match=r"d\.json: not valid JSON .* line 2"):
        _parse(path)
    path.write_text('"just a string"')
    with pytest.raises(CorpusError, match="expected a JSON array of records or JSON lines, got str"):
        _parse(path)
    path.write_text('{"q": "one?"}')  # a single object is a file of one record
    assert [r.value for r in _parse(path)] == [{"q": "one?"}]


def test_globs_keep_numbered_shards_in_order_and_missing_files_are_named(tmp_path):
    for i in (0, 1, 2, 10):
        (tmp_path / f"part_{i}.json").write_text("[]")
    found = resolve_files(["part_*.json"], str(tmp_path), "data.files.train")
    assert [p.name for p in found] == ["part_0.json", "part_1.json", "part_2.json", "part_10.json"]
    with pytest.raises(CorpusError, match=r"data.files.test: no file matches 'nope.jsonl'"):
        resolve_files(["nope.jsonl"], str(tmp_path), "data.files.test")


def test_dotted_paths_reach_into_objects_and_lists():
    record = {"question": {"stem": "Why?", "choices": [{"text": "a"}, {"text": "b"}]}}
    assert get_path(record, "question.stem") == "Why?"
    assert get_path(record, "question.choices.1.text") == "b"
    assert get_path(record, "question.missing") is None and get_path(record, "question.stem.deeper") is None


def test_a_line_that_is_not_utf8_or_over_a_megabyte_is_one_reject_not_a_lost_file(tmp_path):
    path = tmp_path / "d.jsonl"
    big = json.dumps({"q": "x" * 1_100_000, "a": "1"})
    path.write_bytes(b"\n".join([
        json.dumps(RECORDS[0]).encode(),
        b'{"q": "caf\xe9?", "a": "1"}',  # Latin-1, not UTF-8
        big.encode(),
        b'{"q": ' + b"[" * 5000 + b"]" * 5000 + b', "a": "1"}',  # nested past any use
        b"[1, 2]",
        json.dumps(RECORDS[1]).encode(),
    ]))
    records = _parse(path)
    assert [r.row for r in records] == [1, 2, 3, 4, 5, 6]
    assert [r.value for r in records if r.value] == RECORDS
    errors = {r.row: r.error for r in records if r.error}
    assert errors[2] == "not UTF-8 text (byte 11 of the line is 0xe9)"
    assert errors[3] == f"row is {len(big):,} bytes, above data.max_row_bytes=1,000,000"
    assert errors[4].startswith("not ") and errors[5] == "expected a JSON object, got list"


def test_oversized_records_of_whole_documents_and_undecodable_documents_are_named(tmp_path):
    (tmp_path / "d.json").write_text(json.dumps([RECORDS[0], {"q": "y" * 3000, "a": "2"}]))
    records = list(parse_file(str(tmp_path / "d.json"), (tmp_path / "d.json").read_bytes(), "auto", max_row_bytes=2000))
    assert records[0].value == RECORDS[0] and records[1].error.startswith("row is 3,")
    (tmp_path / "d.csv").write_bytes(b"q,a\none?,1\ntw\xf6?,2\n")
    with pytest.raises(CorpusError, match=r"d.csv: not UTF-8 text at line 3 \(byte 14 of the file\)"):
        _parse(tmp_path / "d.csv")


@pytest.mark.parametrize("name,content", [("e.jsonl", b""), ("blank.jsonl", b"\n\n  \n"), ("e.json", b"[]"),
                                          ("e.csv", b"q,a\n")])
def test_a_file_without_records_is_an_error_naming_it(tmp_path, name, content):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(CorpusError, match=rf"{name}: no records"):
        _parse(tmp_path / name)


def test_records_keyed_by_index_are_records_whatever_the_name():
    import json as _json

    from tadistill.corpus.files import parse_file

    keyed = {str(i): {"question": f"q{i}", "answer": str(i)} for i in range(3)}
    for name, text in (("a.jsonl", _json.dumps(keyed)), ("a.jsonl", _json.dumps(keyed, indent=2)),
                       ("a.json", _json.dumps(keyed))):
        records = list(parse_file(name, text.encode(), "auto"))
        assert [(r.row, r.value["question"]) for r in records] == [(1, "q0"), (2, "q1"), (3, "q2")]
    # One record that merely nests objects stays one record.
    nested = {"question": {"stem": "s", "choices": {"label": ["A"], "text": ["t"]}}}
    assert [r.value for r in parse_file("b.jsonl", _json.dumps(nested).encode(), "auto")] == [nested]


def test_record_path_reads_records_held_under_a_key():
    import json as _json

    from tadistill.corpus.files import CorpusError, parse_file

    document = {"version": 2, "data": {"rows": [{"question": "q1"}, {"question": "q2"}]}}
    records = list(parse_file("doc.json", _json.dumps(document).encode(), "auto", record_path="data.rows"))
    assert [r.value["question"] for r in records] == ["q1", "q2"]
    with pytest.raises(CorpusError, match="data.record_path 'data.nope' names no list or object of records"):
        list(parse_file("doc.json", _json.dumps(document).encode(), "auto", record_path="data.nope"))
