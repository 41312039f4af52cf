"""`tadistill export`: a run's bought outputs as a Hugging Face data set folder, JSONL and a card;
the Hub upload is checked up to the call (the Hub is unreachable here)."""

import json

import pandas as pd
import pytest

from tadistill.artifacts import ROWS, bought, question_signals, trusted
from tadistill.cli import main
from tadistill.config import load_config
from tadistill.export import export_run, push_to_hub
from tadistill.rundir import RunDir


def _teacher(ids, model="gpt-x"):
    return pd.DataFrame({"id": ids, "k": 0, "request_key": [f"key-{i}" for i in ids], "model": model,
                         "text": [f"rationale of {i}. The answer is {n}." for n, i in enumerate(ids)],
                         "prompt_tokens": 100, "completion_tokens": 50, "finish_reason": "stop", "source": "openai",
                         "cached": False, "answer": [str(n) for n, _ in enumerate(ids)]})


def _finished_run(path):
    """A run directory as a finished one-round `full` run leaves it: corpus, two purchases, the
    round's signals and the final trust table (the files the export reads, written by RunDir)."""
    config = load_config(None, ["method=full", "budget.requests=4", f"run_dir={path}",
                                "budget.prices={gpt-x: {prompt: 2.0, completion: 8.0}}"])
    run = RunDir(path)
    run.write_text("config.json", config.model_dump_json())
    ids = ["a", "b", "c", "d"]
    run.write_table(ROWS, pd.DataFrame({"id": ids + ["t"], "split": ["train"] * 4 + ["test"],
                                        "question": [f"question {i}?" for i in ids + ["t"]],
                                        "gold": ["0", "1", "9", "9", "5"], "answer_type": "number", "options": None,
                                        "task": "synthetic", "source_file": "x", "row": 0,
                                        "stem": [f"question {i}?" for i in ids + ["t"]]}))
    run.write_table(bought("warmup"), _teacher(["a", "b"]))
    run.write_table(bought("round1"), _teacher(["c", "d"]))
    run.write_table(question_signals("round1"), pd.DataFrame({
        "id": ["c", "d", "e"], "self_consistency": [0.25, 0.5, 1.0], "ta_conf_student": [0.1, 0.2, 0.9],
        "score": [0.9, 0.7, 0.1], "selected": [True, True, False]}))
    trust = pd.concat([_teacher(["a", "b"]).assign(round=0), _teacher(["c", "d"]).assign(round=1)])
    run.write_table(trusted("round1"), trust.assign(trust_value=[0.9, 0.8, 0.01, 0.7], weight=[1.0, 1.0, 0.0, 0.6]))
    (path / "manifest.json").write_text(json.dumps({"steps": {
        "warmup.buy": {"rows": 2}, "round1.buy": {"rows": 2}, "evaluate": {"accuracy": 0.4, "correct": 2, "total": 5}}}))
    (path / "final" / "model").mkdir(parents=True)
    return path


def test_export_writes_a_dataset_folder_jsonl_and_a_card_that_load_back(tmp_path):
    from datasets import load_from_disk

    exported = export_run(_finished_run(tmp_path / "run"), tmp_path / "out")
    assert exported["outputs"] == 4 and exported["filtered"] == 1
    data = load_from_disk(str(tmp_path / "out" / "dataset")).to_pandas().set_index("id")
    assert list(data.index) == ["a", "b", "c", "d"]
    assert list(data["purchase"]) == ["warmup", "warmup", "round1", "round1"]
    assert list(data["trust_weight"]) == [1.0, 1.0, 0.0, 0.6] and data.loc["c", "trust_value"] == 0.01
    assert list(data["correct"]) == [True, True, False, False]  # gold 0, 1, 9, 9 against answers 0, 1, 0, 1
    assert data.loc["d", "self_consistency"] == 0.5 and pd.isna(data.loc["a", "self_consistency"])  # warm-up: random
    assert data.loc["a", "cost"] == pytest.approx((100 * 2.0 + 50 * 8.0) / 1e6)
    assert data.loc["a", "question"] == "question a?" and data.loc["a", "rationale"].startswith("rationale of a")
    lines = [json.loads(line) for line in (tmp_path / "out" / "outputs.jsonl").read_text().splitlines()]
    assert len(lines) == 4 and lines[0]["self_consistency"] is None  # JSON null, not NaN
    card = (tmp_path / "out" / "README.md").read_text()
    assert "`gpt-x` (4)" in card and "1 of 4 outputs filtered out" in card and "2 of 4 outputs agree" in card
    assert "4 requests; 4 paid; cost 0.0024" in card


def test_push_to_hub_uploads_the_dataset_and_the_student_up_to_the_call(tmp_path):
    exported = export_run(_finished_run(tmp_path / "run"), tmp_path / "out")

    class Hub:  # stands in for huggingface_hub.HfApi: the Hub is unreachable from here
        calls = []

        def create_repo(self, repo, **kwargs):
            self.calls.append(("create", repo, kwargs["repo_type"], kwargs["private"]))

        def upload_folder(self, **kwargs):
            self.calls.append(("upload", kwargs["repo_id"], kwargs["repo_type"], kwargs["folder_path"]))
            return f"https://hub/{kwargs['repo_id']}"

    urls = push_to_hub(exported, "me/outputs", private=True, api=Hub())
    assert urls == ["https://hub/me/outputs", "https://hub/me/outputs-student"]
    assert Hub.calls == [("create", "me/outputs", "dataset", True), ("upload", "me/outputs", "dataset", exported["folder"]),
                         ("create", "me/outputs-student", "model", True),
                         ("upload", "me/outputs-student", "model", exported["model"])]


def test_export_on_the_command_line_and_a_folder_that_is_no_run(tmp_path, capsys):
    run = _finished_run(tmp_path / "run")
    assert main(["export", str(run)]) == 0
    assert "4 outputs (1 filtered by trust)" in capsys.readouterr().out and (run / "export" / "dataset").is_dir()
    assert main(["export", str(tmp_path / "nothing")]) == 2
    assert "not a run directory" in capsys.readouterr().err
