from pathlib import Path

import pandas as pd
import pytest

from tadistill.rundir import RunDir, RunDirError

from .conftest import can_mount_tmpfs


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


def test_a_choice_tasks_arrow_list_column_reads_back(tmp_path):
    # Ray Data hands `options` over as list<string>[pyarrow]; pandas cannot parse that dtype's
    # name back from the Parquet metadata, so a choice task's rows once failed to read.
    import pyarrow as pa

    options = pd.Series([["a", "b"], ["c"]], dtype=pd.ArrowDtype(pa.list_(pa.string())))
    run = RunDir(tmp_path)
    run.write_table("rows.parquet", pd.DataFrame({"id": ["q1", "q2"], "options": options}))
    assert [list(o) for o in run.read_table("rows.parquet")["options"]] == [["a", "b"], ["c"]]


def test_a_trust_table_written_before_the_column_rename_reads_with_one_warning_per_run(tmp_path, caplog):
    from tadistill.artifacts import TEACHER_COLUMNS, trusted

    run = RunDir(tmp_path / "old_run")
    old = pd.DataFrame({**{c: ["x"] for c in TEACHER_COLUMNS}, "answer": ["4"], "round": [0],
                        "ta_conf_teacher": [0.75], "weight": [1.0]})
    for name in ("warmup", "round1"):  # as an earlier tadistill wrote them, column and all
        (run.path / name).mkdir()
        old.to_parquet(run.path / str(trusted(name)))
    with caplog.at_level("WARNING", logger="tadistill.rundir"):
        frames = [run.read_table(trusted(name)) for name in ("warmup", "round1", "round1")]
    assert all(f["trust_value"].tolist() == [0.75] and "ta_conf_teacher" not in f for f in frames)
    said = [r.getMessage() for r in caplog.records if r.name == "tadistill.rundir"]
    assert len(said) == 1 and "ta_conf_teacher are read as trust_value" in said[0]


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


FILL_THE_DISK = """
import json, sys
import numpy as np, pandas as pd
from tadistill.rundir import RunDir, RunDirError

run = RunDir(sys.argv[1])
run.record("corpus", {"fingerprint": "a"})
errors = []
try:  # ~1.6 MB of Parquet into a disk of 512 KiB
    run.write_table("picks/big.parquet", pd.DataFrame({"x": np.random.default_rng(0).random(200_000)}))
except RunDirError as exc:
    errors.append(str(exc))
try:  # a manifest that no longer fits
    run.record("train", {"fingerprint": "b", "padding": "x" * 2_000_000})
except RunDirError as exc:
    errors.append(str(exc))
left = sorted(str(p.relative_to(run.path)) for p in run.path.rglob("*") if p.is_file())
print(json.dumps({"errors": errors, "left": left, "steps": sorted(run.manifest()["steps"])}))
"""


def _full_disk_run(tmp_path, how: str):
    """How to run a script whose run directory fills up: on a real 512 KiB tmpfs in a private
    mount namespace ('tmpfs'; None where unshare is not allowed), or under a 512 KiB
    file-size limit ('rlimit_fsize', always). Returns (command prefix, run dir, preexec_fn)."""
    import resource

    if how == "rlimit_fsize":
        return [], tmp_path / "run", lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (512 * 1024, 512 * 1024))
    mount = tmp_path / "disk"
    mount.mkdir()
    if not can_mount_tmpfs(mount):
        return None
    return ["unshare", "-rm", "sh", "-c", f'mount -t tmpfs -o size=512k tmpfs {mount} && exec "$0" "$@"'], mount / "run", None


@pytest.mark.parametrize("how", ["tmpfs", "rlimit_fsize"])
def test_a_full_run_dir_is_a_clear_error_and_nothing_half_written_looks_finished(tmp_path, how):
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    runner = _full_disk_run(tmp_path, how)
    if runner is None:
        pytest.skip("unshare cannot mount a tmpfs here (no user namespaces)")
    prefix, run_path, preexec = runner
    script = tmp_path / "fill.py"
    script.write_text(FILL_THE_DISK)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    done = subprocess.run([*prefix, sys.executable, str(script), str(run_path)], capture_output=True, text=True,
                          env=env, preexec_fn=preexec, timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    table_error, manifest_error = result["errors"]
    assert "picks/big.parquet failed" in table_error and "manifest.json failed" in manifest_error
    for message in result["errors"]:
        assert str(run_path) in message and "free space" in message and "[errno " in message
    assert result["left"] == ["manifest.json"]  # no temporary file, no torn table
    assert result["steps"] == ["corpus"]  # the manifest before the failed write, intact


HOLD = """
import sys, time
from tadistill.rundir import RunDir
with RunDir(sys.argv[1]).in_use():
    print("held", flush=True)
    time.sleep(120)
"""


def test_a_run_directory_in_use_is_refused_in_one_line_and_a_dead_holders_lock_is_taken_over(tmp_path):
    import os
    import signal
    import subprocess
    import sys

    run_dir = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(run_dir)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        second = subprocess.run([sys.executable, "-m", "tadistill.cli", "run", "configs/demo.yaml", "method=base", f"run_dir={run_dir}"],
                                cwd=Path(__file__).resolve().parents[1],
                                capture_output=True, text=True, timeout=120)
        assert second.returncode == 2
        message = second.stderr.strip()
        assert len(message.splitlines()) == 1 and f"is in use by process {holder.pid}" in message, message
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
    with RunDir(run_dir).in_use():  # the killed holder's lock file is still there, its lock is not
        assert f"process {os.getpid()}" in (run_dir / "run.lock").read_text()
