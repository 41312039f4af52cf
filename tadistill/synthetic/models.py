"""Tiny student and TA models for the synthetic task, built once and cached.

Both are Llama-architecture causal LMs over a word-level tokenizer trained with
`tokenizers`. The TA is bigger and trained on a large gold set of its own (disjoint
seed), so it is measurably more competent than the student, which only sees a small gold
set: it knows the format of the task and little of the arithmetic. They are saved as ordinary
`save_pretrained` folders and loaded back with `from_pretrained`, like any real model.
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from .problems import generate_problems, gold_solution, vocabulary
from ..tasks.prompts import student_prompt, student_target

log = logging.getLogger(__name__)

BUILD_VERSION = 1
# Every build trains with this many torch threads, whatever the calling process uses: the weights
# depend on it (matrix products round differently with 1 thread or 2), and a process's thread count
# is not the model's business (a benchmark runs at 1, a test at the machine's default, a backend
# built in-process resets it). One count makes the models the same for all of them.
BUILD_THREADS = 1
BUILT = "tadistill_build.json"  # written last into a built model folder: its presence marks the folder complete
SPECIAL_TOKENS = {"pad": "<pad>", "bos": "<s>", "eos": "</s>", "unk": "<unk>"}


@dataclass(frozen=True)
class TinyModelSpec:
    hidden: int
    layers: int
    heads: int
    gold_examples: int
    epochs: int
    lr: float
    data_seed: int
    min_steps: int = 2
    max_steps: int = 5


# Sized from measurements on a 2-core CPU. The TA builds in ~75 s on 1-5-step problems; it is a
# verifier more than a writer: teacher-forced, it tells wrong teacher chains from right ones
# (AUROC ~0.9 on its least likely token), while its own greedy chains are often wrong. The student is built on short problems only
# (models.synthetic), so it starts out right on part of the task and unsure on the rest, as a
# pretrained student does; the legacy world's student (2-5 steps, 1000 problems, 4 epochs)
# answered ~10% of test questions, uniformly ignorant.
TA_SPEC = TinyModelSpec(hidden=128, layers=4, heads=4, gold_examples=3000, epochs=4, lr=1.5e-3, data_seed=9002,
                        min_steps=1, max_steps=5)


def student_spec(knows=None) -> TinyModelSpec:
    """The synthetic student built on what models.synthetic says it knows."""
    if knows is None:
        from ..config import SyntheticModelsConfig

        knows = SyntheticModelsConfig()
    return TinyModelSpec(hidden=128, layers=2, heads=4, gold_examples=knows.student_examples,
                         epochs=knows.student_epochs, lr=2e-3, data_seed=9001,
                         min_steps=knows.student_min_steps, max_steps=knows.student_max_steps)


def build_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(list(SPECIAL_TOKENS.values()) + vocabulary())}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token=SPECIAL_TOKENS["unk"]))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    core.decoder = decoders.WordPiece(prefix="##", cleanup=True)  # joins words, tidies ' .'
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        pad_token=SPECIAL_TOKENS["pad"],
        bos_token=SPECIAL_TOKENS["bos"],
        eos_token=SPECIAL_TOKENS["eos"],
        unk_token=SPECIAL_TOKENS["unk"],
    )


def _new_model(spec: TinyModelSpec, tokenizer, seed: int):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=spec.hidden,
        intermediate_size=spec.hidden * 4,
        num_hidden_layers=spec.layers,
        num_attention_heads=spec.heads,
        num_key_value_heads=spec.heads,
        max_position_embeddings=256,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    return LlamaForCausalLM(config)


def gold_rows(count: int, seed: int, min_steps: int = 2, max_steps: int = 5) -> list[dict]:
    return [
        {"prompt": student_prompt(p.question()), "target": student_target(gold_solution(p))}
        for p in generate_problems(count, seed, min_steps=min_steps, max_steps=max_steps)
    ]


def _spec_key(name: str, spec: TinyModelSpec) -> str:
    """The cache folder's key: the spec, and the arithmetic of the build (torch's version and the
    build's fixed thread count), so models built another way are never read for these."""
    import torch

    arithmetic = {"torch": torch.__version__, "threads": BUILD_THREADS}
    payload = json.dumps({"name": name, "version": BUILD_VERSION, **asdict(spec), **arithmetic}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


@contextmanager
def torch_threads(count: int):
    """torch uses `count` threads inside the block, and the caller's count again after it."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def build_model(name: str, spec: TinyModelSpec, out_dir: Path) -> Path:
    """Train one tiny model on its gold set and save it with its tokenizer into `out_dir`; the
    build record, written last, marks the folder complete."""
    from ..train.loop import fit_local

    tokenizer = build_tokenizer()
    model = _new_model(spec, tokenizer, seed=spec.data_seed)
    rows = gold_rows(spec.gold_examples, spec.data_seed, spec.min_steps, spec.max_steps)
    started = time.time()
    with torch_threads(BUILD_THREADS):
        fit_local(
            model, tokenizer, rows, epochs=spec.epochs, batch_size=32, lr=spec.lr, seed=spec.data_seed,
            on_epoch=lambda e, loss: log.info("building %s: epoch %d loss %.3f", name, e + 1, loss),
        )
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    (out_dir / BUILT).write_text(
        json.dumps({"name": name, "spec": asdict(spec), "seconds": round(time.time() - started, 1)}, indent=2)
    )
    return out_dir


def ensure_synthetic_models(cache_dir: str | Path, knows=None) -> dict[str, str]:
    """Paths of the cached student (built on what `knows`, a models.synthetic section, says)
    and TA, building whichever is missing."""
    root = Path(cache_dir).expanduser().resolve()
    root.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, spec in (("student", student_spec(knows)), ("ta", TA_SPEC)):
        target = root / f"synthetic-{name}-{_spec_key(name, spec)}"
        ensure_built(target, lambda folder, name=name, spec=spec: build_model(name, spec, folder),
                     f"the synthetic {name} model")
        paths[name] = str(target)
    return paths


def ensure_built(target: Path, build: Callable[[Path], object], what: str = "a cached model") -> Path:
    """`target`, built once by `build(folder)` however many processes ask at once: one builds under
    an exclusive lock while the others wait for it and then use its result. The build writes into a
    folder of its own, which takes the final name only when complete (its BUILT record last), so a
    build killed half way leaves nothing a later run takes for a model; the next build clears it."""
    if _built(target):
        return target
    with build_lock(target):
        if not _built(target):
            log.info("building %s (once; cached in %s)", what, target)
            _remove_unfinished(target)
            folder = Path(tempfile.mkdtemp(prefix=target.name + ".tmp-", dir=target.parent))
            build(folder)
            if not _built(folder):
                raise RuntimeError(f"building {what} wrote no {BUILT} into {folder}")
            folder.rename(target)
    return target


def _built(target: Path) -> bool:
    return (target / BUILT).exists()


@contextmanager
def build_lock(target: Path):
    """An exclusive lock on `target`'s build, held until the block ends; the kernel drops it when
    its process dies, so a build killed half way never blocks the next one."""
    import fcntl

    with open(target.with_name(target.name + ".lock"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _remove_unfinished(target: Path) -> None:
    """What a killed build left (its own temporary folder, or a half-written target): only ever
    called under the build lock, when no live build can own any of it."""
    import shutil

    for stale in target.parent.glob(target.name + ".tmp*"):
        shutil.rmtree(stale, ignore_errors=True)
    if target.exists():
        shutil.rmtree(target)
