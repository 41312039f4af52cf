"""Long-lived Serve applications: the TA scorer and a student sampler, for `serve run` or a
KubeRay RayService (cluster/kuberay/rayservice.yaml).

A run deploys its own scorer and sampler and takes them down when a step ends; a team that
scores with one TA across many runs, or serves a distilled student, keeps them up instead:

    serve run tadistill.inference.apps:ta_scorer model=/mnt/models/ta
    serve run tadistill.inference.apps:student_sampler model=/mnt/runs/demo/full/final/model

Both answer HTTP (POST JSON, see the deployments) and Serve handles. A run uses a running
TA scorer app instead of deploying its own with `inference.ta_app: <app name>`.

`args` are the model path plus any InferenceConfig field (backend, num_gpus, replicas,
autoscaling, num_samples, ...), validated like the run config: a bad key is named.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from ray.serve import Application

from ..config import InferenceConfig
from .deployments import scorer_app, sampler_app


def _settings(args: dict[str, Any], app: str) -> tuple[str, InferenceConfig]:
    args = dict(args)
    model = args.pop("model", None)
    if not model:
        raise ValueError(f"{app}: args need 'model', the TA's or student's folder or hub name")
    try:
        return str(model), InferenceConfig.model_validate(args)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ValueError(f"{app}: bad args ({problems}); any inference.* option may be given") from None


def ta_scorer(args: dict[str, Any]) -> Application:
    """The TAScorer deployment on args['model']."""
    return scorer_app(*_settings(args, "ta_scorer"))


def student_sampler(args: dict[str, Any]) -> Application:
    """The StudentSampler deployment on args['model'] (num_samples, temperature from args)."""
    return sampler_app(*_settings(args, "student_sampler"))
