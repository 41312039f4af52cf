import subprocess
import sys

from tadistill.cli import format_table, main


def test_config_error_exits_2_and_names_the_key(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text("budget:\n  requets: 10\n")
    assert main(["run", str(path)]) == 2
    assert "budget.requets: unknown key" in capsys.readouterr().err


def test_config_show_lists_every_option(capsys):
    assert main(["config", "show"]) == 0
    out = capsys.readouterr().out
    assert "budget.requests = 300" in out and "trust.mode" in out


def test_console_command_is_installed():
    result = subprocess.run([sys.executable, "-m", "tadistill.cli", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "demo" in result.stdout


def test_table_format():
    table = format_table([{"method": "none", "student accuracy": 0.5, "time (s)": 1.0}],
                         ["method", "student accuracy", "time (s)"])
    assert table.splitlines()[2].split() == ["none", "0.500", "1.0"]
