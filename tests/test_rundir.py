import pandas as pd
import pytest

from tadistill.rundir import RunDir, RunDirError


def test_manifest_records_and_matches_fingerprints(tmp_path):
    run = RunDir(tmp_path / "run")
    assert run.finished("corpus", "abc") is None
    run.record("corpus", {"fingerprint": "abc", "rows": 3})
    assert run.finished("corpus", "abc")["rows"] == 3
    assert run.finished("corpus", "other") is None
    run.forget_from(["corpus"])
    assert run.finished("corpus", "abc") is None


def test_tables_roundtrip_and_leave_no_temp_files(tmp_path):
    run = RunDir(tmp_path)
    run.write_table("a/b.parquet", pd.DataFrame({"x": [1, 2]}))
    assert list(run.read_table("a/b.parquet")["x"]) == [1, 2]
    assert not list(tmp_path.rglob("*.tmp"))


def test_missing_artifact_names_the_path(tmp_path):
    with pytest.raises(RunDirError, match="missing.parquet"):
        RunDir(tmp_path).read_table("missing.parquet")


def test_unwritable_run_dir_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(RunDirError, match="not writable"):
        RunDir(blocker / "run")


def test_corrupt_manifest_is_reported(tmp_path):
    run = RunDir(tmp_path)
    run.manifest_path.write_text("{not json")
    with pytest.raises(RunDirError, match="manifest.json"):
        run.manifest()
