"""The transformers backend: N samples per prompt, and teacher-forced confidence of a text.

Confidence of an output y for a prompt x is exp(mean over y's tokens of log p(token | x,
earlier tokens of y)): length-normalised, so long and short chains compare. Padding is
masked, so a text's score does not depend on what it was batched with.
"""

from __future__ import annotations

import hashlib
import math
from typing import Optional, Sequence

import torch

from ..modeling import (
    CONFIDENCES, collate_left, collate_right, encode_pair, encode_prompt, is_seq2seq, load_model, load_tokenizer,
    per_example_token_logprobs, stop_token_ids,
)


class TransformersBackend:
    def __init__(self, model_path: str, torch_threads: Optional[int] = None, device: str = "cpu",
                 chat_template: bool = True):
        if torch_threads:
            torch.set_num_threads(torch_threads)
        self.model_path = model_path
        self.device = torch.device(device)
        self.tokenizer = load_tokenizer(model_path, chat_template)
        self.model = load_model(model_path).to(self.device).eval()
        self.seq2seq = is_seq2seq(self.model)

    @torch.no_grad()
    def generate(
        self,
        prompts: Sequence[str],
        num_samples: int = 1,
        temperature: float = 0.0,
        max_new_tokens: int = 64,
        seed: int = 0,
    ) -> list[list[str]]:
        """num_samples completions per prompt (greedy when temperature is 0)."""
        encoded = [encode_prompt(self.tokenizer, p, seq2seq=self.seq2seq) for p in prompts]
        batch = {k: v.to(self.device) for k, v in collate_left(encoded, self.tokenizer.pad_token_id).items()}
        # Seeded by the prompts themselves: the same batch gives the same samples on rerun.
        digest = hashlib.sha256(("|".join(prompts) + f"#{seed}").encode()).digest()
        torch.manual_seed(int.from_bytes(digest[:8], "big") % 2**63)
        sampling = temperature > 0
        out = self.model.generate(
            **batch,
            do_sample=sampling,
            temperature=temperature if sampling else None,
            top_p=None,
            top_k=None,
            num_return_sequences=num_samples,
            max_new_tokens=max_new_tokens,
            pad_token_id=self.tokenizer.pad_token_id,
            eos_token_id=stop_token_ids(self.tokenizer, self.model),
        )
        # A decoder-only model echoes the prompt; an encoder-decoder returns only what it wrote.
        new_tokens = out if self.seq2seq else out[:, batch["input_ids"].shape[1]:]
        texts = self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
        texts = [t.strip() for t in texts]
        return [texts[i * num_samples:(i + 1) * num_samples] for i in range(len(prompts))]

    @torch.no_grad()
    def score(self, prompts: Sequence[str], outputs: Sequence[str], max_length: int = 512,
              confidence: str = "mean") -> list[float]:
        """Confidence of each output given its prompt (modeling.confidence_of): 'mean', exp(mean
        token log-prob), 'min', the least likely token's probability, or 'sum', its log-probability."""
        if confidence not in CONFIDENCES:
            raise ValueError(f"unknown confidence {confidence!r}; one of {', '.join(CONFIDENCES)}")
        encoded = [encode_pair(self.tokenizer, p, o, max_length, add_eos=False, seq2seq=self.seq2seq)
                   for p, o in zip(prompts, outputs)]
        batch = {k: v.to(self.device) for k, v in collate_right(encoded, self.tokenizer.pad_token_id).items()}
        logprob_sum, counts, least = per_example_token_logprobs(self.model, batch, with_min=True)
        if confidence == "sum":
            return [float(s) for s in logprob_sum.double()]
        if confidence == "min":
            return [math.exp(float(m)) if int(c) > 0 else 0.0 for m, c in zip(least.double(), counts)]
        return [
            math.exp(float(s) / int(c)) if int(c) > 0 else 0.0
            for s, c in zip(logprob_sum.double(), counts)
        ]
