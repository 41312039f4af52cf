"""The TA as an error detector on real teachers: does SmolLM2-135M-Instruct, adapted on a
disjoint part of a data set, tell a real teacher's wrong rationales from its right ones?

    .venv/bin/python -m bench.quality.smollm2 prepare          # once: the SmolLM2 safetensors folder
    .venv/bin/python -m bench.real.ta_detection [--only svamp-palm ...] [--eval 300] [--adapt 160]
    .venv/bin/python -m bench.real.ta_detection --readme docs/benchmarks/real-teachers.md   # the README's table from real.json

For every data set in ../shared/data with recorded teacher outputs (configs/datasets/*.yaml read
them, as a run would): the questions with outputs are split by a hash of their id into an
adaptation part and an evaluation part. The TA is the whole SmolLM2-135M-Instruct fine-tuned for
one epoch on up to --adapt of the teacher's *right* rationales (right by gold) from the adaptation
part, in the chat format the pipeline prompts it in. On up to --eval outputs of the evaluation part
(the first rationale of each question), it reports the AUROC of the TA's confidence
(`inference.ta_confidence`, the pipeline's default) for right against wrong, with a bootstrap 95%
CI over outputs, the counts, the same for the base model before adaptation, and simple baselines
fixed in advance: output length (shorter counted as more likely right) and, where the teacher
gave several rationales per question, the share of them agreeing with this one's answer.
Writes `ta_detection` in docs/results/real.json (other keys kept). Skips a data set whose files
are absent. The project's goal (issue 18): AUROC >= 0.80 on at least 3 data sets.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared" / "data"
SMOLLM2 = Path.home() / ".cache" / "tadistill" / "smollm2" / "smollm2-135m"
TA_WORK = Path.home() / ".cache" / "tadistill" / "ta_detection"  # the adapted TAs, one folder a data set

# name -> (data set, teacher, config, overrides)
DATASETS = {
    "svamp-palm": ("SVAMP", "PaLM 540B (distilling-step-by-step)", "svamp_dss.yaml", []),
    "csqa-palm": ("CommonsenseQA", "PaLM 540B (distilling-step-by-step)", "csqa_dss.yaml", []),
    "gsm8k-gpt3": ("GSM8K", "GPT-3 175B verifier solutions", "gsm8k.yaml", []),
    "gsm8k-zeroshot": ("GSM8K", "text-davinci-002 zero-shot CoT", "gsm8k.yaml",
                       ["teacher.recorded.files=[gsm8k/kojima_zero_shot_cot/gsm8k_zero_shot_cot.log]",
                        "teacher.recorded.fields={}"]),
    "svamp-gpt35": ("SVAMP", "GPT-3.5 (MCC-KD, ~5 rationales a question)", "svamp_mcc_kd.yaml", []),
}

log = logging.getLogger("ta_detection")


def auroc(scores: np.ndarray, right: np.ndarray) -> float:
    from tadistill.tables import auroc as pairwise

    return pairwise(scores[right], scores[~right])


def bootstrap_ci(scores: np.ndarray, right: np.ndarray, resamples: int = 2000, seed: int = 0) -> list[float]:
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(resamples):
        pick = rng.integers(0, len(scores), len(scores))
        if right[pick].all() or not right[pick].any():
            continue
        values.append(auroc(scores[pick], right[pick]))
    return [round(float(np.percentile(values, 2.5)), 3), round(float(np.percentile(values, 97.5)), 3)]


def in_adapt_part(row_id: str) -> bool:
    return int(hashlib.sha256(("adapt|" + row_id).encode()).hexdigest()[:8], 16) % 5 < 2  # 40%


def load(name: str):
    """(rows, teacher outputs with `answer` and `right`) for a data set, as a run reads them."""
    from tadistill.config import load_config
    from tadistill.corpus import read_corpus
    from tadistill.tasks.answers import add_answers
    from tadistill.teacher.recorded import import_records

    _, _, config_file, overrides = DATASETS[name]
    config = load_config(REPO / "configs" / "datasets" / config_file, overrides)
    root = Path(config.data.root)
    if not root.is_absolute():
        config = load_config(REPO / "configs" / "datasets" / config_file,
                             [*overrides, f"data.root={(REPO / root).resolve()}"])
    rows = read_corpus(config.data).rows
    records, _ = import_records(config.teacher.recorded, config.data.root, rows)
    records = add_answers(records, rows, config.data.answer_fallback)
    gold = rows.set_index("id")["gold"]
    records["right"] = records["answer"].notna() & (records["answer"] == records["id"].map(gold))
    return rows, records


def adaptation_rationales(records: pd.DataFrame, count: int) -> pd.DataFrame:
    """The teacher's right rationales of the adaptation part the TA is adapted on."""
    right = records[records["right"] & records["id"].map(in_adapt_part)]
    return right.sample(n=min(count, len(right)), random_state=0)


