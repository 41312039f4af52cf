"""Weight averaging with the starting student (train.start_weight_share) and the final student's
pick on the probe (train.final_pick 'best_on_probe'): real transformers models, real training."""

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

    from tadistill.inference.transformers_backend import TransformersBackend
    from tadistill.synthetic.problems import generate_problems, gold_solution
    from tadistill.tasks.answers import extract_number
    from tadistill.tasks.prompts import student_prompt
    from tadistill.evaluate import checked_questions
    from tadistill.train.averaging import choose_start_share

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


def _probe(count, seed, min_steps, max_steps):
    """Gold-labelled questions as the run's checked questions, and a model folder's real greedy accuracy on them."""
    from tadistill.inference.transformers_backend import TransformersBackend
    from tadistill.synthetic.problems import generate_problems, gold_solution
    from tadistill.tasks.answers import extract_number
    from tadistill.tasks.prompts import student_prompt
    from tadistill.evaluate import checked_questions

    problems = generate_problems(count, seed=seed, min_steps=min_steps, max_steps=max_steps)
    references = pd.DataFrame({"id": [f"cal-{i}" for i in range(count)], "question": [p.question() for p in problems],
                               "text": [gold_solution(p) for p in problems]})
    questions = checked_questions(references, "number")

    def right(folder, asked):
        texts = TransformersBackend(str(folder)).generate([student_prompt(q) for q in asked["question"]], 1, 0.0, 48)
        return pd.Series([extract_number(t[0]) == g for t, g in zip(texts, asked["gold"])])

    return questions, right


def _train_on(tmp_path, start, problems, final_answer):
    """A real final training (local launcher, DDP) on `problems` with `final_answer(problem)` stated,
    four epochs with a checkpoint at each epoch's end; returns (its config, its metrics)."""
    from tadistill.config import TrainConfig
    from tadistill.synthetic.problems import render_solution
    from tadistill.tasks.prompts import student_prompt, student_target
    from tadistill.train.ray_trainer import train_stage

    rows = pd.DataFrame({"prompt": [student_prompt(p.question()) for p in problems], "weight": 1.0,
                         "target": [student_target(render_solution(p.start, p.steps, p.values, final_answer(p)))
                                    for p in problems]})
    config = TrainConfig(launcher="local", strategy="ddp", num_workers=1, epochs=4, lr=3e-3, global_batch_size=8,
                         micro_batch_size=8, checkpoints_to_keep=2)
    metrics = train_stage(rows, start, config, storage_path=tmp_path / "ray_train", name="final",
                          model_out=tmp_path / "final" / "model")
    return config, metrics


def _kept(config, metrics, start):
    from functools import partial

    from tadistill.train.checkpoint_weights import checkpoint_state, kept_checkpoints

    return [(f.name, partial(checkpoint_state, f, config, start)) for f in kept_checkpoints(metrics["ray_train_run"])]


def test_a_student_trained_worse_than_its_start_on_the_probe_ends_as_the_start_exactly(synthetic_models, tmp_path):
    """Training on wrong answers (a right chain, then a wrong final number) to short problems the
    start knows makes every trained candidate, checkpoints and averages alike, worse on a probe of
    such problems the start answers right: the final student is the start, tensor for tensor."""
    from tadistill.synthetic.problems import generate_problems
    from tadistill.train.averaging import pick_on_probe

    start = synthetic_models["student"]
    questions, right = _probe(60, 99, 1, 2)
    known = questions[right(start, questions).to_numpy()].reset_index(drop=True)
    assert len(known) >= 30  # the start knows most short problems
    config, metrics = _train_on(tmp_path, start, generate_problems(64, seed=5, min_steps=1, max_steps=2),
                                lambda p: p.answer + 3)
    kept = _kept(config, metrics, start)
    assert [name for name, _ in kept] == ["step_0000024", "step_0000016"]  # 8 steps an epoch, the newest two kept

    final = tmp_path / "final" / "model"
    info = pick_on_probe(final, start, lambda folder: right(folder, known).mean(), kept)
    measured = info["probe_accuracy"]
    assert info["probe_evaluations"] == len(measured) == 3 * 4 + 1  # (last + 2 kept) x 4 shares, and the start
    assert {"last", "last@0.75", "step_0000016@0.25", "start"} <= set(measured)
    assert info["final_pick"] == "start" and info["start_weight_share"] == 1.0 and measured["start"] == 1.0
    assert max(a for name, a in measured.items() if name != "start") < 1.0

    from tadistill.modeling import load_model

    ended, began = load_model(str(final)).state_dict(), load_model(start).state_dict()
    assert ended.keys() == began.keys() and all(torch.equal(ended[k], began[k]) for k in began)
    assert right(final, known).all()  # the folder the run evaluates answers as the start does
    assert not list((tmp_path / "final").glob("tmp*"))  # every other candidate is gone


