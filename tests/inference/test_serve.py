"""StudentSampler and TAScorer on Ray Serve, driven by Ray Data, against direct computation."""

import pandas as pd
import pytest
from ray import serve

from tadistill.config import InferenceConfig
from tadistill.inference.transformers_backend import TransformersBackend
from tadistill.inference.deployments import SAMPLER_APP, SCORER_APP, deploy_sampler, deploy_scorer
from tadistill.inference.drive import sample_pool, score_texts

RETRY_S = 120  # long enough for Serve to replace a replica on 2 busy cores
from tadistill.synthetic.problems import generate_problems, gold_solution
from tadistill.tasks.prompts import student_prompt, student_target


def _frame(n):
    problems = generate_problems(n, seed=99, min_steps=2, max_steps=5)
    return pd.DataFrame({
        "id": [f"q{i:03d}" for i in range(n)],
        "question": [p.question() for p in problems],
        "text": [gold_solution(p) for p in problems],
        "answer_type": "number",
        "options": None,
    })


def test_ta_scores_through_serve_equal_direct_scores(ray_local, synthetic_models):
    frame = _frame(40)
    # Odd sizes: rows batched with strangers; an autoscaling deployment, as on a cluster.
    config = InferenceConfig(batch_size=7, max_batch_size=3,
                             autoscaling={"min_replicas": 1, "max_replicas": 2, "target_ongoing_requests": 1})
    deploy_scorer(synthetic_models["ta"], config)
    try:
        scored = score_texts(frame, config.batch_size, num_blocks=3).sort_values("id")
    finally:
        serve.delete(SCORER_APP)
    direct = TransformersBackend(synthetic_models["ta"])
    expected = [direct.score([student_prompt(q)], [student_target(t)])[0] for q, t in zip(frame["question"], frame["text"])]
    assert list(scored["id"]) == list(frame["id"])
    assert list(scored["ta_conf"]) == pytest.approx(expected, abs=1e-5)


def test_sampler_gives_n_samples_per_question_with_answers(ray_local, synthetic_models):
    frame = _frame(10)
    config = InferenceConfig(num_samples=3, batch_size=4)
    deploy_sampler(synthetic_models["student"], config)
    handle = serve.get_deployment_handle("StudentSampler", app_name=SAMPLER_APP)
    deploy_sampler(synthetic_models["ta"], config)  # the competent model: answers are extractable
    try:
        # The running app now serves the new checkpoint.
        assert handle.model_path.remote().result() == synthetic_models["ta"]
        samples = sample_pool(frame, config.batch_size, num_blocks=2)
    finally:
        serve.delete(SAMPLER_APP)
    assert len(samples) == 30
    assert samples.groupby("id")["k"].apply(lambda ks: sorted(ks) == [0, 1, 2]).all()
    assert samples["answer"].notna().mean() > 0.8


def test_local_launcher_scores_and_samples_like_the_deployments(ray_local, synthetic_models):
    """inference.launcher local: the same UDFs hold the models in this process, same outputs."""
    frame = _frame(12)
    config = InferenceConfig(num_samples=2, batch_size=5, max_batch_size=1)  # one request per model call
    deploy_scorer(synthetic_models["ta"], config)
    deploy_sampler(synthetic_models["student"], config)
    try:
        served_scores = score_texts(frame, config.batch_size, num_blocks=1).sort_values(["id"])
        served_samples = sample_pool(frame, config.batch_size, num_blocks=1)
    finally:
        serve.delete(SCORER_APP)
        serve.delete(SAMPLER_APP)
    local_scores = score_texts(frame, config.batch_size, local_model=synthetic_models["ta"]).sort_values(["id"])
    local_samples = sample_pool(frame, config.batch_size, local_model=synthetic_models["student"], settings=config)
    assert list(local_scores["ta_conf"]) == pytest.approx(list(served_scores["ta_conf"]), abs=1e-5)
    # Sampling is seeded by the batch's prompts: the same batches give the same samples.
    assert local_samples.astype(object).to_dict("records") == served_samples.astype(object).to_dict("records")


