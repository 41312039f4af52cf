"""Training stages on Ray Train with real DeepSpeed and DDP workers (gloo on CPU).

One reference run (2 workers, DeepSpeed ZeRO-2, a checkpoint every 4 steps) is shared: a
1-worker run with the same global batch must retrace its loss curve, and a run whose
worker is killed mid-epoch must resume from its latest checkpoint and retrace it too.
"""

import json
import os
import shutil
import signal
import threading
import time

import pandas as pd
import psutil
import pytest
import torch

from tadistill.config import TrainConfig
from tadistill.inference.transformers_backend import TransformersBackend
from tadistill.modeling import load_model
from tadistill.synthetic.models import gold_rows

# fp32 sums in a different order (gloo all-reduce against local accumulation) differ in the
# last bits; over 24 Adam steps that stays far below this.
LOSS_TOLERANCE = 2e-4
QUESTION = "Question: Tom has 2 pens. Tom buys 1 more. How many pens does Tom have now?\nAnswer:"


def _rows(n=64, seed=21):
    rows = pd.DataFrame(gold_rows(n, seed=seed)).assign(weight=1.0)
    rows.loc[rows.index % 5 == 0, "weight"] = 0.5  # trust weights flow through
    return rows


def _config(**overrides):
    base = dict(num_workers=2, epochs=3, global_batch_size=8, micro_batch_size=4, lr=3e-4,
                checkpoint_every_steps=4, strategy="deepspeed")
    return TrainConfig(**{**base, **overrides})


def _train(tmp_path, name, config, model, rows=None):
    from tadistill.train.ray_trainer import train_stage

    return train_stage(rows if rows is not None else _rows(), model, config,
                       storage_path=tmp_path / "ray_train", name=name, model_out=tmp_path / name / "model")


