import pandas as pd
import pytest

from tadistill.signals.trust_signals.verifier import Verifier, verdicts_for, with_verdict

from .test_combined import _teacher_outputs


@pytest.fixture(scope="module")
def tools(synthetic_models, tmp_path_factory):
    """What the trust step hands a signal that trains a model: the synthetic TA, fine-tuned here
    (lr for a tiny model from scratch), scored through the local executor."""
    from tadistill.config import InferenceConfig
    from tadistill.inference.executor import LocalExecutor
    from tadistill.modeling import load_model, load_tokenizer
    from tadistill.steps.signals import LearningTools
    from tadistill.train.loop import fit_local

    executor = LocalExecutor(InferenceConfig(launcher="local", batch_size=8), services=None)
    ta = synthetic_models["ta"]

    def fine_tune(rows, out):
        model, tokenizer = load_model(ta), load_tokenizer(ta)
        fit_local(model, tokenizer, rows.to_dict(orient="records"), epochs=10, batch_size=8, lr=1e-3, seed=0,
                  max_length=160)
        model.save_pretrained(out)
        tokenizer.save_pretrained(out)

    def scorer_for(path):
        def score(rows, confidence=None):
            scored = executor.score(path, rows, None, confidence=confidence)
            merged = rows[["id", "k"]].merge(scored[["id", "k", "ta_conf"]], on=["id", "k"], how="left")
            return pd.Series(merged["ta_conf"].to_numpy(dtype=float), index=rows.index)
        return score

    return LearningTools(ta, tmp_path_factory.mktemp("trust") / "verifier", fine_tune, scorer_for)


def test_the_synthetic_tokenizer_gets_verdict_tokens_it_has(synthetic_models):
    from tadistill.modeling import load_tokenizer

    assert verdicts_for(load_tokenizer(synthetic_models["ta"])) == ("+", "-")
    assert with_verdict("The answer is 4. ", "+") == "The answer is 4. +"


def test_the_fine_tuned_ta_gives_the_verdicts_it_learnt_and_values_the_labelled_ones_cross_fitted(tools):
    from tadistill.tables import auroc

    labelled = _teacher_outputs(60, seed=21)
    learnt = Verifier().learn(labelled, None, tools)
    assert learnt.summary["verdicts"] == ["+", "-"] and (tools.folder / "config.json").exists()
    assert learnt.values.shape == (60,) and ((learnt.values > 0) & (learnt.values < 1)).all()
    # The verifier fine-tuned on all of them gives their verdicts back (the loss is on the verdict
    # alone); the cross-fitted values come from the two verifiers that never saw them. (From a few
    # dozen outputs the tiny synthetic TA memorises rather than generalises: no claim on those.)
    again = Verifier(learnt.model).values(labelled, tools.scorer_for(str(tools.folder)))
    right = labelled["right"].to_numpy()
    assert again.ta_scored == 120 and auroc(again.values[right], again.values[~right]) > 0.9
    assert not (learnt.values == again.values.to_numpy()).all()


def test_it_needs_both_kinds_of_labelled_output(tools):
    with pytest.raises(ValueError, match="right and wrong labelled outputs"):
        Verifier().learn(_teacher_outputs(12, seed=5, error_rate=0.0), None, tools)
    with pytest.raises(RuntimeError, match="trust.learn"):
        Verifier().values(_teacher_outputs(2, seed=5), None)