def test_long_lived_apps_answer_http_and_a_run_scores_through_a_named_app(ray_local, synthetic_models):
    """The apps a RayService hosts: HTTP routes, bad requests named, and inference.ta_app's path."""
    import requests

    from tadistill.inference.apps import student_sampler, ta_scorer
    from tests.conftest import TEST_HTTP_PORT

    frame = _frame(6)
    prompts = [student_prompt(q) for q in frame["question"]]
    outputs = [student_target(t) for t in frame["text"]]
    serve.run(ta_scorer({"model": synthetic_models["ta"], "max_batch_size": 2}), name="shared_ta", route_prefix="/ta")
    serve.run(student_sampler({"model": synthetic_models["student"], "num_samples": 2}), name="shared_student",
              route_prefix="/student")
    base = f"http://127.0.0.1:{TEST_HTTP_PORT}"
    try:
        scores = requests.post(f"{base}/ta", json={"prompts": prompts, "outputs": outputs}, timeout=60)
        samples = requests.post(f"{base}/student", json={"prompts": prompts[:2]}, timeout=60)
        unequal = requests.post(f"{base}/ta", json={"prompts": prompts, "outputs": outputs[:1]}, timeout=60)
        not_strings = requests.post(f"{base}/student", json={"prompts": [1, 2]}, timeout=60)
        through_handles = score_texts(frame, 4, num_blocks=1, app_name="shared_ta").sort_values("id")
    finally:
        serve.delete("shared_ta")
        serve.delete("shared_student")
    direct = TransformersBackend(synthetic_models["ta"]).score(prompts, outputs)
    assert scores.status_code == 200 and scores.json()["scores"] == pytest.approx(direct, abs=1e-5)
    assert list(through_handles["ta_conf"]) == pytest.approx(direct, abs=1e-5)
    assert samples.status_code == 200 and [len(s) for s in samples.json()["samples"]] == [2, 2]
    assert unequal.status_code == 400 and "6 prompts but 1 outputs" in unequal.json()["error"]
    assert not_strings.status_code == 400 and "'prompts' must be a list of strings" in not_strings.json()["error"]


def _replica_pids(deployment: str) -> list[int]:
    """Process ids of a deployment's live replicas (Ray titles them ray::ServeReplica:<app>:<name>)."""
    import psutil

    pids = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        try:
            if any(f"ServeReplica:{deployment}" in part for part in proc.info["cmdline"] or []):
                pids.append(proc.info["pid"])
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return pids


def test_a_replica_killed_while_scoring_costs_no_score(ray_local, synthetic_models, tmp_path):
    """SIGKILL the only TAScorer replica mid-step: its batch is sent again once Serve has
    replaced it, and every row comes back scored exactly once, with the scores it would have had."""
    import os
    import signal
    import threading
    import time

    frame = _frame(48)
    frame = pd.concat([frame.assign(k=k) for k in range(4)], ignore_index=True)  # 192 rows in 24 batches
    config = InferenceConfig(batch_size=8, max_batch_size=1)
    deploy_scorer(synthetic_models["ta"], config)
    victims, parts, done_at_kill = [], tmp_path / "parts", []

    def kill_once_scoring_has_begun():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not list(parts.glob("*.parquet")):
            time.sleep(0.05)
        victims.extend(_replica_pids(f"{SCORER_APP}:TAScorer"))
        done_at_kill.append(len(list(parts.glob("*.parquet"))))
        for pid in victims:
            os.kill(pid, signal.SIGKILL)

    killer = threading.Thread(target=kill_once_scoring_has_begun)
    killer.start()
    try:
        scored = score_texts(frame, config.batch_size, num_blocks=24, parts=(parts, "tag"), retry_for_s=RETRY_S)
    finally:
        killer.join()
        serve.delete(SCORER_APP)
    assert len(victims) == 1  # the replica was found and killed in the middle of the step
    assert 0 < done_at_kill[0] < len(list(parts.glob("*.parquet")))
    assert len(scored) == len(frame) and not scored.duplicated(["id", "k"]).any()
    assert scored["ta_conf"].notna().all()
    direct = TransformersBackend(synthetic_models["ta"])
    by_id = dict(zip(frame["id"], direct.score([student_prompt(q) for q in frame["question"][:48]],
                                               [student_target(t) for t in frame["text"][:48]])))
    assert list(scored["ta_conf"]) == pytest.approx([by_id[i] for i in scored["id"]], abs=1e-5)
