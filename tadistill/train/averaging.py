"""Weight-space averaging of a trained student with the student it started from (WiSE-FT,
Wortsman et al. 2022): theta = share x theta_start + (1 - share) x theta_trained.

Fine-tuning a small student on a few hundred teacher outputs for many steps moves it far from
what it knew: it can end below where it started on the questions it used to get right, and
where it ends varies a lot with the seed. Averaging with the starting weights keeps part of
what it knew and damps that variance, at no teacher cost and no extra training. Only floating
point tensors are averaged (buffers such as integer position ids are kept as trained).
"""

from __future__ import annotations

from pathlib import Path


def average_with_start(trained_dir: str | Path, start: str, share: float) -> dict:
    """Rewrite the model in `trained_dir` as the average; returns what was averaged."""
    import torch
    from transformers import AutoModelForCausalLM

    if not 0 < share < 1:
        raise ValueError(f"train.start_weight_share {share}: averaging needs a share strictly between 0 and 1")
    trained = AutoModelForCausalLM.from_pretrained(str(trained_dir))
    base = AutoModelForCausalLM.from_pretrained(start).state_dict()
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
