"""The weighted loss and the optimisation step, on a real tiny model."""

import pytest
import torch

from tadistill.modeling import IGNORE_INDEX, load_model, load_tokenizer, weighted_lm_loss
from tadistill.synthetic.models import gold_rows
from tadistill.train.loop import fit_local, rows_to_batch


def _batch(tokenizer, rows):
    return rows_to_batch(tokenizer, [r["prompt"] for r in rows], [r["target"] for r in rows], 160)


def _grads(model, batch, weights):
    model.zero_grad()
    weighted_lm_loss(model, batch, torch.tensor(weights)).backward()
    return [p.grad.clone() for p in model.parameters()]


def test_weight_zero_removes_an_example_exactly(synthetic_models):
    tokenizer = load_tokenizer(synthetic_models["student"])
    model = load_model(synthetic_models["student"])
    rows = gold_rows(3, seed=1)
    other = gold_rows(8, seed=2)[5:6]  # a different example, of a different length
    # Three examples plus a weighted-out fourth, against the three alone scaled to the
    # same mean (the loss divides by the number of examples, not the sum of weights).
    with_zero = _grads(model, _batch(tokenizer, rows + other), [1.0, 1.0, 1.0, 0.0])
    alone = _grads(model, _batch(tokenizer, rows), [0.75, 0.75, 0.75])
    for a, b in zip(with_zero, alone):
        assert torch.allclose(a, b, atol=1e-6)
    # And a non-zero weight does change them.
    with_some = _grads(model, _batch(tokenizer, rows + other), [1.0, 1.0, 1.0, 0.5])
    assert not all(torch.allclose(a, b, atol=1e-6) for a, b in zip(with_some, alone))


