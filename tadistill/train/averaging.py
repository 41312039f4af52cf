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

`train.final_pick: best_on_probe` generalises it (pick_on_probe): the candidates are the checkpoints
the final training kept (its last weights and the resumable ones still stored: checkpoint_weights.py),
each at each of AUTO_SHARES, and the starting student itself (share 1); the one that answers the same
probe best becomes the final student. So a run whose training made the student worse on the probe
ends with the student it started from, and says so, at the same training compute: the probe is
answered once per candidate, 4 x checkpoints + 1 times. The probe is the trust calibration's
references, so the config asks for them (config/root.py): a run without outputs known to be right
cannot use it (a held-back share of the warm-up, answered by the teacher, would be the probe there).
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import pandas as pd

# The starting student itself as a final student (share 1 of its weights), and the training's last
# weights, as candidates are named (with '@share' where averaged with the start).
START = "start"
LAST = "last"
# What in a model folder is its weights: a chosen candidate's replace the last weights'.
WEIGHT_FILES = ("*.safetensors", "*.safetensors.index.json", "*.bin", "*.bin.index.json")


def start_weights(start: str) -> dict:
    """The starting student's tensors, loaded once for any number of averages."""
    from ..modeling import load_model

    return load_model(start).state_dict()


def average_with_start(trained_dir: str | Path, start: str, share: float, base: Optional[dict] = None) -> dict:
    """Rewrite the model in `trained_dir` as the average; returns what was averaged. `base`: the
    start's tensors when the caller has them loaded already (start_weights)."""
    from transformers import AutoModelForCausalLM

    if not 0 < share < 1:
        raise ValueError(f"train.start_weight_share {share}: averaging needs a share strictly between 0 and 1")
    trained = AutoModelForCausalLM.from_pretrained(str(trained_dir))
    base = base if base is not None else start_weights(start)
    state = trained.state_dict()
    _check_matches(state, base, trained_dir, start)
    averaged = _mix(state, base, share)
    trained.save_pretrained(str(trained_dir))
    return {"averaged_tensors": averaged, "start_weight_share": share}


def _check_matches(state: dict, base: dict, trained_dir, start: str) -> None:
    mismatched = [k for k, v in state.items() if k not in base or base[k].shape != v.shape]
    if mismatched:
        raise ValueError(f"cannot average {trained_dir} with {start}: {len(mismatched)} tensors differ in name or "
                         f"shape (first: {mismatched[0]}); set train.start_weight_share 0 and train.final_pick 'last'")


def _mix(state: dict, base: dict, share: float) -> int:
    """In place: share x start + (1 - share) x state on the floating point tensors; how many were averaged."""
    import torch

    averaged, seen = 0, set()
    with torch.no_grad():
        for name, tensor in state.items():
            # Tied weights (input embeddings and LM head) are one tensor under two names: average it once.
            if tensor.is_floating_point() and tensor.data_ptr() not in seen:
                seen.add(tensor.data_ptr())
                tensor.mul_(1 - share).add_(base[name].to(tensor.dtype), alpha=share)
                averaged += 1
    return averaged


# The shares `train.start_weight_share: auto` tries: from the trained weights alone to mostly the start.
AUTO_SHARES = (0.0, 0.25, 0.5, 0.75)


def require_probe(questions: pd.DataFrame, setting: str) -> None:
    if len(questions) == 0:
        raise ValueError(f"{setting} found no reference output with a readable answer to check the final student "
                         "on (trust.calibration_files)")


def choose_start_share(trained_dir: Path, start: str, questions: pd.DataFrame,
                       accuracy_of: Callable[[str], float], shares: Sequence[float] = AUTO_SHARES) -> dict:
    """Average at the share that answers the run's own checked questions best, read from the run
    (how far this student, on this purchase, drifted from what it knew), not fitted to a world.
    `accuracy_of(model_folder)` answers `questions` with a model. Ties go to the smaller share."""
    require_probe(questions, "train.start_weight_share 'auto'")
    picked = pick_on_probe(trained_dir, start, accuracy_of, shares=shares, with_start=False)
    return {"start_weight_share": picked["start_weight_share"], "checked_questions": len(questions),
            "checked_accuracy": {str(s): picked["probe_accuracy"][candidate_name(LAST, s)] for s in shares}}


