"""Instruct models as users hold them: prompts through the chat template, answers ending at the
end of the assistant's turn; `inference.chat_template: false` turns it off everywhere."""

import os
import shutil
from pathlib import Path

import pytest

from tadistill.config import load_config
from tadistill.modeling import encode_pair, encode_prompt, load_tokenizer, stop_token_ids

PROMPT = "Question: Tom has 3 pens. Tom buys 4 more pens. How many pens does Tom have now?\nAnswer:"
TEMPLATE = ("{% for m in messages %}<s> {{ m['content'] }} </s>{% endfor %}"
            "{% if add_generation_prompt %}<s>{% endif %}")


@pytest.fixture
def chat_student(synthetic_models, tmp_path):
    """The synthetic student, its tokenizer given a chat template (as an instruct model's is)."""
    folder = tmp_path / "chat-student"
    shutil.copytree(synthetic_models["student"], folder)
    tokenizer = load_tokenizer(str(folder))
    tokenizer.chat_template = TEMPLATE
    tokenizer.save_pretrained(folder)
    return str(folder)


def test_a_prompt_goes_through_the_template_unless_turned_off(chat_student, synthetic_models):
    chat = load_tokenizer(chat_student)
    rendered = chat.apply_chat_template([{"role": "user", "content": PROMPT}], tokenize=False,
                                        add_generation_prompt=True)
    assert encode_prompt(chat, PROMPT) == chat(rendered, add_special_tokens=False)["input_ids"]
    plain = load_tokenizer(chat_student, chat_template=False)
    assert encode_prompt(plain, PROMPT) == [plain.bos_token_id] + plain(PROMPT, add_special_tokens=False)["input_ids"]
    # A tokenizer without a template (the synthetic ones) is unchanged either way.
    bare = load_tokenizer(synthetic_models["student"])
    assert encode_prompt(bare, PROMPT) == encode_prompt(load_tokenizer(synthetic_models["student"], False), PROMPT)
    # Training sees the same prompt, the loss only on the answer and its end of turn.
    pair = encode_pair(chat, PROMPT, " 3 + 4 = 7. The answer is 7.", 160)
    prompt_ids = encode_prompt(chat, PROMPT)
    assert pair.input_ids[:len(prompt_ids)] == prompt_ids and pair.input_ids[-1] == chat.eos_token_id
    assert all(label == -100 for label in pair.labels[:len(prompt_ids)])
    # The answer's tokens are found in the target as the chat turn holds it (its leading space stripped).
    target = " 3 + 4 = 7. The answer is 7."
    weighted = encode_pair(chat, PROMPT, target, 160, answer_start=target.index("The"))
    assert chat.decode(weighted.labels[weighted.answer_from:-1]) == "The answer is 7."


def test_the_option_reaches_the_replicas_and_the_training_stages():
    from tadistill.inference.backends import BackendSpec
    from tadistill.train.ray_trainer import stage_fingerprint
    import pandas as pd

    off = load_config(None, ["inference.chat_template=false"])
    assert BackendSpec.of(off.inference).chat_template is False
    assert BackendSpec.of(load_config(None, []).inference).chat_template is True
    rows = pd.DataFrame({"prompt": ["q"], "target": ["a"], "weight": [1.0]})
    assert stage_fingerprint(rows, "m", off.train, chat_template=False) != stage_fingerprint(rows, "m", off.train)


SMOLLM2 = Path(os.environ.get("TADISTILL_SMOLLM2", Path.home() / ".cache/tadistill/smollm2/smollm2-135m"))


@pytest.mark.skipif(not (SMOLLM2 / "model.safetensors").exists(),
                    reason="SmolLM2-135M-Instruct not prepared (python -m bench.quality.smollm2 weights)")
def test_smollm2_instruct_is_prompted_in_its_chat_format_and_stops_at_the_end_of_its_turn():
    from tadistill.inference.transformers_backend import TransformersBackend

    backend = TransformersBackend(str(SMOLLM2), torch_threads=1)
    text = backend.tokenizer.decode(encode_prompt(backend.tokenizer, "What is 2 + 3?"))
    assert "<|im_start|>user\nWhat is 2 + 3?<|im_end|>" in text and text.endswith("<|im_start|>assistant\n")
    assert backend.tokenizer.convert_tokens_to_ids("<|im_end|>") in stop_token_ids(backend.tokenizer, backend.model)
    (answer,), = backend.generate(["What is 2 + 3? Answer with the number only."], 1, 0.0, max_new_tokens=40)
    tokens = backend.tokenizer(answer, add_special_tokens=False)["input_ids"]
    assert "5" in answer and len(tokens) < 40  # it ended its turn instead of running to the limit
