"""The Python API: tadistill.Config, tadistill.load_config, tadistill.run."""

import subprocess
import sys
from pathlib import Path

import pytest

import tadistill
from tadistill.config import METHODS, TrustConfig, load_config

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("method", METHODS)
def test_a_config_built_in_python_means_what_the_same_method_means_on_the_command_line(method):
    assert tadistill.Config(method=method) == load_config(overrides=[f"method={method}"])


def test_the_preset_fills_what_the_user_left_and_a_contradiction_is_refused():
    trust = {"min_weight": 0.3}
    config = tadistill.Config(method="ta_teacher_only", trust=trust, signals={"w_sc": 2.0})
    assert config.trust.mode == "weight" and config.trust.min_weight == 0.3
    assert trust == {"min_weight": 0.3}  # the caller's dict is not filled in
    with pytest.raises(ValueError, match="method 'ta_teacher_only' is 'none' with trust.mode 'filter'|"
                                         "method 'none' sets trust.mode 'none'"):
        tadistill.Config(method="none", trust=TrustConfig(mode="filter"))
    # An object section keeps only what was set in it: the preset fills the rest.
    assert tadistill.Config(method="sc_none", signals={"consistency": "entropy"}).signals.w_ta == 0.0


def test_the_package_names_its_api_and_version():
    assert tadistill.Config is tadistill.config.Config and tadistill.load_config is load_config
    done = subprocess.run([sys.executable, "-m", "tadistill.cli", "--version"], capture_output=True, text=True,
                          cwd=REPO, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == f"tadistill {tadistill.__version__}"


def test_run_from_python(ray_local, synthetic_models, small_config):
    config = small_config("method=base", "inference.launcher=local")
    result = tadistill.run(config)
    assert result.method == "base" and 0 <= result.accuracy <= 1 and result.requests_paid == 0
    assert result.report.exists() and result.model is None
    with pytest.raises(ValueError, match="overrides apply to a YAML config"):
        tadistill.run(config, ["budget.requests=3"])
