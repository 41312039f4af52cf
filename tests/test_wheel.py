"""An installed tadistill works anywhere: the wheel, installed into a fresh folder and run from
another, finds its demo config, world files, benchmark summary and plan rates as package data, and
builds its models in the user's cache folder, not in the folder it was started in."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(folder the wheel is installed into, its console script), built from a copy of what the
    wheel is made of, so the build leaves nothing in the checkout."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"
    shutil.copytree(REPO / "tadistill", source / "tadistill", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(root / "dist"), str(source)],
                   check=True, cwd=root)
    wheel = next((root / "dist").glob("tadistill-*.whl"))
    target = root / "site"
    subprocess.run([*pip, "install", "--no-deps", "--target", str(target), str(wheel)], check=True, cwd=root)
    return target, target / "bin" / "tadistill"


def _env(target: Path, cache: Path) -> dict:
    return {**os.environ, "PYTHONPATH": str(target), "TADISTILL_CACHE": str(cache), "COLUMNS": "100"}


def _run(script: Path, args: list[str], cwd: Path, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(script), *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=600)


def test_the_installed_package_is_the_wheel_and_ships_its_resources(installed, tmp_path):
    target, _ = installed
    where = subprocess.run([sys.executable, "-c", "import tadistill, tadistill.resources as r; "
                            "print(tadistill.__file__); print(r.resource('demo_benchmark.yaml'))"],
                           cwd=tmp_path, env=_env(target, tmp_path / "cache"), capture_output=True, text=True, check=True)
    package, demo = where.stdout.split()
    assert Path(package).is_relative_to(target) and Path(demo).is_relative_to(target) and Path(demo).is_file()
    shipped = {p.relative_to(target / "tadistill" / "resources").as_posix()
               for p in (target / "tadistill" / "resources").rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    assert {"demo_benchmark.yaml", "quality_summary.json", "quality_worlds_summary.json", "worlds/shaped.yaml",
            "worlds/drawn38106.yaml", "plan_rates/rates_cpu_2core_local.json"} <= shipped


def test_config_show_and_plan_run_from_another_folder(installed, tmp_path):
    target, script = installed
    env = _env(target, tmp_path / "cache")
    shown = _run(script, ["config", "show"], tmp_path, env)
    assert shown.returncode == 0, shown.stderr
    assert f'models.cache_dir = "{tmp_path / "cache"}"' in shown.stdout
    demo = target / "tadistill" / "resources" / "demo_benchmark.yaml"
    planned = _run(script, ["plan", str(demo), f"run_dir={tmp_path / 'runs' / 'new'}"], tmp_path, env)
    assert planned.returncode == 0, planned.stdout + planned.stderr
    assert "rates_cpu_2core_local.json" in planned.stdout


def test_the_demo_runs_its_benchmark_cell_and_builds_models_in_the_user_cache(installed, tmp_path):
    """Far enough to finish its first step: then a Ctrl-C stops it with one line. The cache folder
    is moved by $TADISTILL_CACHE to the one the tests' models are built in (building the demo's
    models takes minutes), and nothing is cached in the folder the demo was started in."""
    target, script = installed
    cache = REPO / ".cache" / "tadistill"  # tests/conftest.py's MODEL_CACHE
    log = tmp_path / "console.txt"
    run = tmp_path / "runs" / "demo" / "none"
    with open(log, "w") as out:
        process = subprocess.Popen([sys.executable, str(script), "demo"], cwd=tmp_path, env=_env(target, cache),
                                   stdout=out, stderr=subprocess.STDOUT, text=True)
        try:
            deadline = time.monotonic() + 480
            while process.poll() is None and time.monotonic() < deadline and "corpus" not in _steps_done(run):
                time.sleep(0.5)
            process.send_signal(signal.SIGINT)
            process.wait(timeout=120)
        finally:
            if process.poll() is None:
                process.kill()
    output = log.read_text()
    assert "corpus" in _steps_done(run) and process.returncode == 130, output
    saved = json.loads((run / "config.json").read_text())
    assert saved["budget"]["requests"] == 580 and saved["teacher"]["synthetic"]["error_rate"] == 0.41, output
    assert Path(saved["models"]["cache_dir"]) == cache and not (tmp_path / ".cache").exists()


def _steps_done(run: Path) -> dict:
    try:
        return json.loads((run / "manifest.json").read_text())["steps"]
    except (OSError, ValueError, KeyError):
        return {}
