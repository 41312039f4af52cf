"""Every cluster file validates against what the system that reads it checks.

- Ray cluster-launcher YAML: Ray's own schema (ray/autoscaler/ray-schema.json), after the
  defaults `ray up` fills in.
- KubeRay manifests: the RayCluster / RayJob / RayService fields they use, with the types
  the KubeRay v1 CRDs give them (KubeRay's CRDs do not ship with Ray; the schema below is
  the subset these manifests need, closed so that a misspelt field fails); the RayService's
  Serve config against Ray Serve's own schema, and its applications built from their args.
- jobs/runtime_env.yaml: Ray's runtime_env parser, and the same dependencies as pyproject.
- No secret inline anywhere: secret-looking variables come from Kubernetes secrets.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import jsonschema
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
LAUNCHER_FILES = sorted((REPO / "cluster").glob("*.yaml"))
KUBERAY_FILES = sorted((REPO / "cluster" / "kuberay").glob("*.yaml"))
SECRET_NAME = re.compile(r"(^|_)(KEY|TOKEN|SECRET|PASSWORD|CREDENTIALS?)(_|$)", re.I)


def _load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def test_the_launcher_and_kuberay_files_are_all_here():
    assert {p.name for p in LAUNCHER_FILES} == {"aws.yaml", "gcp.yaml"}
    assert {p.name for p in KUBERAY_FILES} == {"raycluster.yaml", "rayjob.yaml", "rayservice.yaml", "storage.yaml"}


@pytest.mark.parametrize("path", LAUNCHER_FILES, ids=lambda p: p.name)
def test_cluster_launcher_yaml_validates_against_rays_schema(path):
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = prepare_config(_load(path))
    validate_config(config)  # raises jsonschema.ValidationError naming the field
    types = config["available_node_types"]
    head = types[config["head_node_type"]]
    assert head["resources"].get("CPU") == 0, "the head must run no work"
    assert "--num-cpus=0" in " ".join(config["head_start_ray_commands"])
    gpu = [t for name, t in types.items() if "gpu" in name]
    assert gpu and all(t["min_workers"] == 0 for t in gpu), "GPU workers scale from zero"
    assert any("cpu" in name for name in types), "CPU workers for Ray Data"
    assert config["idle_timeout_minutes"] > 0


# -- KubeRay ---------------------------------------------------------------------------
_STR_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
_ENV = {
    "type": "array",
    "items": {
        "type": "object", "required": ["name"], "additionalProperties": False,
        "properties": {
            "name": {"type": "string"}, "value": {"type": "string"},
            "valueFrom": {
                "type": "object", "additionalProperties": False,
                "properties": {"secretKeyRef": {
                    "type": "object", "required": ["key", "name"], "additionalProperties": False,
                    "properties": {"key": {"type": "string"}, "name": {"type": "string"}, "optional": {"type": "boolean"}},
                }},
            },
        },
    },
}
_QUANTITIES = {"type": "object", "additionalProperties": {"type": ["string", "integer"]}}
_CONTAINER = {
    "type": "object", "required": ["name", "image"], "additionalProperties": False,
    "properties": {
        "name": {"type": "string"}, "image": {"type": "string"}, "env": _ENV,
        "resources": {"type": "object", "additionalProperties": False,
                      "properties": {"requests": _QUANTITIES, "limits": _QUANTITIES}},
        "ports": {"type": "array", "items": {"type": "object", "required": ["containerPort"], "additionalProperties": False,
                                             "properties": {"containerPort": {"type": "integer"}, "name": {"type": "string"}}}},
        "volumeMounts": {"type": "array", "items": {"type": "object", "required": ["name", "mountPath"],
                                                    "additionalProperties": False,
                                                    "properties": {"name": {"type": "string"}, "mountPath": {"type": "string"}}}},
    },
}
_POD_TEMPLATE = {
    "type": "object", "required": ["spec"], "additionalProperties": False,
    "properties": {"spec": {
        "type": "object", "required": ["containers"], "additionalProperties": False,
        "properties": {
            "containers": {"type": "array", "minItems": 1, "items": _CONTAINER},
            "volumes": {"type": "array", "items": {"type": "object", "required": ["name"]}},
            "tolerations": {"type": "array", "items": {"type": "object"}},
        },
    }},
}
# rayStartParams values are strings in the CRD (num-cpus: "0", not 0): a common slip.
_RAY_CLUSTER_SPEC = {
    "type": "object", "required": ["headGroupSpec"], "additionalProperties": False,
    "properties": {
        "rayVersion": {"type": "string"},
        "enableInTreeAutoscaling": {"type": "boolean"},
        "autoscalerOptions": {"type": "object", "additionalProperties": False, "properties": {
            "upscalingMode": {"enum": ["Default", "Aggressive", "Conservative"]},
            "idleTimeoutSeconds": {"type": "integer", "minimum": 0},
        }},
        "headGroupSpec": {"type": "object", "required": ["template"], "additionalProperties": False, "properties": {
            "rayStartParams": _STR_MAP, "template": _POD_TEMPLATE}},
        "workerGroupSpecs": {"type": "array", "items": {
            "type": "object", "required": ["groupName", "template"], "additionalProperties": False,
            "properties": {
                "groupName": {"type": "string"}, "replicas": {"type": "integer", "minimum": 0},
                "minReplicas": {"type": "integer", "minimum": 0}, "maxReplicas": {"type": "integer", "minimum": 0},
                "rayStartParams": _STR_MAP, "template": _POD_TEMPLATE,
            },
        }},
    },
}
_METADATA = {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}, "labels": _STR_MAP}}
KUBERAY_SCHEMAS = {
    "RayCluster": {"type": "object", "required": ["apiVersion", "kind", "metadata", "spec"], "additionalProperties": False,
                   "properties": {"apiVersion": {"const": "ray.io/v1"}, "kind": {"const": "RayCluster"},
                                  "metadata": _METADATA, "spec": _RAY_CLUSTER_SPEC}},
    "RayJob": {"type": "object", "required": ["apiVersion", "kind", "metadata", "spec"], "additionalProperties": False,
               "properties": {"apiVersion": {"const": "ray.io/v1"}, "kind": {"const": "RayJob"}, "metadata": _METADATA,
                              "spec": {"type": "object", "required": ["entrypoint", "rayClusterSpec"],
                                       "additionalProperties": False, "properties": {
                                           "entrypoint": {"type": "string"}, "runtimeEnvYAML": {"type": "string"},
                                           "shutdownAfterJobFinishes": {"type": "boolean"},
                                           "ttlSecondsAfterFinished": {"type": "integer", "minimum": 0},
                                           "activeDeadlineSeconds": {"type": "integer", "minimum": 1},
                                           "rayClusterSpec": _RAY_CLUSTER_SPEC}}}},
    "RayService": {"type": "object", "required": ["apiVersion", "kind", "metadata", "spec"], "additionalProperties": False,
                   "properties": {"apiVersion": {"const": "ray.io/v1"}, "kind": {"const": "RayService"},
                                  "metadata": _METADATA,
                                  "spec": {"type": "object", "required": ["serveConfigV2", "rayClusterConfig"],
                                           "additionalProperties": False, "properties": {
                                               "serveConfigV2": {"type": "string"},
                                               "rayClusterConfig": _RAY_CLUSTER_SPEC}}}},
}


def _kuberay_manifests():
    for path in KUBERAY_FILES:
        for doc in yaml.safe_load_all(path.read_text()):
            if doc["kind"] in KUBERAY_SCHEMAS:
                yield pytest.param(doc, id=f"{path.name}:{doc['kind']}")


@pytest.mark.parametrize("doc", list(_kuberay_manifests()))
def test_kuberay_manifests_use_crd_fields_with_their_types(doc):
    jsonschema.validate(doc, KUBERAY_SCHEMAS[doc["kind"]])
    spec = doc["spec"].get("rayClusterSpec") or doc["spec"].get("rayClusterConfig") or doc["spec"]
    assert spec["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0", "the head must run no work"
    assert spec["enableInTreeAutoscaling"] and spec["autoscalerOptions"]["idleTimeoutSeconds"] > 0
    groups = {g["groupName"]: g for g in spec["workerGroupSpecs"]}
    gpu_limits = groups["gpu"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert gpu_limits["nvidia.com/gpu"] == "1" and groups["cpu"]["minReplicas"] == 0


def _env_vars(tree):
    if isinstance(tree, dict):
        if "name" in tree and ("value" in tree or "valueFrom" in tree):
            yield tree
        for value in tree.values():
            yield from _env_vars(value)
    elif isinstance(tree, list):
        for item in tree:
            yield from _env_vars(item)


@pytest.mark.parametrize("path", KUBERAY_FILES + [REPO / "jobs" / "runtime_env.yaml"], ids=lambda p: p.name)
def test_secrets_come_from_kubernetes_secrets_never_inline(path):
    docs = list(yaml.safe_load_all(path.read_text()))
    assert not any(d.get("kind") == "Secret" for d in docs), f"{path.name}: create secrets with kubectl, not a manifest"
    secret_like = [e for d in docs for e in _env_vars(d) if SECRET_NAME.search(e["name"])]
    for env in secret_like:
        assert "value" not in env and "secretKeyRef" in env["valueFrom"], f"{path.name}: {env['name']} is inline"
    if path.name == "raycluster.yaml":  # every pod (teacher calls run on workers) gets the key
        assert len(secret_like) >= 2 * 3
    env_vars = (docs[0] or {}).get("env_vars", {}) if path.name == "runtime_env.yaml" else {}
    assert not [k for k in env_vars if SECRET_NAME.search(k)], "runtime_env is stored with the job: no secrets"


def test_rayservice_serve_config_validates_and_its_apps_build():
    from ray.serve.schema import ServeDeploySchema

    from tadistill.inference import apps

    doc = _load(REPO / "cluster" / "kuberay" / "rayservice.yaml")
    serve_config = ServeDeploySchema.model_validate(yaml.safe_load(doc["spec"]["serveConfigV2"]))
    for app in serve_config.applications:
        module, name = app.import_path.split(":")
        assert module == "tadistill.inference.apps"
        built = getattr(apps, name)(app.args)  # the args validate as inference.* options
        assert built is not None


def test_app_args_are_validated_with_the_key_named():
    from tadistill.inference.apps import ta_scorer

    with pytest.raises(ValueError, match="need 'model'"):
        ta_scorer({})
    with pytest.raises(ValueError, match="num_sampels"):
        ta_scorer({"model": "/m", "num_sampels": 4})


def test_runtime_env_parses_and_lists_pyprojects_dependencies():
    from ray.runtime_env import RuntimeEnv

    runtime_env = _load(REPO / "jobs" / "runtime_env.yaml")
    RuntimeEnv(**runtime_env)  # Ray's own validation of every field
    assert {".git", "runs", ".venv"} <= set(runtime_env["excludes"])
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    expected = {d.replace(" ", "") for d in project if not re.match(r"(ray|torch)\b", d)}
    assert set(runtime_env["pip"]["packages"]) == expected
