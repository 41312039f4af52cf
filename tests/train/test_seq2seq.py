"""An encoder-decoder (T5) student through the same loss, training stage and backend."""

import pandas as pd
import pytest
import torch

from tadistill.config import TrainConfig
from tadistill.inference.transformers_backend import TransformersBackend
from tadistill.modeling import encode_pair, load_model, load_tokenizer, weighted_lm_loss
from tadistill.synthetic.models import gold_rows
from tadistill.train.loop import fit_local, rows_to_batch


@pytest.fixture(scope="module")
def t5_student(synthetic_models, tmp_path_factory):
    """A tiny T5 built from a config, with the synthetic tokenizer, saved as a local folder."""
    from transformers import T5Config, T5ForConditionalGeneration

    tokenizer = load_tokenizer(synthetic_models["student"])
    config = T5Config(
        vocab_size=len(tokenizer), d_model=64, d_kv=16, d_ff=128, num_layers=2, num_decoder_layers=2,
        num_heads=4, dropout_rate=0.0, pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    model = T5ForConditionalGeneration(config)
    folder = tmp_path_factory.mktemp("t5")
    # A little teaching first, so generation has something to say.
    fit_local(model, tokenizer, gold_rows(128, seed=31), epochs=3, batch_size=16, lr=3e-3, seed=0)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def test_the_prompt_goes_to_the_encoder_and_the_target_is_the_label(t5_student):
    tokenizer = load_tokenizer(t5_student)
    encoded = encode_pair(tokenizer, "Question: 2 + 3?\nAnswer:", "5", 64, seq2seq=True)
    assert encoded.input_ids[-1] == tokenizer.eos_token_id
    assert encoded.labels == tokenizer("5", add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]


def test_weight_zero_removes_an_example_exactly_for_seq2seq(t5_student):
    tokenizer = load_tokenizer(t5_student)
    model = load_model(t5_student)
    rows = gold_rows(4, seed=5)

    def loss(chunk, weights):
        batch = rows_to_batch(tokenizer, [r["prompt"] for r in chunk], [r["target"] for r in chunk], 160, seq2seq=True)
        return float(weighted_lm_loss(model, batch, torch.tensor(weights)))

    assert loss(rows, [1, 1, 1, 0]) == pytest.approx(loss(rows[:3], [0.75, 0.75, 0.75]), abs=1e-6)


def test_a_t5_student_trains_on_ray_train_and_samples(ray_local, t5_student, tmp_path):
    from tadistill.train.ray_trainer import train_stage

    rows = pd.DataFrame(gold_rows(32, seed=22)).assign(weight=1.0)
    config = TrainConfig(num_workers=2, epochs=2, global_batch_size=8, micro_batch_size=4, lr=1e-3, strategy="deepspeed")
    metrics = train_stage(rows, t5_student, config, storage_path=tmp_path / "rt", name="t5", model_out=tmp_path / "model")
    assert metrics["steps"] == 8 and all(0 < loss < 20 for loss in metrics["step_losses"])
    backend = TransformersBackend(str(tmp_path / "model"))
    assert backend.seq2seq
    samples = backend.generate(["Question: Tom has 2 pens. Tom buys 1 more. How many pens does Tom have now?\nAnswer:"],
                               2, 0.7, 16)
    assert len(samples[0]) == 2 and all(isinstance(s, str) for s in samples[0])
    (confidence,) = backend.score(["Question: 1 + 1?\nAnswer:"], ["2"])
    assert 0.0 < confidence <= 1.0