def adapt(base: Path, rows: pd.DataFrame, records: pd.DataFrame, count: int, out: Path) -> dict:
    from tadistill.modeling import load_model, load_tokenizer
    from tadistill.tasks.prompts import student_prompt, student_target
    from tadistill.train.loop import fit_local

    questions = rows.set_index("id")["question"]
    right = adaptation_rationales(records, count)
    train = [{"prompt": student_prompt(questions[i]), "target": student_target(t)} for i, t in zip(right["id"], right["text"])]
    if not (out / "config.json").exists():
        model, tokenizer = load_model(str(base)), load_tokenizer(str(base))
        started = time.time()
        losses = fit_local(model, tokenizer, train, epochs=1, batch_size=8, lr=5e-5, seed=0, max_length=256)
        model.save_pretrained(out)
        tokenizer.save_pretrained(out)
        log.info("adapted on %d right rationales in %.0f s (loss %.3f -> %.3f)", len(train), time.time() - started,
                 losses[0], losses[-1])
    return {"adapt_rationales": len(train)}


def confidences(model: Path, rows: pd.DataFrame, outputs: pd.DataFrame, confidence: str) -> np.ndarray:
    from tadistill.inference.transformers_backend import TransformersBackend
    from tadistill.tasks.prompts import student_prompt, student_target

    backend = TransformersBackend(str(model))
    questions = rows.set_index("id")["question"]
    scores = []
    for start in range(0, len(outputs), 16):
        chunk = outputs.iloc[start:start + 16]
        scores += backend.score([student_prompt(questions[i]) for i in chunk["id"]],
                                [student_target(t) for t in chunk["text"]], max_length=384, confidence=confidence)
    return np.array(scores)


def agreement(records: pd.DataFrame, outputs: pd.DataFrame) -> np.ndarray | None:
    """Per output: the share of the teacher's other rationales for its question with the same answer."""
    counts = records.groupby("id")["k"].count()
    if counts.max() < 2:
        return None
    shares = []
    for row_id, answer in zip(outputs["id"], outputs["answer"]):
        others = records[(records["id"] == row_id) & (records["k"] != 0)]["answer"]
        shares.append(float((others == answer).mean()) if len(others) else 0.5)
    return np.array(shares)


