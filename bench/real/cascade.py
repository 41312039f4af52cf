"""A cascade of two real teachers on the same questions (issue 28): buy the cheap teacher's
output, buy the dear teacher's where trust in the cheap one is low, keep the output trusted most.

    .venv/bin/python -m bench.real.cascade [--signals length ...]

The pairs are recorded teachers of the same questions in ../shared/data: GSM8K test
(text-davinci-002 zero-shot CoT, then GPT-3 175B's solutions, matched by id) and SVAMP (PaLM 540B,
then GPT-3.5's first rationale, matched by the question's text); in each the teacher with fewer
right outputs is the cheap one. Prices are stated, not measured: the dear teacher costs PRICE_RATIO
times the cheap one per token, a request costing (question + output) words x its price (the
synthetic teacher's token count). Nothing here pays anyone: the outputs were recorded earlier.

Questions are split by a hash of their id: a calibration part (CALIBRATION_SHARE, gold used) fixes
the trust threshold before anything is judged, the rest is the evaluation part (no gold used to
choose; gold only to count right outputs). `random_escalation` escalates as many questions as the
cascade at random (the mean of 200 draws): what the trust signal adds over spending the same money blindly. A threshold is the quantile q of the trust signal over
the calibration part's right cheap outputs: the cascade escalates an evaluation question whose
cheap output falls below it, q from QUANTILES, and keeps the dear output there. Per pair, policy and q: questions, money, the share
of right outputs kept; `cheap` and `expensive` buy everything from one teacher. Writes `real` in
docs/results/cascade.json (other keys kept): one object per pair and policy; and
`real_money_to_target`: per pair, signal and target right share (the expensive teacher's less one
point, and halfway from cheap to expensive, both read on the calibration part), the money each
policy spends to reach it, the cascade's threshold chosen on the calibration part.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "docs" / "results" / "cascade.json"
PRICE_RATIO = 10.0  # the dear teacher's price per token over the cheap one's (issue 28: 10-50x)
CALIBRATION_SHARE = 0.3
QUANTILES = (0.05, 0.1, 0.2, 0.3, 0.5)
ADAPT = 160  # right rationales a TA of the cheap teacher is adapted on (as bench.real.trust_signals)
PAIRS = {
    "gsm8k": ("GSM8K test", "gsm8k-zeroshot", "gsm8k-gpt3", "id"),
    "svamp": ("SVAMP", "svamp-palm", "svamp-gpt35", "question"),
}


def _words(text: str) -> int:
    return len(str(text or "").replace(".", " .").replace("?", " ?").split())


def _normal(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", str(text).lower())


def in_calibration(key: str) -> bool:
    return int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) / 16 ** 8 < CALIBRATION_SHARE


def paired_outputs(pair: str) -> pd.DataFrame:
    """One row a question both teachers answered: its key, question, and per teacher the first
    output's text, answer, whether it is right, and its cost in the cheap teacher's money."""
    from bench.real.ta_detection import load

    _, cheap_key, dear_key, match = PAIRS[pair]
    sides = {}
    for side, key in (("cheap", cheap_key), ("dear", dear_key)):
        rows, records = load(key)
        first = records[records["k"] == records.groupby("id")["k"].transform("min")]
        first = first.merge(rows[["id", "question"]], on="id")
        first["key"] = first["id"] if match == "id" else first["question"].map(_normal)
        first = first.merge(rows[["id", "answer_type"]], on="id")
        if side == "cheap":  # the questions a TA of the cheap teacher was adapted on are out
            from bench.real.ta_detection import adaptation_rationales

            first = first[~first["id"].isin(set(adaptation_rationales(records, ADAPT)["id"]))]
        sides[side] = first.drop_duplicates("key").set_index("key")
    both = sides["cheap"].join(sides["dear"], how="inner", lsuffix="_cheap", rsuffix="_dear")
    out = pd.DataFrame({"question": both["question_cheap"], "id_cheap": both["id_cheap"],
                        "answer_cheap": both["answer_cheap"], "answer_type": both["answer_type_cheap"]},
                       index=both.index)
    for side, price in (("cheap", 1.0), ("dear", PRICE_RATIO)):
        out[f"text_{side}"] = both[f"text_{side}"]
        out[f"right_{side}"] = both[f"right_{side}"].astype(bool)
        out[f"cost_{side}"] = [(_words(q) + _words(t)) * price / 1000 for q, t in zip(out["question"], out[f"text_{side}"])]
    return out.reset_index(names="key")


TA_SIGNALS = ("ta_likelihood", "answer_confidence", "combined")


def cheap_signals(pair: str, frame: pd.DataFrame, names: list[str]) -> dict[str, np.ndarray]:
    """Per signal, its value on each question's cheap output (higher = more trusted). The TA's
    signals come from SmolLM2 adapted on the cheap teacher's right rationales of the adaptation
    part, as bench.real.trust_signals adapts it (those questions are out of `frame`); `combined`
    is the logistic regression over the others, fitted on the calibration part (cross-fitted there)."""
    values: dict[str, np.ndarray] = {}
    texts = frame["text_cheap"]
    if "length" in names:
        values["length"] = -texts.fillna("").str.len().to_numpy(dtype=float)
    if "arithmetic" in names:
        from tadistill.signals.trust_signals.arithmetic import ArithmeticCheck

        values["arithmetic"] = ArithmeticCheck().values(pd.DataFrame({"text": texts.to_numpy(), "answer_type": "number"}),
                                                        None).values.to_numpy(dtype=float)
    if any(n in TA_SIGNALS for n in names):
        values.update(_ta_signals(pair, frame, names))
    return values


def _ta_signals(pair: str, frame: pd.DataFrame, names: list[str]) -> dict[str, np.ndarray]:
    from bench.real.ta_detection import TA_WORK
    from bench.real.trust_signals import TA, registry_signals
    from tadistill.signals.logistic import choose_l2, cross_fitted, fit_logistic

    key = PAIRS[pair][1]
    outputs = pd.DataFrame({"id": frame["id_cheap"], "k": 0, "question": frame["question"], "text": frame["text_cheap"],
                            "answer": frame["answer_cheap"], "answer_type": frame["answer_type"]})
    found, _ = registry_signals(outputs, outputs, TA(TA_WORK / f"ta-{key}"))
    out = {n: found[n].to_numpy(dtype=float) for n in ("ta_likelihood", "answer_confidence") if n in names}
    if "combined" in names:
        inputs = [c for c in found.columns]
        x = np.column_stack([np.log(np.maximum(found[c].to_numpy(float), 1e-12)) if c in ("ta_likelihood",
                             "answer_confidence") else found[c].to_numpy(float) for c in inputs])
        calibrating = frame["key"].map(in_calibration).to_numpy()
        right = frame["right_cheap"].to_numpy(dtype=float)
        l2 = choose_l2(x[calibrating], right[calibrating])
        combined = fit_logistic(x[calibrating], right[calibrating], l2).logits(x)
        combined[calibrating] = cross_fitted(x[calibrating], right[calibrating], l2)
        out["combined"] = combined
    return out


def policies(frame: pd.DataFrame, values: np.ndarray, signal: str) -> list[dict]:
    """Cheap-only, expensive-only and the cascade at each threshold, on the evaluation part."""
    calibrating = frame["key"].map(in_calibration).to_numpy()
    ev = frame[~calibrating].reset_index(drop=True)
    cheap_trust = values[~calibrating]
    cal_right = values[calibrating & frame["right_cheap"].to_numpy(dtype=bool)]
    out = [_row("cheap", ev, ev["right_cheap"].to_numpy(), ev["cost_cheap"].sum()),
           _row("expensive", ev, ev["right_dear"].to_numpy(), ev["cost_dear"].sum())]
    for q in QUANTILES:
        escalate = cheap_trust < np.quantile(cal_right, q)
        # An escalated question keeps the dear output: a signal without a scale shared by both
        # teachers (output length) cannot say which of the two to trust more.
        right = np.where(escalate, ev["right_dear"], ev["right_cheap"])
        money = ev["cost_cheap"].sum() + ev.loc[escalate, "cost_dear"].sum()
        out.append(_row("cascade", ev, right, money, signal=signal, quantile=q, escalated=int(escalate.sum())))
        out.append(_random_escalation(ev, int(escalate.sum()), signal, q))
    return out


FINE = np.linspace(0.0, 1.0, 101)  # thresholds swept for the money each policy needs (item 4c)


def _targets(frame: pd.DataFrame) -> dict[str, float]:
    """The right shares asked for, read off the calibration part (gold is used there only): the
    expensive teacher's share less one point (the goal's bar), and halfway from cheap to expensive."""
    cal = frame[frame["key"].map(in_calibration)]
    cheap, dear = float(cal["right_cheap"].mean()), float(cal["right_dear"].mean())
    return {"expensive - 1 point": dear - 0.01, "halfway": (cheap + dear) / 2}


def money_to_target(frame: pd.DataFrame, values: np.ndarray, signal: str) -> list[dict]:
    """Per target right share: the money each policy spends on the evaluation part to reach it.

    The cascade's threshold is chosen on the calibration part (the cheapest of FINE quantiles whose
    calibration-part purchase reaches the target), then applied to the evaluation part, so `reached`
    says whether the choice held on questions it never saw. `random_escalation` escalates the
    fewest questions whose expected right share reaches the target; the single teachers reach it or not."""
    calibrating = frame["key"].map(in_calibration).to_numpy()
    cal, ev = frame[calibrating], frame[~calibrating].reset_index(drop=True)
    cal_values, ev_values = values[calibrating], values[~calibrating]
    cal_right = cal_values[cal["right_cheap"].to_numpy(dtype=bool)]
    out = []
    for name, target in _targets(frame).items():
        base = {"target": name, "target_share": round(target, 4), "signal": signal, "questions": len(ev)}
        chosen = next((q for q in FINE if _share(cal, cal_values < np.quantile(cal_right, q)) >= target), None)
        if chosen is None:
            out.append({**base, "policy": "cascade", "money": None, "right_share": None, "reached": False, "quantile": None})
        else:
            escalate = ev_values < np.quantile(cal_right, chosen)
            share = _share(ev, escalate)
            out.append({**base, "policy": "cascade", "quantile": round(float(chosen), 2), "escalated": int(escalate.sum()),
                        "money": round(float(_money(ev, escalate)), 3), "right_share": round(share, 4),
                        "reached": bool(share >= target)})
        cheap, dear = float(ev["right_cheap"].mean()), float(ev["right_dear"].mean())
        gain = (ev["right_dear"].astype(float) - ev["right_cheap"].astype(float)).mean()
        count = 0 if cheap >= target else (None if gain <= 0 or dear < target else
                                           int(np.ceil((target - cheap) / gain * len(ev))))
        out.append({**base, "policy": "random_escalation", "escalated": count,
                    "money": None if count is None else
                    round(float(ev["cost_cheap"].sum() + count / len(ev) * ev["cost_dear"].sum()), 3),
                    "right_share": None if count is None else round(cheap + count / len(ev) * gain, 4),
                    "reached": count is not None})
        for policy, share, money in (("cheap", cheap, ev["cost_cheap"].sum()), ("expensive", dear, ev["cost_dear"].sum())):
            out.append({**base, "policy": policy, "money": round(float(money), 3),
                        "right_share": round(share, 4), "reached": bool(share >= target)})
    return out


def _share(part: pd.DataFrame, escalate: np.ndarray) -> float:
    return float(np.where(escalate, part["right_dear"], part["right_cheap"]).mean())


def _money(part: pd.DataFrame, escalate: np.ndarray) -> float:
    return float(part["cost_cheap"].sum() + part.loc[escalate, "cost_dear"].sum())


def _random_escalation(ev: pd.DataFrame, count: int, signal: str, q: float, draws: int = 200) -> dict:
    """The same number of questions escalated at random (mean over draws): what the signal adds."""
    rng = np.random.default_rng(0)
    shares, money = [], []
    for _ in range(draws):
        escalate = np.zeros(len(ev), dtype=bool)
        escalate[rng.choice(len(ev), size=count, replace=False)] = True
        shares.append(np.where(escalate, ev["right_dear"], ev["right_cheap"]).mean())
        money.append(ev["cost_cheap"].sum() + ev.loc[escalate, "cost_dear"].sum())
    return {"policy": "random_escalation", "questions": len(ev), "money": round(float(np.mean(money)), 3),
            "right_share": round(float(np.mean(shares)), 4), "signal": signal, "quantile": q, "escalated": count}


def _row(policy: str, ev: pd.DataFrame, right: np.ndarray, money: float, **extra) -> dict:
    return {"policy": policy, "questions": len(ev), "money": round(float(money), 3),
            "right_share": round(float(np.mean(right)), 4), **extra}


def readme_table(results: list[dict]) -> str:
    """The README's table: per pair, the single teachers, then per signal the cascade's threshold
    with the most right outputs for at most half the expensive teacher's money (the goal's point),
    beside random escalation of as many questions (every threshold is in cascade.json)."""
    lines = ["| data set | policy | signal, q | escalated | money (share of expensive's) | right share |",
             "|---|---|---|---|---|---|"]

    def line(r: dict, dear: float) -> str:
        where = f"`{r['signal']}`, {r['quantile']}" if "signal" in r else "-"
        return (f"| {r['dataset']} | {r['policy']} | {where} | {r.get('escalated', '-')} | "
                f"{r['money']:.0f} ({r['money'] / dear:.2f}) | {r['right_share']:.3f} |")

    for pair in dict.fromkeys(r["pair"] for r in results):
        rows = [r for r in results if r["pair"] == pair]
        dear = next(r for r in rows if r["policy"] == "expensive")["money"]
        lines += [line(r, dear) for r in rows if r["policy"] in ("cheap", "expensive")]
        for signal in dict.fromkeys(r["signal"] for r in rows if "signal" in r):
            within = [r for r in rows if r.get("signal") == signal and r["policy"] == "cascade"
                      and r["money"] <= dear / 2]
            if within:
                best = max(within, key=lambda r: r["right_share"])
                twin = next(r for r in rows if r["policy"] == "random_escalation" and r.get("signal") == signal
                            and r["quantile"] == best["quantile"])
                lines += [line(best, dear), line(twin, dear)]
    return "\n".join(lines)


def readme_money_table(needs: list[dict]) -> str:
    """The README's table of item 4c: per pair and target, the money each policy needs (share of the
    expensive teacher's money), and whether the cascade's calibration-chosen threshold held."""
    lines = ["| data set | target right share | policy | signal | money (share of expensive's) | right share | reached |",
             "|---|---|---|---|---|---|---|"]
    for pair in dict.fromkeys(r["pair"] for r in needs):
        rows = [r for r in needs if r["pair"] == pair]
        full = next(r for r in rows if r["policy"] == "expensive")["money"]
        for target in dict.fromkeys(r["target"] for r in rows):
            for r in (r for r in rows if r["target"] == target):
                money = "-" if r["money"] is None else f"{r['money']:.0f} ({r['money'] / full:.2f})"
                share = "-" if r["right_share"] is None else f"{r['right_share']:.3f}"
                signal = f"`{r['signal']}`" if r["policy"] in ("cascade", "random_escalation") else "-"
                lines.append(f"| {r['dataset']} | {target} ({r['target_share']:.3f}) | {r['policy']} | {signal} | "
                             f"{money} | {share} | {'yes' if r['reached'] else 'no'} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--signals", nargs="+", default=["length", "arithmetic"],
                        choices=["length", "arithmetic", *TA_SIGNALS])
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument("--readme", default=None, help="only rewrite this README's table from --out")
    args = parser.parse_args()
    if args.readme:
        from bench.quality.stats import replace_between

        readme = Path(args.readme)
        stored = json.loads(Path(args.out).read_text())
        text = replace_between(readme.read_text(), "<!-- cascade:begin -->", "<!-- cascade:end -->",
                               readme_table(stored["real"]))
        if stored.get("real_money_to_target") and "<!-- cascade-money:begin -->" in text:
            text = replace_between(text, "<!-- cascade-money:begin -->", "<!-- cascade-money:end -->",
                                   readme_money_table(stored["real_money_to_target"]))
        readme.write_text(text)
        return
    from bench.real.ta_detection import SHARED

    if not SHARED.exists():
        print(f"{SHARED} is absent: nothing to measure")
        return
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    results, needs = [], []
    try:
        for pair, (dataset, cheap, dear, _) in PAIRS.items():
            frame = paired_outputs(pair)
            if any(n in TA_SIGNALS for n in args.signals):
                from bench.real.ta_detection import SMOLLM2, TA_WORK, adapt, load

                rows, records = load(cheap)
                adapt(SMOLLM2, rows, records, ADAPT, TA_WORK / f"ta-{cheap}")
            values = cheap_signals(pair, frame, args.signals)
            seen = set()
            for signal in args.signals:
                for row in money_to_target(frame, values[signal], signal):
                    if row["policy"] in ("cheap", "expensive") and (row["policy"], row["target"]) in seen:
                        continue
                    seen.add((row["policy"], row["target"]))
                    needs.append({"pair": pair, "dataset": dataset, **row})
                for row in policies(frame, values[signal], signal):
                    if row["policy"] in ("cheap", "expensive") and row["policy"] in seen:
                        continue
                    seen.add(row["policy"])
                    results.append({"pair": pair, "dataset": dataset, "cheap": cheap, "expensive": dear,
                                    "price_ratio": PRICE_RATIO, **row})
                    print(json.dumps(results[-1]))
    finally:
        ray.shutdown()
    out = Path(args.out)
    stored = json.loads(out.read_text()) if out.exists() else {}
    stored["real"] = results
    stored["real_money_to_target"] = needs
    out.write_text(json.dumps(stored, indent=2) + "\n")


if __name__ == "__main__":
    main()
