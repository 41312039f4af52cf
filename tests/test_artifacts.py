"""Steps pass data as declared artifacts: every read is written by an earlier step of the plan,
the columns are checked, and a finished step whose output is gone runs again."""

import pandas as pd
import pytest

from tadistill import artifacts as A
from tadistill.config import METHODS, load_config
from tadistill.plan import plan
from tadistill.rundir import RunDir, RunDirError


@pytest.mark.parametrize("overrides", [
    [f"method={m}"] for m in METHODS
] + [["method=full", "budget.warmup_share=0", "train.final_init=base"],
     ["method=full", "teacher.source=recorded", "teacher.recorded.files=[t.jsonl]", "trust.scale=rank"],
     ["method=none", "teachers=[{model: a, source: recorded, recorded: {files: [a.jsonl]}}, "
      "{model: b, source: recorded, recorded: {files: [b.jsonl]}}]", "cascade.teacher=b"],
     ["method=full", "budget.rounds=3"], ["method=random", "budget.rounds=2"],
     ["method=full", "budget.rounds=2", "train.schedule=epochs", "train.final_init=previous_round"]])
def test_every_artifact_read_is_written_by_an_earlier_step(overrides):
    config = load_config(overrides=overrides)
    written: dict[str, str] = {}
    for step in plan(config):
        for artifact in step.reads:
            assert str(artifact) in written, f"{step.name} reads {artifact}, which no earlier step writes"
        for artifact in step.writes:
            assert str(artifact) not in written, f"{artifact} written twice"
            written[str(artifact)] = step.name


def test_paths_are_unique_and_tables_declare_columns():
    paths = [str(a) for a in A.catalogue(rounds=3)]
    assert len(paths) == len(set(paths))
    assert all(a.columns for a in A.catalogue(rounds=3) if isinstance(a, A.Artifact))


def test_the_run_directory_checks_declared_columns(tmp_path):
    run_dir = RunDir(tmp_path)
    with pytest.raises(RunDirError, match="lacks column.*answer"):
        run_dir.write_table(A.samples("round1"), pd.DataFrame({"id": ["a"], "k": [0], "text": ["t"]}))
    run_dir.write_table(A.samples("round1"), pd.DataFrame({"id": ["a"], "k": [0], "text": ["t"], "answer": ["1"], "x": [1]}))
    assert run_dir.has(A.samples("round1")) and list(run_dir.read_table(A.samples("round1"))["x"]) == [1]
