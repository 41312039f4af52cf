"""Weight averaging with the starting student (train.start_weight_share): real transformers models."""

import pandas as pd
import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from tadistill.train.averaging import average_with_start


def _model(path, seed):
    torch.manual_seed(seed)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=40, n_positions=16, n_embd=8, n_layer=1, n_head=2))
    model.save_pretrained(path)
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_the_final_student_is_the_share_weighted_average_of_start_and_trained(tmp_path):
    start, trained = _model(tmp_path / "start", 0), _model(tmp_path / "trained", 1)
    info = average_with_start(tmp_path / "trained", str(tmp_path / "start"), 0.3)
    averaged = GPT2LMHeadModel.from_pretrained(tmp_path / "trained").state_dict()
    floats = [k for k, v in trained.items() if v.is_floating_point()]
    # The LM head is tied to the input embeddings: one tensor, averaged once.
    assert info == {"averaged_tensors": len(floats) - 1, "start_weight_share": 0.3}
    for name in floats:
        torch.testing.assert_close(averaged[name], 0.3 * start[name] + 0.7 * trained[name])


def test_averaging_refuses_a_share_outside_zero_one_and_models_that_do_not_match(tmp_path):
    _model(tmp_path / "trained", 1)
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        average_with_start(tmp_path / "trained", str(tmp_path / "trained"), 1.0)
    torch.manual_seed(0)
    GPT2LMHeadModel(GPT2Config(vocab_size=40, n_positions=16, n_embd=16, n_layer=1, n_head=2)).save_pretrained(
        tmp_path / "wider")
    with pytest.raises(ValueError, match="differ in name or shape"):
        average_with_start(tmp_path / "trained", str(tmp_path / "wider"), 0.5)


def test_auto_reads_the_share_from_the_runs_checked_questions(synthetic_models, tmp_path):
    """A trained student that drifted from what it knew (here: its start with noise in every
    weight) answers the checked questions worse than its start; 'auto' goes back towards the start
    by the share that answers them best, measured with the real model answering real questions."""
    import shutil

    from tadistill.inference.backend import TransformersBackend
    from tadistill.synthetic.problems import generate_problems, gold_solution
    from tadistill.tasks.answers import extract_number
    from tadistill.tasks.prompts import student_prompt
    from tadistill.train.averaging import checked_questions, choose_start_share

    start = synthetic_models["student"]
    drifted = tmp_path / "final" / "model"
    shutil.copytree(start, drifted)
    from transformers import AutoModelForCausalLM

    damaged = AutoModelForCausalLM.from_pretrained(drifted)
    torch.manual_seed(0)
    with torch.no_grad():
        for tensor in damaged.state_dict().values():
            if tensor.is_floating_point():
                tensor.add_(torch.randn_like(tensor) * tensor.std() * 0.6)
    damaged.save_pretrained(drifted)

    problems = generate_problems(40, seed=99, min_steps=1, max_steps=2)
    references = pd.DataFrame({"id": [f"cal-{i}" for i in range(40)], "question": [p.question() for p in problems],
                               "text": [gold_solution(p) for p in problems]})
    questions = checked_questions(references, "number")
    assert len(questions) == 40 and list(questions["gold"]) == [str(p.answer) for p in problems]

    def accuracy_of(folder):
        texts = TransformersBackend(folder).generate([student_prompt(q) for q in questions["question"]], 1, 0.0, 48)
        return sum(extract_number(t[0]) == g for t, g in zip(texts, questions["gold"])) / len(questions)

    info = choose_start_share(drifted, start, questions, accuracy_of)
    measured = {float(s): a for s, a in info["checked_accuracy"].items()}
    assert info["start_weight_share"] > 0 and measured[info["start_weight_share"]] > measured[0.0]
    assert accuracy_of(str(drifted)) == measured[info["start_weight_share"]]  # the kept model is that average
    assert not list((tmp_path / "final").glob("tmp*"))  # the trial averages are gone