def measure(name: str, work: Path, eval_count: int, adapt_count: int, confidence: str) -> dict:
    dataset, teacher, _, _ = DATASETS[name]
    rows, records = load(name)
    first = records[records["k"] == 0]
    outputs = first[~first["id"].map(in_adapt_part)].sample(n=min(eval_count, len(first)), random_state=1)
    outputs = outputs.reset_index(drop=True)
    right = outputs["right"].to_numpy()
    info = adapt(SMOLLM2, rows, records, adapt_count, work / f"ta-{name}")
    ta = confidences(work / f"ta-{name}", rows, outputs, confidence)
    base = confidences(SMOLLM2, rows, outputs, confidence)
    length = -outputs["text"].str.len().to_numpy(dtype=float)
    result = {
        "dataset": dataset, "teacher": teacher, "key": name, "right": int(right.sum()), "wrong": int((~right).sum()),
        "teacher_accuracy": round(float(right.mean()), 3), "confidence": confidence,
        "auroc": round(auroc(ta, right), 3), "ci": bootstrap_ci(ta, right),
        "base_model_auroc": round(auroc(base, right), 3),
        "baseline": "length (shorter = right)", "baseline_auroc": round(auroc(length, right), 3),
        **info,
    }
    shares = agreement(records, outputs)
    if shares is not None:
        result["agreement_auroc"] = round(auroc(shares, right), 3)
    log.info("%s: %s", name, result)
    return result


def readme_table(results: list[dict]) -> str:
    """The README's table of the TA as an error detector, from docs/results/real.json."""
    lines = ["| data set | teacher | right / wrong | TA AUROC (95% CI) | base model | length | agreement |",
             "|---|---|---|---|---|---|---|"]
    for r in results:
        agreement = f"{r['agreement_auroc']:.3f}" if "agreement_auroc" in r else "-"
        lines.append(f"| {r['dataset']} | {r['teacher']} | {r['right']} / {r['wrong']} | **{r['auroc']:.3f}** "
                     f"({r['ci'][0]:.3f} to {r['ci'][1]:.3f}) | {r['base_model_auroc']:.3f} | "
                     f"{r['baseline_auroc']:.3f} | {agreement} |")
    return "\n".join(lines)


def write_readme(results: list[dict], readme: Path) -> None:
    from bench.quality.stats import replace_between

    text = readme.read_text()
    if "<!-- real-ta:begin -->" in text:
        readme.write_text(replace_between(text, "<!-- real-ta:begin -->", "<!-- real-ta:end -->", readme_table(results)))


def arguments(doc: str) -> argparse.ArgumentParser:
    """The options every real-teacher detection benchmark takes."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="*", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--eval", type=int, default=300, help="teacher outputs scored per data set")
    parser.add_argument("--adapt", type=int, default=160, help="right rationales the TA is adapted on")
    parser.add_argument("--work", default=str(TA_WORK))
    parser.add_argument("--out", default=str(REPO / "docs" / "results" / "real.json"))
    parser.add_argument("--readme", default=None, help="only rewrite this README's table from --out")
    return parser


@contextmanager
def measuring(work: str):
    """The adapted TAs' folder, with logging, torch's threads and the corpus reader's Ray set up."""
    import ray
    import torch

    if not SHARED.exists():
        print(f"{SHARED} is absent: nothing to measure")
        raise SystemExit(0)
    if not (SMOLLM2 / "model.safetensors").exists():
        raise SystemExit(f"{SMOLLM2} is missing: .venv/bin/python -m bench.quality.smollm2 prepare")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(2)
    folder = Path(work)
    folder.mkdir(parents=True, exist_ok=True)
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield folder
    finally:
        ray.shutdown()


def main() -> None:
    args = arguments(__doc__).parse_args()
    if args.readme:
        write_readme(json.loads(Path(args.out).read_text())["ta_detection"], Path(args.readme))
        return
    from tadistill.config import InferenceConfig

    out = Path(args.out)
    saved = json.loads(out.read_text()) if out.exists() else {}
    found = {r["key"]: r for r in saved.get("ta_detection", [])}
    with measuring(args.work) as work:
        for name in args.only:
            found[name] = measure(name, work, args.eval, args.adapt, InferenceConfig().ta_confidence)
            saved["ta_detection"] = [found[k] for k in DATASETS if k in found]
            saved["ta_detection_command"] = "python -m bench.real.ta_detection"
            out.write_text(json.dumps(saved, indent=2) + "\n")
    print(json.dumps(saved.get("ta_detection", []), indent=2))


if __name__ == "__main__":
    main()
