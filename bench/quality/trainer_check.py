"""Is `none` a strong baseline? Its student against one trained by an independent trainer.

    .venv/bin/python -m bench.quality.trainer_check [--cell shaped 0.4 300] [--seeds 0 1 2 3 4]

For each seed's `none` run of the quality benchmark, the same rows (its final/train_rows.parquet),
from the same base student, for the same optimizer steps, batch size, learning rate, warm-up and
decay (our schedule handed to the Trainer as its scheduler), are trained with the transformers
`Trainer` instead of tadistill's loop, and answered on the same test split by the same greedy
evaluation. Prints and writes (docs/results/trainer_check.json) both accuracies per seed and the
paired difference with its bootstrap 95% CI: a CI that straddles 0 says tadistill's loop trains
as well as the Trainer, within noise.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from .bench import REPO, add_threads_option, use_threads
from .stats import paired


def train_with_hf_trainer(rows: pd.DataFrame, base_model: str, config, out: Path) -> str:
    import torch
    from transformers import Trainer, TrainingArguments

    from tadistill.modeling import collate_right, encode_pair, load_model, load_tokenizer
    from tadistill.train.engines import lr_factor

    tokenizer = load_tokenizer(base_model)
    model = load_model(base_model)
    train = config.train
    encoded = [encode_pair(tokenizer, p, t, train.max_length) for p, t in zip(rows["prompt"], rows["target"])]

    class Rows(torch.utils.data.Dataset):
        def __len__(self):
            return len(encoded)

        def __getitem__(self, i):
            return encoded[i]

    steps = config.final_steps()
    optimizer = torch.optim.AdamW(model.parameters(), lr=train.lr, weight_decay=train.weight_decay)
    warmup = int(steps * train.warmup_share)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, warmup, steps))
    args = TrainingArguments(
        output_dir=str(out), max_steps=steps, per_device_train_batch_size=train.global_batch_size,
        max_grad_norm=train.max_grad_norm, seed=train.seed, data_seed=train.seed, logging_steps=50,
        save_strategy="no", report_to=[], use_cpu=True, dataloader_drop_last=False, remove_unused_columns=False,
    )
    trainer = Trainer(model=model, args=args, train_dataset=Rows(),
                      data_collator=lambda batch: collate_right(batch, tokenizer.pad_token_id),
                      optimizers=(optimizer, scheduler))
    trainer.train()
    model.save_pretrained(out / "model")
    tokenizer.save_pretrained(out / "model")
    return str(out / "model")


def check_seed(run_dir: Path, work: Path) -> dict:
    from tadistill.config import Config
    from tadistill.evaluate import accuracy, answer_test_set
    from tadistill.inference.executor import LocalExecutor

    config = Config.model_validate_json((run_dir / "config.json").read_text())
    rows = pd.read_parquet(run_dir / "final" / "train_rows.parquet")
    manifest = json.loads((run_dir / "manifest.json").read_text())["steps"]
    from tadistill.synthetic.models import ensure_synthetic_models

    base = ensure_synthetic_models(config.models.cache_dir, config.models.synthetic)["student"]
    model = train_with_hf_trainer(rows, base, config, work)
    corpus = pd.read_parquet(run_dir / "corpus" / "rows.parquet")
    test = corpus[corpus["split"] == config.data.test_split]
    # Answered in this process, like the benchmark's runs (inference.launcher local).
    answered = answer_test_set(test, model, config.eval, LocalExecutor(config.inference, None, config.data.answer_fallback))
    return {"seed": config.seed, "ours": manifest["evaluate"]["accuracy"], "hf_trainer": accuracy(answered)["accuracy"],
            "optimizer_steps": manifest["final.train"]["optimizer_steps"], "rows": len(rows)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cell", nargs=3, default=["shaped", "0.4", "300"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--runs", default=str(REPO / "bench" / "results" / "quality" / "runs"))
    add_threads_option(parser)
    parser.add_argument("--out", default=str(REPO / "docs" / "results" / "trainer_check.json"))
    args = parser.parse_args()
    use_threads(args.threads)
    world, rate, budget = args.cell
    cell = Path(args.runs) / f"{world}_err{float(rate)}_b{int(budget)}"
    rows = []
    for seed in args.seeds:
        run_dir = cell / f"seed{seed}" / "none"
        result = check_seed(run_dir, REPO / "bench" / "results" / "trainer_check" / f"seed{seed}")
        rows.append(result)
        print(f"seed {seed}: tadistill {result['ours']:.3f}, transformers Trainer {result['hf_trainer']:.3f} "
              f"({result['optimizer_steps']} steps, {result['rows']} rows)", flush=True)
    ours = np.array([r["ours"] for r in rows])
    hf = np.array([r["hf_trainer"] for r in rows])
    comparison = paired(ours, hf)
    print(f"tadistill - Trainer: {comparison['abs']:+.3f} [{comparison['abs_ci'][0]:+.3f}, {comparison['abs_ci'][1]:+.3f}]")
    Path(args.out).write_text(json.dumps({"cell": args.cell, "runs": rows, "ours_minus_trainer": comparison}, indent=2))


if __name__ == "__main__":
    main()
