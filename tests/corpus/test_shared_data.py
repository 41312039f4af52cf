"""Every data set in ../shared/data loads through its shipped config, with real teacher outputs.

Skipped when ../shared/data is absent. The teachers are imperfect on purpose: the bounds
below are wide, the exact figures are in the closing notes and `tadistill data inspect`.
"""

from pathlib import Path

import pytest

from tadistill.config import load_config
from tadistill.corpus.inspect import inspect_data

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared" / "data"
CONFIGS = sorted((REPO / "configs" / "datasets").glob("*.yaml"))

pytestmark = pytest.mark.skipif(not SHARED.is_dir(), reason=f"{SHARED} is absent")

# config -> (split, lowest and highest plausible teacher accuracy, lowest share of answers extracted)
TEACHERS = {
    "svamp_dss": ("test", 0.7, 0.85, 0.95),        # PaLM
    "csqa_dss": ("test", 0.7, 0.85, 0.95),         # PaLM
    "gsm8k": ("test", 0.5, 0.65, 0.95),            # GPT-3 175B with verifier
    "csqa": ("dev", 0.55, 0.75, 0.95),             # text-davinci-002 zero-shot CoT
    "svamp_mcc_kd": ("train", 0.55, 0.8, 0.95),    # GPT-3.5, last-number fallback
}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_every_split_loads_with_no_row_lost(ray_local, monkeypatch, path):
    monkeypatch.chdir(REPO)  # the configs' data.root is relative to the repository
    markdown, summary = inspect_data(load_config(path))
    assert "run_would_stop" not in summary, summary.get("run_would_stop")
    for split, count in summary["splits"].items():
        assert count["rows_in"] > 0 and count["rows_in"] == count["kept"] + count["rejected"], split
    assert "## Rows per split" in markdown and "## Answers" in markdown
    if path.stem in TEACHERS:
        split, low, high, extracted = TEACHERS[path.stem]
        teacher = {t["split"]: t for t in summary["teacher"]}[split]
        assert low <= teacher["accuracy"] <= high
        assert teacher["answer extracted"] >= extracted * teacher["outputs"]


def test_gsm8k_zero_shot_cot_log_and_socratic_split(ray_local, monkeypatch):
    monkeypatch.chdir(REPO)
    config = load_config(REPO / "configs/datasets/gsm8k.yaml", [
        "data.files={train: [gsm8k/openai_grade-school-math/train.jsonl], "
        "test: [gsm8k/openai_grade-school-math/test_socratic.jsonl]}",
        "teacher.recorded.files=[gsm8k/kojima_zero_shot_cot/gsm8k_zero_shot_cot.log]",
    ])
    _, summary = inspect_data(config)
    assert summary["splits"]["test"] == {"rows_in": 1319, "kept": 1319, "rejected": 0}
    teacher = summary["teacher"][0]
    assert teacher["questions"] == 1319 and 0.3 <= teacher["accuracy"] <= 0.5  # text-davinci-002