@pytest.fixture(scope="module")
def reference(ray_local, synthetic_models, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("reference")
    metrics = _train(tmp, "ref", _config(), synthetic_models["student"])
    return metrics, tmp / "ref" / "model"


def test_two_deepspeed_workers_train_and_export_a_loadable_model(reference):
    metrics, model_dir = reference
    # 64 rows, 8 per optimizer step: 8 steps an epoch, 3 epochs.
    assert metrics["steps"] == 24 and len(metrics["step_losses"]) == 24 and metrics["resumed_at"] == []
    assert metrics["strategy"] == "deepspeed-zero2" and metrics["tokens_per_s"] > 0
    assert sum(metrics["step_losses"][-8:]) < sum(metrics["step_losses"][:8])
    assert (model_dir / "config.json").exists() and not (model_dir.parent / "model.tmp").exists()
    assert json.loads((model_dir / "config.json").read_text())["model_type"] == "llama"
    assert len(TransformersBackend(str(model_dir)).generate([QUESTION], 1, 0.0, 8)[0]) == 1


def test_one_worker_retraces_two_workers_with_the_same_global_batch(reference, synthetic_models, tmp_path):
    ref_metrics, ref_model = reference
    # One worker accumulates two micro-batches where two workers take one each; ZeRO-1 with
    # the optimizer offloaded to CPU memory here against ZeRO-2 there: they place and shard
    # the state differently but must compute the same update.
    config = _config(num_workers=1, checkpoint_every_steps=0, deepspeed={"zero_stage": 1, "offload_optimizer": True})
    metrics = _train(tmp_path, "one", config, synthetic_models["student"])
    assert len(metrics["step_losses"]) == len(ref_metrics["step_losses"])
    for step, (one, two) in enumerate(zip(metrics["step_losses"], ref_metrics["step_losses"])):
        assert abs(one - two) < LOSS_TOLERANCE, f"step {step + 1}: 1 worker {one}, 2 workers {two}"
    _assert_same_weights(tmp_path / "one" / "model", ref_model, tolerance=1e-3)


def _ray_train_workers(started_after: float) -> list[psutil.Process]:
    """This run's training workers (a finished run's may still be shutting down)."""
    return [
        p for p in psutil.process_iter(["cmdline", "create_time"])
        if "RayTrainWorker" in " ".join(p.info["cmdline"] or []) and p.info["create_time"] >= started_after
    ]


def _latest_registered_checkpoint(storage) -> str | None:
    """The newest checkpoint Ray Train has recorded (a folder alone may still be uploading)."""
    for snapshot in storage.glob("*/checkpoint_manager_snapshot.json"):
        try:
            latest = json.loads(snapshot.read_text()).get("latest_checkpoint_result")
        except json.JSONDecodeError:  # being rewritten
            return None
        return latest and latest["checkpoint_dir_name"]
    return None


def _kill_a_worker_after_first_checkpoint(storage, seen: dict) -> None:
    started = time.time()
    deadline = started + 300
    while time.time() < deadline:
        checkpoint = _latest_registered_checkpoint(storage)
        workers = _ray_train_workers(started)
        if checkpoint and checkpoint.startswith("step_") and workers:
            seen["checkpoint_before_kill"] = int(checkpoint.split("_")[1])
            os.kill(workers[-1].pid, signal.SIGKILL)
            seen["killed"] = True
            return
        time.sleep(0.02)


def test_a_killed_worker_resumes_from_the_latest_checkpoint(reference, synthetic_models, tmp_path):
    ref_metrics, ref_model = reference
    seen: dict = {}
    killer = threading.Thread(target=_kill_a_worker_after_first_checkpoint, args=(tmp_path / "ray_train", seen))
    killer.start()
    metrics = _train(tmp_path, "killed", _config(), synthetic_models["student"])
    killer.join()
    assert seen.get("killed"), "no worker was killed: the run ended before its first checkpoint was seen"
    # One restart, from a checkpoint at least as new as the newest one seen before the kill:
    # at most checkpoint_every_steps (4) steps were lost.
    assert len(metrics["resumed_at"]) == 1
    resumed = metrics["resumed_at"][0]
    assert resumed % 4 == 0 and resumed >= seen["checkpoint_before_kill"]
    # Weights, optimizer, schedule, data position and RNG came back: the same curve.
    assert len(metrics["step_losses"]) == 24
    for step, (after, ref) in enumerate(zip(metrics["step_losses"], ref_metrics["step_losses"])):
        assert abs(after - ref) < LOSS_TOLERANCE, f"step {step + 1}: resumed {after}, uninterrupted {ref}"
    assert metrics["step_lrs"] == pytest.approx(ref_metrics["step_lrs"])
    _assert_same_weights(tmp_path / "killed" / "model", ref_model, tolerance=1e-4)


def _assert_same_weights(a, b, tolerance):
    ma, mb = load_model(str(a)), load_model(str(b))
    for (name, pa), (_, pb) in zip(ma.named_parameters(), mb.named_parameters()):
        assert torch.allclose(pa, pb, atol=tolerance), f"{name} differs by {float((pa - pb).abs().max())}"


def test_a_zero2_checkpoint_reads_back_whole_from_both_workers_shards(reference, synthetic_models):
    """What train.final_pick 'best_on_probe' weighs besides the last weights: a resumable ZeRO-2
    checkpoint's fp32 weights, gathered from both ranks' optimizer shards, are the module rank 0 saved
    whole (fp32 training: the master weights are the model's), and lie between start and last."""
    from tadistill.train.checkpoint_weights import checkpoint_state, kept_checkpoints
    from tadistill.train.engines import DEEPSPEED_TAG

    metrics, model_dir = reference
    kept = kept_checkpoints(metrics["ray_train_run"])
    # A checkpoint every 4 steps of 24; Ray Train keeps 2 with model_final among them.
    assert [folder.name for folder in kept] == ["step_0000020"]
    state = checkpoint_state(kept[0], _config(), synthetic_models["student"])
    module = torch.load(kept[0] / DEEPSPEED_TAG / "mp_rank_00_model_states.pt", map_location="cpu",
                        weights_only=False)["module"]
    assert all(torch.equal(state[name], module[name]) for name in module)

    began, last = load_model(synthetic_models["student"]).state_dict(), load_model(str(model_dir)).state_dict()
    assert state.keys() == began.keys()

    def distance_to_last(weights):
        with torch.no_grad():  # (DeepSpeed's gathered tensors still ask for gradients)
            return sum(float((weights[k] - last[k]).norm()) for k in last if last[k].is_floating_point())

    assert distance_to_last(began) > distance_to_last(state) > 0


ENGINE_OPTIONS = {
    # DDP in bf16 with LoRA adapters.
    "ddp-bf16-lora": dict(strategy="ddp", precision="bf16", lora={"enabled": True, "r": 8}),
    # ZeRO-3 shards the parameters themselves (and offloads them to CPU memory between uses).
    "zero3-offload-params": dict(strategy="deepspeed", deepspeed={"zero_stage": 3, "offload_params": True}),
}


@pytest.mark.parametrize("options", ENGINE_OPTIONS.values(), ids=ENGINE_OPTIONS.keys())
def test_each_engine_option_trains_and_exports_a_plain_model(ray_local, synthetic_models, tmp_path, options):
    config = _config(epochs=2, checkpoint_every_steps=0, lr=1e-3, **options)
    metrics = _train(tmp_path, "stage", config, synthetic_models["student"], rows=_rows(32))
    assert metrics["steps"] == 8 and all(0 < loss < 10 for loss in metrics["step_losses"])
    model_dir = tmp_path / "stage" / "model"
    # Whatever the engine, the result is one ordinary folder the rest of the pipeline loads.
    model = load_model(str(model_dir))
    base = load_model(synthetic_models["student"])
    changed = [n for (n, p), (_, q) in zip(model.named_parameters(), base.named_parameters()) if not torch.equal(p, q)]
    assert changed, "training left every weight as it was"
    assert len(TransformersBackend(str(model_dir)).generate([QUESTION], 1, 0.0, 8)[0]) == 1
    if config.lora.enabled:
        assert (model_dir / "adapter" / "adapter_config.json").exists()
        assert not any("lora" in n for n, _ in model.named_parameters())  # merged in
        # Adapters touch only the linear layers: embeddings and norms stay frozen.
        assert not any("embed" in n or "norm" in n for n in changed)


def test_a_stage_resumes_only_a_run_with_the_same_inputs(synthetic_models, tmp_path):
    """The Ray Train run's name holds a fingerprint: rerun the same stage and it resumes; change
    what is learnt (rows, config, the starting model's files) and it starts afresh."""
    import shutil

    from tadistill.train.ray_trainer import stage_fingerprint

    model = tmp_path / "init"
    shutil.copytree(synthetic_models["student"], model)
    rows, config = _rows(16), _config()
    first = stage_fingerprint(rows, str(model), config)
    assert stage_fingerprint(rows.copy(), str(model), config) == first
    # Cadence and tracking do not change what is learnt: a resumed run may change them; nor does which
    # of its kept weights the final student ends with (train.final_pick picks after the training).
    assert stage_fingerprint(rows, str(model), _config(checkpoint_every_steps=2, max_failures=5,
                                                        tracking={"backends": ["tensorboard"]})) == first
    assert stage_fingerprint(rows, str(model), _config(final_pick="best_on_probe")) == first
    assert stage_fingerprint(rows, str(model), _config(lr=1e-4)) != first
    assert stage_fingerprint(rows.assign(weight=0.3), str(model), config) != first
    # The loss is learnt; gce_q only under 'gce'; the answers' starts (trust.mode 'answer_weight') too.
    assert stage_fingerprint(rows, str(model), _config(gce_q=0.5)) == first
    assert stage_fingerprint(rows, str(model), _config(loss="gce")) not in (
        first, stage_fingerprint(rows, str(model), _config(loss="gce", gce_q=0.5)))
    assert stage_fingerprint(rows.assign(answer_start=3), str(model), config) != first
    time.sleep(0.01)
    (model / "config.json").write_text((model / "config.json").read_text() + " ")  # stage 1 rewrote it
    assert stage_fingerprint(rows, str(model), config) != first


def test_the_local_launcher_retraces_a_ray_train_worker_and_resumes(ray_local, synthetic_models, tmp_path):
    """launcher 'local' runs the same loop in this process: the same curve as one Ray Train
    worker, and a rerun after a crash resumes from its latest checkpoint."""
    base = dict(num_workers=1, strategy="ddp", epochs=2, checkpoint_every_steps=2)
    rows = _rows(32)
    on_ray = _train(tmp_path, "ray", _config(**base), synthetic_models["student"], rows=rows)
    config = _config(**base, launcher="local")
    local = _train(tmp_path, "local", config, synthetic_models["student"], rows=rows)
    assert local["launcher"] == "local" and len(local["step_losses"]) == len(on_ray["step_losses"]) == 8
    for step, (a, b) in enumerate(zip(local["step_losses"], on_ray["step_losses"])):
        assert abs(a - b) < LOSS_TOLERANCE, f"step {step + 1}: local {a}, Ray Train {b}"
    # A crash after step 4's checkpoint: the final model and the later checkpoints are gone.
    (run,) = (tmp_path / "ray_train").glob("local-*")
    shutil.rmtree(run / "model_final")
    for late in sorted(run.glob("step_*"))[1:]:
        shutil.rmtree(late)
    (run / "latest.json").write_text(json.dumps({"name": sorted(run.glob("step_*"))[0].name}))
    resumed = _train(tmp_path, "local", config, synthetic_models["student"], rows=rows)
    assert resumed["resumed_at"] == [int(sorted(run.glob("step_*"))[0].name.split("_")[1])]
    assert resumed["step_losses"] == pytest.approx(local["step_losses"], abs=1e-6)
