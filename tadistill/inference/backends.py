"""What a model answers with, chosen once by `inference.backend`: one registered class per backend.

A Serve replica receives a `BackendSpec` (it crosses into the replica's process) and builds its
backend from it: the registered kind, or a TA served elsewhere when `inference.ta_endpoint` is
set. Each kind imports its implementation only when built, so loading a config needs neither
torch nor vLLM. A new backend is one class here, its line in the config's choice table
(config/choices.py), its implementation (same `generate` and `score` as
transformers_backend.TransformersBackend) and its test.
"""

from __future__ import annotations

from typing import Optional

from pydantic import BaseModel

from ..config import choices


class Backend:
    @classmethod
    def build(cls, model_path: str, torch_threads: Optional[int], device: str, gpu_memory_utilization: float,
              chat_template: bool):
        raise NotImplementedError


class Transformers(Backend):

    @classmethod
    def build(cls, model_path, torch_threads, device, gpu_memory_utilization, chat_template):
        from .transformers_backend import TransformersBackend

        return TransformersBackend(model_path, torch_threads=torch_threads, device=device, chat_template=chat_template)


class VLLM(Backend):

    @classmethod
    def build(cls, model_path, torch_threads, device, gpu_memory_utilization, chat_template):
        from .vllm_backend import VLLMBackend

        return VLLMBackend(model_path, gpu_memory_utilization=gpu_memory_utilization, chat_template=chat_template)


class TAEndpoint(BaseModel):
    """A TA served elsewhere (inference.ta_endpoint): the replica only tokenizes and asks it."""

    base_url: str
    model: Optional[str] = None
    api_key_env: str


class BackendSpec(BaseModel):
    """What a replica builds its model backend from."""

    kind: str
    num_gpus: float = 0
    gpu_memory_utilization: float = 0.4
    chat_template: bool = True
    endpoint: Optional[TAEndpoint] = None

    @classmethod
    def of(cls, config) -> "BackendSpec":
        """From an InferenceConfig (the endpoint, for the TA only, is added by the scorer's deployer)."""
        return cls(kind=config.backend, num_gpus=config.num_gpus, gpu_memory_utilization=config.gpu_memory_utilization,
                   chat_template=config.chat_template)

    def build(self, model_path: str, torch_threads: Optional[int] = None):
        """The backend serving `model_path` (for an endpoint, the TA's tokenizer) in this process."""
        if self.endpoint is not None:
            from .openai_scorer import OpenAIScorerBackend

            return OpenAIScorerBackend(self.endpoint.base_url, self.endpoint.model or model_path,
                                       tokenizer_path=model_path, api_key_env=self.endpoint.api_key_env,
                                       chat_template=self.chat_template)
        import torch

        device = "cuda" if self.num_gpus > 0 and torch.cuda.is_available() else "cpu"
        return choices.load("inference.backend", self.kind).build(model_path, torch_threads, device,
                                                                  self.gpu_memory_utilization, self.chat_template)
