import pandas as pd
import pytest


@pytest.fixture(scope="module")
def ta_score(synthetic_models):
    """score(rows, confidence=None) as a run's trust step has it: the synthetic TA through the
    local executor (the transformers backend in this process)."""
    from tadistill.config import InferenceConfig
    from tadistill.inference.executor import LocalExecutor

    executor = LocalExecutor(InferenceConfig(launcher="local", batch_size=8), services=None)

    def score(rows, confidence=None):
        scored = executor.score(synthetic_models["ta"], rows, None, confidence=confidence)
        merged = rows[["id", "k"]].merge(scored[["id", "k", "ta_conf"]], on=["id", "k"], how="left")
        return pd.Series(merged["ta_conf"].to_numpy(dtype=float), index=rows.index)

    return score
