"""Every registered trust signal on real teachers' outputs, beside output length (issue 27).

    .venv/bin/python -m bench.quality.smollm2 prepare            # once: the SmolLM2 safetensors folder
    .venv/bin/python -m bench.real.trust_signals [--only svamp-palm ...] [--eval 300] [--calibration 200]
    .venv/bin/python -m bench.real.trust_signals --readme docs/benchmarks/real-teachers.md   # the README's table from real.json

Per data set of bench/real/ta_detection (the same loading, the same split by a hash of the id,
the same TA: SmolLM2-135M-Instruct adapted for one epoch on up to 160 right rationales of the
adaptation part, the same 300 scored outputs of the evaluation part):

- the signals of the pipeline's registry, computed by their own classes
  (tadistill/signals/trust_signals/): `length`, `ta_likelihood`, `answer_confidence`,
  `arithmetic` (number answers), `teacher_agreement` (where the teacher gave several rationales);
- `verifier`: a logistic regression on the adapted TA's last hidden state (mean over the output's
  tokens), fitted on the calibration set: the TA taught to tell right from wrong, as a linear probe
  (a full fine-tune is beyond these CPUs);
- `combined`: a logistic regression over the signals above, fitted on the calibration set (the
  verifier's inputs there cross-fitted, 5 folds), its coefficients recorded.

The calibration set is gold-labelled outputs of the adaptation part the TA was not adapted on
(its wrong outputs and the right ones not drawn for adaptation), disjoint by id from the scored
outputs: no gold of a scored output is used. Per signal: AUROC with a bootstrap 95% CI, the
paired-bootstrap CI of its AUROC minus length's on the same outputs, and the wrong outputs' share
of the loss when outputs below the 5% quantile of the calibration set's right outputs are dropped
(the right outputs' weight actually lost is reported beside it). Writes `trust_signals` in
docs/results/real.json (other keys kept).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from bench.real.ta_detection import (DATASETS, SMOLLM2, adapt, adaptation_rationales, arguments, auroc, bootstrap_ci,
                                     in_adapt_part, load, measuring)
from tadistill.signals.logistic import choose_l2, cross_fitted, fit_logistic

log = logging.getLogger("trust_signals")
SIGNALS = ("length", "ta_likelihood", "answer_confidence", "arithmetic", "teacher_agreement", "verifier", "combined")
RIGHT_LOSS = 0.05  # the share of right outputs' weight a threshold may cost, fixed in advance


# -- the TA: one forward pass an output ----------------------------------------------------------

class TA:
    """The adapted TA's view of each output from one forward pass: its target tokens'
    log-probabilities and the mean of its last hidden state over them. The TA signals are read
    from these exactly as the pipeline's scorer computes them ('min' confidence; answer confidence
    as the log-probability of the tokens after the commitment, which the pipeline gets as two
    scorings' difference: `check_against_pipeline` compares the two on some outputs)."""

    def __init__(self, path: Path):
        from tadistill.inference.transformers_backend import TransformersBackend

        self.backend = TransformersBackend(str(path))
        self.forward_passes = 0

    def read(self, frame: pd.DataFrame) -> tuple[list[np.ndarray], np.ndarray]:
        import torch

        from tadistill.modeling import IGNORE_INDEX, collate_right, encode_pair
        from tadistill.tasks.prompts import student_prompt, student_target

        tokenizer, model = self.backend.tokenizer, self.backend.model
        logprobs, features = [], []
        for start in range(0, len(frame), 16):
            chunk = frame.iloc[start:start + 16]
            encoded = [encode_pair(tokenizer, student_prompt(q), student_target(t), 512, add_eos=False)
                       for q, t in zip(chunk["question"], chunk["text"])]
            batch = collate_right(encoded, tokenizer.pad_token_id)
            with torch.no_grad():
                out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                            output_hidden_states=True)
            labels = batch["labels"][:, 1:]
            token_logp = torch.log_softmax(out.logits[:, :-1].float(), -1).gather(
                -1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
            for row in range(len(chunk)):
                logprobs.append(token_logp[row][labels[row] != IGNORE_INDEX].double().numpy())
            mask = (batch["labels"] != IGNORE_INDEX).unsqueeze(-1).float()
            features.append(((out.hidden_states[-1].float() * mask).sum(1) / mask.sum(1).clamp(min=1)).numpy())
            self.forward_passes += len(chunk)
        return logprobs, np.concatenate(features)

    def answer_tokens(self, text: str) -> int:
        """How many of the output's tokens are the answer after its commitment (0: none)."""
        from tadistill.modeling import uses_chat
        from tadistill.signals.trust_signals.answer_confidence import split_at_answer
        from tadistill.tasks.prompts import student_target

        split = split_at_answer(text or "")
        if split is None:
            return 0
        tokenizer = self.backend.tokenizer
        as_target = lambda t: student_target(t).lstrip() if uses_chat(tokenizer) else student_target(t)  # noqa: E731
        count = lambda t: len(tokenizer(as_target(t), add_special_tokens=False)["input_ids"])  # noqa: E731
        return max(0, count(split[1]) - count(split[0]))

    def score(self, frame: pd.DataFrame, confidence: str | None = None) -> pd.Series:
        """The pipeline's scorer interface (for the check): rows (id, k, question, text) -> confidence."""
        from tadistill.tasks.prompts import student_prompt, student_target

        return pd.Series(self.backend.score([student_prompt(q) for q in frame["question"]],
                                            [student_target(t) for t in frame["text"]], max_length=512,
                                            confidence=confidence or "min"), index=frame.index, dtype=float)


# -- the signals of one set of outputs -----------------------------------------------------------

def registry_signals(outputs: pd.DataFrame, records: pd.DataFrame, ta: TA) -> tuple[pd.DataFrame, np.ndarray]:
    """The registered signals of each output (id, k, question, text, answer, answer_type), and the
    TA's hidden-state features of each."""
    from tadistill.signals.trust_signals.agreement import TeacherAgreement
    from tadistill.signals.trust_signals.arithmetic import ArithmeticCheck
    from tadistill.signals.trust_signals.length import Length

    logprobs, hidden = ta.read(outputs)
    answer_tokens = [ta.answer_tokens(t) for t in outputs["text"]]
    values = pd.DataFrame(index=outputs.index)
    values["length"] = Length().values(outputs, None).values
    values["ta_likelihood"] = [float(np.exp(lp.min())) if len(lp) else 0.0 for lp in logprobs]
    values["answer_confidence"] = [float(np.exp(min(0.0, lp[-n:].sum()))) if n and len(lp) >= n else 0.0
                                   for lp, n in zip(logprobs, answer_tokens)]
    if outputs["answer_type"].eq("number").all():
        values["arithmetic"] = ArithmeticCheck().values(outputs, None).values
    if records.groupby("id")["k"].count().max() > 1:  # the teacher's other rationales of these questions
        every = records[records["id"].isin(set(outputs["id"]))][["id", "k", "answer"]]
        shares = TeacherAgreement().values(every.reset_index(drop=True), None).values
        keyed = dict(zip(zip(every["id"], every["k"]), shares))
        values["teacher_agreement"] = [keyed[(i, k)] for i, k in zip(outputs["id"], outputs["k"])]
    return values, hidden


def check_against_pipeline(ta: TA, outputs: pd.DataFrame, one_pass: pd.DataFrame) -> dict:
    """The one-pass TA signals against the pipeline's own classes (its scorer, two scorings for
    answer confidence) on the first outputs: the largest differences."""
    from tadistill.signals.trust_signals.answer_confidence import AnswerConfidence
    from tadistill.signals.trust_signals.ta_likelihood import TALikelihood

    head = outputs.head(16)
    answer = AnswerConfidence().values(head, ta.score).values.to_numpy(float)
    likelihood = TALikelihood().values(head, ta.score).values.to_numpy(float)
    return {"answer_confidence": float(np.abs(answer - one_pass["answer_confidence"].head(16).to_numpy(float)).max()),
            "ta_likelihood": float(np.abs(likelihood - one_pass["ta_likelihood"].head(16).to_numpy(float)).max())}


def with_questions(frame: pd.DataFrame, rows: pd.DataFrame) -> pd.DataFrame:
    info = rows.set_index("id")
    return frame.assign(question=frame["id"].map(info["question"]), answer_type=frame["id"].map(info["answer_type"]))


def calibration_set(records: pd.DataFrame, adapted: set, size: int) -> pd.DataFrame:
    """Gold-labelled outputs of the adaptation part the TA never trained on."""
    first = records[records["k"] == 0]
    unseen = first[first["id"].map(in_adapt_part) & ~first["id"].isin(adapted)]
    return unseen.sample(n=min(size, len(unseen)), random_state=2).reset_index(drop=True)


def paired_diff_ci(scores: np.ndarray, baseline: np.ndarray, right: np.ndarray, resamples: int = 2000,
                   seed: int = 0) -> list[float]:
    rng = np.random.default_rng(seed)
    diffs = []
    for _ in range(resamples):
        pick = rng.integers(0, len(right), len(right))
        if right[pick].all() or not right[pick].any():
            continue
        diffs.append(auroc(scores[pick], right[pick]) - auroc(baseline[pick], right[pick]))
    return [round(float(np.percentile(diffs, 2.5)), 3), round(float(np.percentile(diffs, 97.5)), 3)]


def wrong_share_at_threshold(scores: np.ndarray, right: np.ndarray, calibration_right: np.ndarray) -> dict:
    """Drop outputs below the RIGHT_LOSS quantile of the calibration set's right outputs."""
    line = float(np.quantile(calibration_right, RIGHT_LOSS))
    kept = scores >= line
    return {"wrong_share_kept": round(float((~right & kept).sum() / max(kept.sum(), 1)), 3),
            "wrong_share_all": round(float((~right).mean()), 3),
            "right_weight_lost": round(float((right & ~kept).sum() / max(right.sum(), 1)), 3)}


COSTS = {  # per scored output, besides the teacher's requests
    "length": "none", "arithmetic": "none (a safe parser)",
    "teacher_agreement": "the teacher's other rationales of the question (n per request)",
    "ta_likelihood": "1 TA scoring", "answer_confidence": "2 TA scorings",
    "verifier": "1 TA forward pass; a gold-labelled calibration set",
    "combined": "the signals it combines; a gold-labelled calibration set",
}


def measure(name: str, work: Path, eval_count: int, adapt_count: int, calibration_size: int) -> list[dict]:
    dataset, teacher, _, _ = DATASETS[name]
    rows, records = load(name)
    first = records[records["k"] == 0]
    outputs = first[~first["id"].map(in_adapt_part)].sample(n=min(eval_count, len(first)), random_state=1)
    outputs = with_questions(outputs.reset_index(drop=True), rows)
    adapt(SMOLLM2, rows, records, adapt_count, work / f"ta-{name}")
    adapted = set(adaptation_rationales(records, adapt_count)["id"])
    calibration = with_questions(calibration_set(records, adapted, calibration_size), rows)
    ta = TA(work / f"ta-{name}")
    scored, hidden_scored = registry_signals(outputs, records, ta)
    known, hidden_known = registry_signals(calibration, records, ta)
    check = check_against_pipeline(ta, outputs, scored)
    log.info("%s: one pass against the pipeline's scorings, largest differences %s", name, check)
    right, known_right = outputs["right"].to_numpy(), calibration["right"].to_numpy()

    # The verifier: a probe on the TA's hidden state, its penalty chosen on the calibration set.
    l2 = choose_l2(hidden_known, known_right.astype(float))
    probe = fit_logistic(hidden_known, known_right.astype(float), l2)
    scored["verifier"] = probe.logits(hidden_scored)
    known["verifier"] = cross_fitted(hidden_known, known_right.astype(float), l2)

    # The combination: log of the probabilities (they span orders of magnitude), the rest as they are.
    parts = [c for c in scored.columns if c != "combined"]
    features = lambda frame: np.column_stack([np.log(np.maximum(frame[c].to_numpy(float), 1e-12))  # noqa: E731
                                              if c in ("ta_likelihood", "answer_confidence") else frame[c].to_numpy(float)
                                              for c in parts])
    combined_l2 = choose_l2(features(known), known_right.astype(float))
    combination = fit_logistic(features(known), known_right.astype(float), combined_l2)
    scored["combined"] = combination.logits(features(scored))
    known["combined"] = cross_fitted(features(known), known_right.astype(float), combined_l2)

    length = scored["length"].to_numpy(float)
    length_auroc = round(auroc(length, right), 3)
    results = []
    for signal in [s for s in SIGNALS if s in scored]:
        values = scored[signal].to_numpy(float)
        result = {
            "dataset": dataset, "teacher": teacher, "key": name, "signal": signal,
            "auroc": round(auroc(values, right), 3), "ci": bootstrap_ci(values, right),
            "right": int(right.sum()), "wrong": int((~right).sum()),
            "calibration_size": len(calibration) if signal in ("verifier", "combined") else 0,
            "cost": COSTS[signal], "length_auroc": length_auroc,
            "diff_vs_length_ci": paired_diff_ci(values, length, right) if signal != "length" else [0.0, 0.0],
            **wrong_share_at_threshold(values, right, known[signal].to_numpy(float)[known_right]),
        }
        if signal in ("ta_likelihood", "answer_confidence"):
            result["pipeline_check_max_diff"] = round(check[signal], 6)
        if signal == "verifier":
            result["l2"] = l2
        if signal == "combined":
            result["l2"] = combined_l2
            result["coefficients"] = {c: round(float(w), 3) for c, w in zip(parts + ["intercept"], combination.weights)}
        results.append(result)
        log.info("%s %s: AUROC %.3f %s (length %.3f)", name, signal, result["auroc"], result["ci"], length_auroc)
    return results


def readme_table(results: list[dict]) -> str:
    """Per data set, every signal's AUROC beside length's, with the CI of the difference."""
    lines = ["| data set | teacher | right / wrong | signal | AUROC (95% CI) | minus length (95% CI) | "
             "wrong share kept at 5% right lost |", "|---|---|---|---|---|---|---|"]
    for r in results:
        diff = "-" if r["signal"] == "length" else (f"{r['auroc'] - r['length_auroc']:+.3f} "
                                                    f"({r['diff_vs_length_ci'][0]:+.3f} to {r['diff_vs_length_ci'][1]:+.3f})")
        lines.append(f"| {r['dataset']} | {r['teacher']} | {r['right']} / {r['wrong']} | `{r['signal']}` | "
                     f"{r['auroc']:.3f} ({r['ci'][0]:.3f} to {r['ci'][1]:.3f}) | {diff} | "
                     f"{r['wrong_share_kept']:.3f} of {r['wrong_share_all']:.3f} ({r['right_weight_lost']:.3f} lost) |")
    return "\n".join(lines)


def write_readme(results: list[dict], readme: Path) -> None:
    from bench.quality.stats import replace_between

    text = readme.read_text()
    if "<!-- trust-signals:begin -->" in text:
        readme.write_text(replace_between(text, "<!-- trust-signals:begin -->", "<!-- trust-signals:end -->",
                                          readme_table(results)))


def main() -> None:
    parser = arguments(__doc__)
    parser.add_argument("--calibration", type=int, default=200, help="gold-labelled outputs the verifier and "
                                                                      "the combination are fitted on")
    args = parser.parse_args()
    if args.readme:
        write_readme(json.loads(Path(args.out).read_text())["trust_signals"], Path(args.readme))
        return
    out = Path(args.out)
    with measuring(args.work) as work:
        for name in args.only:
            results = measure(name, work, args.eval, args.adapt, args.calibration)
            saved = json.loads(out.read_text()) if out.exists() else {}
            kept = [r for r in saved.get("trust_signals", []) if r["key"] != name]
            order = {key: i for i, key in enumerate(DATASETS)}
            saved["trust_signals"] = sorted(kept + results, key=lambda r: (order[r["key"]], SIGNALS.index(r["signal"])))
            saved["trust_signals_command"] = "python -m bench.real.trust_signals"
            out.write_text(json.dumps(saved, indent=2) + "\n")


if __name__ == "__main__":
    main()
