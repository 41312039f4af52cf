"""What a benchmark record says about the weights it was computed with."""

import json

from bench.quality.machine import weights_fingerprint


def test_a_folder_s_fingerprint_follows_its_weights_and_nothing_else(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"weights one")
    (tmp_path / "config.json").write_text("{}")
    first = weights_fingerprint(str(tmp_path))
    (tmp_path / "config.json").write_text('{"changed": true}')
    assert weights_fingerprint(str(tmp_path)) == first
    (tmp_path / "model.safetensors").write_bytes(b"weights two")
    assert weights_fingerprint(str(tmp_path)) != first


def test_a_model_that_is_not_a_local_folder_is_named():
    assert weights_fingerprint("HuggingFaceTB/SmolLM2-135M-Instruct") == "HuggingFaceTB/SmolLM2-135M-Instruct"


def test_a_benchmark_record_names_the_weights_its_run_read(ray_local, synthetic_models, tmp_path):
    """The student and TA a run read, by their weights: two builds under one cache key (the
    issue-38 grid read TAs built with 2 threads and with 1) are told apart in the records."""
    from bench.quality.bench import run_seed

    from ..conftest import MODEL_CACHE

    results = tmp_path / "runs.jsonl"
    small = ["data.synthetic.pool_size=60", "data.synthetic.test_size=20", "data.synthetic.validation_size=20",
             "train.epochs=1", "train.launcher=local", "inference.launcher=local", f"models.cache_dir={MODEL_CACHE}"]
    run_seed("shaped", 0.4, 20, 0, ["none"], tmp_path / "out", set(), results, small)
    record = json.loads(results.read_text())
    assert record["models"] == {name: weights_fingerprint(path) for name, path in synthetic_models.items()}
