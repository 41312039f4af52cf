"""Weight-space averaging of a trained student with the student it started from (WiSE-FT,
Wortsman et al. 2022): theta = share x theta_start + (1 - share) x theta_trained.

Fine-tuning a small student on a few hundred teacher outputs for many steps moves it far from
what it knew: it can end below where it started on the questions it used to get right, and
where it ends varies a lot with the seed. Averaging with the starting weights keeps part of
what it knew and damps that variance, at no teacher cost and no extra training. Only floating
point tensors are averaged (buffers such as integer position ids are kept as trained).

`train.start_weight_share: auto` reads the share from the run itself: the final student answers
the run's outputs known to be right (the trust calibration's references: held-out gold solutions
on the synthetic task, `trust.calibration_files` on a user's) at each of AUTO_SHARES, and the best
is kept. A student that learned from its purchase keeps its training; one the purchase pulled
away from what it knew goes back towards its start. No pool gold is read.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Callable, Optional, Sequence

import pandas as pd


def start_weights(start: str) -> dict:
    """The starting student's tensors, loaded once for any number of averages."""
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(start).state_dict()


def average_with_start(trained_dir: str | Path, start: str, share: float, base: Optional[dict] = None) -> dict:
    """Rewrite the model in `trained_dir` as the average; returns what was averaged. `base`: the
    start's tensors when the caller has them loaded already (start_weights)."""
    import torch
    from transformers import AutoModelForCausalLM

    if not 0 < share < 1:
        raise ValueError(f"train.start_weight_share {share}: averaging needs a share strictly between 0 and 1")
    trained = AutoModelForCausalLM.from_pretrained(str(trained_dir))
    base = base if base is not None else start_weights(start)
    state = trained.state_dict()
    mismatched = [k for k, v in state.items() if k not in base or base[k].shape != v.shape]
    if mismatched:
        raise ValueError(f"cannot average {trained_dir} with {start}: {len(mismatched)} tensors differ in name or shape "
                         f"(first: {mismatched[0]}); set train.start_weight_share 0")
    averaged, seen = 0, set()
    with torch.no_grad():
        for name, tensor in state.items():
            # Tied weights (input embeddings and LM head) are one tensor under two names: average it once.
            if tensor.is_floating_point() and tensor.data_ptr() not in seen:
                seen.add(tensor.data_ptr())
                tensor.mul_(1 - share).add_(base[name].to(tensor.dtype), alpha=share)
                averaged += 1
    trained.save_pretrained(str(trained_dir))
    return {"averaged_tensors": averaged, "start_weight_share": share}


# The shares `train.start_weight_share: auto` tries: from the trained weights alone to mostly the start.
AUTO_SHARES = (0.0, 0.25, 0.5, 0.75)


def checked_questions(references: pd.DataFrame, answer_type: str) -> pd.DataFrame:
    """The run's outputs known to be right (the trust calibration's references) as questions with
    gold answers, taken from the answer each reference states; references whose answer cannot be
    read are left out."""
    from ..tasks.answers import extract_answer

    gold = [extract_answer(text, answer_type) for text in references["text"]]
    frame = pd.DataFrame({"id": references["id"], "question": references["question"], "gold": gold,
                          "answer_type": answer_type, "options": None})
    return frame[frame["gold"].notna()].reset_index(drop=True)


def choose_start_share(trained_dir: Path, start: str, questions: pd.DataFrame,
                       accuracy_of: Callable[[str], float], shares: Sequence[float] = AUTO_SHARES) -> dict:
    """Average at the share that answers the run's own checked questions best, read from the run
    (how far this student, on this purchase, drifted from what it knew), not fitted to a world.
    `accuracy_of(model_folder)` answers `questions` with a model. Ties go to the smaller share."""
    if len(questions) == 0:
        raise ValueError("train.start_weight_share 'auto' found no reference output with a readable answer to "
                         "check shares on (trust.calibration_files)")
    measured, base = {}, start_weights(start)
    with tempfile.TemporaryDirectory(dir=Path(trained_dir).parent) as tmp:
        for share in shares:
            folder = Path(trained_dir)
            if share > 0:
                folder = Path(tmp) / f"share-{share}"
                shutil.copytree(trained_dir, folder)
                average_with_start(folder, start, share, base)
            measured[share] = accuracy_of(str(folder))
    best = max(shares, key=lambda s: (measured[s], -s))
    info = {"start_weight_share": best, "checked_questions": len(questions),
            "checked_accuracy": {str(s): round(a, 4) for s, a in measured.items()}}
    if best > 0:
        average_with_start(trained_dir, start, best, base)
    return info
