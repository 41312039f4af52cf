import subprocess
import sys
from pathlib import Path

from tadistill.cli import format_table, main

from .conftest import can_mount_tmpfs


def test_config_error_exits_2_and_names_the_key(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text("budget:\n  requets: 10\n")
    assert main(["run", str(path)]) == 2
    assert f"budget.requets (file {path}): unknown key; did you mean budget.requests?" in capsys.readouterr().err
    assert main(["run", str(path), "budget.requets=5"]) == 2  # typed on the command line: said so
    assert ("tadistill: invalid config: budget.requets (command line: budget.requets=5): unknown key; did you mean "
            "budget.requests?\n") == capsys.readouterr().err


def test_config_show_lists_every_option(capsys):
    assert main(["config", "show"]) == 0
    out = capsys.readouterr().out
    assert "budget.requests = 300" in out and "trust.mode" in out


def test_config_show_into_a_pipe_its_reader_closed_ends_quietly():
    import os

    tadistill = Path(sys.executable).parent / "tadistill"
    # A reader gone before the first write (as `head` is once it has its lines): every write fails.
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run([str(tadistill), "config", "show"], stdout=write_end, stderr=subprocess.PIPE, text=True)
    finally:
        os.close(write_end)
    assert (done.returncode, done.stderr) == (0, "")
    # As a person types it; pipefail: the pipeline fails if tadistill does.
    done = subprocess.run(["bash", "-c", f"set -o pipefail; {tadistill} config show | head -1"], capture_output=True,
                          text=True)
    assert (done.returncode, done.stdout, done.stderr) == (0, 'run_dir = "runs/default"\n', "")


def test_console_command_is_installed():
    result = subprocess.run([sys.executable, "-m", "tadistill.cli", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "demo" in result.stdout


def test_table_format():
    table = format_table([{"method": "none", "student accuracy": 0.5, "time (s)": 1.0}],
                         ["method", "student accuracy", "time (s)"])
    assert table.splitlines()[2].split() == ["none", "0.500", "1.0"]


def test_data_inspect_prints_splits_rejects_and_recorded_teacher_accuracy(ray_local, tmp_path, capsys):
    import json

    lines = [{"id": f"q{i}", "question": f"What is {i} plus 1?", "answer": i + 1} for i in range(6)]
    lines.append({"id": "bad", "question": "", "answer": 1})
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    (tmp_path / "teacher.jsonl").write_text("".join(
        json.dumps({"id": f"q{i}", "rationale": f"{i} + 1 = {i + 1 + (i == 0)}. The answer is {i + 1 + (i == 0)}."}) + "\n"
        for i in range(6)))
    config = tmp_path / "data.yaml"
    config.write_text(
        "data:\n  source: files\n  root: " + str(tmp_path) + "\n  files: {train: train.jsonl}\n  test_share: 0.3\n"
        "  fields: {id: id, question: question, answer: answer}\n  answer_type: number\n  max_reject_share: 0.1\n"
        "teacher:\n  source: recorded\n  recorded: {files: [teacher.jsonl], fields: {id: id}}\n")
    assert main(["data", "inspect", str(config), "--out", str(tmp_path / "inspect.md")]) == 0
    out = capsys.readouterr().out
    assert "| split | rows in | kept | rejected |" in out
    assert "missing question (field 'question')" in out and "train.jsonl:7" in out
    assert "A run would stop here" in out  # 1 of 5 or so training rows rejected is above 10%
    summary = json.loads((tmp_path / "inspect.json").read_text())
    teacher = summary["teacher"]
    assert sum(t["outputs"] for t in teacher) == 6 and sum(t["correct"] for t in teacher) == 5


def test_data_inspect_names_a_missing_file(tmp_path, capsys):
    config = tmp_path / "data.yaml"
    config.write_text("data: {source: files, preset: gsm8k, files: {train: nope.jsonl, test: nope2.jsonl}}\n")
    assert main(["data", "inspect", str(config)]) == 2
    assert "data.files.train: no file matches 'nope.jsonl'" in capsys.readouterr().err


# The command in a process of its own, saying afterwards whether it ever imported Ray.
INSPECT_AND_SAY_IF_RAY_CAME = ("import sys; from tadistill.cli import main; code = main(sys.argv[1:]); "
                               "print('ray imported:', 'ray' in sys.modules, file=sys.stderr); sys.exit(code)")


def test_data_inspect_refuses_an_empty_file_before_ray_and_keeps_rays_lines_in_its_log(tmp_path):
    import json
    import os

    (tmp_path / "train.jsonl").write_text("")
    (tmp_path / "test.jsonl").write_text(json.dumps({"question": "What is 10 plus 1?", "answer": 11}) + "\n")
    config = tmp_path / "data.yaml"
    config.write_text(f"data:\n  source: files\n  root: {tmp_path}\n  files: {{train: train.jsonl, test: test.jsonl}}\n"
                      "  fields: {question: question, answer: answer}\n  answer_type: number\nray: {num_cpus: 1}\n")
    out = tmp_path / "report" / "inspect.md"
    inspect = [sys.executable, "-c", INSPECT_AND_SAY_IF_RAY_CAME, "data", "inspect", str(config), "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    refused = subprocess.run(inspect, capture_output=True, text=True, env=env, timeout=300)
    assert refused.returncode == 2 and refused.stdout == ""
    assert refused.stderr == (f"tadistill: {tmp_path / 'train.jsonl'}: no records (0 bytes, empty); remove it from the "
                              "file list or fill it\nray imported: False\n")
    assert not out.with_suffix(".log").exists()

    (tmp_path / "train.jsonl").write_text("".join(
        json.dumps({"question": f"What is {i} plus 1?", "answer": i + 1}) + "\n" for i in range(5)))
    done = subprocess.run(inspect, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith("# Data") and "| train | 5 | 5 | 0 |" in done.stdout
    log_file = out.with_suffix(".log")
    said = done.stderr.splitlines()
    assert said[0].endswith(f"tadistill data inspect: reading the data with Ray; its output goes to {log_file}")
    assert said[1:] == ["ray imported: True"], said  # nothing of Ray's on the console
    assert "Started a local Ray instance" in log_file.read_text()


def test_a_run_whose_disk_fills_up_stops_with_exit_2_naming_the_step_and_records_nothing(tmp_path):
    """A real 64 KiB tmpfs (a private mount namespace) as the run directory: the corpus step
    cannot write its files, the run says where and why, and the manifest claims nothing."""
    import pytest

    disk = tmp_path / "disk"
    disk.mkdir()
    if not can_mount_tmpfs(disk):
        pytest.skip("unshare cannot mount a tmpfs here (no user namespaces)")
    run = disk / "run"
    script = (f"mount -t tmpfs -o size=64k tmpfs {disk} && "
              f"{sys.executable} -m tadistill.cli run - run_dir={run} data.synthetic.pool_size=3000; "
              f'echo "exit=$?"; cd {run} && find . -type f | sort && cat manifest.json 2>/dev/null')
    config = tmp_path / "empty.yaml"
    config.write_text("{}\n")
    done = subprocess.run(["unshare", "-rm", "sh", "-c", script.replace(" - ", f" {config} ")],
                          capture_output=True, text=True, timeout=300)
    out = done.stdout + done.stderr
    assert "exit=2" in out, out[-3000:]
    assert f"tadistill: run directory {run}: step corpus failed: No space left on device [errno 28]" in out
    assert "free space there" in out
    files = [line for line in done.stdout.splitlines() if line.startswith("./")]
    assert "./config.json" in files and not any(f.endswith(".tmp") for f in files)
    assert "./manifest.json" not in files  # nothing was recorded as finished


def test_demo_points_to_the_benchmarks_intervals(tmp_path, monkeypatch):
    import json

    import tadistill.cli as cli

    monkeypatch.setattr(cli, "BENCHMARK_SUMMARY", tmp_path / "missing.json")
    assert cli._benchmark_line() is None
    summary = tmp_path / "quality_summary.json"
    summary.write_text(json.dumps({"headline": {
        "cell": {"world": "shaped", "error_rate": 0.4, "budget": 300},
        "full_vs_none": {"n": 10, "rel": 0.155, "rel_ci": [0.068, 0.244]},
        "full_vs_random": {"n": 10, "rel": 0.097, "rel_ci": [-0.02, 0.232]}}}))
    monkeypatch.setattr(cli, "BENCHMARK_SUMMARY", summary)
    line = cli._benchmark_line()
    assert "over 10 seeds" in line and "full vs none +15.5% (95% CI +6.8 to +24.4)" in line
    assert "full vs random +9.7% (95% CI -2.0 to +23.2)" in line


def test_sigterm_stops_a_run_with_one_line_saying_how_to_resume(tmp_path):
    import os
    import signal
    import time

    repo = Path(__file__).resolve().parents[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "tadistill.cli", "run", str(repo / "configs" / "demo.yaml"), f"run_dir={tmp_path / 'run'}",
         f"models.cache_dir={repo / '.cache' / 'tadistill'}", "ray.num_cpus=2"],
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(repo)})
    deadline = time.time() + 120
    while time.time() < deadline and not (tmp_path / "run" / "config.json").exists():
        time.sleep(0.2)
    time.sleep(3)  # inside the first step (Ray starting, or the corpus being read)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 143, stderr[-2000:]  # 128 + SIGTERM
    assert "run the same command again to resume" in stderr and "Traceback" not in stderr
