"""Training throughput of one stage on Ray Train: 1 against 2 workers, DDP against DeepSpeed
ZeRO-2 on CPU; ZeRO-2 against ZeRO-3 on a GPU with a ~0.5B-parameter model. One run, ratios
printed and written as JSON.

    .venv/bin/python -m bench.train.bench [--rows 512] [--smollm2 FOLDER] [--out docs/results/train.json]
    .venv/bin/python -m bench.train.bench --gpu [--rows 4096] [--peak-tflops 989]

Every configuration trains the same rows with the same global batch (so the same number of
optimizer steps). Samples/s is over the workers' training time (from the first step to the
last); the Ray Train start-up (worker processes, process group, model load) is reported
beside it as the wall time of the whole fit. Model FLOPs utilisation (GPU) is
6 x parameters x tokens/s over the GPUs' peak (dense bf16; 989 TFLOP/s for an H100/H200). On
CPU the peak is measured in the same run: torch's fp32 matmul FLOP/s at one thread, times the
threads the configuration trains on (one per worker), and `roofline` gives 6 x non-embedding
parameters x tokens/s over it for each configuration (and for SmolLM2-135M with --smollm2,
see bench/quality/smollm2.py `prepare`).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _rows(n: int):
    import pandas as pd

    from tadistill.synthetic.models import gold_rows

    return pd.DataFrame(gold_rows(n, seed=99)).assign(weight=1.0)


def _gpu_model(tokenizer_path: str, out: Path) -> str:
    """A Llama-shaped model of ~0.48B parameters, built from its config (nothing downloaded)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from tadistill.modeling import load_tokenizer

    tokenizer = load_tokenizer(tokenizer_path)
    config = LlamaConfig(
        vocab_size=32000, hidden_size=1024, intermediate_size=2816, num_hidden_layers=32,
        num_attention_heads=16, num_key_value_heads=16, max_position_embeddings=1024,
        pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return str(out)


def _parameters(model_path: str) -> int:
    from tadistill.modeling import load_model

    return sum(p.numel() for p in load_model(model_path).parameters())


def _run(name: str, rows, model_path: str, config, scratch: Path) -> dict:
    from tadistill.train.ray_trainer import train_stage

    started = time.perf_counter()
    metrics = train_stage(rows, model_path, config, storage_path=scratch / "ray_train", name=name.replace(" ", "_"),
                          model_out=scratch / name.replace(" ", "_") / "model")
    wall = time.perf_counter() - started
    train_seconds = metrics["train_seconds"]
    result = {
        "config": name, "workers": config.num_workers, "strategy": metrics["strategy"], "rows": len(rows),
        "steps": metrics["steps"], "train_seconds": round(train_seconds, 2), "fit_wall_seconds": round(wall, 1),
        "samples_per_s": round(metrics["steps"] * config.global_batch_size / train_seconds, 1),
        "tokens_per_s": round(metrics["tokens_per_s"], 1), "final_loss": round(metrics["final_loss"], 4),
    }
    print(f"{name:>28}: {result['samples_per_s']:8.1f} samples/s, {result['tokens_per_s']:9.1f} tokens/s "
          f"(fit {wall:.0f} s)", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=None)
    parser.add_argument("--gpu", action="store_true", help="ZeRO-2 against ZeRO-3 on GPUs, ~0.5B model")
    parser.add_argument("--gpus", type=int, default=1)
    parser.add_argument("--peak-tflops", type=float, default=989.0, help="dense bf16 peak of one GPU")
    parser.add_argument("--smollm2", default=None, help="SmolLM2-135M safetensors folder: its training rate too")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    import ray

    from bench.inference.bench import dense_parameters, matmul_flops
    from tadistill.modeling import load_model

    from tadistill.config import TrainConfig
    from tadistill.synthetic.models import ensure_synthetic_models

    student = ensure_synthetic_models(REPO / ".cache" / "tadistill")["student"]
    one_thread = None if args.gpu else matmul_flops(1)  # before Ray starts: nothing else runs
    scratch = REPO / "bench" / "results" / "train_scratch"
    ray.init(address="local", num_cpus=None if args.gpu else 4, include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    results = []
    try:
        if args.gpu:
            rows = _rows(args.rows or 4096)
            model = _gpu_model(student, scratch / "model_0p5b")
            params = _parameters(model)
            base = dict(num_workers=args.gpus, use_gpu=True, epochs=1, global_batch_size=16 * args.gpus,
                        micro_batch_size=16, precision="bf16", lr=1e-4, strategy="deepspeed", max_length=256)
            for stage in (2, 3):
                result = _run(f"{args.gpus} GPU ZeRO-{stage}", rows, model,
                              TrainConfig(**base, deepspeed={"zero_stage": stage}), scratch)
                result["parameters"] = params
                result["mfu"] = round(6 * params * result["tokens_per_s"] / (args.gpus * args.peak_tflops * 1e12), 4)
                print(f"{'':>28}  MFU {result['mfu']:.1%} of {args.peak_tflops:.0f} TFLOP/s x {args.gpus}")
                results.append(result)
            rate = {r["config"]: r["tokens_per_s"] for r in results}
            ratios = {"ZeRO-3 / ZeRO-2 tokens/s": round(rate[f"{args.gpus} GPU ZeRO-3"] / rate[f"{args.gpus} GPU ZeRO-2"], 2)}
        else:
            rows = _rows(args.rows or 512)
            base = dict(epochs=1, global_batch_size=32, micro_batch_size=8, lr=3e-4, cpus_per_worker=1)
            for workers in (1, 2):
                for strategy in ("ddp", "deepspeed"):
                    config = TrainConfig(**base, num_workers=workers, strategy=strategy, deepspeed={"zero_stage": 2})
                    name = f"{workers} worker{'s' if workers > 1 else ''} {'DDP' if strategy == 'ddp' else 'ZeRO-2'}"
                    results.append(_run(name, rows, student, config, scratch))
            if args.smollm2:
                config = TrainConfig(**{**base, "global_batch_size": 8, "micro_batch_size": 4}, num_workers=1,
                                     strategy="ddp")
                result = _run("SmolLM2-135M 1 worker DDP", rows.head(64), args.smollm2, config, scratch)
                result["model"] = "smollm2-135m"
                results.append(result)
            dense = {student: dense_parameters(load_model(student))}
            if args.smollm2:
                dense[args.smollm2] = dense_parameters(load_model(args.smollm2))
            for result in results:
                params = dense[args.smollm2 if result.get("model") == "smollm2-135m" else student]
                flops = 6 * params * result["tokens_per_s"]
                result["model_gflops"] = round(flops / 1e9, 3)
                result["over_roofline"] = round(flops / (result["workers"] * one_thread), 3)
            rate = {r["config"]: r["samples_per_s"] for r in results}
            ratios = {
                "2 workers / 1 worker, DDP": round(rate["2 workers DDP"] / rate["1 worker DDP"], 2),
                "2 workers / 1 worker, ZeRO-2": round(rate["2 workers ZeRO-2"] / rate["1 worker ZeRO-2"], 2),
                "ZeRO-2 / DDP, 1 worker": round(rate["1 worker ZeRO-2"] / rate["1 worker DDP"], 2),
                "ZeRO-2 / DDP, 2 workers": round(rate["2 workers ZeRO-2"] / rate["2 workers DDP"], 2),
            }
    finally:
        ray.shutdown()
    for name, value in ratios.items():
        print(f"{name}: {value}x")
    out = Path(args.out or (REPO / "bench" / "results" / "train_gpu.json" if args.gpu
                            else REPO / "docs" / "results" / "train.json"))
    out.parent.mkdir(parents=True, exist_ok=True)
    summary = {"cpus": os.cpu_count(), "results": results, "ratios": ratios,
               "command": "python -m bench.train.bench" + (" --gpu" if args.gpu else "")
               + (" --smollm2 ..." if args.smollm2 else "")}
    if one_thread:
        summary["matmul_gflops_one_thread"] = round(one_thread / 1e9, 2)
        summary["roofline"] = {r["config"]: r["over_roofline"] for r in results}
        for name, value in summary["roofline"].items():
            print(f"{name}: {value:.1%} of fp32 matmul")
    out.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
