"""Which models and where they answer: `models.*` and `inference.*`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal, Optional

from pydantic import Field, model_validator

from .choices import described, fact, names
from .base import SYNTHETIC, _Section

LAUNCHERS = names("inference.launcher")
BACKEND_KINDS = names("inference.backend")


def default_cache_dir() -> str:
    """The user's cache folder for built models: $TADISTILL_CACHE, else $XDG_CACHE_HOME/tadistill,
    else ~/.cache/tadistill."""
    if os.environ.get("TADISTILL_CACHE"):
        return os.environ["TADISTILL_CACHE"]
    return str(Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tadistill")


class SyntheticModelsConfig(_Section):
    """What the synthetic student knows before distillation (a world's knob)."""

    student_min_steps: int = Field(1, ge=1, le=8, description="Fewest steps of the gold problems the synthetic student is built on.")
    student_max_steps: int = Field(
        2, ge=1, le=8,
        description=(
            "Most steps of the gold problems the synthetic student is built on: it starts right and consistent on "
            "problems this short and unsure on longer ones. The legacy world: 2-5 steps on a small gold set."
        ),
    )
    student_examples: int = Field(2000, ge=1, description="Gold problems the synthetic student is built on.")
    student_epochs: int = Field(6, ge=1, description="Epochs of the synthetic student's build.")

    @model_validator(mode="after")
    def _steps_ordered(self):
        if self.student_min_steps > self.student_max_steps:
            raise ValueError("student_min_steps must be <= student_max_steps")
        return self


class ModelsConfig(_Section):
    student: str = Field(
        SYNTHETIC,
        description="Student base model: a local folder or hub name for from_pretrained, or 'synthetic'.",
    )
    ta: str = Field(
        SYNTHETIC, description="Teaching-assistant model: a local folder or hub name, or 'synthetic'."
    )
    cache_dir: str = Field(
        default_factory=default_cache_dir,
        description=(
            "Where built synthetic models are cached, so later runs do not rebuild them: by default the user's cache "
            "folder, $TADISTILL_CACHE, else $XDG_CACHE_HOME/tadistill, else ~/.cache/tadistill (as Hugging Face "
            "keeps its own), never the folder a run is started in."
        ),
    )
    synthetic: "SyntheticModelsConfig" = Field(default_factory=lambda: SyntheticModelsConfig())


class AutoscalingConfig(_Section):
    min_replicas: int = Field(1, ge=0, description="Fewest replicas (0 lets an idle deployment scale to zero).")
    max_replicas: int = Field(4, ge=1, description="Most replicas.")
    target_ongoing_requests: float = Field(2.0, gt=0, description="Requests in flight per replica Serve aims for.")

    @model_validator(mode="after")
    def _ordered(self):
        if self.min_replicas > self.max_replicas:
            raise ValueError("min_replicas must be <= max_replicas")
        return self


class InferenceConfig(_Section):
    launcher: Literal[LAUNCHERS] = Field(  # type: ignore[valid-type]
        "serve",
        description="Where student sampling, TA scoring and test answering run (inference/executor.py): "
                    + described("inference.launcher") + ".",
    )
    retry_for_s: float = Field(
        300, gt=0,
        description=(
            "How long a batch is sent again while the Serve replica it went to is lost (a replica that dies "
            "takes its in-flight requests with it; Serve starts another) before the step stops."
        ),
    )
    chat_template: bool = Field(
        True,
        description=(
            "Prompts go through the model's chat template as one user turn, when its tokenizer has one (an "
            "instruct model as users hold it), and generation stops at the end of the assistant's turn; training "
            "uses the same format. false: plain 'Question: ... Answer:' text for every model."
        ),
    )
    backend: Literal[BACKEND_KINDS] = Field(  # type: ignore[valid-type]
        "transformers",
        description="What the Serve replicas sample and score with (inference/backends.py): " + described("inference.backend") + ".",
    )
    num_gpus: float = Field(
        0.0, ge=0,
        description="GPUs reserved by each Serve replica; fractions (0.5) let the sampler and the scorer share one GPU.",
    )
    gpu_memory_utilization: float = Field(
        0.4, gt=0, le=1, description="vLLM: share of a GPU's memory its engine may take (keep the sum under 1 when sharing).",
    )
    ta_endpoint: Optional[str] = Field(
        None,
        description=(
            "OpenAI-compatible endpoint (…/v1) serving the TA with prompt log-probabilities (vLLM, a ray.serve.llm "
            "app); the TAScorer then scores through it. models.ta still names the TA, for its tokenizer."
        ),
    )
    ta_endpoint_model: Optional[str] = Field(None, description="Name the endpoint serves the TA under (default: models.ta).")
    ta_endpoint_api_key_env: str = Field("TA_API_KEY", description="Environment variable holding the TA endpoint's key, if any.")
    ta_app: Optional[str] = Field(
        None,
        description=(
            "Name of a running Serve app hosting the TAScorer (a RayService, `serve run "
            "tadistill.inference.apps:ta_scorer`) on the cluster the run joins: scores go to it instead of a "
            "scorer the run deploys. It must serve models.ta."
        ),
    )
    ta_confidence: Literal["mean", "min"] = Field(
        "min",
        description=(
            "The TA's confidence in a text: 'mean', exp(mean token log-prob), the paper's length-normalised "
            "likelihood; 'min', the probability of its least likely token, so one slipped step in a long chain "
            "is not averaged away (on the synthetic tuning world it halved the wrong outputs' share under "
            "calibrated filtering where 'mean' cut a fifth). Used for the student's samples and the teacher's outputs."
        ),
    )
    num_samples: int = Field(4, ge=1, description="Student samples per pool question (self-consistency N).")
    temperature: float = Field(0.7, gt=0, le=2, description="Student sampling temperature.")
    max_new_tokens: int = Field(48, ge=1, description="Token limit of a student sample.")
    batch_size: int = Field(64, ge=1, description="Rows per batch; one batch is one request to a deployment.")
    max_batch_size: int = Field(
        1, ge=1,
        description=("Requests (each a batch of rows) Serve merges into one model call. 1 on CPU: merging 4 batches of "
                     "64 ran at 0.66 of unmerged ones on 2 cores (longer padding, colder caches); raise it on GPUs, "
                     "where one larger call fills the device."),
    )
    replicas: int = Field(1, ge=1, description="Replicas of each Serve deployment (when inference.autoscaling is null).")
    autoscaling: Optional[AutoscalingConfig] = Field(
        None, description="Let Serve scale each deployment's replicas with its load instead of a fixed count.",
    )
    num_cpus: float = Field(0.5, gt=0, description="CPUs reserved by each Serve replica.")
    max_replicas_per_node: Optional[int] = Field(
        None, ge=1,
        description=("Most replicas of one deployment on one node (Serve's max_replicas_per_node); 1 spreads them over "
                     "nodes, so losing a node (a spot worker, say) takes one replica, not all. null: Serve packs."),
    )
    torch_threads: int = Field(
        1, ge=1,
        description="Torch intra-op threads in each replica (1 on small CPU hosts: spinning OpenMP threads starve the rest).",
    )
    seed: int = Field(0, description="Seed of student sampling.")

    @model_validator(mode="after")
    def _launcher_can_run_it(self):
        # An in-process launcher runs the transformers backend here, nothing served elsewhere.
        if fact("inference.launcher", self.launcher, "in_process") and (
                self.backend != "transformers" or self.ta_endpoint or self.ta_app):
            raise ValueError(f"launcher {self.launcher!r} runs the transformers backend in the driver's process: "
                             "set backend 'transformers' and no ta_endpoint or ta_app, or launcher 'serve'")
        return self