def test_a_student_that_learnt_keeps_its_training_and_the_best_checkpoint_is_the_one_kept(synthetic_models, tmp_path):
    """The other way round: trained on right answers to longer problems the start gets wrong, a
    trained candidate answers those better than the start, and the final folder is that candidate."""
    from tadistill.synthetic.problems import generate_problems
    from tadistill.train.averaging import pick_on_probe

    start = synthetic_models["student"]
    questions, right = _probe(60, 98, 3, 5)
    unknown = questions[~right(start, questions).to_numpy()].reset_index(drop=True)
    config, metrics = _train_on(tmp_path, start, generate_problems(64, seed=6, min_steps=3, max_steps=5),
                                lambda p: p.answer)
    final = tmp_path / "final" / "model"
    info = pick_on_probe(final, start, lambda folder: right(folder, unknown).mean(), _kept(config, metrics, start))
    measured = info["probe_accuracy"]
    assert measured["start"] == 0.0 and info["final_pick"] != "start"
    assert measured[info["final_pick"]] == max(measured.values()) > 0
    # The folder the run evaluates is the chosen candidate (accuracies are recorded to 4 places).
    assert right(final, unknown).mean() == pytest.approx(measured[info["final_pick"]], abs=1e-4)

    from tadistill.config import load_config
    from tadistill.report import _final_pick_lines

    facts: dict = {}
    (said, _) = _final_pick_lines({**info, "probe_questions": len(unknown)}, facts,
                                  load_config(None, ["train.final_pick=best_on_probe"]))
    assert said.startswith(f"The final student is `{info['final_pick']}` (the ")
    assert f"the best of 13 candidates on {len(unknown)} labelled probe questions" in said
    assert "against 0.000 for the starting student" in said and "did not help" not in said
    assert facts["final_pick"] == info["final_pick"] and facts["start_probe_accuracy"] == 0.0


def test_a_final_student_the_default_could_not_check_is_said_to_be_unchecked(tmp_path):
    """Without a labelled probe (or with a fixed averaging share) the default keeps the last weights,
    and the report says plainly that the final student was not checked against its start."""
    from tadistill.config import load_config
    from tadistill.report import _final_pick_lines

    files = ["data.source=files", f"data.files={{train: [{tmp_path}/t.jsonl], test: [{tmp_path}/t.jsonl]}}",
             "data.preset=gsm8k", "method=none"]
    trained = {"steps": 8, "final_loss": 0.4}
    (said, _) = _final_pick_lines(trained, {}, load_config(None, files))
    assert said.startswith("The final student was not checked against the student it started from: the run has "
                           "no labelled probe (trust.calibration_files gives it one)")
    (said, _) = _final_pick_lines(trained, {}, load_config(None, ["method=none", "train.start_weight_share=0.5"]))
    assert "train.start_weight_share 0.5 fixes its weights" in said
    # A choice the user made, or a run with nothing trained, is not second-guessed.
    assert _final_pick_lines(trained, {}, load_config(None, [*files, "train.final_pick=last"])) == []
    assert _final_pick_lines({}, {}, load_config(None, files)) == []
