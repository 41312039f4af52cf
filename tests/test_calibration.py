"""Outputs known to be right, that calibrated trust puts the TA's confidence on a scale with."""

import json

import pytest

from tadistill.config import load_config
from tadistill.corpus import CorpusError
from tadistill.steps.signals import calibration_references


def _user_config(tmp_path, *files):
    return load_config(None, [
        "data.source=files", f"data.root={tmp_path}", "data.files={train: [t.jsonl], test: [t.jsonl]}",
        "data.preset=gsm8k", f"trust.calibration_files=[{', '.join(files)}]"])


def test_synthetic_references_are_held_out_gold_solutions():
    config = load_config(None, ["trust.calibration_size=25"])
    refs = calibration_references(config)
    assert len(refs) == 25 and refs["text"].str.contains("The answer is").all()
    assert refs.equals(calibration_references(config))  # a pure function of the config


def test_a_users_reference_files_are_read_and_their_mistakes_named(tmp_path):
    (tmp_path / "right.jsonl").write_text(json.dumps({"question": "1 + 1?", "rationale": "1 + 1 = 2. The answer is 2."}) + "\n")
    assert list(calibration_references(_user_config(tmp_path, "right.jsonl"))["text"]) == ["1 + 1 = 2. The answer is 2."]
    with pytest.raises(CorpusError, match="nope.jsonl.*trust.calibration_files"):
        calibration_references(_user_config(tmp_path, "nope.jsonl"))
    (tmp_path / "bad.jsonl").write_text(json.dumps({"question": "1 + 1?", "answer": "2"}) + "\n")
    with pytest.raises(CorpusError, match="bad.jsonl.*missing rationale"):
        calibration_references(_user_config(tmp_path, "bad.jsonl"))