def test_prompt_tokens_carry_no_loss(synthetic_models):
    tokenizer = load_tokenizer(synthetic_models["student"])
    batch = _batch(tokenizer, gold_rows(2, seed=3))
    rows = gold_rows(2, seed=3)
    for row, example in enumerate(rows):
        labelled = batch["labels"][row][batch["labels"][row] != -100]
        target_ids = tokenizer(example["target"], add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        assert labelled.tolist() == target_ids


def test_training_lowers_the_loss(synthetic_models):
    tokenizer = load_tokenizer(synthetic_models["student"])
    model = load_model(synthetic_models["student"])
    rows = gold_rows(64, seed=4)
    batch = _batch(tokenizer, rows)
    before = float(weighted_lm_loss(model, batch, None))
    fit_local(model, tokenizer, rows, epochs=4, batch_size=16, lr=5e-4, seed=0)
    after = float(weighted_lm_loss(model, batch, None))
    assert after < before * 0.95


def test_one_optimizer_and_one_schedule_in_the_package():
    """Building the synthetic models and training the stages share one engine: AdamW and the
    learning-rate schedule are constructed in exactly one place (train/engines.py)."""
    from pathlib import Path

    import tadistill

    package = Path(tadistill.__file__).parent
    where = {needle: [str(p.relative_to(package)) for p in package.rglob("*.py") if needle in p.read_text()]
             for needle in ("optim.AdamW(", "LambdaLR(")}
    assert where == {"optim.AdamW(": ["train/engines.py"], "LambdaLR(": ["train/engines.py"]}


# -- trust on the answer alone, and the soft loss (issue 38, item 5) ---------------------------

TARGET = " 10 - 8 = 2. 2 + 7 = 9. The answer is 9."
PROMPT = "Question: Sam has 10 pens. Sam sells 8. Sam finds 7 more. How many pens does Sam have now?\nAnswer:"


def _answer_rows(tokenizer, count):
    """`count` encoded rows whose answers are weighted apart (trust.mode 'answer_weight'), TARGET's
    last, and their batch."""
    from tadistill.modeling import collate_right, encode_pair
    from tadistill.tasks.answers import answer_sentence_start

    rows = gold_rows(count - 1, seed=5) + [{"prompt": PROMPT, "target": TARGET}]
    encoded = [encode_pair(tokenizer, r["prompt"], r["target"], 160, answer_start=answer_sentence_start(r["target"]))
               for r in rows]
    return encoded, collate_right(encoded, tokenizer.pad_token_id)


def test_the_answer_mask_covers_exactly_the_answers_tokens(synthetic_models):
    from tadistill.modeling import answer_token_weights, encode_pair

    tokenizer = load_tokenizer(synthetic_models["student"])
    start = TARGET.index("The answer")
    encoded = encode_pair(tokenizer, PROMPT, TARGET, 160, answer_start=start)
    answer = encoded.labels[encoded.answer_from:]
    assert tokenizer.decode(answer[:-1]) == "The answer is 9." and answer[-1] == tokenizer.eos_token_id
    rationale = [t for t in encoded.labels[:encoded.answer_from] if t != IGNORE_INDEX]
    assert tokenizer.decode(rationale) == "10 - 8 = 2. 2 + 7 = 9."
    # The same ids as without a span: the mask is read off the one tokenisation.
    assert encoded.labels == encode_pair(tokenizer, PROMPT, TARGET, 160).labels
    weights = answer_token_weights([encoded], [0.2])[0]
    assert weights[encoded.answer_from:].eq(0.2).all() and weights[:encoded.answer_from].eq(1.0).all()
    # No answer located (start 0): the weight covers the whole target, as under 'weight'.
    whole = encode_pair(tokenizer, PROMPT, TARGET, 160, answer_start=0)
    assert whole.answer_from == next(i for i, t in enumerate(whole.labels) if t != IGNORE_INDEX)


def test_an_answer_weight_changes_only_the_answers_tokens(synthetic_models):
    from tadistill.modeling import loss_weights, target_token_logprobs

    tokenizer = load_tokenizer(synthetic_models["student"])
    model = load_model(synthetic_models["student"])
    encoded, batch = _answer_rows(tokenizer, 3)
    with torch.no_grad():
        logprobs, mask = target_token_logprobs(model, batch)
        counts = mask.sum(dim=1)

        def per_token(weights):  # each token's share of the loss, aligned with the predictions
            shifted = loss_weights(encoded, weights)[:, 1:]
            return -logprobs * shifted / counts.unsqueeze(1) / len(encoded)

        full, trusted = per_token([1.0, 1.0, 1.0]), per_token([1.0, 1.0, 0.2])
        answer = torch.zeros_like(mask)
        answer[2, encoded[2].answer_from - 1:] = True  # the last row's answer tokens, as predicted
        answer &= mask
        assert torch.equal(trusted[~answer], full[~answer])  # the rationale's tokens, and every other row's
        assert torch.allclose(trusted[answer], 0.2 * full[answer]) and answer.sum() == 6  # 5 words and eos
        # The loss is the sum of those shares.
        loss = weighted_lm_loss(model, batch, loss_weights(encoded, [1.0, 1.0, 0.2]))
        assert torch.allclose(loss, trusted.sum())
        # All ones through the per-token path: the per-example loss exactly.
        assert torch.equal(weighted_lm_loss(model, batch, loss_weights(encoded, [1.0] * 3)),
                           weighted_lm_loss(model, batch, torch.ones(3)))


def test_the_default_loss_is_the_per_example_cross_entropy_bit_for_bit(synthetic_models):
    from tadistill.config import TrainConfig
    from tadistill.modeling import per_example_token_logprobs
    from tadistill.train.losses import token_loss

    tokenizer = load_tokenizer(synthetic_models["student"])
    model = load_model(synthetic_models["student"])
    batch = _batch(tokenizer, gold_rows(4, seed=6))
    weights = torch.tensor([1.0, 0.1, 0.55, 0.0])
    with torch.no_grad():
        logprob_sum, counts = per_example_token_logprobs(model, batch)
        before = (weights * (-logprob_sum / counts.clamp(min=1))).sum() / 4  # the loss as it was written
        assert torch.equal(weighted_lm_loss(model, batch, weights), before)
        assert torch.equal(weighted_lm_loss(model, batch, weights, token_loss(TrainConfig())), before)


def test_gce_is_cross_entropy_as_q_goes_to_0_and_spares_unlikely_tokens():
    from tadistill.config import TrainConfig
    from tadistill.train.losses import token_loss

    logprobs = torch.log(torch.tensor([0.99, 0.5, 0.1, 0.001]))
    nll = token_loss(TrainConfig())(logprobs)
    assert torch.allclose(token_loss(TrainConfig(loss="gce", gce_q=1e-5))(logprobs), nll, rtol=1e-4)
    assert torch.allclose(token_loss(TrainConfig(loss="gce", gce_q=1.0))(logprobs), 1 - logprobs.exp())
    # Its pull on each token is cross-entropy's times p^q: an unlikely token pulls least.
    tracked = logprobs.clone().requires_grad_(True)
    token_loss(TrainConfig(loss="gce", gce_q=0.7))(tracked).sum().backward()
    assert torch.allclose(-tracked.grad, logprobs.exp() ** 0.7)
    pulls = -tracked.grad
    assert all(a > b for a, b in zip(pulls, pulls[1:]))


def test_a_bad_loss_is_refused_by_its_key():
    from tadistill.config import ConfigError, load_config

    with pytest.raises(ConfigError, match="train.loss .*'gce'.*got 'mse'"):
        load_config(overrides=["train.loss=mse"])
    with pytest.raises(ConfigError, match="train.gce_q"):
        load_config(overrides=["train.loss=gce", "train.gce_q=1.5"])


def test_answer_weight_and_gce_each_train_a_real_stage(synthetic_models, tmp_path):
    """The training worker's path (launcher 'local'): rows shaped by the trust mode, the loss the
    config names; the student's loss on its rows falls."""
    import pandas as pd

    from tadistill.config import TrainConfig, TrustConfig
    from tadistill.signals.trust import training_rows_for
    from tadistill.train.ray_trainer import train_stage

    rows = pd.DataFrame(gold_rows(32, seed=7)).assign(weight=[0.2, 1.0, 0.6, 1.0] * 8)
    tokenizer = load_tokenizer(synthetic_models["student"])
    batch = _batch(tokenizer, rows.to_dict("records"))
    with torch.no_grad():
        before = float(weighted_lm_loss(load_model(synthetic_models["student"]), batch, None))
    for name, mode, loss in (("answer", "answer_weight", "nll"), ("gce", "weight", "gce")):
        shaped = training_rows_for(rows, TrustConfig(mode=mode))
        assert ("answer_start" in shaped.columns) == (mode == "answer_weight")
        config = TrainConfig(launcher="local", strategy="ddp", num_workers=1, epochs=4, global_batch_size=8,
                             micro_batch_size=8, lr=5e-4, loss=loss)
        metrics = train_stage(shaped, synthetic_models["student"], config, storage_path=tmp_path / "ray_train",
                              name=name, model_out=tmp_path / name / "model")
        assert metrics["steps"] == 16
        with torch.no_grad():
            after = float(weighted_lm_loss(load_model(str(tmp_path / name / "model")), batch, None))
        assert after < before * 0.95, (name, before, after)