def candidate_name(checkpoint: str, share: float) -> str:
    """'last' or 'step_0000016' as trained, 'last@0.25' averaged with the start at that share, 'start' itself."""
    if share == 1:
        return START
    return checkpoint if share == 0 else f"{checkpoint}@{share:g}"


@dataclass(frozen=True)
class _Answered:
    """A candidate and how it answered the probe; `rank` orders them, ties as pick_on_probe says."""

    name: str
    checkpoint: str
    share: float
    accuracy: float
    age: int  # 0: the last weights, 1: the newest checkpoint kept before them, ...
    folder: Path

    @property
    def rank(self) -> tuple:
        return self.accuracy, -self.share, -self.age


def pick_on_probe(final_dir: Path, start: str, accuracy_of: Callable[[str], float],
                  checkpoints: Sequence[tuple[str, Callable[[], dict]]] = (),
                  shares: Sequence[float] = AUTO_SHARES, with_start: bool = True) -> dict:
    """Leave in `final_dir` (the trained student's folder) the candidate that answers the probe best,
    and say what each answered. Candidates: the last weights (in final_dir) and each of `checkpoints`
    ((name, a loader of its tensors), newest first), each averaged with the start at each of
    `shares`; with_start, the start itself. Ties go to the least averaging, then the newest
    checkpoint: the start is kept only where it answers better than every trained candidate.
    `accuracy_of(model_folder)` answers the probe with a model. Each candidate is written, answered
    and dropped in turn: besides final_dir, the best so far and the one answered are on disk."""
    from ..modeling import load_model

    final_dir = Path(final_dir)
    base = start_weights(start)
    model = load_model(str(final_dir))  # every candidate's tensors are written through this one model
    last = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    _check_matches(last, base, final_dir, start)
    sources = [(LAST, lambda: last), *checkpoints]
    answered: list[_Answered] = []
    best = None
    with tempfile.TemporaryDirectory(dir=final_dir.parent) as tmp:
        for age, (checkpoint, load) in enumerate(sources):
            weights = load()
            for share in shares:
                name = candidate_name(checkpoint, share)
                folder = final_dir if name == LAST else _write_candidate(model, weights, base, share, final_dir,
                                                                         Path(tmp) / name)
                answered.append(_Answered(name, checkpoint, share, accuracy_of(str(folder)), age, folder))
                best = _better(best, answered[-1])
        if with_start:
            folder = _write_candidate(model, base, base, 0.0, final_dir, Path(tmp) / START)
            answered.append(_Answered(START, START, 1.0, accuracy_of(str(folder)), 0, folder))
            best = _better(best, answered[-1])
        if best.name != LAST:
            _adopt(best.folder, final_dir)
    return {"final_pick": best.name, "final_checkpoint": best.checkpoint, "start_weight_share": best.share,
            "probe_accuracy": {a.name: round(a.accuracy, 4) for a in answered}, "probe_evaluations": len(answered)}


def _write_candidate(model, weights: dict, base: dict, share: float, final_dir: Path, folder: Path) -> Path:
    """A model folder of `weights` averaged with the start at `share`, with final_dir's tokenizer."""
    model.load_state_dict(weights)
    if share > 0:
        _mix(model.state_dict(), base, share)
    shutil.copytree(final_dir, folder, ignore=shutil.ignore_patterns(*WEIGHT_FILES, "adapter", "README.md"))
    model.save_pretrained(str(folder))
    return folder


def _better(best: Optional[_Answered], new: _Answered) -> _Answered:
    """The better of the two; the other's folder is removed (the last weights' is final_dir, kept)."""
    if best is None:
        return new
    keep, drop = (new, best) if new.rank > best.rank else (best, new)
    if drop.name != LAST:
        shutil.rmtree(drop.folder)
    return keep


def _adopt(folder: Path, final_dir: Path) -> None:
    """The chosen candidate's weights (and config) in final_dir in place of the last weights', and
    without their LoRA adapters (adapter/), which describe those weights only."""
    for pattern in WEIGHT_FILES:
        for old in final_dir.glob(pattern):
            old.unlink()
    shutil.rmtree(final_dir / "adapter", ignore_errors=True)
    for new in folder.iterdir():
        if new.is_file():
            shutil.copy2(new, final_dir / new.name)
