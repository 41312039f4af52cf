"""The weighted loss and the optimisation step, on a real tiny model."""

import torch

from tadistill.modeling import load_model, load_tokenizer, weighted_lm_loss
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
