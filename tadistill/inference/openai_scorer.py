"""A TA behind any OpenAI-compatible server that returns prompt log-probabilities (vLLM, a
`ray.serve.llm` app): the completions API with `echo` and `logprobs`, generating nothing.

Prompts go as token ids, tokenized here exactly as the local backends tokenize them (the
TA's tokenizer is loaded from `tokenizer_path`), so the confidence exp(mean log p(output
token | prefix)) is computed over the same tokens as `TransformersBackend.score`.
"""

from __future__ import annotations

import os
from typing import Sequence

from ..modeling import IGNORE_INDEX, confidence_of, encode_pair, load_tokenizer


class OpenAIScorerBackend:
    def __init__(self, base_url: str, model: str, tokenizer_path: str, api_key_env: str = "OPENAI_API_KEY",
                 timeout_s: float = 120, max_retries: int = 4, chat_template: bool = True):
        import openai

        self.model_path = model
        self.model = model
        self.tokenizer = load_tokenizer(tokenizer_path, chat_template)
        self.client = openai.OpenAI(base_url=base_url, api_key=os.environ.get(api_key_env) or "not-needed",
                                    timeout=timeout_s, max_retries=max_retries)

    def generate(self, *args, **kwargs):
        raise NotImplementedError("an OpenAI-compatible TA endpoint scores texts; the student samples locally")

    def score(self, prompts: Sequence[str], outputs: Sequence[str], max_length: int = 512,
              confidence: str = "mean") -> list[float]:
        if not prompts:
            return []
        encoded = [encode_pair(self.tokenizer, p, o, max_length, add_eos=False) for p, o in zip(prompts, outputs)]
        response = self.client.completions.create(
            model=self.model, prompt=[e.input_ids for e in encoded], max_tokens=0, echo=True, logprobs=0,
            temperature=0.0,
        )
        by_index = {choice.index: choice.logprobs for choice in response.choices}
        scores = []
        for i, e in enumerate(encoded):
            logprobs = by_index[i].token_logprobs
            picked = [logprobs[pos] for pos, label in enumerate(e.labels) if label != IGNORE_INDEX and pos > 0]
            scores.append(confidence_of(picked, confidence))
        return scores
