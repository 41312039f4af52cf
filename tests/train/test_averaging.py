"""Weight averaging with the starting student (train.start_weight_share): real transformers models."""

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
